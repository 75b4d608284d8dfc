/**
 * Re-adoption after a daemon crash, the decision (the runtime only probes /proc: runtime/adopt.ts).
 * Which recorded runs to take back, and how the runs started after the last state-file write
 * leave their entries.
 *
 * The state file is written after each batch, so a daemon killed a few milliseconds after a
 * spawn leaves a file that does not list that run, or lists it without its pid. The spawn
 * journal (one line per spawn, appended before it) names every such run; the runtime's scan of
 * /proc for session leaders carrying the daemon's run markers gives the pid and start time of
 * those still alive. Runs numbered at or after the snapshot's `nextRun` were started after the
 * last write. For each entry only the latest of them can still be alive; the others ended
 * unwatched: each counts toward the respawn window (rule 6), and a once, wait or test entry
 * counts as run (never run twice; a test's result as failed), as for a recorded run that vanished
 * (rule 19). Such a run is taken back when its group's recorded level lists it; otherwise its
 * tell was lost with the daemon, and a live one is a stray the runtime stops. Any other marked
 * session leader is a descendant that left its run's group with setsid(): not isinit's.
 */
import type { Entry, Parsed } from "./config.ts"
import { listsLevel, limitsFor } from "./config.ts"
import { countStart } from "./respawn.ts"
import type { EntrySnapshot, GroupSnapshot, ProcSnapshot, DaemonSnapshot } from "./snapshot.ts"
import { completionAfter } from "./state.ts"

/** A run by name: the journal's record of a spawn. */
export interface RunName {
  readonly tag: string
  readonly run: number
}

/** A live process of a run: a marked session leader the scan found, or one to adopt. */
export interface FoundRun extends RunName {
  readonly pid: number
  /** Its start time (clock ticks since boot): tells it from a later process with its pid. */
  readonly identity: string
}

export interface AdoptionPlan {
  /** The snapshot to restore, completed with what the scan found. */
  readonly snapshot: DaemonSnapshot
  /** Runs verified alive, for the `Restore` event. */
  readonly alive: readonly number[]
  /** What the process adapter must watch. */
  readonly adopt: readonly FoundRun[]
  /** Live runs no group can take back: stop them. */
  readonly strays: readonly FoundRun[]
  /** For the log: what was found beyond the snapshot's own record. */
  readonly notes: readonly string[]
}

/** What the plan collects while it walks the entries. */
interface Plan {
  readonly saved: DaemonSnapshot
  readonly parsed: Parsed
  readonly now: number
  /** The earliest-started marked leader of each run. */
  readonly byRun: ReadonlyMap<number, FoundRun>
  /** Per tag, the runs started after the last write (journal and scan). */
  readonly unrecorded: ReadonlyMap<string, readonly number[]>
  readonly groups: ReadonlyMap<string, GroupSnapshot>
  readonly alive: number[]
  readonly adopt: FoundRun[]
  readonly strays: FoundRun[]
  readonly notes: string[]
  nextRun: number
}

const earliestFirst = (a: FoundRun, b: FoundRun): number => Number(a.identity) - Number(b.identity) || a.pid - b.pid

const freshEntry = (tag: string): EntrySnapshot => ({ tag, proc: null, completion: { _tag: "NotRun" }, jail: { _tag: "Free" }, starts: [], restarts: 0 })

const take = (plan: Plan, found: FoundRun): void => {
  plan.alive.push(found.run)
  plan.adopt.push(found)
}

/** The entry as the runs started after the last write leave it, or `undefined` if they change nothing. */
const withUnrecorded = (plan: Plan, tag: string, entry: EntrySnapshot | undefined): EntrySnapshot | undefined => {
  const runs = plan.unrecorded.get(tag) ?? []
  const latest = runs[runs.length - 1]
  if (latest === undefined) return undefined
  plan.nextRun = Math.max(plan.nextRun, latest + 1)
  const found = plan.byRun.get(latest)
  const live = found?.tag === tag ? found : undefined
  const def: Entry | undefined = plan.parsed.config.byTag.get(tag) ?? entry?.proc?.def
  const level = def === undefined ? null : (plan.groups.get(def.group)?.level ?? null)
  if (def === undefined || level === null || !listsLevel(def, level)) {
    // Its tell was lost with the daemon: nothing to take back; a live one must not be left orphaned.
    if (live !== undefined) {
      plan.strays.push(live)
      plan.notes.push(`pid ${live.pid} (${tag} run ${latest}) was started after the last state write for a level that was not recorded: stopping it`)
    }
    return undefined
  }
  const ended = live === undefined ? runs : runs.slice(0, -1)
  for (const run of ended) plan.notes.push(`${tag} run ${run} was started after the last state write and ended unwatched`)
  if (live !== undefined) {
    take(plan, live)
    plan.notes.push(`pid ${live.pid} (${tag} run ${latest}) was started after the last state write: adopting it`)
  }
  return afterUnrecorded(plan, entry ?? freshEntry(tag), def, runs, ended, live)
}

/** `runs` started after the last write, of which `ended` ended unwatched and `live` (the latest) lives on. */
const afterUnrecorded = (plan: Plan, base: EntrySnapshot, def: Entry, runs: readonly number[], ended: readonly number[], live: FoundRun | undefined): EntrySnapshot => {
  const { now } = plan
  const limits = limitsFor(def, plan.parsed.config.limits)
  const proc: ProcSnapshot | null = live === undefined ? null : { _tag: "Running", run: live.run, pid: live.pid, identity: live.identity, since: now, def }
  return {
    ...base,
    // It could only start once its jail was over; each start counts toward the window.
    jail: { _tag: "Free" },
    starts: def.mode === "respawn" ? runs.reduce((starts) => countStart(starts, now, limits), base.starts) : base.starts,
    completion: def.mode !== "respawn" && ended.length > 0 ? completionAfter(def.mode, { _tag: "Vanished" }) : base.completion,
    proc,
  }
}

/** A run the file recorded: adopted if the runtime verified it, or found by its environment when the file had no pid. */
const recorded = (plan: Plan, entry: EntrySnapshot, verified: ReadonlySet<number>): EntrySnapshot => {
  const proc = entry.proc
  if (proc === null) return entry
  if (proc.pid !== null && proc.identity !== null) {
    if (verified.has(proc.run)) take(plan, { tag: entry.tag, run: proc.run, pid: proc.pid, identity: proc.identity })
    return entry
  }
  // Spawned before the write, its pid not yet known: the environment names it.
  const m = plan.byRun.get(proc.run)
  if (m === undefined || m.tag !== entry.tag) return entry
  take(plan, { tag: entry.tag, run: proc.run, pid: m.pid, identity: m.identity })
  plan.notes.push(`pid ${m.pid} (${entry.tag} run ${proc.run}) found by its environment: the state file had no pid for it`)
  return { ...entry, proc: { ...proc, pid: m.pid, identity: m.identity } }
}

const startPlan = (saved: DaemonSnapshot, parsed: Parsed, journal: readonly RunName[], marked: readonly FoundRun[], now: number): Plan => {
  const byRun = new Map<number, FoundRun>()
  for (const m of [...marked].sort(earliestFirst)) if (!byRun.has(m.run)) byRun.set(m.run, m)
  const unrecorded = new Map<string, Set<number>>()
  for (const { tag, run } of [...journal, ...byRun.values()]) {
    if (run < saved.nextRun) continue
    unrecorded.set(tag, (unrecorded.get(tag) ?? new Set<number>()).add(run))
  }
  const sorted = new Map([...unrecorded].map(([tag, runs]) => [tag, [...runs].sort((a, b) => a - b)]))
  const groups = new Map(saved.groups.map((g) => [g.name, g]))
  return { saved, parsed, now, byRun, unrecorded: sorted, groups, alive: [], adopt: [], strays: [], notes: [], nextRun: saved.nextRun }
}

/**
 * Decides, from the snapshot, the spawn journal, the marked session leaders the scan found and
 * the recorded runs the runtime `verified` alive (same pid, same start time), which runs to adopt.
 */
export const planAdoption = (
  saved: DaemonSnapshot,
  parsed: Parsed,
  journal: readonly RunName[],
  marked: readonly FoundRun[],
  verified: ReadonlySet<number>,
  now: number,
): AdoptionPlan => {
  const plan = startPlan(saved, parsed, journal, marked, now)
  const entries: EntrySnapshot[] = saved.entries.map((entry) => withUnrecorded(plan, entry.tag, entry) ?? recorded(plan, entry, verified))
  const known = new Set(saved.entries.map((e) => e.tag))
  for (const tag of plan.unrecorded.keys()) {
    if (known.has(tag)) continue
    const added = withUnrecorded(plan, tag, undefined)
    if (added !== undefined) entries.push(added)
  }
  const { alive, adopt, strays, notes, nextRun } = plan
  return { snapshot: { ...saved, nextRun, entries }, alive, adopt, strays, notes }
}
