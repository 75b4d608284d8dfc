/**
 * The fencer: `isinitd --fencer`, a small watchdog process that each `isinitd --etcd` starts in
 * its own session (so a SIGSTOP, or a SIGKILL, of the daemon does not reach it) and feeds, at every
 * renewal of a failover lease, the deadline of each group it holds (docs/cluster.md, "A stalled
 * daemon: the fencer"). When a deadline passes without a renewal it SIGTERMs the group's processes
 * (at `termAt`), then SIGKILLs them (at `killAt`), whether or not the daemon still runs: a daemon
 * that stalls (SIGSTOP, a long GC pause, swapping) while its children run cannot stop them itself.
 *
 * Protocol: JSON lines on fd 3 (a socket pair with the daemon).
 *   daemon → fencer  {"op":"hello","daemon":PID,"instance":I,"clock":"boottime"|"monotonic"}
 *                    {"op":"arm","group":G,"epoch":E,"termAt":T,"killAt":K}   (T, K on that clock, ms)
 *                    {"op":"disarm","group":G}
 *   fencer → daemon  {"op":"ready"} once it reads the clock and can signal.
 *
 * Which processes are the group's: every process whose environment carries the marker the daemon
 * gave each of the group's children before exec (`ISINIT_FENCE=<instance>:<group>:<epoch>`, inherited by
 * their descendants), found by reading /proc/PID/environ. After `killAt` it looks again every 50 ms
 * among the daemon's children (a fork the daemon began before its deadline and finished after it,
 * having stalled in between; orphans come to the daemon too, as it is their subreaper) until it is
 * armed again or disarmed, or the daemon is gone.
 *
 * Never a reused pid: a process is signalled through a pidfd (pidfd_open, Linux 5.3, via koffi)
 * opened first and checked after (its start time in /proc/PID/stat still the one the scan saw):
 * a pid reused in between fails the check, and a pidfd never names another process. Without
 * pidfd, the start time is checked right before kill(2), and the log says so.
 *
 * It lives as long as its daemon, and after a daemon that died (EOF on fd 3) until its last
 * deadline has fired. It loads neither effect nor etcd: only node:fs and koffi.
 */
import { readdirSync, readFileSync, readlinkSync } from "node:fs"
import { createRequire } from "node:module"
import { Socket } from "node:net"
import type { KernelClock } from "../clocks.ts"
import { clockOf } from "../clocks.ts"
import type { FencerMessage } from "../fence.ts"
import { fenceMarkerPrefix, fenceMarkerVariable } from "../fence.ts"
import { formatLine } from "../log.ts"
import { childrenOf } from "./procfs.ts"

/** How often the fencer looks for newcomers among the daemon's children after `killAt` (part of the reap slack). */
export const newcomerScanMs = 50

/** Longest sleep: a host that was suspended is noticed within this after it resumes. */
const maxSleepMs = 1_000

interface Arm {
  readonly epoch: number
  readonly termAt: number
  readonly killAt: number
  phase: "armed" | "termed" | "killed"
  /** After killAt: the daemon's children already read and found not fenced by this arm, `pid:start`. */
  notFenced: Set<string>
}

type Signal = "SIGTERM" | "SIGKILL"

interface Found {
  readonly pid: number
  /** Start time (clock ticks since boot): with the pid, it names this process and no later one. */
  readonly start: string
}

/**
 * The fencer logs to the daemon's stderr, which it inherits. When whatever read that stream went
 * away (issue 8 item 1), a write fails later as an 'error' event on the stream, not as a throw:
 * the listener in `runFencer` swallows it, so losing its log never stops the fencer's work.
 */
const log = (group: string | undefined, message: string): void => {
  try {
    process.stderr.write(`${formatLine(new Date(), { what: "fencer", group, message })}\n`)
  } catch {
    // the daemon's stderr is gone: nobody to tell
  }
}

const startOf = (pid: number | string): string | undefined => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "latin1")
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19]
  } catch {
    return undefined
  }
}

/** The epoch in the process's marker of the group whose markers begin with `prefix`; undefined without one. */
const markedEpoch = (pid: number | string, prefix: string): number | undefined => {
  let environ: string
  try {
    environ = `\0${readFileSync(`/proc/${pid}/environ`, "latin1")}`
  } catch {
    return undefined // gone, or not ours to read
  }
  const needle = `\0${fenceMarkerVariable}=${prefix}`
  const at = environ.indexOf(needle)
  if (at < 0) return undefined
  const end = environ.indexOf("\0", at + needle.length)
  const epoch = Number(environ.slice(at + needle.length, end < 0 ? undefined : end))
  return Number.isSafeInteger(epoch) ? epoch : undefined
}

/** Whether the process is one of the group's (its prefix) from `epoch` or before: what a deadline of `epoch` fences. */
const fencedBy = (pid: number | string, prefix: string, epoch: number): boolean => {
  const marked = markedEpoch(pid, prefix)
  return marked !== undefined && marked <= epoch
}

/** Every live process of the group from `epoch` or before (a full /proc scan: at termAt and killAt only). */
const markedProcesses = (prefix: string, epoch: number): Found[] => {
  const found: Found[] = []
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid || !fencedBy(name, prefix, epoch)) continue
    const start = startOf(name)
    if (start !== undefined) found.push({ pid: Number(name), start })
  }
  return found
}

/** The program a process runs and its command line (`/proc/PID/exe`, `cmdline`), or undefined when they cannot be read. */
const programOf = (pid: number): string | undefined => {
  try {
    return `${readlinkSync(`/proc/${pid}/exe`)}\0${readFileSync(`/proc/${pid}/cmdline`, "latin1")}`
  } catch {
    return undefined
  }
}


// ---------------------------------------------------------------------------------------------
// Signalling without ever hitting a reused pid

interface Signaller {
  readonly how: string
  /** Sends `signal` to `found` if it is still that process. */
  readonly send: (found: Found, signal: Signal) => "sent" | "gone"
}

const SYS_PIDFD_SEND_SIGNAL = 424
const SYS_PIDFD_OPEN = 434
const signalNumbers: Record<Signal, number> = { SIGTERM: 15, SIGKILL: 9 }

const killChecked = (found: Found, signal: Signal): "sent" | "gone" => {
  if (startOf(found.pid) !== found.start) return "gone"
  try {
    process.kill(found.pid, signal)
    return "sent"
  } catch {
    return "gone"
  }
}

const pidfdSignaller = (): Signaller | string => {
  try {
    const koffi = createRequire(import.meta.url)("koffi") as typeof import("koffi")
    const libc = koffi.load(null)
    const syscall = libc.func("long syscall(long number, ...)")
    const close = libc.func("int close(int fd)")
    const probe = syscall(SYS_PIDFD_OPEN, "int", process.pid, "unsigned int", 0) as number
    if (probe < 0) return `pidfd_open failed (errno ${koffi.errno()}): Linux before 5.3?`
    close(probe)
    const send = (found: Found, signal: Signal): "sent" | "gone" => {
      const fd = syscall(SYS_PIDFD_OPEN, "int", found.pid, "unsigned int", 0) as number
      if (fd < 0) return "gone"
      try {
        // Checked after the pidfd is open: if the pid still names that process, the pidfd does too.
        if (startOf(found.pid) !== found.start) return "gone"
        const rc = syscall(SYS_PIDFD_SEND_SIGNAL, "int", fd, "int", signalNumbers[signal], "void *", null, "unsigned int", 0) as number
        return rc === 0 ? "sent" : "gone"
      } finally {
        close(fd)
      }
    }
    return { how: "pidfd", send }
  } catch (error) {
    return `cannot call pidfd_open: ${error instanceof Error ? error.message : String(error)}`
  }
}

const makeSignaller = (): Signaller => {
  const pidfd = pidfdSignaller()
  if (typeof pidfd !== "string") return pidfd
  log(undefined, `${pidfd}; checking each process's start time right before kill(2) instead (a pid reused within microseconds could be hit)`)
  return { how: "kill after a start-time check", send: killChecked }
}

// ---------------------------------------------------------------------------------------------
// The fencer's state and its one timer

interface Fencer {
  readonly arms: Map<string, Arm>
  readonly signaller: Signaller
  clock: KernelClock | undefined
  daemon: number | undefined
  instance: string | undefined
  daemonGone: boolean
  timer: NodeJS.Timeout | undefined
}

const signalAll = (f: Fencer, group: string, arm: Arm, signal: Signal): void => {
  if (f.instance === undefined) return
  const found = markedProcesses(fenceMarkerPrefix(f.instance, group), arm.epoch)
  const sent = found.filter((p) => f.signaller.send(p, signal) === "sent").map((p) => p.pid)
  log(group, `deadline of epoch ${arm.epoch} passed without a renewal: ${signal} to ${sent.length === 0 ? "no process (none left)" : `pid ${sent.join(", ")}`}`)
}

/**
 * After killAt: a newcomer among the daemon's children that carries the marker of this epoch or
 * an earlier one (a daemon that stalled in the middle of a fork) is killed at once. Children of a
 * later hold carry a later epoch and are left alone. Each child is read once; `notFenced` keeps
 * only the children still there.
 */
const killNewcomers = (f: Fencer, group: string, arm: Arm): void => {
  if (f.daemon === undefined || f.instance === undefined) return
  const prefix = fenceMarkerPrefix(f.instance, group)
  const notFenced = new Set<string>()
  const daemon = programOf(f.daemon)
  for (const pid of childrenOf(f.daemon)) {
    const start = startOf(pid)
    if (start === undefined) continue
    const key = `${pid}:${start}`
    if (arm.notFenced.has(key)) {
      notFenced.add(key)
      continue
    }
    if (!fencedBy(pid, prefix, arm.epoch)) {
      // A child caught between fork and exec still is the daemon's image (its program and command
      // line, its environment without a marker): it is read again next time, until it execs.
      if (programOf(pid) !== daemon) notFenced.add(key)
      continue
    }
    if (f.signaller.send({ pid, start }, "SIGKILL") === "sent") log(group, `SIGKILL to pid ${pid}: started after the deadline of epoch ${arm.epoch}`)
  }
  arm.notFenced = notFenced
}

const daemonAlive = (f: Fencer): boolean => !f.daemonGone || (f.daemon !== undefined && startOf(f.daemon) !== undefined)

/** Acts on every deadline that passed; says when to look again (undefined: nothing left to do). */
const fire = (f: Fencer, now: number): number | undefined => {
  let next = Infinity
  for (const [group, arm] of f.arms) {
    if (arm.phase === "armed" && now >= arm.termAt) {
      signalAll(f, group, arm, "SIGTERM")
      arm.phase = "termed"
    }
    if (arm.phase === "termed" && now >= arm.killAt) {
      signalAll(f, group, arm, "SIGKILL")
      arm.phase = "killed"
    }
    if (arm.phase === "killed" && daemonAlive(f)) killNewcomers(f, group, arm)
    const due = arm.phase === "armed" ? arm.termAt : arm.phase === "termed" ? arm.killAt : daemonAlive(f) ? now + newcomerScanMs : Infinity
    next = Math.min(next, due)
  }
  return next === Infinity ? undefined : next
}

const schedule = (f: Fencer): void => {
  if (f.timer !== undefined) clearTimeout(f.timer)
  f.timer = undefined
  if (f.clock === undefined) {
    if (f.daemonGone) process.exit(0) // the daemon left before it said hello: nothing was armed
    return
  }
  const next = fire(f, f.clock.nowMs())
  const pending = [...f.arms.values()].some((a) => a.phase !== "killed")
  if (f.daemonGone && !pending) {
    log(undefined, "the daemon is gone and every deadline has passed: exiting")
    process.exit(0)
  }
  if (next === undefined) return
  f.timer = setTimeout(() => schedule(f), Math.max(1, Math.min(maxSleepMs, Math.ceil(next - f.clock.nowMs()))))
}

// ---------------------------------------------------------------------------------------------
// The daemon's messages

const onHello = (f: Fencer, channel: Socket, hello: Extract<FencerMessage, { readonly op: "hello" }>): void => {
  const clock = clockOf(hello.clock)
  if (clock === undefined) {
    log(undefined, `the daemon keeps deadlines on CLOCK_${hello.clock.toUpperCase()}, which this process cannot read: refusing to run`)
    process.exit(1)
  }
  f.clock = clock
  f.daemon = hello.daemon
  f.instance = hello.instance
  channel.write(`${JSON.stringify({ op: "ready" })}\n`)
}

const onMessage = (f: Fencer, channel: Socket, line: string): void => {
  let message: FencerMessage
  try {
    message = JSON.parse(line) as FencerMessage
  } catch {
    return log(undefined, `ignored a line that is not JSON: ${line.slice(0, 80)}`)
  }
  switch (message.op) {
    case "hello":
      return onHello(f, channel, message)
    case "arm":
      f.arms.set(message.group, { epoch: message.epoch, termAt: message.termAt, killAt: message.killAt, phase: "armed", notFenced: new Set() })
      return
    case "disarm":
      f.arms.delete(message.group)
      return
  }
}

/** Runs the fencer on fd 3 until its daemon is gone and every deadline has fired; never resolves. */
export const runFencer = (): Promise<never> => {
  process.stderr.on("error", () => undefined)
  const f: Fencer = { arms: new Map(), signaller: makeSignaller(), clock: undefined, daemon: undefined, instance: undefined, daemonGone: false, timer: undefined }
  // Not the daemon's signals: a terminal's Ctrl-C or a stop of the daemon's group must not end the watch.
  for (const signal of ["SIGINT", "SIGHUP", "SIGTERM"] as const) process.on(signal, () => log(undefined, `${signal} ignored: the fencer ends with its daemon`))
  const channel = new Socket({ fd: 3, readable: true, writable: true })
  channel.on("error", () => undefined)
  let buffered = ""
  channel.setEncoding("utf8").on("data", (chunk: string) => {
    buffered += chunk
    for (let nl = buffered.indexOf("\n"); nl >= 0; nl = buffered.indexOf("\n")) {
      onMessage(f, channel, buffered.slice(0, nl))
      buffered = buffered.slice(nl + 1)
    }
    schedule(f)
  })
  channel.on("close", () => {
    f.daemonGone = true
    schedule(f)
  })
  return new Promise<never>(() => undefined)
}
