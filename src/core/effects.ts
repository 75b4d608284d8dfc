/**
 * What the reducer asks the world to do. Plain data (no functions), so effects can be compared,
 * printed, serialized and replayed; the runtime and the simulator are two interpreters of them.
 */
import type { Signal } from "./enums.ts"
import type { Event } from "./events.ts"
import type { EntryOptions, Probe } from "./options.ts"

export type { Signal } from "./enums.ts"

/**
 * A failover group's process carries its hold: the runtime gives it `ISINIT_EPOCH` and does not
 * start it once its monotonic clock has reached `until` (the daemon may have stalled since).
 */
export interface SpawnHold {
  readonly epoch: number
  readonly until: number
}

export type Effect =
  /**
   * Start a long-running (`respawn`) or fire-and-forget (`once`) process in its own process group,
   * in the context its `options` say (absent when the entry has none; runtime/execContext.ts).
   */
  | { readonly _tag: "Spawn"; readonly tag: string; readonly run: number; readonly group: string; readonly command: string; readonly options?: EntryOptions; readonly hold?: SpawnHold }
  /** Start a `wait` or `test` process; the group's transition waits for its exit, the daemon does not. */
  | { readonly _tag: "RunSync"; readonly tag: string; readonly run: number; readonly group: string; readonly command: string; readonly options?: EntryOptions; readonly hold?: SpawnHold }
  /** Signal the process group of a run that has not been reported gone. */
  | { readonly _tag: "Kill"; readonly tag: string; readonly run: number; readonly signal: Signal }
  /**
   * Rules 20-22: perform one probe of a run and answer with a `ProbeResult` of this run and
   * attempt, within `timeoutMs` (a probe that takes longer has failed).
   */
  | { readonly _tag: "Probe"; readonly tag: string; readonly run: number; readonly attempt: number; readonly purpose: ProbePurpose; readonly probe: Probe; readonly timeoutMs: number }
  /** Some group's state or level changed: the status file is out of date (the runtime coalesces). */
  | { readonly _tag: "WriteStatus" }
  /** Something an operator should read in the log, with the reason. */
  | { readonly _tag: "Log"; readonly entry: LogEntry }
  /**
   * The reducer refused the event, with the reason: it changed nothing (rule 9, a hold it cannot
   * take, a restore into a daemon that already manages processes), except a restore whose config
   * has errors, which keeps the runs it adopted. The one place callers learn of a refusal
   * (`rejectionOf`); the runtime logs it as `rejected`.
   */
  | Rejection

export type ProbePurpose = "ready" | "health"

/** `subject` names what was refused as an operator would say it: `tell web 2`, `reload`, ... */
export interface Rejection {
  readonly _tag: "Rejected"
  readonly event: Event["_tag"]
  readonly subject: string
  readonly group?: string
  readonly reason: string
}

/** The reducer's refusal among an event's effects, if it refused it. */
export const rejectionOf = (effects: readonly Effect[]): Rejection | undefined => {
  for (const effect of effects) if (effect._tag === "Rejected") return effect
  return undefined
}

/** The log line's text: `tell web 2: unknown group "web" (...)`. */
export const describeRejection = (rejection: Rejection): string => `${rejection.subject}: ${rejection.reason}`

/**
 * The log's verbs, one vocabulary for the whole daemon (the `what` column of every log line).
 * The reducer's own: what its `Log` effects say happened.
 */
export const reducerLogWhats = [
  "started",
  "exited",
  "restarting",
  "jailed",
  "released",
  "stopping",
  "killed",
  "adopted",
  "group",
  "halted",
  /** A failover group stopped or not started because its hold is missing or ran out. */
  "fenced",
  /** Rules 20-22: an entry became ready, was not ready in time, or failed its health check. */
  "probe",
] as const

/** What the shell logs besides: what only it sees (exits, signals, etcd), and the reducer's refusals. */
export const shellLogWhats = [
  /** A `Rejected` effect, or a request refused before it reached the reducer (an unreadable config). */
  "rejected",
  /** A run's leader exited while the rest of its process group lives on (rule 14). */
  "leader-exited",
  /** A programmer error caught at the edge (a reducer that threw). */
  "bug",
  "ready",
  "signal",
  "request",
  "handover",
  "exit",
  /** Re-adoption after a crash: what the state file, the journal and /proc gave. */
  "restore",
  /** A problem of the isinittab at start. */
  "config",
  "warning",
  /** Reaping orphans (PID 1 or child subreaper). */
  "orphans",
  /** The log itself (its stream lost, lines dropped). */
  "log",
  /** The cluster node: convergence, failover, and etcd's health. */
  "cluster",
  "failover",
  "etcd-outage",
  "etcd-resync",
  "etcd-rejected",
  /** The fencer: a failover group's processes killed when its hold ran out without a renewal. */
  "fencer",
  /** Event hooks (runtime/hooks.ts): a run that failed, timed out, or events dropped over a limit. */
  "hook",
  /** --metrics and --http (runtime/http.ts): serving, or an address that cannot be had. */
  "http",
] as const

export const logWhats = [...reducerLogWhats, ...shellLogWhats] as const

export type ReducerLogWhat = (typeof reducerLogWhats)[number]
export type LogWhat = (typeof logWhats)[number]

export interface LogEntry {
  readonly what: ReducerLogWhat
  readonly group?: string
  readonly tag?: string
  readonly run?: number
  readonly message: string
}
