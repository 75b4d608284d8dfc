/**
 * What the reducer asks the world to do. Plain data (no functions), so effects can be compared,
 * printed, serialized and replayed; the runtime and the simulator are two interpreters of them.
 */
export type Signal = "SIGTERM" | "SIGKILL"

/**
 * A failover group's process carries its hold: the runtime gives it `ISINIT_EPOCH` and does not
 * start it once its monotonic clock has reached `until` (the daemon may have stalled since).
 */
export interface SpawnHold {
  readonly epoch: number
  readonly until: number
}

export type Effect =
  /** Start a long-running (`respawn`) or fire-and-forget (`once`) process in its own process group. */
  | { readonly _tag: "Spawn"; readonly tag: string; readonly run: number; readonly group: string; readonly command: string; readonly hold?: SpawnHold }
  /** Start a `wait` or `test` process; the group's transition waits for its exit, the daemon does not. */
  | { readonly _tag: "RunSync"; readonly tag: string; readonly run: number; readonly group: string; readonly command: string; readonly hold?: SpawnHold }
  /** Signal the process group of a run that has not been reported gone. */
  | { readonly _tag: "Kill"; readonly tag: string; readonly run: number; readonly signal: Signal }
  /** Some group's state or level changed: the status file is out of date (the runtime coalesces). */
  | { readonly _tag: "WriteStatus" }
  /** Something an operator should read in the log, with the reason. */
  | { readonly _tag: "Log"; readonly entry: LogEntry }

export type LogWhat =
  | "started"
  | "exited"
  | "restarting"
  | "jailed"
  | "released"
  | "stopping"
  | "killed"
  | "rejected"
  | "adopted"
  | "group"
  | "halted"
  /** A failover group stopped or not started because its hold is missing or ran out. */
  | "fenced"

export interface LogEntry {
  readonly what: LogWhat
  readonly group?: string
  readonly tag?: string
  readonly run?: number
  readonly message: string
}
