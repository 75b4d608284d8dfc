import * as HashMap from "effect/HashMap"
import type { Entry } from "./config.ts"
import type { Outcome } from "./events.ts"
import type { Completion, GroupPhase, Jail, Lifecycle, State } from "./state.ts"

/**
 * What a daemon must remember to survive its own crash: per entry its live run (pid, the
 * definition it runs), completion marks, jail and respawn window; per group its level. Times are
 * the runtime's `now`, which it takes from the system's monotonic clock, so they stay valid for a
 * successor on the same boot. Plain JSON-able data; the runtime decodes it with io-ts.
 */
export interface Snapshot {
  readonly version: 1
  readonly nextRun: number
  readonly lifecycle: Lifecycle
  readonly entries: readonly EntrySnapshot[]
  readonly groups: readonly GroupSnapshot[]
}

export interface EntrySnapshot {
  readonly tag: string
  readonly proc: ProcSnapshot | null
  readonly completion: Completion
  readonly jail: Jail
  readonly starts: readonly number[]
  readonly restarts: number
  /** The last run's end, so `status` still shows it after any number of daemon restarts. */
  readonly lastExit?: { readonly outcome: Outcome; readonly at: number }
}

export interface ProcSnapshot {
  readonly run: number
  readonly pid: number | null
  readonly identity: string | null
  readonly since: number
  readonly stopping: boolean
  readonly def: Entry
  /** Set while the rest of the group of a leader that exited is being stopped (rule 14). */
  readonly leaderExit?: Outcome
}

export interface GroupSnapshot {
  readonly name: string
  readonly level: string | null
  readonly phase: GroupPhase
  readonly seq: number
}

/** O(entries): called once per coalesced state-file write, never per event. */
export const snapshot = (state: State): Snapshot => ({
  version: 1,
  nextRun: state.nextRun,
  lifecycle: state.lifecycle,
  entries: [...HashMap.values(state.entries)].map((entry) => ({
    tag: entry.tag,
    proc:
      entry.proc._tag === "Idle"
        ? null
        : {
            run: entry.proc.run,
            pid: entry.proc.pid ?? null,
            identity: entry.proc.identity ?? null,
            since: entry.proc.since,
            stopping: entry.proc._tag === "Stopping",
            def: entry.proc.def,
            ...(entry.proc._tag === "Stopping" && entry.proc.cause._tag === "LeaderExited" ? { leaderExit: entry.proc.cause.outcome } : {}),
          },
    completion: entry.completion,
    jail: entry.jail,
    starts: entry.starts,
    restarts: entry.restarts,
    ...(entry.lastExit === undefined ? {} : { lastExit: entry.lastExit }),
  })),
  groups: [...HashMap.values(state.groups)].map((group) => ({
    name: group.name,
    level: group.level ?? null,
    phase: group.phase,
    seq: group.seq,
  })),
})

/** Processes recorded as live, for the runtime to verify (pid and start time) before adopting. */
export interface RecordedRun {
  readonly tag: string
  readonly run: number
  readonly pid: number | null
  readonly identity: string | null
}

export const recordedRuns = (snap: Snapshot): readonly RecordedRun[] =>
  snap.entries.flatMap((entry) =>
    entry.proc === null ? [] : [{ tag: entry.tag, run: entry.proc.run, pid: entry.proc.pid, identity: entry.proc.identity }],
  )
