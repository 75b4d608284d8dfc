import * as HashMap from "effect/HashMap"
import type { Mode } from "./config.ts"
import { describeOutcome } from "./events.ts"
import type { EntryProcState, GroupPhase } from "./enums.ts"
import type { EntryOptions } from "./options.ts"
import { logPlaceOf, showLogPlace } from "./logs.ts"
import type { Readiness, State } from "./state.ts"
import { entryOf, groupOf, knownGroups } from "./state.ts"

/**
 * The daemon's state as plain data for `isinit status --json`, the status table and the cluster
 * view. Built on demand (never per event), so its cost does not matter to the hot path.
 */
export interface StatusReport {
  readonly lifecycle: State["lifecycle"]
  readonly groups: readonly GroupReport[]
}

export interface GroupReport {
  readonly group: string
  readonly state: GroupPhase
  readonly level: string
  /** Tells so far; `isinit --wait` waits for the transition with its own number. */
  readonly seq: number
  readonly entries: readonly EntryReport[]
}

/** `leader-exited`: the run's leader exited and the rest of its process group is being stopped (rule 14). */
export type { EntryProcState } from "./enums.ts"

export interface EntryReport {
  readonly tag: string
  readonly mode: Mode | "removed"
  readonly levels: readonly string[]
  readonly state: EntryProcState
  readonly pid: number | null
  readonly run: number | null
  readonly restarts: number
  readonly jailedUntil: number | null
  readonly lastExit: string | null
  /** Where it logs (core/logs.ts): a file's path, `inherit` or `off`; given when the report knows the log directory. */
  readonly log?: string
  /** An entry with a `health` probe, once ready: its failures in a row (rule 22). */
  readonly healthFailures?: number
}

/** Where `tag` logs by `options` (its running definition's, else the config's). */
const logOf = (tag: string, options: EntryOptions | undefined, logDir: string | undefined): { readonly log?: string } =>
  logDir === undefined || options === undefined ? {} : { log: showLogPlace(logPlaceOf(tag, options, logDir)) }

/** Rules 20 and 21: a running entry is `starting` until its ready probe passes, `not-ready` after its timeout. */
const runningState = (readiness: Readiness): EntryProcState =>
  readiness._tag === "Starting" ? "starting" : readiness._tag === "NotReady" ? "not-ready" : "running"

const entryReport = (state: State, tag: string, logDir: string | undefined): EntryReport => {
  const entry = entryOf(state, tag)
  const def = state.config.byTag.get(tag)
  const proc = entry.proc
  // What is running is described by the definition it was started with; an idle entry by the config.
  const current = proc._tag === "Idle" ? def : proc.def
  const procState: EntryProcState =
    proc._tag === "Running"
      ? runningState(entry.readiness)
      : proc._tag === "Stopping"
        ? proc.cause._tag === "LeaderExited"
          ? "leader-exited"
          : "stopping"
        : entry.jail._tag === "Jailed"
          ? "jailed"
          : entry.completion._tag === "Ran"
            ? entry.completion.ok
              ? "done"
              : "failed"
            : "idle"
  return {
    tag,
    mode: def?.mode ?? "removed",
    levels: def?.levels ?? [],
    state: procState,
    pid: proc._tag === "Idle" ? null : (proc.pid ?? null),
    run: proc._tag === "Idle" ? null : proc.run,
    restarts: entry.restarts,
    jailedUntil: entry.jail._tag === "Jailed" ? entry.jail.until : null,
    lastExit: entry.lastExit === undefined ? null : describeOutcome(entry.lastExit.outcome),
    ...logOf(tag, current?.options, logDir),
    ...(current?.options.health !== undefined && entry.readiness._tag === "Ready" ? { healthFailures: entry.readiness.fails } : {}),
  }
}

/** Tags of a group: its config entries in file order, then removed ones that still have a process. */
const tagsOf = (state: State, group: string): readonly string[] => {
  const tags = (state.config.byGroup.get(group) ?? []).map((e) => e.tag)
  const known = new Set(tags)
  for (const [tag, entry] of HashMap.entries(state.entries)) {
    if (known.has(tag) || entry.proc._tag === "Idle" || entry.proc.def.group !== group) continue
    tags.push(tag)
  }
  return tags
}

/** The report; with `logDir` (the daemon's, core/logs.ts), each entry says where it logs. */
export const report = (state: State, logDir?: string): StatusReport => ({
  lifecycle: state.lifecycle,
  groups: knownGroups(state).map((name) => {
    const group = groupOf(state, name)
    return {
      group: name,
      state: group.phase,
      level: group.level ?? "",
      seq: group.seq,
      entries: tagsOf(state, name).map((tag) => entryReport(state, tag, logDir)),
    }
  }),
})
