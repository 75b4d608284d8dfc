/**
 * Orphans. A process whose parent exits (`cmd &` in a shell that exits, a daemon's double fork)
 * is re-parented to the nearest ancestor that declared itself a "child subreaper", else to PID 1,
 * and must be reaped (waited for) there, or it stays a zombie holding its pid. Node reaps only
 * the children libuv spawned, each by its pid. So isinitd:
 *
 * - on a host, makes itself a child subreaper (prctl PR_SET_CHILD_SUBREAPER), as systemd's user
 *   managers do: a service's orphaned descendants stay isinitd's, not whatever init the host has;
 * - as PID 1 (a container), gets every orphan of the namespace anyway;
 * - and after a SIGCHLD reaps every child that libuv did not spawn (`ownsChild` says which it
 *   did), one by one with waitpid(pid, WNOHANG). Never waitpid(-1): it would take the exit status
 *   of a service before libuv could report it, and that run would never end. Finding them reads
 *   the kernel's list of our children, as long as the fleet of services: so the SIGCHLDs that
 *   come within `coalesceMs` (50 ms) of a first one share one look, taken then, instead of a look
 *   per exit (a stop of 500 sends hundreds; a look at each added about 80 ms of daemon CPU to
 *   it). An orphan's zombie waits that long; a leader's exit does not (zombies count as gone),
 *   and a lingering group whose last live member was an orphan is seen gone up to 50 ms later.
 *
 * A run ends when its process group is gone, zombies counting as gone (processes.ts); reaping a
 * zombie member only makes that sooner, and `onReaped` lets the process table look at its
 * lingering groups at once instead of at its next poll. Nothing here polls: an idle daemon gets no
 * SIGCHLD and does no work.
 *
 * Node has neither call; koffi (an FFI whose npm package ships prebuilt binaries, so nothing is
 * compiled at install, unlike an N-API addon that needs a compiler, and nothing else to install,
 * unlike a tini shim) calls them in the C library already loaded in the process. Where koffi
 * cannot load (a platform it has no binary for), isinitd says so and runs without: orphans then
 * go to the host's init, and as PID 1 it should run under `tini`.
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { childrenOf } from "./procfs.ts"
import { messageOf } from "./errors.ts"
import { isSpawned } from "../spawned.ts"

/** The two C calls the reaper needs. */
export interface Libc {
  /** prctl(PR_SET_CHILD_SUBREAPER, 1): 0, or an errno name. */
  readonly becomeSubreaper: () => 0 | string
  /** waitpid(pid, NULL, WNOHANG): the pid once reaped, 0 while it runs, -1 if it is not our child. */
  readonly reap: (pid: number) => number
}

const PR_SET_CHILD_SUBREAPER = 36
const WNOHANG = 1

/** libc through koffi, from the process itself (dlopen(NULL)): the same on glibc and musl. */
const loadLibc = async (): Promise<Libc> => {
  const koffi = (await import("koffi")).default
  const self = koffi.load(null)
  const prctl = self.func("int prctl(int option, ...)")
  const waitpid = self.func("int waitpid(int pid, void *status, int options)")
  return {
    becomeSubreaper: () => {
      const result = prctl(PR_SET_CHILD_SUBREAPER, "unsigned long", 1, "unsigned long", 0, "unsigned long", 0, "unsigned long", 0) as number
      if (result === 0) return 0
      const errno = koffi.errno()
      return Object.entries(koffi.os.errno).find(([, value]) => value === errno)?.[0] ?? `errno ${errno}`
    },
    reap: (pid) => waitpid(pid, null, WNOHANG) as number,
  }
}

/** This process's children, zombies included (procfs.ts `childrenOf`). */
export const childPids = (): number[] => childrenOf(process.pid)

export interface ReaperOptions {
  /** Whether libuv spawned `pid` and will reap it itself (the process table's leaders). */
  readonly ownsChild: (pid: number) => boolean
  /** Told after orphans were reaped: their process groups may be gone now. */
  readonly onReaped?: (() => void) | undefined
  readonly log: (what: "orphans" | "warning", message: string) => void
  /** How libc is reached (tests: one that fails to load). */
  readonly libc?: () => Promise<Libc>
  /** How long after a SIGCHLD the children are looked at, so that a burst shares one look (50 ms). */
  readonly coalesceMs?: number
}

const defaultCoalesceMs = 50

/** Whether orphans are reaped here, and how they come to this process. */
export type Reaper =
  | { readonly _tag: "Reaping"; readonly as: "pid 1" | "subreaper" | "parent"; readonly reapNow: () => number }
  | { readonly _tag: "Off"; readonly reason: string }


/** Reaps every child of ours that libuv did not spawn (services: `ownsChild`; the rest: spawned.ts); returns how many. */
const reapOrphans = (libc: Libc, ownsChild: (pid: number) => boolean): number => {
  let reaped = 0
  for (const pid of childPids()) if (!ownsChild(pid) && !isSpawned(pid) && libc.reap(pid) === pid) reaped++
  return reaped
}

/**
 * Becomes a subreaper (unless PID 1) and reaps orphans after SIGCHLDs (one look per burst) for
 * the lifetime of the scope, and once more at its end if a look was pending. Never fails: without koffi it logs why and
 * reaps nothing.
 */
export const startReaper = (options: ReaperOptions): Effect.Effect<Reaper, never, Scope.Scope> =>
  Effect.flatMap(
    Effect.promise(() => (options.libc ?? loadLibc)().then((libc) => ({ _tag: "Loaded", libc }) as const, (error: unknown) => ({ _tag: "Failed", reason: messageOf(error) }) as const)),
    (loaded): Effect.Effect<Reaper, never, Scope.Scope> => {
      if (loaded._tag === "Failed") {
        const reason = `cannot load koffi (${loaded.reason})`
        options.log("warning", `${reason}: orphaned processes are not reaped by isinitd; they go to the host's init (as PID 1, run isinitd under tini)`)
        return Effect.succeed({ _tag: "Off", reason })
      }
      const libc = loaded.libc
      const subreaper = process.pid === 1 ? 0 : libc.becomeSubreaper()
      if (subreaper !== 0) options.log("warning", `cannot become a child subreaper (${subreaper}): a service's orphaned processes go to the host's init`)
      const as = process.pid === 1 ? "pid 1" : subreaper === 0 ? "subreaper" : "parent"
      const reapNow = (): number => {
        const reaped = reapOrphans(libc, options.ownsChild)
        if (reaped > 0) options.onReaped?.()
        return reaped
      }
      let pendingLook: NodeJS.Timeout | undefined
      const onChild = (): void => {
        pendingLook ??= setTimeout(() => {
          pendingLook = undefined
          reapNow()
        }, options.coalesceMs ?? defaultCoalesceMs)
      }
      return Effect.as(
        Effect.acquireRelease(
          Effect.sync(() => {
            process.on("SIGCHLD", onChild)
            reapNow()
          }),
          () =>
            Effect.sync(() => {
              process.off("SIGCHLD", onChild)
              if (pendingLook === undefined) return
              clearTimeout(pendingLook)
              // The last look: the zombies of the last 50 ms; nobody is told (the table is closing too).
              reapOrphans(libc, options.ownsChild)
            }),
        ),
        { _tag: "Reaping", as, reapNow },
      )
    },
  )
