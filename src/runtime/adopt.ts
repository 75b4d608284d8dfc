/**
 * Re-adoption after a daemon crash, the part that looks at the system: which recorded processes
 * are still alive and still the same process, and which live processes carry this daemon's run
 * markers. What to make of it is the core's decision (core/adoption.ts `planAdoption`, which
 * also says why the journal and the markers are needed).
 *
 * A recorded run is alive when its leader's pid shows the recorded start time and is not a zombie,
 * or when its leader is gone but its process group still has a live member (a `sh -c` whose
 * program outlived the shell). A pid that now shows another start time was reused: the run is
 * gone, since the kernel never reuses a pid while it is still some group's id.
 *
 * The run markers: every child carries ISINIT_INSTANCE (the state file's path), ISINIT_TAG and
 * ISINIT_RUN in its environment, and the successor scans /proc for session leaders carrying its
 * instance, which gives the pid and start time of a run started after the last state write, or
 * of a recorded run whose pid the file did not have yet. What stays uncovered: a crash between
 * the journal line and the spawn itself counts the run as started.
 */
import { readFileSync } from "node:fs"
import type { FoundRun } from "../core/adoption.ts"
import type { DaemonSnapshot } from "../core/snapshot.ts"
import { recordedRuns } from "../core/snapshot.ts"
import { runMarkers } from "./processes.ts"
import { forEachLiveProcess, livePgids, statFields } from "./procfs.ts"

/** A live session leader carrying this daemon's run markers. */
export type MarkedProcess = FoundRun

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

/**
 * The recorded runs still alive (same pid, same start time, or a live member of its group), for
 * the core's adoption plan (core/adoption.ts). One /proc read per recorded run, at startup only.
 */
export const verifiedRuns = (saved: DaemonSnapshot, isAlive: (pid: number, identity: string) => boolean = makeLivenessCheck()): ReadonlySet<number> =>
  new Set(recordedRuns(saved).flatMap((r) => (r.pid !== null && r.identity !== null && isAlive(r.pid, r.identity) ? [r.run] : [])))

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
