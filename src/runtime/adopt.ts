/**
 * Re-adoption after a daemon crash: which recorded processes are still alive and still the same
 * process, and which live processes the state file could not know about.
 *
 * A recorded run is alive when its leader's pid shows the recorded start time and is not a zombie,
 * or when its leader is gone but its process group still has a live member (a `sh -c` whose
 * program outlived the shell). A pid that now shows another start time was reused: the run is
 * gone, since the kernel never reuses a pid while it is still some group's id.
 *
 * The state file is written asynchronously after each batch, so a daemon killed a few
 * milliseconds after a spawn leaves a file that does not list that run, or lists it without its
 * pid. Two records fill that gap:
 * - the spawn journal (stateFile.ts): one line appended synchronously before each spawn, so the
 *   successor knows every run started after the last write, even one that has already ended;
 * - the run markers: every child carries ISINIT_INSTANCE (the state file's path), ISINIT_TAG and
 *   ISINIT_RUN in its environment, and the successor scans /proc for session leaders carrying its
 *   instance, which gives the pid and start time of such a run, or of a recorded run whose pid the
 *   file did not have yet.
 * A run started after the last write is taken back when its group's recorded level lists it;
 * otherwise its tell was lost with the daemon, and a live one is stopped so that it is not left
 * orphaned. Any other marked session leader is a descendant that left its run's group with
 * setsid(): not isinit's to manage (the original never managed those either). What stays
 * uncovered: a crash between the journal line and the spawn itself counts the run as started.
 */
import { readFileSync } from "node:fs"
import type { Entry, Parsed } from "../core/config.ts"
import type { EntrySnapshot, GroupSnapshot, Snapshot } from "../core/snapshot.ts"
import { listsLevel } from "../core/config.ts"
import type { JournalEntry } from "../codec/stateFile.ts"
import type { AdoptedProcess } from "./processes.ts"
import { runMarkers } from "./processes.ts"
import { forEachLiveProcess, livePgids, statFields } from "./procfs.ts"

/** A live session leader carrying this daemon's run markers. */
export interface MarkedProcess {
  readonly pid: number
  readonly identity: string
  readonly tag: string
  readonly run: number
}

const envValue = (environ: string, name: string): string | undefined => {
  const prefix = `${name}=`
  for (const item of environ.split("\0")) if (item.startsWith(prefix)) return item.slice(prefix.length)
  return undefined
}

/** Live session leaders whose environment names `instance` (cost: one /proc scan, at startup only). */
export const scanMarkedLeaders = (instance: string): readonly MarkedProcess[] => {
  const found: MarkedProcess[] = []
  forEachLiveProcess((pid, fields) => {
    // fields[3] is the session id: our runs lead their own session.
    if (fields[3] !== pid) return
    let environ: string
    try {
      environ = readFileSync(`/proc/${pid}/environ`, "latin1")
    } catch {
      return // gone, or not ours to read
    }
    if (envValue(environ, runMarkers.instance) !== instance) return
    const tag = envValue(environ, runMarkers.tag)
    const run = Number(envValue(environ, runMarkers.run))
    const identity = fields[19]
    if (tag === undefined || !Number.isSafeInteger(run) || identity === undefined) return
    found.push({ pid: Number(pid), identity, tag, run })
  })
  return found
}

/** Whether the recorded run (leader pid = pgid, leader start time) still has a live process. */
export const makeLivenessCheck = (): ((pid: number, identity: string) => boolean) => {
  let groups: ReadonlySet<number> | undefined
  return (pid, identity) => {
    const fields = statFields(pid)
    if (fields !== undefined && fields[19] !== identity) return false
    if (fields !== undefined && fields[0] !== "Z" && fields[0] !== "X") return true
    groups ??= livePgids()
    return groups.has(pid)
  }
}

export interface AdoptionPlan {
  /** The snapshot to restore, completed with what the scan found. */
  readonly snapshot: Snapshot
  /** Runs verified alive, for the `Restore` event. */
  readonly alive: readonly number[]
  /** What the process adapter must watch. */
  readonly adopt: readonly AdoptedProcess[]
  /** Live runs no group can take back: stop them. */
  readonly strays: readonly MarkedProcess[]
  /** For the log: what was found beyond the snapshot's own record. */
  readonly notes: readonly string[]
}

const earliestFirst = (a: MarkedProcess, b: MarkedProcess): number => Number(a.identity) - Number(b.identity) || a.pid - b.pid

const freshSnapshotEntry = (tag: string): EntrySnapshot => ({ tag, proc: null, completion: { _tag: "NotRun" }, jail: { _tag: "Free" }, starts: [], restarts: 0 })

/**
 * Decides, from the snapshot, the spawn journal and what /proc shows, which runs to adopt. Pure
 * apart from `isAlive` (the liveness check of a recorded pid), so every case is testable without
 * processes.
 *
 * Runs numbered at or after the snapshot's `nextRun` were started after the last write (the
 * journal lists them, the scan finds those still alive). For each entry only the latest of them
 * can still be alive; the others ended unwatched: each counts toward the respawn window, and a
 * once, wait or test entry counts as run (never run twice), as for a recorded run that vanished.
 */
export const planAdoption = (
  saved: Snapshot,
  parsed: Parsed,
  journal: readonly JournalEntry[],
  marked: readonly MarkedProcess[],
  isAlive: (pid: number, identity: string) => boolean,
  now: number,
): AdoptionPlan => {
  const byRun = new Map<number, MarkedProcess>()
  for (const m of [...marked].sort(earliestFirst)) if (!byRun.has(m.run)) byRun.set(m.run, m)
  const unrecorded = new Map<string, Set<number>>()
  const addUnrecorded = (tag: string, run: number): void => {
    if (run < saved.nextRun) return
    const runs = unrecorded.get(tag) ?? new Set<number>()
    runs.add(run)
    unrecorded.set(tag, runs)
  }
  for (const e of journal) addUnrecorded(e.tag, e.run)
  for (const m of byRun.values()) addUnrecorded(m.tag, m.run)

  const groups = new Map<string, GroupSnapshot>(saved.groups.map((g) => [g.name, g]))
  const alive: number[] = []
  const adopt: AdoptedProcess[] = []
  const strays: MarkedProcess[] = []
  const notes: string[] = []
  let nextRun = saved.nextRun

  const take = (tag: string, run: number, pid: number, identity: string): void => {
    alive.push(run)
    adopt.push({ tag, run, pid, identity })
  }

  /** The entry as the runs started after the last write leave it, or `undefined` if they change nothing. */
  const withUnrecorded = (tag: string, entry: EntrySnapshot | undefined): EntrySnapshot | undefined => {
    const runs = [...(unrecorded.get(tag) ?? [])].sort((a, b) => a - b)
    const latest = runs[runs.length - 1]
    if (latest === undefined) return undefined
    nextRun = Math.max(nextRun, latest + 1)
    const found = byRun.get(latest)
    const live = found !== undefined && found.tag === tag ? found : undefined
    const def: Entry | undefined = parsed.config.byTag.get(tag) ?? entry?.proc?.def
    const level = def === undefined ? null : (groups.get(def.group)?.level ?? null)
    if (def === undefined || level === null || !listsLevel(def, level)) {
      // Its tell was lost with the daemon: nothing to take back; a live one must not be left orphaned.
      if (live !== undefined) {
        strays.push(live)
        notes.push(`pid ${live.pid} (${tag} run ${latest}) was started after the last state write for a level that was not recorded: stopping it`)
      }
      return undefined
    }
    const base = entry ?? freshSnapshotEntry(tag)
    const ended = live === undefined ? runs : runs.slice(0, -1)
    for (const run of ended) notes.push(`${tag} run ${run} was started after the last state write and ended unwatched`)
    if (live !== undefined) {
      take(tag, latest, live.pid, live.identity)
      notes.push(`pid ${live.pid} (${tag} run ${latest}) was started after the last state write: adopting it`)
    }
    return {
      ...base,
      // It could only start once its jail was over; each start counts toward the window.
      jail: { _tag: "Free" },
      starts: def.mode === "respawn" ? [...base.starts, ...runs.map(() => now)] : base.starts,
      completion: def.mode !== "respawn" && ended.length > 0 ? { _tag: "Ran", ok: def.mode !== "test" } : base.completion,
      proc: live === undefined ? null : { run: latest, pid: live.pid, identity: live.identity, since: now, stopping: false, def },
    }
  }

  const recorded = (entry: EntrySnapshot): EntrySnapshot => {
    const proc = entry.proc
    if (proc === null) return entry
    if (proc.pid !== null && proc.identity !== null) {
      if (isAlive(proc.pid, proc.identity)) take(entry.tag, proc.run, proc.pid, proc.identity)
      return entry
    }
    // Spawned before the write, its pid not yet known: the environment names it.
    const m = byRun.get(proc.run)
    if (m === undefined || m.tag !== entry.tag) return entry
    take(entry.tag, proc.run, m.pid, m.identity)
    notes.push(`pid ${m.pid} (${entry.tag} run ${proc.run}) found by its environment: the state file had no pid for it`)
    return { ...entry, proc: { ...proc, pid: m.pid, identity: m.identity } }
  }

  const entries: EntrySnapshot[] = saved.entries.map((entry) => withUnrecorded(entry.tag, entry) ?? recorded(entry))
  const known = new Set(saved.entries.map((e) => e.tag))
  for (const tag of unrecorded.keys()) {
    if (known.has(tag)) continue
    const added = withUnrecorded(tag, undefined)
    if (added !== undefined) entries.push(added)
  }
  return { snapshot: { ...saved, nextRun, entries }, alive, adopt, strays, notes }
}

/**
 * Stops runs nobody can take back: SIGTERM to the group now, SIGKILL after `graceMs` unless the
 * leader's pid was reused meanwhile. The timer does not keep the daemon alive.
 */
export const stopStrays = (strays: readonly MarkedProcess[], graceMs: number): void => {
  const signal = (m: MarkedProcess, sig: NodeJS.Signals): void => {
    // A pid showing another start time was reused, so its old group is gone; a free pid's group can only be ours.
    const identity = statFields(m.pid)?.[19]
    if (identity !== undefined && identity !== m.identity) return
    try {
      process.kill(-m.pid, sig)
    } catch {
      // already gone
    }
  }
  for (const m of strays) signal(m, "SIGTERM")
  if (strays.length > 0) setTimeout(() => strays.forEach((m) => signal(m, "SIGKILL")), graceMs).unref()
}
