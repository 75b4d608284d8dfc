import * as HashMap from "effect/HashMap"
import { limitsFor } from "../core/config.ts"
import { stateProblems, stepProblems } from "../core/invariants.ts"
import { nextDeadline } from "../core/reducer.ts"
import { lookup } from "../core/state.ts"
import type { SimProcess, StartRecord, SimStep } from "./records.ts"

/**
 * Safety checks the world runs after every step: the core's own (`coreInvariants`), and those
 * that need the world. Each returns the violations it sees (never throws), is named, and can be
 * used alone by a property. "Live" means spawned and not yet reaped:
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

export type Invariant = (world: WorldView, step: SimStep) => readonly Violation[]

const violation = (step: SimStep, invariant: string, message: string): Violation => ({
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

/**
 * Rule 6: a respawn entry starts at most `respawnMax` times in any `respawnWindowMs` while it
 * stays in its level (jail included): leaving the level or the config starts a new count.
 */
export const respawnRateLimited: Invariant = (world, step) => {
  const out: Violation[] = []
  for (const start of step.starts) {
    if (start.mode !== "respawn") continue
    // The entry's own `respawn-limit` over the directive (issue 11).
    const def = step.after.config.byTag.get(start.tag)
    const { respawnMax, respawnWindowMs } = def === undefined ? step.after.config.limits : limitsFor(def, step.after.config.limits)
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

/**
 * The core's own invariants (core/invariants.ts), from the state alone: group phases agree with
 * the lifecycle and the transitions (rule 8), each `outgoing` count with the runs being stopped,
 * runs numbered once; and the step's: the clock never runs back, no deadline is left behind.
 */
export const coreInvariants: Invariant = (_world, step) =>
  [...stateProblems(step.after), ...stepProblems(step.before, step.record.event, step.after)].map((p) => violation(step, p.invariant, p.message))

/** The world delivers a tick at every deadline, before anything later: none is ever left behind. */
export const noDeadlineMissed: Invariant = (_world, step) => {
  const deadline = nextDeadline(step.after)
  return deadline !== undefined && deadline < step.record.at
    ? [violation(step, "noDeadlineMissed", `next deadline ${deadline} is before now ${step.record.at}`)]
    : []
}

export const allInvariants: readonly Invariant[] = [
  noSignalToReapedRun,
  oneLiveRunPerTag,
  stateAgreesWithWorld,
  haltedHasNoProcess,
  coreInvariants,
  noDeadlineMissed,
  respawnRateLimited,
  noStartInJail,
  noStartAfterStopAll,
]
