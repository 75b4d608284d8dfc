import { fc, test } from "@fast-check/vitest"
import { expect } from "vitest"
import { lookup } from "../src/core/state.ts"
import { exitsAfter, runsForever, stopsAfter } from "../src/sim/behaviour.ts"
import type { Behaviour } from "../src/sim/behaviour.ts"
import type { Invariant } from "../src/sim/invariants.ts"
import { allInvariants } from "../src/sim/invariants.ts"
import { swarm } from "../src/sim/swarm.ts"
import { perform } from "../src/sim/scenario.ts"
import { World } from "../src/sim/world.ts"
import type { EntrySpec } from "./helpers.ts"
import { configText, entriesArb, exits, isLive, kills, levelsArb, liveTags, makeWorld, phaseOf, rejectedLogs } from "./helpers.ts"

const lifeArb = fc.record({ ms: fc.integer({ min: 0, max: 4_000 }), code: fc.constantFrom(0, 0, 1), stopMs: fc.integer({ min: 0, max: 3_000 }) })

const behavioursFor = (entries: readonly EntrySpec[], lives: readonly { ms: number; code: number; stopMs: number }[]): [string, Behaviour][] =>
  entries.map((e, i) => {
    const life = lives[i % lives.length] ?? { ms: 10, code: 0, stopMs: 10 }
    return [e.tag, e.mode === "wait" || e.mode === "test" ? exitsAfter(life.ms, life.code) : stopsAfter(life.stopMs, runsForever())]
  })

/** Rule 8 seen from outside: `start` exactly while a barrier or an outgoing process of the group is alive. */
const phaseFollowsWork = (group: string): Invariant => {
  const signalled = new Set<string>()
  return (world, step) => {
    for (const e of step.record.effects) if (e._tag === "Kill") signalled.add(`${e.tag}#${e.run}`)
    const phase = lookup(step.after.groups, group)?.phase
    const pending = [...world.processes.values()].filter((p) => p.group === group && p.pid !== undefined && (p.kind === "RunSync" || signalled.has(p.key)))
    const bad = (phase === "start" && pending.length === 0) || ((phase === "run" || phase === "fail") && pending.length > 0)
    return bad ? [{ at: step.record.at, step: step.record.index, invariant: "phaseFollowsWork", message: `${group} is ${phase} with ${pending.map((p) => p.key).join(", ") || "nothing"} pending` }] : []
  }
}

test.prop([entriesArb({ modes: ["respawn", "once", "wait", "test"], max: 7 }), fc.array(lifeArb, { minLength: 1, maxLength: 7 }), fc.array(fc.tuple(fc.constantFrom("1", "2", "3"), fc.integer({ min: 0, max: 5_000 })), { minLength: 1, maxLength: 5 })])(
  "rule 8: a group is `start` while its transition is in progress (barriers, outgoing processes), then `run`, or `fail` if a test failed",
  (entries, lives, tells) => {
    const w = makeWorld(entries, behavioursFor(entries, lives), { invariants: [...allInvariants, phaseFollowsWork("g")] })
    for (const [level, gap] of tells) {
      w.tell("g", level)
      w.advance(gap)
    }
    w.runUntilIdle(600_000)
    const level = tells.at(-1)?.[0] ?? "1"
    // Independent of the reducer's marks: a test's last exit is the one of the current stay.
    const failedTests = entries.filter((e) => {
      const last = exits(w, e.tag).at(-1)
      return e.mode === "test" && e.levels.includes(level) && last !== undefined && !(last.outcome._tag === "Exited" && last.outcome.code === 0)
    })
    expect(phaseOf(w, "g")).toBe(failedTests.length > 0 ? "fail" : "run")
    expect(w.report().groups.find((g) => g.group === "g")?.level).toBe(level)
    expect(w.violations).toEqual([])
  },
)

test.prop([entriesArb({ modes: ["respawn", "once", "wait", "test"], max: 6 }), fc.integer({ min: 1, max: 9_999 }), levelsArb])(
  "rule 8: a newer tell supersedes an unfinished transition: entries behind the old barrier that the new level does not list never start",
  (entries, tellAt, [newLevel = "2"]) => {
    const head = "g:slow:1:wait:slow-mount\n"
    const w = new World({ config: head + configText(entries), behaviours: [["slow", exitsAfter(10_000, 0)], ...entries.map((e): [string, Behaviour] => [e.tag, e.mode === "wait" || e.mode === "test" ? exitsAfter(5, 0) : runsForever()])] })
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

test.prop([entriesArb({ modes: ["respawn", "once", "wait", "test"], max: 6 }), fc.integer({ min: 0, max: 9_999 }), fc.constantFrom("1", "2", "3")])(
  "rule 8: a reload (SIGHUP) re-applies the level without counting as a tell: the told transition still ends, as run or fail, under its own number",
  (entries, reloadAt, level) => {
    const head = "g:slow:1,2,3:wait:slow-mount\n"
    const w = new World({ config: head + configText(entries), behaviours: [["slow", exitsAfter(10_000, 0)]] })
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

test.prop([fc.integer({ min: 0, max: 2 ** 31 }), fc.integer({ min: 0, max: 39 })], { numRuns: 60 })(
  "rule 8: stopall makes every group `stopping`, stops every process, then every group is `stopped` and the daemon halts",
  (seed, cut) => {
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

test.prop([entriesArb({ modes: ["respawn", "once", "wait", "test"], groups: ["g", "h"], max: 6 }), fc.constantFrom("1", "2", "3"), fc.constantFrom<"unknown-group" | "broken-config" | "broken-reload">("unknown-group", "broken-config", "broken-reload")])(
  "rule 9: a tell for an undefined group, or with a config that has errors, is rejected with a reason and changes nothing",
  (entries, level, how) => {
    const w = makeWorld(entries, entries.map((e): [string, Behaviour] => [e.tag, runsForever()]))
    w.tell("g", "1")
    w.tell("h", "2")
    w.advance(50)
    const state = w.state
    const live = liveTags(w)
    if (how === "unknown-group") w.tell("nosuch", level)
    else {
      w.editConfig(configText(entries.map((e) => ({ ...e, command: `${e.command} --changed` }))) + "g:bad:1:sometimes:x\n")
      if (how === "broken-config") w.tell("g", level)
      else w.reload()
    }
    const last = w.history.at(-1)
    expect(last === undefined ? -1 : rejectedLogs(last.effects)).toBe(1)
    expect(last?.effects).toHaveLength(1)
    expect(w.state).toBe(state)
    expect(liveTags(w)).toEqual(live)
    const reason = w.timeline.filter((e) => e.kind === "rejected").at(-1)?.detail ?? ""
    expect(reason).toMatch(how === "unknown-group" ? /unknown group "nosuch"/ : /error/)
  },
)

/** Levels with regular-expression characters, a zero, and multi-character names. */
const levelPool = [".", "*", "1", "12", "a.b", "0", "run", "r", "[1]"] as const

test.prop([
  fc.array(fc.subarray([...levelPool], { minLength: 1 }), { minLength: 1, maxLength: 6 }),
  fc.constantFrom(...levelPool),
])(
  "rule 11: a requested level is matched exactly as a string, and the status shows the level told, 0 included",
  (levelSets, level) => {
    const entries: EntrySpec[] = levelSets.map((levels, i) => ({ group: "g", tag: `t${i + 1}`, levels, mode: "respawn", command: `c${i + 1}` }))
    const w = makeWorld(entries)
    w.tell("g", level)
    for (const e of entries) expect(isLive(w, e.tag)).toBe(e.levels.includes(level))
    const row = w.report().groups.find((g) => g.group === "g")
    expect(row?.level).toBe(level)
    expect(w.violations).toEqual([])
  },
)

test.prop([
  entriesArb({ modes: ["respawn", "once"], max: 6 }),
  fc.array(fc.constantFrom<"command" | "mode" | "same">("command", "mode", "same", "same"), { minLength: 6, maxLength: 6 }),
])(
  "rule 12: an entry whose command or mode changed is stopped and started with its new definition if it belongs to the level; unchanged entries are untouched",
  (entries, changes) => {
    const w = makeWorld(entries, [], { sigtermDelayMs: 20 })
    w.tell("g", "1")
    w.advance(100)
    const before = new Map(entries.map((e) => [e.tag, w.liveRuns(e.tag).map((p) => p.run)]))
    const edited = entries.map((e, i): EntrySpec =>
      changes[i] === "command" ? { ...e, command: `${e.command} --v2` } : changes[i] === "mode" ? { ...e, mode: e.mode === "respawn" ? "once" : "respawn" } : e,
    )
    w.editConfig(configText(edited))
    const tellStep = w.steps
    w.tell("g", "1")
    w.runUntilIdle(60_000)
    for (const [i, e] of edited.entries()) {
      const inLevel = e.levels.includes("1")
      const changed = changes[i] !== "same"
      if (inLevel && changed) {
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

/** Entries of g behind a 10 s barrier, and the times (inside the barrier) at which level 1 is told again. */
const headingArb = fc.record({
  entries: entriesArb({ modes: ["respawn", "once", "wait", "test"], max: 6 }),
  retells: fc.array(fc.integer({ min: 0, max: 9_999 }), { minLength: 1, maxLength: 4 }).map((ts) => [...ts].sort((a, b) => a - b)),
})

test.prop([headingArb])(
  "rule 16: re-telling the level a group is heading to joins its transition: one number for every " +
    "waiter, nothing runs twice, and the level is reached",
  ({ entries, retells }) => {
    const head = "g:slow:1:wait:slow-mount\n"
    const w = new World({ config: head + configText(entries), behaviours: [["slow", exitsAfter(10_000, 0)]] })
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
    for (const e of [{ tag: "slow", levels: ["1"] }, ...entries]) expect(w.startsOf(e.tag)).toHaveLength(e.levels.includes("1") ? 1 : 0)
    expect(w.violations).toEqual([])
  },
)
