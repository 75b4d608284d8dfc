/**
 * The cluster simulator's agenda: actions ordered by (time, insertion), so a run is a pure function
 * of its seed and the calls made on it.
 */

interface Item {
  readonly at: number
  readonly seq: number
  readonly action: () => void
}

/** Inserts `item` after every item due before it or at the same time and scheduled earlier. */
export const insertByTime = <T extends { readonly at: number; readonly seq: number }>(items: T[], item: T): void => {
  let lo = 0
  let hi = items.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    const other = items[mid]
    if (other !== undefined && (other.at < item.at || (other.at === item.at && other.seq < item.seq))) lo = mid + 1
    else hi = mid
  }
  items.splice(lo, 0, item)
}

export class Agenda {
  #items: Item[] = []
  #seq = 0

  schedule(at: number, action: () => void): void {
    insertByTime(this.#items, { at, seq: this.#seq++, action })
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
