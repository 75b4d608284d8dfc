import { fc, test } from "@fast-check/vitest"
import { describe, expect, it } from "vitest"
import { admitStart, countStart } from "../src/core/respawn.ts"
import { lookup } from "../src/core/state.ts"
import { World } from "../src/sim/world.ts"
import { nearArb } from "./helpers.ts"

interface Limits {
  readonly max: number
  readonly windowMs: number
  readonly jailMs: number
}

/**
 * One start attempt at `t`, as plain arithmetic: the window it leaves, and the jail's end when it
 * is refused (when the jail is over and the window admits a start again, whichever is later).
 */
const attempted = (window: readonly number[], t: number, limits: Limits): { window: readonly number[]; jail: number | undefined } => {
  const recent = window.filter((s) => t - s < limits.windowMs)
  if (recent.length < limits.max) return { window: [...recent, t], jail: undefined }
  return { window: recent, jail: Math.max(t + limits.jailMs, (recent[recent.length - limits.max] ?? t) + limits.windowMs) }
}

/**
 * The rule as plain arithmetic: when a single respawn entry that is crashed at `crashes` starts.
 * Every start, the one at the end of a jail included, must find fewer than `max` starts in the
 * window; the window outlives a jail, so a jail shorter than the window cannot let extra starts in.
 */
const expectedStarts = (limits: Limits, crashes: readonly number[], end: number) => {
  const starts = [0]
  let jailings = 0
  let window: readonly number[] = [0]
  let live = true
  let jail: number | undefined
  const attempt = (t: number): void => {
    const result = attempted(window, t, limits)
    window = result.window
    jail = result.jail
    live = jail === undefined
    if (live) starts.push(t)
    else jailings++
  }
  const release = (now: number): void => {
    while (jail !== undefined && jail <= now) {
      const at = jail
      jail = undefined
      attempt(at)
    }
  }
  for (const t of crashes) {
    release(t)
    if (live) attempt(t)
  }
  release(end)
  return { starts, jailedUntil: jail, jailings }
}

/**
 * Where the limits are written: as the daemon-wide directives, or as the entry's own options (its
 * tag's or `*`'s; issue 11) over directives that say something else, which must not count then.
 */
type Placement = "directives" | "options" | "star"

const header = (l: Limits, placement: Placement = "directives"): string => {
  if (placement === "directives") return `:::respawn-limit:${l.max}/${l.windowMs}ms\n:::jail:${l.jailMs}ms\n`
  const target = placement === "star" ? "*" : "r"
  const other = `:::respawn-limit:${l.max === 1 ? 2 : l.max - 1}/${l.windowMs + 1}ms\n:::jail:${l.jailMs + 1}ms\n`
  return `${other}:::option:${target}:respawn-limit=${l.max}/${l.windowMs}ms\n:::option:${target}:jail=${l.jailMs}ms\n`
}

const runCrashes = (limits: Limits, gaps: readonly number[], tail: number, placement: Placement = "directives") => {
  const w = new World({ config: header(limits, placement) + "g:r:1:respawn:server\n" })
  w.tell("g", "1")
  const crashes: number[] = []
  for (const gap of gaps) {
    w.advance(gap)
    crashes.push(w.now)
    w.crash("r", 1)
  }
  w.advance(tail)
  return { w, crashes }
}

/** The original's limits, or any others. */
const limitsArb = fc.oneof(
  fc.constant<Limits>({ max: 5, windowMs: 10_000, jailMs: 60_000 }),
  fc.record({
    max: fc.integer({ min: 1, max: 6 }),
    windowMs: fc.integer({ min: 1, max: 20_000 }),
    jailMs: fc.integer({ min: 1, max: 90_000 }),
  }),
)

/** Limits, the gaps between crashes (on the window's and the jail's edges), then quiet time. */
const crashLoopArb = limitsArb.chain((limits) => {
  const edges = [limits.windowMs, Math.floor(limits.windowMs / limits.max), limits.jailMs, 0]
  return fc.record({
    limits: fc.constant(limits),
    gaps: fc.array(nearArb(edges, limits.jailMs + limits.windowMs), { maxLength: 30 }),
    tail: nearArb([limits.jailMs], limits.jailMs * 2),
    placement: fc.constantFrom<Placement>("directives", "options", "star"),
  })
})

test.prop([crashLoopArb], { numRuns: 300 })(
  "rule 6: a respawn entry is restarted at once, at most N times in any window; the start that would " +
    "exceed it jails the entry until the jail is over and the window admits a start, and a tick restarts it then " +
    "(the entry's own respawn-limit and jail options over the directives)",
  ({ limits, gaps, tail, placement }) => {
    const { w, crashes } = runCrashes(limits, gaps, tail, placement)
    const expected = expectedStarts(limits, crashes, w.now)
    expect(w.startsOf("r").map((s) => s.at)).toEqual(expected.starts)
    const entry = w.report().groups[0]?.entries.find((e) => e.tag === "r")
    expect(entry?.jailedUntil ?? undefined).toBe(expected.jailedUntil)
    if (expected.jailedUntil !== undefined) expect(entry?.state).toBe("jailed")
    // One jailed line per jailing, and a release always starts the entry (never jails it again).
    expect(w.timeline.filter((e) => e.kind === "jailed")).toHaveLength(expected.jailings)
    const released = w.timeline.filter((e) => e.kind === "released").map((e) => e.at)
    for (const at of released) expect(w.startsOf("r").some((s) => s.at === at)).toBe(true)
    expect(w.violations).toEqual([])
  },
)

/** Limits, a window of earlier starts (oldest first) and a time after them, on the window's and the jail's edges. */
const attemptArb = limitsArb.chain((limits) =>
  fc.record({
    limits: fc.constant(limits),
    starts: fc.array(nearArb([limits.windowMs, Math.floor(limits.windowMs / limits.max)], 3 * limits.windowMs), { maxLength: 8 }).map((gaps) =>
      gaps.reduce<number[]>((at, gap) => [...at, (at.at(-1) ?? 0) + gap], []),
    ),
    gap: nearArb([limits.windowMs, 0], 2 * limits.windowMs),
  }),
)

const coreLimits = (l: Limits) => ({ respawnMax: l.max, respawnWindowMs: l.windowMs, jailMs: l.jailMs, killGraceMs: 30_000 })

test.prop([attemptArb], { numRuns: 500 })(
  "rule 6: `admitStart` (the reducer's and adoption's one function for the window) is the rule as plain arithmetic; " +
    "an admitted start leaves the window a start counted by `countStart` leaves",
  ({ limits, starts, gap }) => {
    const now = (starts.at(-1) ?? 0) + gap
    const model = attempted(starts, now, limits)
    const admission = admitStart(starts, now, coreLimits(limits))
    expect(admission).toEqual(model.jail === undefined ? { _tag: "Admitted", starts: model.window } : { _tag: "Jailed", starts: model.window, until: model.jail })
    const counted = countStart(starts, now, coreLimits(limits))
    expect(counted.length).toBeLessThanOrEqual(limits.max)
    if (admission._tag === "Admitted") expect(counted).toEqual(admission.starts)
    // Counting keeps what decides the next admission: the same answer as the whole window gives.
    const later = now + gap
    const verdict = (a: ReturnType<typeof admitStart>) => (a._tag === "Admitted" ? a._tag : a.until)
    const whole = attempted(starts, now, { ...limits, max: Number.MAX_SAFE_INTEGER }).window
    expect(verdict(admitStart(counted, later, coreLimits(limits)))).toEqual(verdict(admitStart(whole, later, coreLimits(limits))))
  },
)

const groupArb = fc.constantFrom("g1", "g2", "g3")
/** Tells of the three groups in any order, then crashes of their entries at any time. */
const tellsArb = fc.array(groupArb, { minLength: 3, maxLength: 8 })
const crashesArb = fc.array(fc.record({ group: groupArb, gap: fc.integer({ min: 0, max: 5_000 }) }), { maxLength: 12 })

test.prop([tellsArb, crashesArb])(
  "rule 6: respawn entries are restarted in every group, not only in the group told last",
  (tells, crashes) => {
    const w = new World({ config: "g1:r1:1:respawn:a\ng2:r2:1:respawn:b\ng3:r3:1:respawn:c\n" })
    for (const g of ["g1", "g2", "g3", ...tells]) w.tell(g, "1") // groups told different numbers of times
    const perTag = new Map<string, number>()
    for (const { group, gap } of crashes) {
      const tag = `r${group.slice(1)}`
      if ((perTag.get(tag) ?? 0) >= 4) continue // stay under the limit: this is about restarts, not jail
      perTag.set(tag, (perTag.get(tag) ?? 0) + 1)
      w.advance(gap)
      w.crash(tag, 1)
      expect(w.liveRuns(tag)).toHaveLength(1)
      expect(w.startsOf(tag).at(-1)?.at).toBe(w.now)
    }
    for (const tag of ["r1", "r2", "r3"]) expect(w.startsOf(tag)).toHaveLength(1 + (perTag.get(tag) ?? 0))
    expect(w.violations).toEqual([])
  },
)

describe("rule 6 at the exact boundaries", () => {
  const defaults: Limits = { max: 5, windowMs: 10_000, jailMs: 60_000 }
  const fiveStarts = [1, 1, 1, 1] // starts at 0, 1, 2, 3, 4

  it("rule 6: the 6th start at 9 999 ms after the 1st is refused and jails the entry until 69 999 ms", () => {
    const { w } = runCrashes(defaults, [...fiveStarts, 9_995], 0)
    expect(w.startsOf("r").map((s) => s.at)).toEqual([0, 1, 2, 3, 4])
    expect(lookup(w.state.entries, "r")?.jail).toEqual({ _tag: "Jailed", until: 69_999 })
    expect(w.timeline.filter((e) => e.kind === "jailed").map((e) => e.at)).toEqual([9_999])
  })

  it("rule 6: the 6th start at 10 000 ms after the 1st is allowed (the 1st has left the window)", () => {
    const { w } = runCrashes(defaults, [...fiveStarts, 9_996], 0)
    expect(w.startsOf("r").map((s) => s.at)).toEqual([0, 1, 2, 3, 4, 10_000])
    expect(lookup(w.state.entries, "r")?.jail).toEqual({ _tag: "Free" })
  })

  it("rule 6: the 5th start at 10 000 ms is allowed, and the 6th right after it too", () => {
    const { w } = runCrashes(defaults, [2_500, 2_500, 2_500, 2_500, 0], 0)
    expect(w.startsOf("r").map((s) => s.at)).toEqual([0, 2_500, 5_000, 7_500, 10_000, 10_000])
    const { w: w2 } = runCrashes(defaults, [2_500, 2_500, 2_500, 2_499, 1, 0], 0)
    expect(w2.startsOf("r").map((s) => s.at)).toEqual([0, 2_500, 5_000, 7_500, 9_999, 10_000])
    expect(lookup(w2.state.entries, "r")?.jail).toEqual({ _tag: "Jailed", until: 70_000 })
  })

  it("rule 6: the jail ends at exactly 60 000 ms: not restarted at 59 999, restarted by the tick at 60 000", () => {
    const { w } = runCrashes(defaults, [...fiveStarts, 1], 0) // jailed at 5
    expect(w.deadline).toBe(60_005)
    w.advanceTo(60_004)
    expect(w.startsOf("r")).toHaveLength(5)
    expect(w.report().groups[0]?.entries[0]?.state).toBe("jailed")
    w.advanceTo(60_005)
    expect(w.startsOf("r").map((s) => s.at).at(-1)).toBe(60_005)
    expect(w.history.at(-2)?.event._tag).toBe("Tick")
    expect(w.timeline.some((e) => e.kind === "released" && e.at === 60_005)).toBe(true)
  })

  it("rule 6: a jail shorter than the window lasts until the window admits a start: one jailing, its real end", () => {
    const short: Limits = { max: 5, windowMs: 10_000, jailMs: 2_000 }
    const { w } = runCrashes(short, [...fiveStarts, 1], 0) // the 6th start at 5 would exceed the window
    expect(lookup(w.state.entries, "r")?.jail).toEqual({ _tag: "Jailed", until: 10_000 })
    expect(w.report().groups[0]?.entries[0]?.jailedUntil).toBe(10_000)
    w.advanceTo(9_999)
    expect(w.startsOf("r")).toHaveLength(5)
    w.advanceTo(10_000)
    expect(w.startsOf("r").map((s) => s.at)).toEqual([0, 1, 2, 3, 4, 10_000])
    w.advanceTo(20_000)
    expect(w.timeline.filter((e) => e.kind === "jailed").map((e) => [e.at, e.detail])).toEqual([
      [5, "jailed until 10.000s (for 9995 ms: respawning too rapidly (5 starts within 10000 ms))"],
    ])
    expect(w.timeline.filter((e) => e.kind === "released").map((e) => e.at)).toEqual([10_000])
  })

  it("rule 6: a jail that ends exactly when the window admits a start, and one a millisecond later", () => {
    const even: Limits = { max: 5, windowMs: 10_000, jailMs: 9_995 }
    const { w } = runCrashes(even, [...fiveStarts, 1], 0)
    expect(lookup(w.state.entries, "r")?.jail).toEqual({ _tag: "Jailed", until: 10_000 })
    const { w: later } = runCrashes({ ...even, jailMs: 9_996 }, [...fiveStarts, 1], 0)
    expect(lookup(later.state.entries, "r")?.jail).toEqual({ _tag: "Jailed", until: 10_001 })
  })

  it("rule 6 by options: respawn-limit=2/5s and jail=7s of the entry, not the directives' 5/10s and 60s", () => {
    const w = new World({ config: ":::option:r:respawn-limit=2/5s\n:::option:r:jail=7s\ng:r:1:respawn:server\ng:s:1:respawn:other\n" })
    w.tell("g", "1")
    w.advanceTo(1_000)
    w.crash("r", 1) // second start, at 1 s
    w.advanceTo(2_000)
    w.crash("r", 1) // a third within 5 s: jailed 7 s
    expect(lookup(w.state.entries, "r")?.jail).toEqual({ _tag: "Jailed", until: 9_000 })
    w.crash("s", 1)
    w.crash("s", 1)
    expect(lookup(w.state.entries, "s")?.jail).toEqual({ _tag: "Free" })
    w.advanceTo(8_999)
    expect(w.startsOf("r").map((s) => s.at)).toEqual([0, 1_000])
    w.advanceTo(9_000)
    expect(w.startsOf("r").map((s) => s.at)).toEqual([0, 1_000, 9_000])
    expect(w.violations).toEqual([])
  })

})
