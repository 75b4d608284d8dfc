import * as HashMap from "effect/HashMap"
import type { Entry } from "./config.ts"
import { assertNone } from "./assert.ts"
import type { Outcome } from "./outcome.ts"
import type { Completion, GroupPhase, Jail, Lifecycle, LiveProc, State, StopCause } from "./state.ts"

/**
 * What a daemon must remember to survive its own crash: per entry its live run (pid, the
 * definition it runs), completion marks, jail and respawn window; per group its level. Times are
 * the runtime's `now`, which it takes from the system's monotonic clock, so they stay valid for a
 * successor on the same boot. Plain JSON-able data; the runtime decodes it with io-ts.
 */
export interface DaemonSnapshot {
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

/** A live run as recorded: running, or being stopped and why (as `LiveProc`, without its timer). */
export type ProcSnapshot = (RunSnapshot & { readonly _tag: "Running" }) | (RunSnapshot & { readonly _tag: "Stopping"; readonly cause: StopCause })

export interface RunSnapshot {
  readonly run: number
  readonly pid: number | null
  readonly identity: string | null
  readonly since: number
  readonly def: Entry
}

export interface GroupSnapshot {
  readonly name: string
  readonly level: string | null
  readonly phase: GroupPhase
  readonly seq: number
}

const procSnapshot = (proc: LiveProc): ProcSnapshot => {
  const run: RunSnapshot = { run: proc.run, pid: proc.pid ?? null, identity: proc.identity ?? null, since: proc.since, def: proc.def }
  return proc._tag === "Running" ? { _tag: "Running", ...run } : { _tag: "Stopping", ...run, cause: proc.cause }
}

/**
 * O(entries): called once per coalesced state-file write, never per event. Asserts what a
 * successor relies on (`snapshotProblems`), which the decoder checks again (a pair assertion):
 * a bug fails here, before its record is written; a damaged file is refused there.
 */
export const snapshot = (state: State): DaemonSnapshot => {
  const taken = takeSnapshot(state)
  assertNone(snapshotProblems(taken))
  return taken
}

const takeSnapshot = (state: State): DaemonSnapshot => ({
  version: 1,
  nextRun: state.nextRun,
  lifecycle: state.lifecycle,
  entries: [...HashMap.values(state.entries)].map((entry) => ({
    tag: entry.tag,
    proc: entry.proc._tag === "Idle" ? null : procSnapshot(entry.proc),
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

/**
 * What a successor's restore relies on: tags, group names and live runs unique, every run below
 * `nextRun` and running its own entry's definition, the phases a lifecycle allows (a halted
 * daemon has no process), starts in time order.
 */
export const snapshotProblems = (snap: DaemonSnapshot): readonly string[] => {
  const problems: string[] = []
  const tags = new Set<string>()
  const runs = new Set<number>()
  for (const entry of snap.entries) {
    if (tags.has(entry.tag)) problems.push(`entry ${entry.tag} is recorded twice`)
    tags.add(entry.tag)
    if (entry.starts.some((at, i) => i > 0 && at < (entry.starts[i - 1] ?? at))) problems.push(`${entry.tag}'s starts are out of order`)
    const proc = entry.proc
    if (proc === null) continue
    if (runs.has(proc.run)) problems.push(`run ${proc.run} is recorded twice`)
    runs.add(proc.run)
    if (proc.run >= snap.nextRun) problems.push(`${entry.tag} run ${proc.run} is not below the next run ${snap.nextRun}`)
    if (proc.def.tag !== entry.tag) problems.push(`${entry.tag} runs the definition of ${proc.def.tag}`)
    if (snap.lifecycle === "halted") problems.push(`halted with ${entry.tag} run ${proc.run}`)
  }
  const names = new Set<string>()
  for (const group of snap.groups) {
    if (names.has(group.name)) problems.push(`group ${group.name} is recorded twice`)
    names.add(group.name)
    if (!lifecyclePhases[snap.lifecycle].includes(group.phase)) problems.push(`group ${group.name} is ${group.phase} while the daemon is ${snap.lifecycle}`)
  }
  return problems
}

/** The phases a group can have in each lifecycle (invariants.ts, `groupPhasesValid`). */
const lifecyclePhases: { readonly [l in Lifecycle]: readonly GroupPhase[] } = {
  running: ["stopped", "start", "run", "fail"],
  stopping: ["stopped", "stopping"],
  halted: ["stopped"],
}

/** Processes recorded as live, for the runtime to verify (pid and start time) before adopting. */
export interface RecordedRun {
  readonly tag: string
  readonly run: number
  readonly pid: number | null
  readonly identity: string | null
}

export const recordedRuns = (snap: DaemonSnapshot): readonly RecordedRun[] =>
  snap.entries.flatMap((entry) =>
    entry.proc === null ? [] : [{ tag: entry.tag, run: entry.proc.run, pid: entry.proc.pid, identity: entry.proc.identity }],
  )
