import { fc, test } from "@fast-check/vitest"
import { expect } from "vitest"
import { exitsAfter, runsForever } from "../src/sim/behaviour.ts"
import type { Behaviour } from "../src/sim/behaviour.ts"
import type { EntrySpec } from "./helpers.ts"
import { entriesArb, isLive, makeWorld, phaseOf } from "./helpers.ts"

/** Actions inside one stay in level 1: re-tells of the same level, crashes, time. */
const insideArb = fc.array(fc.tuple(fc.constantFrom<"retell" | "crash" | "wait">("retell", "crash", "wait"), fc.integer({ min: 0, max: 20_000 })), { maxLength: 10 })

test.prop([entriesArb({ modes: ["once", "wait", "test"], max: 6 }), fc.array(fc.integer({ min: 0, max: 5_000 }), { minLength: 6, maxLength: 6 }), insideArb])(
  "rule 5: once, wait and test entries run once per entry into their level and are never restarted within it",
  (entries, lifetimes, inside) => {
    const behaviours = entries.map((e, i): [string, Behaviour] => [e.tag, exitsAfter(lifetimes[i] ?? 0, i % 2)])
    const w = makeWorld(entries, behaviours)
    w.tell("g", "1")
    for (const [what, ms] of inside) {
      w.advance(ms)
      if (what === "retell") w.tell("g", "1")
      if (what === "crash") w.crash(`t${(ms % entries.length) + 1}`, "SIGKILL")
    }
    w.runUntilIdle(600_000)
    for (const e of entries) expect(w.startsOf(e.tag).length).toBe(e.levels.includes("1") ? 1 : 0)
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

test.prop([
  fc.array(fc.record({ mode: fc.constantFrom<"test" | "wait" | "respawn" | "once">("test", "wait", "respawn", "once"), code: fc.constantFrom(0, 0, 1, 2), ms: fc.integer({ min: 0, max: 3_000 }) }), { minLength: 1, maxLength: 7 }),
])(
  "rule 5: a test that exits non-zero makes the group fail, and the rest of the transition still proceeds",
  (specs) => {
    const entries: EntrySpec[] = specs.map((s, i) => ({ group: "g", tag: `t${i + 1}`, levels: ["1"], mode: s.mode, command: `c${i + 1}` }))
    const behaviours = specs.map((s, i): [string, Behaviour] => [`t${i + 1}`, s.mode === "test" || s.mode === "wait" ? exitsAfter(s.ms, s.code) : runsForever()])
    const w = makeWorld(entries, behaviours)
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
