import { fc, test } from "@fast-check/vitest"
import { expect } from "vitest"
import { exitsAfter, runsForever } from "../src/sim/behaviour.ts"
import type { Behaviour } from "../src/sim/behaviour.ts"
import type { World } from "../src/sim/world.ts"
import type { EntrySpec } from "./helpers.ts"
import { entriesArb, entrySpec, exits, isJob, isLive, kills, makeWorld, phaseOf } from "./helpers.ts"

/** Once, wait and test entries of group g, tagged t1..tn in file order. */
const runToCompletionArb = entriesArb({ modes: ["once", "wait", "test"], max: 6 })
/** How long each of them runs (they exit 0 or 1, alternately). */
const lifetimesArb = fc.array(fc.integer({ min: 0, max: 5_000 }), { minLength: 6, maxLength: 6 })
/** What happens while the group stays in level 1: re-tells of that level, crashes, time. */
const staysInLevelArb = fc.array(
  fc.record({
    what: fc.constantFrom<"retell" | "crash" | "wait">("retell", "crash", "wait"),
    ms: fc.integer({ min: 0, max: 20_000 }),
  }),
  { maxLength: 10 },
)

/** Whether the last run of `tag` failed, from the world's record of exits. */
const lastRunFailed = (w: World, tag: string): boolean => {
  const last = exits(w, tag).at(-1)?.outcome
  return last !== undefined && !(last._tag === "Exited" && last.code === 0)
}

test.prop([runToCompletionArb, lifetimesArb, staysInLevelArb])(
  "rule 5: once, wait and test entries run once per entry into their level and are never restarted " +
    "within it (rule 17: a re-tell of the level the group is at in `fail` reruns its failed tests)",
  (entries, lifetimes, inside) => {
    const behaviours = entries.map((e, i): [string, Behaviour] => [e.tag, exitsAfter(lifetimes[i] ?? 0, i % 2)])
    const w = makeWorld(entries, behaviours)
    w.tell("g", "1")
    const reruns = new Map<string, number>()
    for (const { what, ms } of inside) {
      w.advance(ms)
      if (what === "retell") {
        const atFail = phaseOf(w, "g") === "fail"
        for (const e of entries) {
          const rerun = atFail && e.mode === "test" && e.levels.includes("1") && lastRunFailed(w, e.tag)
          if (rerun) reruns.set(e.tag, (reruns.get(e.tag) ?? 0) + 1)
        }
        w.tell("g", "1")
      }
      if (what === "crash") w.crash(`t${(ms % entries.length) + 1}`, "SIGKILL")
    }
    w.runUntilIdle(600_000)
    for (const e of entries) {
      expect(w.startsOf(e.tag).length).toBe(e.levels.includes("1") ? 1 + (reruns.get(e.tag) ?? 0) : 0)
    }
    // Leaving the level and coming back is a new entry into it: each runs once more.
    const leave = entries.every((e) => e.levels.includes("2")) ? "3" : "2"
    w.tell("g", leave)
    w.runUntilIdle(600_000)
    const stepBack = w.steps
    w.tell("g", "1")
    w.runUntilIdle(600_000)
    for (const e of entries) {
      const again = w.startsOf(e.tag).filter((s) => s.step >= stepBack).length
      expect(again).toBe(e.levels.includes("1") && !e.levels.includes(leave) ? 1 : 0)
    }
    expect(w.violations).toEqual([])
  },
)

/** One entry of group g at level 1: its mode, exit code and run time (tests and waits exit). */
const entryLifeArb = fc.record({
  mode: fc.constantFrom<"test" | "wait" | "respawn" | "once">("test", "wait", "respawn", "once"),
  code: fc.constantFrom(0, 0, 1, 2),
  ms: fc.integer({ min: 0, max: 3_000 }),
})
interface EntryLife {
  readonly mode: EntrySpec["mode"]
  readonly code: number
  readonly ms: number
}
const groupLifeArb = fc.array(entryLifeArb, { minLength: 1, maxLength: 7 })

/** A group g at level 1 from a list of entry lives; respawn and once entries run until stopped. */
const groupWorld = (specs: readonly EntryLife[]) => {
  const entries = specs.map((s, i) => entrySpec(i, s.mode))
  const behaviourOf = (s: EntryLife): Behaviour => (isJob(s.mode) ? exitsAfter(s.ms, s.code) : runsForever())
  const behaviours = specs.map((s, i): [string, Behaviour] => [`t${i + 1}`, behaviourOf(s)])
  return { entries, w: makeWorld(entries, behaviours) }
}

test.prop([groupLifeArb])(
  "rule 5: a test that exits non-zero makes the group fail, and the rest of the transition still proceeds",
  (specs) => {
    const { entries, w } = groupWorld(specs)
    w.tell("g", "1")
    w.runUntilIdle(600_000)
    const failed = specs.some((s) => s.mode === "test" && s.code !== 0)
    expect(phaseOf(w, "g")).toBe(failed ? "fail" : "run")
    for (const e of entries) {
      expect(w.startsOf(e.tag)).toHaveLength(1)
      if (e.mode === "respawn" || e.mode === "once") expect(isLive(w, e.tag)).toBe(true)
    }
    expect(w.report().groups.find((g) => g.group === "g")?.state).toBe(failed ? "fail" : "run")
    expect(w.violations).toEqual([])
  },
)

/** The exit codes of the tests' second runs. */
const secondCodesArb = fc.array(fc.constantFrom(0, 0, 1), { minLength: 7, maxLength: 7 })

test.prop([groupLifeArb, secondCodesArb])(
  "rule 17: a tell of the level a group is at reruns only its failed tests, in file order; the group is " +
    "`run` if they pass; healthy entries are untouched",
  (specs, secondCodes) => {
    const { entries, w } = groupWorld(specs)
    w.tell("g", "1")
    w.runUntilIdle(600_000)
    const failed = entries.filter((e, i) => e.mode === "test" && specs[i]?.code !== 0)
    const liveBefore = entries.map((e) => w.liveRuns(e.tag).map((p) => p.run))
    entries.forEach((e, i) => w.behave(e.tag, exitsAfter(specs[i]?.ms ?? 0, secondCodes[i] ?? 0)))
    const retell = w.steps
    w.tell("g", "1")
    w.runUntilIdle(600_000)
    expect(w.starts.filter((s) => s.step >= retell).map((s) => s.tag)).toEqual(failed.map((e) => e.tag))
    expect(kills(w).filter((k) => k.step >= retell)).toEqual([])
    expect(entries.map((e) => w.liveRuns(e.tag).map((p) => p.run))).toEqual(liveBefore)
    const stillFailing = failed.some((e) => secondCodes[Number(e.tag.slice(1)) - 1] !== 0)
    expect(phaseOf(w, "g")).toBe(stillFailing ? "fail" : "run")
    expect(w.violations).toEqual([])
  },
)
