/**
 * A seeded PRNG (mulberry32): the simulator's only source of randomness, so a seed replays a
 * whole swarm run exactly. Not for anything that needs unpredictability.
 */

export interface Rng {
  /** Uniform in [0, 1). */
  readonly next: () => number
  /** Uniform integer in [min, max], both inclusive. */
  readonly int: (min: number, max: number) => number
  readonly chance: (probability: number) => boolean
  /** One element of a non-empty list. */
  readonly pick: <T>(items: readonly [T, ...T[]]) => T
  /** One element, chosen with the given weights (all >= 0, at least one > 0). */
  readonly weighted: <T>(choices: readonly (readonly [number, T])[]) => T
}

export const makeRng = (seed: number): Rng => {
  let a = seed >>> 0
  const next = (): number => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296
  }
  const int = (min: number, max: number): number => min + Math.floor(next() * (max - min + 1))
  const pick = <T>(items: readonly [T, ...T[]]): T => items[int(0, items.length - 1)] ?? items[0]
  const weighted = <T>(choices: readonly (readonly [number, T])[]): T => {
    const total = choices.reduce((sum, [w]) => sum + w, 0)
    let x = next() * total
    for (const [w, value] of choices) {
      if (x < w) return value
      x -= w
    }
    const last = choices[choices.length - 1]
    if (last === undefined) throw new Error("weighted: no choices")
    return last[1]
  }
  return { next, int, chance: (p) => next() < p, pick, weighted }
}
