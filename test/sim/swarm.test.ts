import { describe, expect, it } from "vitest"
import type { Effect } from "../../src/core/effects.ts"
import { initialState } from "../../src/core/state.ts"
import type { State } from "../../src/core/state.ts"
import type { WorldView } from "../../src/sim/invariants.ts"
import { allInvariants, coreInvariants, haltedHasNoProcess, noDeadlineMissed, noSignalToReapedRun, oneLiveRunPerTag, respawnRateLimited, stateAgreesWithWorld } from "../../src/sim/invariants.ts"
import { runsForever } from "../../src/sim/behaviour.ts"
import { makeRng } from "../../src/sim/random.ts"
import { parseScenario, runScenario, scenarioText } from "../../src/sim/scenario.ts"
import { runSwarm, swarm } from "../../src/sim/swarm.ts"
import type { SimProcess, StartRecord, SimStep } from "../../src/sim/world.ts"
import { World } from "../../src/sim/world.ts"

describe("makeRng", () => {
  it("is a pure function of its seed and stays in range", () => {
    const a = makeRng(42)
    const b = makeRng(42)
    const xs = Array.from({ length: 1000 }, () => a.next())
    expect(Array.from({ length: 1000 }, () => b.next())).toEqual(xs)
    expect(xs.every((x) => x >= 0 && x < 1)).toBe(true)
    expect(new Set(xs).size).toBeGreaterThan(990)
    const r = makeRng(7)
    const ints = Array.from({ length: 2000 }, () => r.int(3, 6))
    expect(new Set(ints)).toEqual(new Set([3, 4, 5, 6]))
    expect(makeRng(1).next()).not.toBe(makeRng(2).next())
  })
})

describe("swarm", () => {
  it("derives the same scenario from the same seed, and different ones from different seeds", () => {
    expect(swarm(123)).toEqual(swarm(123))
    expect(scenarioText(swarm(123).scenario)).not.toBe(scenarioText(swarm(124).scenario))
  })

  it("covers tells, crashes, edits and time steps across seeds", () => {
    const kinds = new Set<string>()
    for (let seed = 1; seed <= 50; seed++) for (const a of swarm(seed).scenario.actions) kinds.add(a.action._tag)
    expect([...kinds].sort()).toEqual(["Crash", "EditConfig", "Reload", "StopAll", "Tell"])
  })

  it("runs 300 seeds with every invariant holding at every step", () => {
    const failures: string[] = []
    let steps = 0
    for (let seed = 1; seed <= 300; seed++) {
      const result = runSwarm(seed, { actions: 50 })
      steps += result.world.steps
      const first = result.violations[0]
      if (first !== undefined) failures.push(`seed ${seed}: ${first.invariant}: ${first.message}`)
    }
    expect(failures).toEqual([])
    expect(steps).toBeGreaterThan(10_000)
  })

  it("replays exactly from its text: the written scenario gives the same timeline", () => {
    for (const seed of [5, 77, 901]) {
      const direct = runSwarm(seed)
      const replay = runScenario(parseScenario(scenarioText(direct.swarm.scenario)).scenario)
      expect(replay.timeline).toEqual(direct.timeline)
    }
  })
})

/**
 * The invariants must see violations that the real reducer never produces; these steps are
 * made by hand (the world around them is real) to show that each check can fail.
 */
describe("invariants catch what they claim to", () => {
  const proc = (tag: string, run: number, pid: number | undefined): SimProcess => ({
    key: `${tag}#${run}`,
    tag,
    run,
    group: "g",
    command: tag,
    kind: "Spawn",
    pid,
    startedAt: 0,
    behaviour: runsForever(),
    exit: undefined,
    leader: undefined,
  })
  const view = (procs: readonly SimProcess[], starts: readonly StartRecord[] = []): WorldView => ({
    now: 0,
    processes: new Map(procs.map((p) => [p.key, p])),
    startsOf: (tag) => starts.filter((s) => s.tag === tag),
    countResetAt: () => undefined,
  })
  const step = (effects: readonly Effect[], after: State = initialState, starts: readonly StartRecord[] = [], event: SimStep["record"]["event"] = { _tag: "Tick", now: 0 }): SimStep => ({
    record: { index: 0, at: event.now, event, effects },
    before: initialState,
    after,
    starts,
  })

  it("noSignalToReapedRun: a Kill aimed at a run the world has reaped", () => {
    const kill: Effect = { _tag: "Kill", tag: "a", run: 1, signal: "SIGTERM" }
    expect(noSignalToReapedRun(view([]), step([kill]))).toHaveLength(1)
    expect(noSignalToReapedRun(view([proc("a", 1, 1000)]), step([kill]))).toEqual([])
  })

  it("oneLiveRunPerTag: two live runs of one tag", () => {
    const start: StartRecord = { at: 0, step: 0, tag: "a", run: 2, group: "g", mode: "respawn" }
    expect(oneLiveRunPerTag(view([proc("a", 1, 1000), proc("a", 2, 1001)]), step([], initialState, [start]))).toHaveLength(1)
  })

  it("stateAgreesWithWorld: a process the reducer does not know, and one it knows that is gone", () => {
    expect(stateAgreesWithWorld(view([proc("a", 1, 1000)]), step([]))).toHaveLength(1)
    const w = new World({ config: "g:a:1:respawn:a\n" })
    w.tell("g", "1")
    expect(stateAgreesWithWorld(view([]), step([], w.state))).toHaveLength(1)
  })

  it("haltedHasNoProcess and respawnRateLimited, and the core's deadlineAhead", () => {
    expect(haltedHasNoProcess(view([proc("a", 1, 1)]), step([], { ...initialState, lifecycle: "halted" }))).toHaveLength(1)
    const starts = [0, 1, 2, 3, 4, 9_999].map((at, i): StartRecord => ({ at, step: i, tag: "a", run: i + 1, group: "g", mode: "respawn" }))
    const last = starts.slice(-1)
    expect(respawnRateLimited(view([], starts), step([], initialState, last))).toHaveLength(1)
    const spaced = [...starts.slice(0, 5), { ...starts[5]!, at: 10_000 }]
    expect(respawnRateLimited(view([], spaced), step([], initialState, spaced.slice(-1)))).toEqual([])
    const w = new World({ config: "g:a:1:respawn:a\n" })
    w.tell("g", "1")
    w.tell("g", "2") // a stop arms the SIGKILL timer at 30 000
    expect(coreInvariants(view([]), step([], { ...w.state, now: 30_000 }, [], { _tag: "Tick", now: 30_000 }))).toMatchObject([{ invariant: "deadlineAhead" }])
    expect(coreInvariants(view([]), step([], { ...w.state, now: 29_999 }, [], { _tag: "Tick", now: 29_999 }))).toEqual([])
    expect(noDeadlineMissed(view([]), step([], w.state, [], { _tag: "Started", tag: "a", run: 1, pid: 1, now: 30_001 }))).toHaveLength(1)
  })

  it("every invariant is exported in allInvariants", () => {
    expect(allInvariants.length).toBe(9)
  })
})
