/**
 * What the benchmark reads from /proc: which marked programs are alive, their identity (pid and
 * start time, so a reused pid is never mistaken for the old process), CPU time, wake-ups and
 * memory of the supervisors, and the list of everything the benchmark started (by an environment
 * marker every descendant inherits) so that cleanup can kill it all.
 *
 * Programs are marked by a number in their argv (`sleep 7123450042`): every supervisor passes the
 * argv through unchanged, so the same marker works for isinitd, runit and supervisord.
 */
import { readdirSync, readFileSync } from "node:fs"
import { statFields } from "../../src/runtime/procfs.ts"

export interface Identity {
  readonly pid: number
  /** Start time in ticks since boot (stat field 22). */
  readonly start: string
}

/** Fields after "pid (comm) ", or undefined when the process is gone: the daemon's own reader. */
export { statFields }

/** Alive and not a zombie waiting to be reaped (a zombie holds nothing). */
export const isAlive = (id: Identity): boolean => {
  const f = statFields(id.pid)
  return f !== undefined && f[19] === id.start && f[0] !== "Z" && f[0] !== "X"
}

/** Clock ticks per second of /proc times (USER_HZ, 100 on Linux). */
const ticksPerSecond = 100

const uptimeTicks = (): number => Number(readFileSync("/proc/uptime", "latin1").split(" ")[0]) * ticksPerSecond

const cmdline = (pid: string): string | undefined => {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "latin1")
  } catch {
    return undefined
  }
}

const numericNames = (): string[] => {
  const out: string[] = []
  for (const name of readdirSync("/proc")) {
    const c = name.charCodeAt(0)
    if (c >= 48 && c <= 57) out.push(name)
  }
  return out
}

/**
 * Finds live processes whose argv holds a marker: `prefix` and six digits. Processes that existed when
 * the scanner was made and were not marked are skipped (nothing we start reuses them), so a scan
 * mostly reads new pids: cheap enough to poll. Make it before the action that starts the processes. A new pid is re-read until it is marked, because a
 * fork shows its parent's argv until it execs. Every `revalidateMs` the skipped pids are checked
 * against their start time, in case one died and its pid was handed to a marked process (pids wrap
 * at 32768 here). A marked process, once found, is not read again while its pid is listed: a
 * marked process that died but is not reaped yet still counts (callers that time deaths use
 * `isAlive` on identities instead).
 */
export const makeScanner = (prefix: string, revalidateMs = 250) => {
  const pattern = new RegExp(`(?<!\\d)${prefix}\\d{6}(?!\\d)`)
  /** pid to start time of processes known not to be ours. */
  const ignored = new Map<string, string>()
  /** pid to the marked process it was found to be. */
  const known = new Map<string, { readonly marker: string; readonly id: Identity }>()
  let lastRevalidation = performance.now()
  const matchOf = (pid: string): string | undefined => {
    const line = cmdline(pid)
    return line === undefined ? undefined : pattern.exec(line)?.[0]
  }
  // A process that started moments ago may be a fork that has not exec'd its marked program yet
  // (exec keeps the pid and start time): only older ones are skipped.
  const recent = uptimeTicks() - 2 * ticksPerSecond
  for (const pid of numericNames()) {
    const start = statFields(pid)?.[19]
    if (start !== undefined && Number(start) < recent && matchOf(pid) === undefined) ignored.set(pid, start)
  }

  const revalidate = (): void => {
    lastRevalidation = performance.now()
    for (const [pid, start] of ignored) if (statFields(pid)?.[19] !== start) ignored.delete(pid)
    for (const [pid, k] of known) if (statFields(pid)?.[19] !== k.id.start) known.delete(pid)
  }

  /** Marker to the identities alive under it now. */
  const scan = (): Map<string, Identity[]> => {
    if (performance.now() - lastRevalidation > revalidateMs) revalidate()
    const found = new Map<string, Identity[]>()
    const add = (marker: string, id: Identity): void => {
      const list = found.get(marker)
      if (list === undefined) found.set(marker, [id])
      else list.push(id)
    }
    for (const pid of numericNames()) {
      if (ignored.has(pid)) continue
      const seen = known.get(pid)
      if (seen !== undefined) {
        add(seen.marker, seen.id)
        continue
      }
      const marker = matchOf(pid)
      if (marker === undefined) continue
      const f = statFields(pid)
      if (f === undefined || f[0] === "Z" || f[0] === "X" || f[19] === undefined) continue
      const id = { pid: Number(pid), start: f[19] }
      known.set(pid, { marker, id })
      add(marker, id)
    }
    return found
  }
  return { scan }
}

/**
 * CPU time of every live thread of `pid` in ms, from /proc/PID/task/TID/schedstat (nanoseconds
 * on the CPU): precise where utime+stime round each process to 10 ms ticks, which would hide the
 * cost of 500 small runsv processes. 0 once the process is gone.
 */
export const cpuMs = (pid: number): number => {
  let ns = 0
  try {
    for (const task of readdirSync(`/proc/${pid}/task`)) {
      const first = readFileSync(`/proc/${pid}/task/${task}/schedstat`, "latin1").split(" ")[0]
      ns += Number(first ?? 0)
    }
  } catch {
    // gone
  }
  return ns / 1e6
}

const statusField = (pid: number, key: string): number => {
  try {
    const m = new RegExp(`^${key}:\\s+(\\d+)`, "m").exec(readFileSync(`/proc/${pid}/status`, "latin1"))
    return m?.[1] === undefined ? 0 : Number(m[1])
  } catch {
    return 0
  }
}

/** Context switches of every thread of `pid` (voluntary and not): how often it woke up. */
export const wakeups = (pid: number): number => {
  let total = 0
  try {
    for (const task of readdirSync(`/proc/${pid}/task`)) {
      const text = readFileSync(`/proc/${pid}/task/${task}/status`, "latin1")
      for (const m of text.matchAll(/^(?:non)?voluntary_ctxt_switches:\s+(\d+)/gm)) total += Number(m[1])
    }
  } catch {
    // gone
  }
  return total
}

export interface Memory {
  /** VmRSS: every resident page, shared ones (the node binary, libc) counted in full. */
  readonly rssKb: number
  /** RssAnon: the process's own heap, stacks and JIT code. */
  readonly anonKb: number
  /** Proportional set size: shared pages divided among the processes that map them. */
  readonly pssKb: number
}

export const memoryOf = (pid: number): Memory => {
  let pssKb = 0
  try {
    const m = /^Pss:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, "latin1"))
    pssKb = m?.[1] === undefined ? 0 : Number(m[1])
  } catch {
    // gone
  }
  return { rssKb: statusField(pid, "VmRSS"), anonKb: statusField(pid, "RssAnon"), pssKb }
}

export const sumMemory = (ms: readonly Memory[]): Memory =>
  ms.reduce((a, b) => ({ rssKb: a.rssKb + b.rssKb, anonKb: a.anonKb + b.anonKb, pssKb: a.pssKb + b.pssKb }), { rssKb: 0, anonKb: 0, pssKb: 0 })

/** Direct children of `pid`: the daemon's own reader (src/runtime/procfs.ts). */
export { childrenOf } from "../../src/runtime/procfs.ts"

/** Pids of every process (zombies excluded) whose environment holds `marker` (NAME=VALUE). */
export const pidsWithEnv = (marker: string): number[] => {
  const out: number[] = []
  const self = String(process.pid)
  for (const pid of numericNames()) {
    if (pid === self) continue
    try {
      if (!readFileSync(`/proc/${pid}/environ`, "latin1").includes(marker)) continue
    } catch {
      continue
    }
    const f = statFields(pid)
    if (f !== undefined && f[0] !== "Z") out.push(Number(pid))
  }
  return out
}

/** SIGKILLs everything carrying the marker, repeating until nothing is left (bounded). */
export const killAllWithEnv = (marker: string): number => {
  let killed = 0
  for (let round = 0; round < 20; round++) {
    const pids = pidsWithEnv(marker)
    if (pids.length === 0) return killed
    for (const pid of pids) {
      try {
        process.kill(pid, "SIGKILL")
        killed++
      } catch {
        // already gone
      }
    }
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50)
  }
  return killed
}

/** Blocks the thread for `ms` without spinning (for tight synchronous polls). */
export const pause = (ms: number): void => {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms)
}

/** Runs `cleanup` once when the benchmark exits, also after a failure, ^C, SIGTERM or SIGHUP; or earlier, when the returned function is called. */
export const cleanUpOnExit = (cleanup: () => void): (() => void) => {
  let cleanedUp = false
  const once = (): void => {
    if (cleanedUp) return
    cleanedUp = true
    cleanup()
  }
  process.on("exit", once)
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.on(signal, () => {
      process.stderr.write(`\nbench: ${signal}: killing everything it started\n`)
      once()
      process.exit(130)
    })
  }
  return once
}
