/**
 * The cluster simulator's agenda: actions ordered by (time, insertion), so a run is a pure function
 * of its seed and the calls made on it.
 */

interface Item {
  readonly at: number
  readonly seq: number
  readonly action: () => void
}

export class Agenda {
  #items: Item[] = []
  #seq = 0

  schedule(at: number, action: () => void): void {
    const item: Item = { at, seq: this.#seq++, action }
    let lo = 0
    let hi = this.#items.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      const other = this.#items[mid]
      if (other !== undefined && (other.at < at || (other.at === at && other.seq < item.seq))) lo = mid + 1
      else hi = mid
    }
    this.#items.splice(lo, 0, item)
  }

  get nextAt(): number | undefined {
    return this.#items[0]?.at
  }

  /** Removes and returns the earliest action if it is due by `until`. */
  take(until: number): Item | undefined {
    const first = this.#items[0]
    if (first === undefined || first.at > until) return undefined
    this.#items.shift()
    return first
  }
}
