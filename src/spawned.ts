/**
 * The children libuv spawned for the daemon besides its services (the fencer, hooks): libuv reaps
 * each of them itself and reports its exit, so the orphan reaper (runtime/reaper.ts) must leave
 * them alone, as it leaves the process table's leaders. Whoever spawns such a child registers it
 * here right after `spawn` returns, before any SIGCHLD can be handled (both run on one JS thread).
 */
import type { ChildProcess } from "node:child_process"

const pids = new Set<number>()

/** Marks `child` as libuv's until its exit has been reported. */
export const trackSpawned = (child: ChildProcess): ChildProcess => {
  const pid = child.pid
  if (pid === undefined) return child
  pids.add(pid)
  child.once("exit", () => pids.delete(pid))
  return child
}

/** Whether libuv waits for `pid` itself (a registered child whose exit is not yet reported). */
export const isSpawned = (pid: number): boolean => pids.has(pid)
