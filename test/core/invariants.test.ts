/**
 * The core's assertions (core/invariants.ts, core/phases.ts): a state or a step that breaks an
 * invariant throws `InvariantViolation`, which is a bug, never bad input. The reducer's states
 * satisfy them after every step of every property (the simulator's `coreInvariants`).
 */
import * as HashMap from "effect/HashMap"
import { describe, expect, it } from "vitest"
import { makeConfig } from "../../src/core/config.ts"
import { noOptions } from "../../src/core/options.ts"
import { groupPhases } from "../../src/core/enums.ts"
import { tell } from "../../src/core/events.ts"
import { InvariantViolation, assertChanges, batchProblem, beforeOf, checkInvariants, stateProblems } from "../../src/core/invariants.ts"
import { assertPhaseChange, isPhaseChange, phaseChanges } from "../../src/core/phases.ts"
import { reduce } from "../../src/core/reducer.ts"
import type { State } from "../../src/core/state.ts"
import { groupOf, initialState } from "../../src/core/state.ts"

const parsed = {
  config: makeConfig([
    { group: "g", tag: "a", levels: ["1"], mode: "respawn", command: "a", line: 1, options: noOptions },
    { group: "g", tag: "b", levels: ["2"], mode: "respawn", command: "b", line: 2, options: noOptions },
  ]),
  problems: [],
}
const [atOne] = reduce(initialState, tell("g", "1", parsed, 0))
const [leaving] = reduce(atOne, tell("g", "2", parsed, 10)) // a is stopping, b waits for it

const withGroup = (state: State, change: (g: ReturnType<typeof groupOf>) => ReturnType<typeof groupOf>): State => ({
  ...state,
  groups: HashMap.set(state.groups, "g", change(groupOf(state, "g"))),
})

describe("group phases (one transition table)", () => {
  it("allows exactly the table's changes, and staying put", () => {
    for (const from of groupPhases) {
      for (const to of groupPhases) expect(isPhaseChange(from, to)).toBe(from === to || phaseChanges[from].includes(to))
    }
    expect(isPhaseChange("stopping", "start")).toBe(false)
    expect(isPhaseChange("stopped", "run")).toBe(false)
    expect(() => assertPhaseChange("g", "stopping", "run")).toThrow(InvariantViolation)
    expect(() => assertPhaseChange("g", "start", "run")).not.toThrow()
  })
})

describe("checkInvariants", () => {
  it("passes the reducer's states and throws on a broken one, saying what broke", () => {
    expect(() => checkInvariants(leaving)).not.toThrow()
    expect(groupOf(leaving, "g").outgoing).toBe(1)
    const miscounted = withGroup(leaving, (g) => ({ ...g, outgoing: 0 }))
    expect(() => checkInvariants(miscounted)).toThrow(/outgoingMatchesStopping: g counts 0 outgoing, 1 are stopping/)
    const stalled = withGroup(leaving, (g) => ({ ...g, phase: "run" }))
    expect(stateProblems(stalled).map((p) => p.message)).toEqual(["g is run with a transition"])
    const halted = { ...leaving, lifecycle: "halted" as const }
    expect(stateProblems(halted).map((p) => p.invariant)).toEqual(expect.arrayContaining(["groupPhasesValid", "haltedHasNoProcess"]))
    expect(() => checkInvariants({ ...leaving, nextRun: 1 })).toThrow(/runsNumbered: a run 1 is not below the next run 1/)
  })

  it("batchProblem, the runtime loop's check after every batch, looks at the groups only (never every entry)", () => {
    expect(batchProblem(leaving)).toBeUndefined()
    expect(batchProblem(withGroup(leaving, (g) => ({ ...g, phase: "run" })))).toBe("groupPhasesValid: g is run with a transition")
    expect(batchProblem(withGroup(leaving, (g) => ({ ...g, outgoing: 0 })))).toBeUndefined() // a count: the reducer's own check
  })
})

describe("assertChanges (the reducer's own check at the end of every step)", () => {
  it("catches an outgoing count that did not move with the stops, in what the step changed", () => {
    const entries = (state: State, tags: readonly string[]) => new Map(tags.map((tag) => [tag, HashMap.get(state.entries, tag).pipe((o) => (o._tag === "Some" ? o.value : undefined))]))
    const groups = (state: State) => new Map([["g", groupOf(state, "g")]])
    expect(() => assertChanges(beforeOf(atOne), leaving, entries(leaving, ["a", "b"]), groups(leaving))).not.toThrow()
    const uncounted = withGroup(leaving, (g) => ({ ...g, outgoing: 0 }))
    expect(() => assertChanges(beforeOf(atOne), uncounted, entries(uncounted, ["a"]), groups(uncounted))).toThrow(/g's outgoing moved by 0, its stops by 1/)
    // A stop the step made in a group it did not touch is caught too.
    expect(() => assertChanges(beforeOf(atOne), uncounted, entries(uncounted, ["a"]), new Map())).toThrow(/g's outgoing moved by 0, its stops by 1/)
    // Only what changed is looked at: the cost of a step stays the cost of what it did.
    expect(() => assertChanges(beforeOf(atOne), uncounted, new Map(), new Map())).not.toThrow()
  })
})
