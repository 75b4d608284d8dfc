import { fc, test } from "@fast-check/vitest"
import { expect } from "vitest"
import type { Mode } from "../src/core/config.ts"
import { exitsAfter, runsForever } from "../src/sim/behaviour.ts"
import type { Behaviour } from "../src/sim/behaviour.ts"
import type { EntrySpec } from "./helpers.ts"
import { entriesArb, exits, isJob, isLive, kills, levelsArb, makeWorld, plainBehaviours } from "./helpers.ts"

/** How an entry lives: jobs exit after `ms` with `code`; a once entry runs forever or exits 0 after `ms`. */
const lifeArb = fc.record({
  ms: fc.integer({ min: 0, max: 5_000 }),
  code: fc.constantFrom(0, 0, 1),
  forever: fc.boolean(),
})
type Life = typeof lifeArb extends fc.Arbitrary<infer A> ? A : never
const livesArb = fc.array(lifeArb, { minLength: 1, maxLength: 8 })
const allModes: Mode[] = ["respawn", "once", "wait", "test"]

const behavioursFor = (entries: readonly EntrySpec[], lives: readonly Life[]): [string, Behaviour][] =>
  entries.map((e, i) => {
    const life = lives[i % Math.max(1, lives.length)] ?? { ms: 100, code: 0, forever: false }
    if (e.mode === "respawn") return [e.tag, runsForever()]
    if (e.mode === "once") return [e.tag, life.forever ? runsForever() : exitsAfter(life.ms, 0)]
    return [e.tag, exitsAfter(life.ms, life.code)]
  })

test.prop([entriesArb({ modes: allModes, max: 8 }), livesArb])(
  "rule 1: a transition takes its entries in file order, and a wait/test barrier holds every later entry until " +
    "it exits",
  (entries, lives) => {
    const w = makeWorld(entries, behavioursFor(entries, lives))
    w.tell("g", "1")
    w.runUntilIdle(3_600_000)
    const inLevel = entries.filter((e) => e.levels.includes("1"))
    // Nothing here exits on its own except once/wait/test, which are never restarted: one start each.
    expect(w.starts.map((s) => s.tag)).toEqual(inLevel.map((e) => e.tag))
    for (const [i, barrier] of inLevel.entries()) {
      if (!isJob(barrier.mode)) continue
      const exit = exits(w, barrier.tag)[0]
      expect(exit).toBeDefined()
      for (const later of inLevel.slice(i + 1)) {
        const start = w.startsOf(later.tag)[0]
        expect(start !== undefined && exit !== undefined && start.step >= exit.step && start.at >= exit.at).toBe(true)
      }
    }
    expect(w.violations).toEqual([])
  },
)

/** How long the barrier runs. */
const barrierMsArb = fc.integer({ min: 1_000, max: 100_000 })
/** Entries of another group. */
const otherGroupArb = entriesArb({ modes: ["respawn", "once"], groups: ["other"], max: 5 })
/** When, as a share of the barrier's run, something happens elsewhere. */
const meanwhileArb = fc.double({ min: 0, max: 0.99, noNaN: true })
const happeningArb = fc.constantFrom<"tell" | "crash" | "stopall">("tell", "crash", "stopall")

test.prop([barrierMsArb, otherGroupArb, meanwhileArb, happeningArb])(
  "rule 1: while a barrier runs, nothing blocks: other groups' tells, exits and stopall are handled at once",
  (barrierMs, others, fraction, what) => {
    const head = `g:mount:1:wait:mount\ng:after:1:respawn:after\nother:crashy:1:respawn:crashy\n`
    const w = makeWorld(others, [["mount", exitsAfter(barrierMs, 0)]], { sigtermDelayMs: 0 }, head)
    w.tell("other", "1")
    w.tell("g", "1")
    const at = Math.floor(barrierMs * fraction)
    w.advanceTo(at)
    if (what === "tell") {
      w.tell("other", "2")
      for (const e of others) expect(isLive(w, e.tag)).toBe(e.levels.includes("2"))
    } else if (what === "crash") {
      const before = w.startsOf("crashy").length
      w.crash("crashy", 1)
      expect(w.startsOf("crashy").length).toBe(before + 1)
      expect(w.startsOf("crashy").at(-1)?.at).toBe(at)
    } else {
      w.stopAll()
      expect(kills(w, "mount").map((k) => [k.at, k.signal])).toEqual([[at, "SIGTERM"]])
    }
    if (what !== "stopall") {
      expect(isLive(w, "mount")).toBe(true)
      expect(w.startsOf("after")).toEqual([])
      w.advanceTo(barrierMs)
      expect(w.startsOf("after").map((s) => s.at)).toEqual([barrierMs])
    }
    expect(w.violations).toEqual([])
  },
)

test.prop([entriesArb({ modes: allModes, max: 7 }), levelsArb, levelsArb])(
  "rule 2: entering a level starts every entry that lists it and is not running; a respawn entry listing both " +
    "levels runs on untouched",
  (entries, [from = "1"], [to = "2"]) => {
    const w = makeWorld(entries, plainBehaviours(entries))
    w.tell("g", from)
    w.runUntilIdle(60_000)
    const runsBefore = new Map(entries.map((e) => [e.tag, w.liveRuns(e.tag).map((p) => p.run)]))
    const stepOfTell = w.steps
    w.tell("g", to)
    w.runUntilIdle(60_000)
    for (const e of entries) {
      const startedSince = w.startsOf(e.tag).filter((s) => s.step >= stepOfTell).length
      if (!e.levels.includes(to)) continue
      const keptFromBefore = e.levels.includes(from)
      if (e.mode === "respawn" || e.mode === "once") {
        expect(isLive(w, e.tag)).toBe(true)
        if (keptFromBefore) {
          expect(w.liveRuns(e.tag).map((p) => p.run)).toEqual(runsBefore.get(e.tag))
          expect(kills(w, e.tag)).toEqual([])
          expect(startedSince).toBe(0)
        } else expect(startedSince).toBe(1)
      } else {
        // wait/test: run once per stay in their levels; already done if the old level listed them.
        expect(startedSince).toBe(keptFromBefore ? 0 : 1)
      }
    }
    expect(w.violations).toEqual([])
  },
)
