import type { Parsed } from "./config.ts"
import type { DaemonSnapshot } from "./snapshot.ts"
import type { Outcome } from "./outcome.ts"

/**
 * Everything that can happen to the daemon. Time enters only here, as `now` (ms, monotonic as far
 * as the runtime can make it); the reducer never reads a clock.
 *
 * A process is named by its entry's `tag` plus `run`, a sequence number the reducer hands out
 * with each spawn; pids are only informative, so a reused pid can never be confused with a run.
 */
export type Event =
  | { readonly _tag: "Tell"; readonly group: string; readonly level: string; readonly parsed: Parsed; readonly now: number; readonly guard?: Guard }
  | { readonly _tag: "Reload"; readonly parsed: Parsed; readonly now: number; readonly guard?: Guard }
  | { readonly _tag: "StopAll"; readonly now: number }
  /** `identity` tells this process from a later one with the same pid (e.g. its start time). */
  | { readonly _tag: "Started"; readonly tag: string; readonly run: number; readonly pid: number; readonly identity?: string; readonly now: number }
  | { readonly _tag: "ChildExit"; readonly tag: string; readonly run: number; readonly outcome: Outcome; readonly now: number }
  /** The run's leader exited while other members of its process group live on (`ChildExit` follows when they are gone). */
  | { readonly _tag: "LeaderExited"; readonly tag: string; readonly run: number; readonly outcome: Outcome; readonly now: number }
  | { readonly _tag: "Tick"; readonly now: number }
  /**
   * Cluster mode, failover groups (failover.ts): this node holds GROUP's lease with this epoch,
   * known alive until `until` (its renew deadline). The group runs at its failover level while it
   * holds; it stops by itself at `until` unless another Hold extends it.
   */
  | { readonly _tag: "Hold"; readonly group: string; readonly epoch: number; readonly until: number; readonly now: number }
  /** Cluster mode: this node does not hold GROUP (any more); the group goes to `standby`. */
  | { readonly _tag: "Release"; readonly group: string; readonly now: number }
  /** Rules 20-22: the answer to a `Probe` effect (the run and attempt it was sent for). */
  | { readonly _tag: "ProbeResult"; readonly tag: string; readonly run: number; readonly attempt: number; readonly result: ProbeOutcome; readonly now: number }
  /** A restarted daemon takes over what its predecessor recorded; `alive` lists the runs it verified. */
  | { readonly _tag: "Restore"; readonly snapshot: DaemonSnapshot; readonly alive: readonly number[]; readonly parsed: Parsed; readonly now: number }

/**
 * `removals`: the config is a file the daemon has just re-read, which may be half-written, so a
 * change that would stop a large share of what runs is refused (reread.ts). Absent when the
 * operator confirmed it (`--force`) or the config was checked before it was stored (etcd).
 */
export type Guard = "removals"

export type { Outcome } from "./outcome.ts"
export { describeOutcome, succeeded } from "./outcome.ts"

/** What a probe found: `Failed` says why (refused, exit 1, HTTP 503, timed out, ...). */
export type ProbeOutcome = { readonly _tag: "Passed" } | { readonly _tag: "Failed"; readonly reason: string }

export const probeResult = (tag: string, run: number, attempt: number, result: ProbeOutcome, now: number): Event => ({
  _tag: "ProbeResult", tag, run, attempt, result, now,
})

export const tell = (group: string, level: string, parsed: Parsed, now: number, guard?: Guard): Event =>
  guard === undefined ? { _tag: "Tell", group, level, parsed, now } : { _tag: "Tell", group, level, parsed, now, guard }
export const reload = (parsed: Parsed, now: number, guard?: Guard): Event =>
  guard === undefined ? { _tag: "Reload", parsed, now } : { _tag: "Reload", parsed, now, guard }
export const stopAll = (now: number): Event => ({ _tag: "StopAll", now })
export const started = (tag: string, run: number, pid: number, now: number, identity?: string): Event =>
  identity === undefined ? { _tag: "Started", tag, run, pid, now } : { _tag: "Started", tag, run, pid, identity, now }
export const childExit = (tag: string, run: number, outcome: Outcome, now: number): Event => ({
  _tag: "ChildExit", tag, run, outcome, now,
})
export const leaderExited = (tag: string, run: number, outcome: Outcome, now: number): Event => ({
  _tag: "LeaderExited", tag, run, outcome, now,
})
export const tick = (now: number): Event => ({ _tag: "Tick", now })
export const restore = (snapshot: DaemonSnapshot, alive: readonly number[], parsed: Parsed, now: number): Event => ({
  _tag: "Restore", snapshot, alive, parsed, now,
})
export const hold = (group: string, epoch: number, until: number, now: number): Event => ({ _tag: "Hold", group, epoch, until, now })
export const release = (group: string, now: number): Event => ({ _tag: "Release", group, now })
