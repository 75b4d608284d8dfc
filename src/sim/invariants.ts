import * as HashMap from "effect/HashMap"
import type { GroupPhase, State } from "../core/state.ts"
import { lookup } from "../core/state.ts"
import { nextDeadline } from "../core/reducer.ts"
import type { SimProcess, StartRecord, Step } from "./world.ts"

/**
 * Safety checks the world runs after every step. Each returns the violations it sees (never
 * throws), is named, and can be used alone by a property. "Live" means spawned and not yet reaped:
 * the world reaps a process at the moment it delivers its exit to the reducer.
 */

export interface Violation {
  readonly at: number
  /** Index of the step after which the violation was seen. */
  readonly step: number
  readonly invariant: string
  readonly message: string
}

/** What the invariants read from the world. */
export interface WorldView {
  readonly now: number
  readonly processes: ReadonlyMap<string, SimProcess>
  readonly startsOf: (tag: string) => readonly StartRecord[]
  readonly countResetAt: (tag: string) => number | undefined
}

export type Invariant = (world: WorldView, step: Step) => readonly Violation[]

const violation = (step: Step, invariant: string, message: string): Violation => ({
  at: step.record.at,
  step: step.record.index,
  invariant,
  message,
})

const isLive = (p: SimProcess): boolean => p.pid !== undefined

/** Rule 7: no signal is ever aimed at a run that has been reaped (or never existed). */
export const noSignalToReapedRun: Invariant = (world, step) =>
  step.record.effects.flatMap((e) =>
    e._tag === "Kill" && world.processes.get(`${e.tag}#${e.run}`) === undefined
      ? [violation(step, "noSignalToReapedRun", `${e.signal} aimed at ${e.tag} run ${e.run}, which is not alive`)]
      : [],
  )

/** Never two live runs of one tag (a restart waits for the old run to be gone). */
export const oneLiveRunPerTag: Invariant = (world, step) => {
  const out: Violation[] = []
  for (const start of step.starts) {
    const runs = [...world.processes.values()].filter((p) => p.tag === start.tag && isLive(p))
    if (runs.length > 1)
      out.push(violation(step, "oneLiveRunPerTag", `${start.tag} has live runs ${runs.map((p) => p.run).join(", ")}`))
  }
  return out
}

/** The reducer's view of processes is the world's: same runs, same pids once reported. */
export const stateAgreesWithWorld: Invariant = (world, step) => {
  const out: Violation[] = []
  const state = step.after
  for (const p of world.processes.values()) {
    const proc = lookup(state.entries, p.tag)?.proc
    if (proc === undefined || proc._tag === "Idle" || proc.run !== p.run)
      out.push(violation(step, "stateAgreesWithWorld", `world has ${p.tag} run ${p.run}, state has ${describeProc(proc)}`))
    else if (proc.pid !== undefined && proc.pid !== p.pid)
      out.push(violation(step, "stateAgreesWithWorld", `${p.tag} run ${p.run}: state pid ${proc.pid}, world pid ${String(p.pid)}`))
  }
  for (const [tag, entry] of HashMap.entries(state.entries)) {
    const proc = entry.proc
    if (proc._tag !== "Idle" && !world.processes.has(`${tag}#${proc.run}`))
      out.push(violation(step, "stateAgreesWithWorld", `state has ${tag} run ${proc.run} ${proc._tag}, the world does not`))
  }
  return out
}

const describeProc = (proc: { readonly _tag: string; readonly run?: number } | undefined): string =>
  proc === undefined ? "nothing" : proc.run === undefined ? proc._tag : `${proc._tag} run ${proc.run}`

/** Rule 8: once halted, nothing is left running. */
export const haltedHasNoProcess: Invariant = (world, step) =>
  step.after.lifecycle === "halted" && world.processes.size > 0
    ? [violation(step, "haltedHasNoProcess", `halted with ${[...world.processes.keys()].join(", ")} still alive`)]
    : []

const phases: readonly GroupPhase[] = ["stopped", "start", "run", "fail", "stopping"]

/** Rule 8: group phases are consistent with the daemon's lifecycle and with the transition. */
export const groupPhasesValid: Invariant = (_world, step) => {
  const out: Violation[] = []
  const state = step.after
  const bad = (message: string): void => {
    out.push(violation(step, "groupPhasesValid", message))
  }
  for (const [name, group] of HashMap.entries(state.groups)) {
    if (!phases.includes(group.phase)) bad(`${name} has phase ${String(group.phase)}`)
    if (state.lifecycle === "running" && group.phase === "stopping") bad(`${name} is stopping while the daemon is not`)
    if (state.lifecycle === "stopping" && (group.phase === "start" || group.phase === "run" || group.phase === "fail"))
      bad(`${name} is ${group.phase} during stopall`)
    if (state.lifecycle === "halted" && group.phase !== "stopped") bad(`${name} is ${group.phase} after halt`)
    if (state.lifecycle === "running" && (group.phase === "start") !== (group.transition !== undefined))
      bad(`${name} is ${group.phase} ${group.transition === undefined ? "without" : "with"} a transition`)
    if (group.phase !== "stopped" && group.level === undefined) bad(`${name} is ${group.phase} with no level`)
  }
  return out
}

/** Rule 8: a group's count of outgoing processes is the number of its runs being stopped. */
export const outgoingMatchesStopping: Invariant = (_world, step) => {
  const state = step.after
  const stopping = new Map<string, number>()
  for (const entry of HashMap.values(state.entries)) {
    if (entry.proc._tag === "Stopping") stopping.set(entry.proc.def.group, (stopping.get(entry.proc.def.group) ?? 0) + 1)
  }
  const out: Violation[] = []
  for (const name of new Set([...stopping.keys(), ...HashMap.keys(state.groups)])) {
    const counted = lookup(state.groups, name)?.outgoing ?? 0
    const actual = stopping.get(name) ?? 0
    if (counted !== actual) out.push(violation(step, "outgoingMatchesStopping", `${name} counts ${counted} outgoing, ${actual} are stopping`))
  }
  return out
}

/**
 * Rule 6: a respawn entry starts at most `respawnMax` times in any `respawnWindowMs` while it
 * stays in its level (jail included): leaving the level or the config starts a new count.
 */
export const respawnRateLimited: Invariant = (world, step) => {
  const { respawnMax, respawnWindowMs } = step.after.config.limits
  const out: Violation[] = []
  for (const start of step.starts) {
    if (start.mode !== "respawn") continue
    const left = world.countResetAt(start.tag) ?? -1
    const recent = startsWithin(world.startsOf(start.tag), left, start.at - respawnWindowMs)
    if (recent.length > respawnMax)
      out.push(
        violation(step, "respawnRateLimited", `${start.tag} started ${recent.length} times within ${respawnWindowMs} ms (at ${recent.map((s) => s.at).join(", ")})`),
      )
  }
  return out
}

/**
 * The respawn starts after step `left` and later than `after`, oldest first. Starts are recorded
 * in time order, so the walk goes back from the newest only as far as the window: a crash loop
 * costs each start the window's length, not the whole history.
 */
const startsWithin = (starts: readonly StartRecord[], left: number, after: number): StartRecord[] => {
  const recent: StartRecord[] = []
  for (let i = starts.length - 1; i >= 0; i--) {
    const s = starts[i]
    if (s === undefined || s.step <= left || s.at <= after) break
    if (s.mode === "respawn") recent.push(s)
  }
  return recent.reverse()
}

/** Rule 6: a jailed respawn entry is not started before its jail ends. */
export const noStartInJail: Invariant = (_world, step) =>
  step.starts.flatMap((start) => {
    const jail = lookup(step.before.entries, start.tag)?.jail
    return start.mode === "respawn" && jail?._tag === "Jailed" && jail.until > start.at
      ? [violation(step, "noStartInJail", `${start.tag} started at ${start.at}, jailed until ${jail.until}`)]
      : []
  })

/** Rule 8: after stopall nothing new is started. */
export const noStartAfterStopAll: Invariant = (_world, step) =>
  step.before.lifecycle !== "running" && step.starts.length > 0
    ? [violation(step, "noStartAfterStopAll", `started ${step.starts.map((s) => s.tag).join(", ")} during ${step.before.lifecycle}`)]
    : []

/** The next deadline is never in the past, and a tick always moves it forward (or clears it). */
export const deadlineAhead: Invariant = (_world, step) => {
  const deadline = safeDeadline(step.after)
  const at = step.record.at
  if (deadline === undefined) return []
  if (deadline < at) return [violation(step, "deadlineAhead", `next deadline ${deadline} is before now ${at}`)]
  if (step.record.event._tag === "Tick" && deadline <= at)
    return [violation(step, "deadlineAhead", `after a tick at ${at} the next deadline is still ${deadline}`)]
  return []
}

const safeDeadline = (state: State): number | undefined => {
  try {
    return nextDeadline(state)
  } catch {
    return undefined
  }
}

/** The reducer's clock never runs backwards, whatever `now` an event carries. */
export const clockMonotone: Invariant = (_world, step) =>
  step.after.now < step.before.now
    ? [violation(step, "clockMonotone", `state time went from ${step.before.now} to ${step.after.now}`)]
    : []

export const allInvariants: readonly Invariant[] = [
  noSignalToReapedRun,
  oneLiveRunPerTag,
  stateAgreesWithWorld,
  haltedHasNoProcess,
  groupPhasesValid,
  outgoingMatchesStopping,
  respawnRateLimited,
  noStartInJail,
  noStartAfterStopAll,
  deadlineAhead,
  clockMonotone,
]

export const invariantsByName: ReadonlyMap<string, Invariant> = new Map([
  ["noSignalToReapedRun", noSignalToReapedRun],
  ["oneLiveRunPerTag", oneLiveRunPerTag],
  ["stateAgreesWithWorld", stateAgreesWithWorld],
  ["haltedHasNoProcess", haltedHasNoProcess],
  ["groupPhasesValid", groupPhasesValid],
  ["outgoingMatchesStopping", outgoingMatchesStopping],
  ["respawnRateLimited", respawnRateLimited],
  ["noStartInJail", noStartInJail],
  ["noStartAfterStopAll", noStartAfterStopAll],
  ["deadlineAhead", deadlineAhead],
  ["clockMonotone", clockMonotone],
])
