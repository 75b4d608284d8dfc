import type { Parsed } from "./config.ts"

/**
 * Everything that can happen to the daemon. Time enters only here, as `now` (ms, monotonic as far
 * as the runtime can make it); the reducer never reads a clock.
 *
 * A process is named by its entry's `tag` plus `run`, a sequence number the reducer hands out
 * with each spawn; pids are only informative, so a reused pid can never be confused with a run.
 */
export type Event =
  | { readonly _tag: "Tell"; readonly group: string; readonly level: string; readonly parsed: Parsed; readonly now: number }
  | { readonly _tag: "Reload"; readonly parsed: Parsed; readonly now: number }
  | { readonly _tag: "StopAll"; readonly now: number }
  | { readonly _tag: "Started"; readonly tag: string; readonly run: number; readonly pid: number; readonly now: number }
  | { readonly _tag: "ChildExit"; readonly tag: string; readonly run: number; readonly outcome: Outcome; readonly now: number }
  | { readonly _tag: "Tick"; readonly now: number }

/** How a process ended. `SpawnFailed` counts as an exit for the respawn rules. */
export type Outcome =
  | { readonly _tag: "Exited"; readonly code: number }
  | { readonly _tag: "Signaled"; readonly signal: string }
  | { readonly _tag: "SpawnFailed"; readonly reason: string }

export const succeeded = (outcome: Outcome): boolean => outcome._tag === "Exited" && outcome.code === 0

export const describeOutcome = (outcome: Outcome): string => {
  switch (outcome._tag) {
    case "Exited":
      return `exit ${outcome.code}`
    case "Signaled":
      return `signal ${outcome.signal}`
    case "SpawnFailed":
      return `spawn failed: ${outcome.reason}`
  }
}

export const tell = (group: string, level: string, parsed: Parsed, now: number): Event => ({
  _tag: "Tell", group, level, parsed, now,
})
export const reload = (parsed: Parsed, now: number): Event => ({ _tag: "Reload", parsed, now })
export const stopAll = (now: number): Event => ({ _tag: "StopAll", now })
export const started = (tag: string, run: number, pid: number, now: number): Event => ({ _tag: "Started", tag, run, pid, now })
export const childExit = (tag: string, run: number, outcome: Outcome, now: number): Event => ({
  _tag: "ChildExit", tag, run, outcome, now,
})
export const tick = (now: number): Event => ({ _tag: "Tick", now })
