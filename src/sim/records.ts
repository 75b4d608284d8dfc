/**
 * What the simulated world records: its processes, start attempts, timeline and steps. Apart from
 * world.ts so that the invariants (invariants.ts) can read them without importing the world.
 */
import type { Mode } from "../core/config.ts"
import type { Effect, LogEntry } from "../core/effects.ts"
import type { Event, Outcome } from "../core/events.ts"
import type { State } from "../core/state.ts"
import type { Behaviour } from "./behaviour.ts"

export interface SimProcess {
  readonly key: string
  readonly tag: string
  readonly run: number
  readonly group: string
  readonly command: string
  /** `RunSync` for wait/test jobs, `Spawn` for the rest. */
  readonly kind: "Spawn" | "RunSync"
  /** Undefined when the spawn failed: there was never a process. */
  readonly pid: number | undefined
  readonly startedAt: number
  readonly behaviour: Behaviour
  exit: ExitPlan | undefined
  /** Set once the leader exited while the rest of the group lives on: the run's outcome (rule 14). */
  leader: Outcome | undefined
}

interface ExitPlan {
  readonly at: number
  readonly outcome: Outcome
  readonly id: number
}

/** One start attempt of an entry, as the world saw it (spawn failures included). */
export interface StartRecord {
  readonly at: number
  /** Index of the step whose effects started it. */
  readonly step: number
  readonly tag: string
  readonly run: number
  readonly group: string
  readonly mode: Mode | undefined
}

export type TimelineKind =
  | "tell"
  | "reload"
  | "stopall"
  | "config"
  | "crash"
  | "started"
  | "spawn-failed"
  | "exited"
  | "leader-exited"
  | "killed"
  | "ignored"
  | "jailed"
  | "released"
  | "rejected"
  | "group"
  | "halted"
  | "log"
  | "violation"

export interface TimelineEntry {
  readonly at: number
  readonly kind: TimelineKind
  readonly group: string | undefined
  readonly tag: string | undefined
  readonly run: number | undefined
  /** For `log` entries: what kind of log line the reducer emitted. */
  readonly what?: LogEntry["what"]
  readonly detail: string
}

/** One event handled by the reducer and the effects it returned. */
export interface StepRecord {
  readonly index: number
  readonly at: number
  readonly event: Event
  readonly effects: readonly Effect[]
}

/** What invariants see of one step: its record and the states around it. */
export interface SimStep {
  readonly record: StepRecord
  readonly before: State
  readonly after: State
  /** Start attempts made by this step's effects. */
  readonly starts: readonly StartRecord[]
}
