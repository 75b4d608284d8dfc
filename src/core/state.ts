import * as HashMap from "effect/HashMap"
import type { Config, Entry, Mode } from "./config.ts"
import { emptyConfig } from "./config.ts"
import type { GroupPhase, Lifecycle, Signal } from "./enums.ts"
import type { Outcome } from "./outcome.ts"
import { succeeded } from "./outcome.ts"
import type { TimerQueue } from "./timers.ts"
import * as Timers from "./timers.ts"

/**
 * The daemon's whole state: the config in force, one record per entry that has anything to
 * remember, one per group that has been told, and the timers that the next tick must serve.
 * Persistent maps keep each event's cost independent of how many entries there are.
 */
export interface State {
  readonly config: Config
  readonly entries: HashMap.HashMap<string, EntryState>
  readonly groups: HashMap.HashMap<string, GroupState>
  readonly timers: TimerQueue
  /** Next run number; runs are never reused, so a late exit can never hit a newer process. */
  readonly nextRun: number
  readonly lifecycle: Lifecycle
  /** Latest `now` seen; ticks from the past never move time backwards. */
  readonly now: number
}

export type { GroupPhase, Lifecycle } from "./enums.ts"

/** The process of an entry, as far as the daemon knows. */
export type Proc =
  | { readonly _tag: "Idle" }
  | {
      readonly _tag: "Running"
      readonly run: number
      readonly pid: number | undefined
      /** Opaque, from the runtime: tells this process from a later one reusing its pid. */
      readonly identity: string | undefined
      readonly since: number
      /** The definition it was started with (the config may have changed since). */
      readonly def: Entry
    }
  | {
      readonly _tag: "Stopping"
      readonly run: number
      readonly pid: number | undefined
      readonly identity: string | undefined
      readonly since: number
      readonly def: Entry
      /** When SIGKILL follows the SIGTERM that began the stop. */
      readonly killAt: number
      /** The stop signal sent first (rule 7), SIGKILL once the grace is over. */
      readonly signal: Signal
      readonly cause: StopCause
    }

/**
 * Why a run is being stopped: the reducer stopped it (it left its level, was removed or changed,
 * stopall), or its leader exited and the rest of its process group must go before the entry is
 * handled as exited with the leader's outcome (rule 14).
 */
export type StopCause = { readonly _tag: "Ordered" } | { readonly _tag: "LeaderExited"; readonly outcome: Outcome }

export type LiveProc = Exclude<Proc, { readonly _tag: "Idle" }>

/** Whether a `once`, `wait` or `test` entry has run since its group entered the level. */
export type Completion = { readonly _tag: "NotRun" } | { readonly _tag: "Ran"; readonly ok: boolean }

export type Jail = { readonly _tag: "Free" } | { readonly _tag: "Jailed"; readonly until: number }

export interface EntryState {
  readonly tag: string
  readonly proc: Proc
  readonly completion: Completion
  readonly jail: Jail
  /** Start times inside the respawn window, oldest first (at most `respawnMax`). */
  readonly starts: readonly number[]
  readonly restarts: number
  readonly lastExit: { readonly outcome: Outcome; readonly at: number } | undefined
  /** Rules 20-22: its `ready` and `health` probes (probes.ts); never saved: a successor probes again. */
  readonly readiness: Readiness
}

/**
 * Where a respawn entry's probes stand (rules 20-22). `Starting`: readiness is awaited until
 * `deadline` (kept across restarts before ready, so a crash loop cannot stretch it). `Ready`: its
 * health probe, if any, has failed `fails` times in a row. `NotReady`: the deadline passed. Each
 * probe is one numbered attempt of one run: a result for another run or attempt changes nothing.
 */
export type Readiness =
  | { readonly _tag: "Unprobed" }
  | { readonly _tag: "Starting"; readonly deadline: number; readonly probe: ProbeSlot | undefined }
  | { readonly _tag: "Ready"; readonly fails: number; readonly probe: ProbeSlot | undefined }
  | { readonly _tag: "NotReady" }

/** The next probe of a run: waiting for its timer, or sent and waiting for its result. */
export interface ProbeSlot {
  readonly run: number
  readonly attempt: number
  readonly stage: "Scheduled" | "InFlight"
}

export const unprobed: Readiness = { _tag: "Unprobed" }


export interface GroupState {
  readonly name: string
  /** The level last told, `undefined` if never told. */
  readonly level: string | undefined
  readonly phase: GroupPhase
  readonly transition: Transition | undefined
  /** Processes of this group being stopped; a transition is not over until they are gone. */
  readonly outgoing: number
  /** Counts tells, so a waiting client can tell its transition from a later one. */
  readonly seq: number
  /** A failover group's lease as the cluster node handed it over (`Hold`); never saved: a restart holds nothing. */
  readonly hold: Hold | undefined
}

/** This node holds a failover group's lease with `epoch`, known alive until `until` (local monotonic ms). */
export interface Hold {
  readonly epoch: number
  readonly until: number
}

/** A group's way into its level: its entries that list it, in file order, taken one at a time. */
export interface Transition {
  readonly level: string
  readonly order: readonly Entry[]
  /** Index of the next entry of `order` to take. */
  readonly next: number
  /** The `wait` or `test` entry the transition is waiting for. */
  readonly barrier: string | undefined
}

/**
 * Rules 5 and 19: how a finished once, wait or test run marks its entry. An end nobody saw (an
 * adopted process that vanished) is no failure for once and wait; for a test it is, since its
 * result is unknown (rule 17 reruns it).
 */
export const completionAfter = (mode: Mode, outcome: Outcome): Extract<Completion, { _tag: "Ran" }> => ({
  _tag: "Ran",
  ok: outcome._tag === "Vanished" ? mode !== "test" : succeeded(outcome),
})

export const idle: Proc = { _tag: "Idle" }
export const notRun: Completion = { _tag: "NotRun" }
export const free: Jail = { _tag: "Free" }
export const ordered: StopCause = { _tag: "Ordered" }

export const freshEntry = (tag: string): EntryState => ({
  tag,
  proc: idle,
  completion: notRun,
  jail: free,
  starts: [],
  restarts: 0,
  lastExit: undefined,
  readiness: unprobed,
})

export const freshGroup = (name: string): GroupState => ({
  name,
  level: undefined,
  phase: "stopped",
  transition: undefined,
  outgoing: 0,
  seq: 0,
  hold: undefined,
})

export const initialState: State = {
  config: emptyConfig,
  entries: HashMap.empty(),
  groups: HashMap.empty(),
  timers: Timers.empty,
  nextRun: 1,
  lifecycle: "running",
  now: 0,
}

export const initialStateWith = (config: Config): State => ({ ...initialState, config })

export const lookup = <V>(map: HashMap.HashMap<string, V>, key: string): V | undefined => {
  const found = HashMap.get(map, key)
  return found._tag === "Some" ? found.value : undefined
}

export const entryOf = (state: State, tag: string): EntryState => lookup(state.entries, tag) ?? freshEntry(tag)
export const groupOf = (state: State, name: string): GroupState => lookup(state.groups, name) ?? freshGroup(name)

/** Every group to report: those of the config, and those the config lost while their processes go (rule 18). */
export const knownGroups = (state: State): readonly string[] => {
  const names = new Set<string>(state.config.byGroup.keys())
  for (const name of HashMap.keys(state.groups)) names.add(name)
  return [...names].sort()
}
