/**
 * What every state the reducer returns satisfies, checked from the state alone. The simulator
 * checks them after every step (src/sim/invariants.ts adds what needs the world: signals, live
 * processes, rate limits); the reducer itself asserts, at the end of every step, the part a step
 * can break in what it touched (`assertChanges`, O(what changed)); `checkInvariants` checks a whole
 * state (O(entries + groups)): after a restore, in tests, and wherever a caller can afford it.
 */
import * as HashMap from "effect/HashMap"
import { assertNone } from "./assert.ts"
import type { Event } from "./events.ts"
import type { EntryState, GroupState, State } from "./state.ts"
import { lookup } from "./state.ts"
import * as Timers from "./timers.ts"

export { InvariantViolation } from "./assert.ts"

export interface Problem {
  /** The invariant's name, as the simulator reports it. */
  readonly invariant: string
  readonly message: string
}

const problem = (invariant: string, message: string): Problem => ({ invariant, message })

/**
 * Rule 8: a group's phase agrees with the daemon's lifecycle and with its transition. While the
 * daemon runs, a group the config defines is `start` exactly when it has a transition (a restore
 * whose config had errors keeps groups the empty config does not define at their saved phase).
 */
export const groupProblems = (state: State, group: GroupState): readonly Problem[] => {
  const out: Problem[] = []
  const bad = (message: string): void => void out.push(problem("groupPhasesValid", `${group.name} ${message}`))
  const { phase, transition, level } = group
  if (state.lifecycle === "running" && phase === "stopping") bad("is stopping while the daemon is not")
  if (state.lifecycle === "stopping" && phase !== "stopping" && phase !== "stopped") bad(`is ${phase} during stopall`)
  if (state.lifecycle === "halted" && phase !== "stopped") bad(`is ${phase} after halt`)
  if (transition !== undefined && (phase !== "start" || state.lifecycle !== "running")) bad(`is ${phase} with a transition`)
  if (state.lifecycle === "running" && phase === "start" && transition === undefined && state.config.byGroup.has(group.name)) bad("is start without a transition")
  if (phase !== "stopped" && level === undefined) bad(`is ${phase} with no level`)
  if (transition !== undefined) {
    if (transition.level !== level) bad(`heads to ${transition.level} at level ${String(level)}`)
    if (transition.next > transition.order.length) bad(`has taken ${transition.next} of ${transition.order.length} entries`)
    if (transition.barrier !== undefined && transition.order[transition.next - 1]?.tag !== transition.barrier) bad(`waits for ${transition.barrier}, which it has not just taken`)
  }
  if (group.outgoing < 0) out.push(problem("outgoingMatchesStopping", `${group.name} counts ${group.outgoing} outgoing`))
  return out
}

/** A live run is numbered below `nextRun` (runs are never reused), and a halted daemon has none. */
const entryProblems = (state: State, entry: EntryState): readonly Problem[] => {
  const proc = entry.proc
  if (proc._tag === "Idle") return []
  const out: Problem[] = []
  if (proc.run >= state.nextRun) out.push(problem("runsNumbered", `${entry.tag} run ${proc.run} is not below the next run ${state.nextRun}`))
  if (proc.def.tag !== entry.tag) out.push(problem("runsNumbered", `${entry.tag} runs the definition of ${proc.def.tag}`))
  if (state.lifecycle === "halted") out.push(problem("haltedHasNoProcess", `halted with ${entry.tag} run ${proc.run} ${proc._tag}`))
  return out
}

/** Rule 8: a group's count of outgoing processes is the number of its runs being stopped. */
const outgoingProblems = (state: State): readonly Problem[] => {
  const stopping = new Map<string, number>()
  for (const entry of HashMap.values(state.entries)) {
    if (entry.proc._tag === "Stopping") stopping.set(entry.proc.def.group, (stopping.get(entry.proc.def.group) ?? 0) + 1)
  }
  const out: Problem[] = []
  for (const name of new Set([...stopping.keys(), ...HashMap.keys(state.groups)])) {
    const counted = lookup(state.groups, name)?.outgoing ?? 0
    const actual = stopping.get(name) ?? 0
    if (counted !== actual) out.push(problem("outgoingMatchesStopping", `${name} counts ${counted} outgoing, ${actual} are stopping`))
  }
  return out
}

const uniqueRunProblems = (state: State): readonly Problem[] => {
  const seen = new Map<number, string>()
  const out: Problem[] = []
  for (const entry of HashMap.values(state.entries)) {
    if (entry.proc._tag === "Idle") continue
    const other = seen.get(entry.proc.run)
    if (other !== undefined) out.push(problem("runsNumbered", `run ${entry.proc.run} is both ${other}'s and ${entry.tag}'s`))
    seen.set(entry.proc.run, entry.tag)
  }
  return out
}

/** Everything a state satisfies; O(entries + groups). */
export const stateProblems = (state: State): readonly Problem[] => [
  ...[...HashMap.values(state.groups)].flatMap((group) => groupProblems(state, group)),
  ...[...HashMap.values(state.entries)].flatMap((entry) => entryProblems(state, entry)),
  ...outgoingProblems(state),
  ...uniqueRunProblems(state),
]

/**
 * What a step may not do: move the clock back, or leave a due timer after a tick (a tick serves
 * every due timer, so after one the next deadline lies ahead). Other events may come after a
 * deadline (the runtime's timer has not fired yet): the tick that follows serves it.
 */
export const stepProblems = (before: State, event: Event, after: State): readonly Problem[] => {
  const out: Problem[] = []
  if (after.now < before.now) out.push(problem("clockMonotone", `state time went from ${before.now} to ${after.now}`))
  const deadline = Timers.peek(after.timers)?.at
  if (deadline !== undefined && event._tag === "Tick" && deadline <= after.now) {
    out.push(problem("deadlineAhead", `after a tick at ${after.now} the next deadline is still ${deadline}`))
  }
  return out
}

const describe = (problems: readonly Problem[]): readonly string[] => problems.map((p) => `${p.invariant}: ${p.message}`)

/**
 * The runtime loop's check after every batch (runtime/loop.ts `stateProblem`): why the state is
 * impossible, or `undefined`. O(groups), never O(entries): every group's phase agrees with the
 * lifecycle and its transition. The reducer itself asserts, as it goes, what each step changed
 * (and throws `InvariantViolation`, which the loop treats as the same bug), and the whole state
 * (`checkInvariants`) after a restore.
 */
export const batchProblem = (state: State): string | undefined => {
  for (const group of HashMap.values(state.groups)) {
    const problems = groupProblems(state, group)
    if (problems.length > 0) return describe(problems).join("; ")
  }
  return undefined
}

/** The reducer's check of every step as a whole (O(1)): `stepProblems`. */
export const assertStep = (before: State, event: Event, after: State): void => {
  const deadline = Timers.peek(after.timers)?.at
  const tickLeftDue = event._tag === "Tick" && deadline !== undefined && deadline <= after.now
  if (after.now < before.now || tickLeftDue) assertNone(describe(stepProblems(before, event, after)))
}

/**
 * Throws `InvariantViolation` if the state breaks an invariant: a bug. O(entries + groups), so the
 * runtime calls it where that is affordable (after the restore), the tests after every step.
 */
export const checkInvariants = (state: State): void => assertNone(describe(stateProblems(state)))

/** The state a step began with, as `assertChanges` reads it (the reducer's step answers from what it has read). */
export interface Before {
  readonly baseLifecycle: State["lifecycle"]
  baseEntry(tag: string): EntryState | undefined
  baseGroup(name: string): GroupState | undefined
}

export const beforeOf = (state: State): Before => ({
  baseLifecycle: state.lifecycle,
  baseEntry: (tag) => lookup(state.entries, tag),
  baseGroup: (name) => lookup(state.groups, name),
})

/** Adds `by` to the count of stops of the entry's group, if the entry is being stopped. */
const countStop = (stops: Map<string, number>, entry: EntryState | undefined, by: number): void => {
  if (entry?.proc._tag === "Stopping") stops.set(entry.proc.def.group, (stops.get(entry.proc.def.group) ?? 0) + by)
}

const outgoingMoved = (before: Before, after: State, stops: ReadonlyMap<string, number>, name: string, group: GroupState | undefined, problems: Problem[]): void => {
  const moved = (group?.outgoing ?? 0) - (before.baseGroup(name)?.outgoing ?? 0)
  const stopped = stops.get(name) ?? 0
  if (moved !== stopped) problems.push(problem("outgoingMatchesStopping", `${name}'s outgoing moved by ${moved}, its stops by ${stopped}`))
  if (group !== undefined) problems.push(...groupProblems(after, group))
}

/**
 * The reducer's own check at the end of every step, O(what the step changed): the changed groups
 * agree with the lifecycle (all of them when the lifecycle changed), and the cached `outgoing`
 * counts moved exactly as the changed entries started or ended stops. `entries` and `groups` are
 * the step's changes (`undefined`: forgotten); `after` is the state they make.
 */
export const assertChanges = (
  before: Before,
  after: State,
  entries: ReadonlyMap<string, EntryState | undefined>,
  groups: ReadonlyMap<string, GroupState | undefined>,
): void => {
  const stops = new Map<string, number>()
  for (const [tag, entry] of entries) {
    countStop(stops, before.baseEntry(tag), -1)
    countStop(stops, entry, +1)
  }
  const problems: Problem[] = []
  for (const [name, group] of groups) outgoingMoved(before, after, stops, name, group, problems)
  for (const name of stops.keys()) if (!groups.has(name)) outgoingMoved(before, after, stops, name, lookup(after.groups, name), problems)
  if (before.baseLifecycle !== after.lifecycle) {
    for (const [name, group] of HashMap.entries(after.groups)) {
      if (!groups.has(name) && !stops.has(name)) outgoingMoved(before, after, stops, name, group, problems)
    }
  }
  if (problems.length > 0) assertNone(describe(problems))
}
