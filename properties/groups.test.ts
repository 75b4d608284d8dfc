import { fc, test } from "@fast-check/vitest"
import { expect } from "vitest"
import type { Mode } from "../src/core/config.ts"
import type { Outcome } from "../src/core/events.ts"
import { lookup } from "../src/core/state.ts"
import { exitsAfter, runsForever, stopsAfter } from "../src/sim/behaviour.ts"
import type { Behaviour } from "../src/sim/behaviour.ts"
import type { Invariant } from "../src/sim/invariants.ts"
import { allInvariants } from "../src/sim/invariants.ts"
import { swarm } from "../src/sim/swarm.ts"
import { perform } from "../src/sim/scenario.ts"
import { World } from "../src/sim/world.ts"
import type { EntrySpec } from "./helpers.ts"
import { configText, entriesArb, exits, isLive, kills, levelsArb, liveTags, makeWorld, phaseOf } from "./helpers.ts"
import { rejections } from "./helpers.ts"

const allModes: Mode[] = ["respawn", "once", "wait", "test"]
const levelArb = fc.constantFrom("1", "2", "3")

/** How an entry lives: a wait/test job exits after `ms` with `code`; the others take `stopMs` to stop. */
const lifeArb = fc.record({
  ms: fc.integer({ min: 0, max: 4_000 }),
  code: fc.constantFrom(0, 0, 1),
  stopMs: fc.integer({ min: 0, max: 3_000 }),
})
type Life = typeof lifeArb extends fc.Arbitrary<infer A> ? A : never

const behavioursFor = (entries: readonly EntrySpec[], lives: readonly Life[]): [string, Behaviour][] =>
  entries.map((e, i) => {
    const life = lives[i % lives.length] ?? { ms: 10, code: 0, stopMs: 10 }
    const job = e.mode === "wait" || e.mode === "test"
    return [e.tag, job ? exitsAfter(life.ms, life.code) : stopsAfter(life.stopMs, runsForever())]
  })

/** Rule 8 seen from outside: `start` exactly while a barrier or an outgoing process of the group is alive. */
const phaseFollowsWork = (group: string): Invariant => {
  const signalled = new Set<string>()
  return (world, step) => {
    for (const e of step.record.effects) if (e._tag === "Kill") signalled.add(`${e.tag}#${e.run}`)
    const phase = lookup(step.after.groups, group)?.phase
    const pending = [...world.processes.values()].filter(
      (p) => p.group === group && p.pid !== undefined && (p.kind === "RunSync" || signalled.has(p.key)),
    )
    const settled = phase === "run" || phase === "fail"
    const bad = (phase === "start" && pending.length === 0) || (settled && pending.length > 0)
    if (!bad) return []
    const message = `${group} is ${phase} with ${pending.map((p) => p.key).join(", ") || "nothing"} pending`
    return [{ at: step.record.at, step: step.record.index, invariant: "phaseFollowsWork", message }]
  }
}

/** Tells of group g, each followed by some time. */
const tellsArb = fc.array(fc.record({ level: levelArb, gap: fc.integer({ min: 0, max: 5_000 }) }), {
  minLength: 1,
  maxLength: 5,
})

const failedOutcome = (outcome: Outcome): boolean => !(outcome._tag === "Exited" && outcome.code === 0)

test.prop([entriesArb({ modes: allModes, max: 7 }), fc.array(lifeArb, { minLength: 1, maxLength: 7 }), tellsArb])(
  "rule 8: a group is `start` while its transition is in progress (barriers, outgoing processes), then `run`, " +
    "or `fail` if a test failed",
  (entries, lives, tells) => {
    const invariants = [...allInvariants, phaseFollowsWork("g")]
    const w = makeWorld(entries, behavioursFor(entries, lives), { invariants })
    for (const { level, gap } of tells) {
      w.tell("g", level)
      w.advance(gap)
    }
    w.runUntilIdle(600_000)
    const level = tells.at(-1)?.level ?? "1"
    // Independent of the reducer's marks: a test's last exit is the one of the current stay.
    const failedTests = entries.filter((e) => {
      const last = exits(w, e.tag).at(-1)
      return e.mode === "test" && e.levels.includes(level) && last !== undefined && failedOutcome(last.outcome)
    })
    expect(phaseOf(w, "g")).toBe(failedTests.length > 0 ? "fail" : "run")
    expect(w.report().groups.find((g) => g.group === "g")?.level).toBe(level)
    expect(w.violations).toEqual([])
  },
)

/** A group whose level 1 starts with a 10 s barrier (`slow`): what comes behind it waits. */
const behindBarrier = (entries: readonly EntrySpec[], levels: string, jobMs: number | undefined): World => {
  const job = (e: EntrySpec, ms: number): Behaviour =>
    e.mode === "wait" || e.mode === "test" ? exitsAfter(ms, 0) : runsForever()
  const others = jobMs === undefined ? [] : entries.map((e): [string, Behaviour] => [e.tag, job(e, jobMs)])
  return new World({
    config: `g:slow:${levels}:wait:slow-mount\n` + configText(entries),
    behaviours: [["slow", exitsAfter(10_000, 0)], ...others],
  })
}

/** A time inside the 10 s barrier. */
const duringBarrierArb = fc.integer({ min: 1, max: 9_999 })

test.prop([entriesArb({ modes: allModes, max: 6 }), duringBarrierArb, levelsArb])(
  "rule 8: a newer tell supersedes an unfinished transition: entries behind the old barrier that the new " +
    "level does not list never start",
  (entries, tellAt, [newLevel = "2"]) => {
    const w = behindBarrier(entries, "1", 5)
    w.tell("g", "1")
    w.advanceTo(tellAt)
    w.tell("g", newLevel)
    w.runUntilIdle(600_000)
    for (const e of entries) if (!e.levels.includes(newLevel)) expect(w.startsOf(e.tag)).toEqual([])
    expect(lookup(w.state.groups, "g")?.level).toBe(newLevel)
    expect(["run", "fail"]).toContain(phaseOf(w, "g"))
    expect(w.violations).toEqual([])
  },
)

test.prop([entriesArb({ modes: allModes, max: 6 }), duringBarrierArb, levelArb])(
  "rule 8: a reload (SIGHUP) re-applies the level without counting as a tell: the told transition still ends, " +
    "as run or fail, under its own number",
  (entries, reloadAt, level) => {
    const w = behindBarrier(entries, "1,2,3", undefined)
    w.tell("g", level)
    const seq = lookup(w.state.groups, "g")?.seq
    w.advanceTo(reloadAt)
    w.reload()
    expect(lookup(w.state.groups, "g")?.seq).toBe(seq)
    w.runUntilIdle(600_000)
    expect(lookup(w.state.groups, "g")?.seq).toBe(seq)
    expect(["run", "fail"]).toContain(phaseOf(w, "g"))
    expect(w.startsOf("slow")).toHaveLength(1) // the running barrier is waited for, not rerun
    expect(w.violations).toEqual([])
  },
)

/** A swarm's seed and how many of its actions (stopall aside) to play before the stopall. */
const beforeStopAllArb = fc.record({ seed: fc.integer({ min: 0, max: 2 ** 31 }), cut: fc.integer({ min: 0, max: 39 }) })

test.prop([beforeStopAllArb], { numRuns: 60 })(
  "rule 8: stopall makes every group `stopping`, stops every process, then every group is `stopped` and the " +
    "daemon halts",
  ({ seed, cut }) => {
    const s = swarm(seed, { actions: 40 }).scenario
    const w = new World({ ...(s.config === undefined ? {} : { config: s.config }), behaviours: s.behaviours })
    for (const a of s.actions.slice(0, cut)) {
      if (a.action._tag === "StopAll") continue
      w.advanceTo(a.at)
      perform(w, a.action)
    }
    w.advance(1)
    const stopStep = w.steps
    w.stopAll()
    const told = w.report().groups.filter((g) => g.level !== "")
    if (w.state.lifecycle === "stopping") for (const g of told) expect(g.state).toBe("stopping")
    w.runUntilIdle(24 * 3_600_000)
    expect(w.state.lifecycle).toBe("halted")
    expect(w.processes.size).toBe(0)
    for (const g of w.report().groups) expect(g.state).toBe("stopped")
    expect(w.starts.filter((x) => x.step >= stopStep)).toEqual([])
    expect(w.violations).toEqual([])
  },
)

/** How a tell is refused: an undefined group, or a config with an error (told, or re-read by SIGHUP). */
type Refusal = "unknown-group" | "broken-config" | "broken-reload"
const refusalArb = fc.constantFrom<Refusal>("unknown-group", "broken-config", "broken-reload")

test.prop([entriesArb({ modes: allModes, groups: ["g", "h"], max: 6 }), levelArb, refusalArb])(
  "rule 9: a tell for an undefined group, or with a config that has errors, is rejected with a reason and " +
    "changes nothing",
  (entries, level, how) => {
    const w = makeWorld(entries, entries.map((e): [string, Behaviour] => [e.tag, runsForever()]))
    w.tell("g", "1")
    w.tell("h", "2")
    w.advance(50)
    const state = w.state
    const live = liveTags(w)
    if (how === "unknown-group") w.tell("nosuch", level)
    else {
      const changed = entries.map((e) => ({ ...e, command: `${e.command} --changed` }))
      w.editConfig(configText(changed) + "g:bad:1:sometimes:x\n")
      if (how === "broken-config") w.tell("g", level)
      else w.reload()
    }
    const last = w.history.at(-1)
    expect(last === undefined ? -1 : rejections(last.effects)).toBe(1)
    expect(last?.effects).toHaveLength(1)
    expect(w.state).toBe(state)
    expect(liveTags(w)).toEqual(live)
    const reason = w.timeline.filter((e) => e.kind === "rejected").at(-1)?.detail ?? ""
    expect(reason).toMatch(how === "unknown-group" ? /unknown group "nosuch"/ : /error/)
  },
)

/** Levels with regular-expression characters, a zero, and multi-character names. */
const levelPool = [".", "*", "1", "12", "a.b", "0", "run", "r", "[1]"] as const

/** Each entry's levels, drawn from that pool. */
const levelSetsArb = fc.array(fc.subarray([...levelPool], { minLength: 1 }), { minLength: 1, maxLength: 6 })

test.prop([levelSetsArb, fc.constantFrom(...levelPool)])(
  "rule 11: a requested level is matched exactly as a string, and the status shows the level told, 0 included",
  (levelSets, level) => {
    const entries = levelSets.map((levels, i): EntrySpec => ({
      group: "g",
      tag: `t${i + 1}`,
      levels,
      mode: "respawn",
      command: `c${i + 1}`,
    }))
    const w = makeWorld(entries)
    w.tell("g", level)
    for (const e of entries) expect(isLive(w, e.tag)).toBe(e.levels.includes(level))
    const row = w.report().groups.find((g) => g.group === "g")
    expect(row?.level).toBe(level)
    expect(w.violations).toEqual([])
  },
)

type Change = "command" | "mode" | "option" | "same"
/** What an edit does to each entry: its command, its mode or one of its options changes, or nothing. */
const changesArb = fc.array(fc.constantFrom<Change>("command", "mode", "option", "same", "same"), { minLength: 6, maxLength: 6 })

/** Every entry has an option line; an "option" change gives it another value (issue 11). */
const optionLines = (entries: readonly EntrySpec[], changes: readonly (Change | undefined)[]): string =>
  entries.map((e, i) => `:::option:${e.tag}:env=VERSION=${changes[i] === "option" ? "2" : "1"}\n`).join("")

const changed = (e: EntrySpec, change: Change | undefined): EntrySpec => {
  if (change === "command") return { ...e, command: `${e.command} --v2` }
  if (change === "mode") return { ...e, mode: e.mode === "respawn" ? "once" : "respawn" }
  return e
}

test.prop([entriesArb({ modes: ["respawn", "once"], max: 6 }), changesArb])(
  "rule 12: an entry whose command, mode or options changed is stopped and started with its new definition if it " +
    "belongs to the level; unchanged entries are untouched",
  (entries, changes) => {
    const w = makeWorld(entries, [], { sigtermDelayMs: 20 }, optionLines(entries, []))
    w.tell("g", "1")
    w.advance(100)
    const before = new Map(entries.map((e) => [e.tag, w.liveRuns(e.tag).map((p) => p.run)]))
    const edited = entries.map((e, i) => changed(e, changes[i]))
    w.editConfig(optionLines(edited, changes) + configText(edited))
    const tellStep = w.steps
    w.tell("g", "1")
    w.runUntilIdle(60_000)
    for (const [i, e] of edited.entries()) {
      if (e.levels.includes("1") && changes[i] !== "same") {
        expect(kills(w, e.tag).filter((k) => k.step >= tellStep).map((k) => k.signal)).toEqual(["SIGTERM"])
        expect(w.liveRuns(e.tag).map((p) => p.command)).toEqual([e.command])
        expect(w.liveRuns(e.tag)[0]?.startedAt).toBe(120)
      } else {
        expect(kills(w, e.tag)).toEqual([])
        expect(w.liveRuns(e.tag).map((p) => p.run)).toEqual(before.get(e.tag))
      }
    }
    expect(w.violations).toEqual([])
  },
)

/** Times inside the 10 s barrier, in order, at which level 1 is told again. */
const retellsArb = fc.array(duringBarrierArb, { minLength: 1, maxLength: 4 }).map((ts) => [...ts].sort((a, b) => a - b))

test.prop([entriesArb({ modes: allModes, max: 6 }), retellsArb])(
  "rule 16: re-telling the level a group is heading to joins its transition: one number for every " +
    "waiter, nothing runs twice, and the level is reached",
  (entries, retells) => {
    const w = behindBarrier(entries, "1", undefined)
    w.tell("g", "1")
    const seq = lookup(w.state.groups, "g")?.seq
    for (const at of retells) {
      w.advanceTo(at)
      w.tell("g", "1")
      expect(lookup(w.state.groups, "g")?.seq).toBe(seq) // every waiter of level 1 waits for this transition
    }
    w.runUntilIdle(600_000)
    expect(lookup(w.state.groups, "g")?.seq).toBe(seq)
    expect(["run", "fail"]).toContain(phaseOf(w, "g"))
    for (const e of [{ tag: "slow", levels: ["1"] }, ...entries]) {
      expect(w.startsOf(e.tag)).toHaveLength(e.levels.includes("1") ? 1 : 0)
    }
    expect(w.violations).toEqual([])
  },
)
