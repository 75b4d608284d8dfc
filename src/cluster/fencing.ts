/**
 * The daemon's side of its fencer (src/runtime/fencer.ts; what they share: src/fence.ts): starts it as `isinitd --fencer` in its
 * own session, tells it the deadlines of the failover groups this node holds, and starts a new one
 * (re-sending the latest deadlines) if it exits. Until a fencer has said it is ready, `ready()` is
 * false and the shell refuses holds ("no fencer"): a group this node cannot fence does not start.
 *
 * Deadlines reach the fencer on the kernel clock it reads (clocks.ts: CLOCK_BOOTTIME when koffi can
 * read it), converted from the daemon's clock (CLOCK_MONOTONIC anchored at boot) at the moment of
 * sending: both are read together, so the offset is exact to microseconds. Lines are written
 * synchronously (libuv writes to an idle socket at once), in command order, so an arm is in the
 * fencer's socket before the hold that follows it reaches the core.
 */
import type { ChildProcess } from "node:child_process"
import { spawn } from "node:child_process"
import type { Socket } from "node:net"
import { extname } from "node:path"
import { fileURLToPath } from "node:url"
import type { LogService } from "../log.ts"
import { kernelClock } from "../clocks.ts"
import type { FencerMessage } from "../fence.ts"
import { trackSpawned } from "../spawned.ts"

export interface Fencing {
  /** Starts the fencer unless one runs (a config with failover groups: the first hold must not wait for it). */
  readonly ensure: () => void
  /** GROUP's processes are SIGTERMed at `termAt` and SIGKILLed at `killAt` (the daemon's clock) unless armed again. */
  readonly arm: (group: string, epoch: number, termAt: number, killAt: number) => void
  readonly disarm: (group: string) => void
  /** A fencer runs and has said it is ready. */
  readonly ready: () => boolean
  /** A hold of GROUP is refused for want of a fencer: true the first time since the fencer was last ready (log it once). */
  readonly refusing: (group: string) => boolean
  /** The fencer's pid, for the log and the tests. */
  readonly pid: () => number | undefined
  /** Closes the channel: the fencer exits once every deadline it holds has fired (none after a clean stop). */
  readonly close: () => void
}

export interface FencingOptions {
  /** This daemon process's instance id: the marker its failover children carry. */
  readonly instance: string
  /** The daemon's clock (the reducers' `now`). */
  readonly now: () => number
  readonly log: LogService
}

interface Running {
  readonly child: ChildProcess
  readonly channel: Socket
  ready: boolean
}

type Arm = Extract<FencerMessage, { readonly op: "arm" }>

/** isinitd itself, as it was started (the .ts source under tsx, the .js build otherwise). */
const isinitdEntry = (): string => {
  const here = fileURLToPath(import.meta.url)
  return fileURLToPath(new URL(`../cli/isinitd${extname(here)}`, import.meta.url))
}

/** How long after a fencer that could not be started the next attempt comes. */
const restartDelayMs = 1_000

/** Starts a fencer process, or says why it could not. */
const spawnFencer = (): ChildProcess | string => {
  try {
    return trackSpawned(spawn(process.execPath, [...process.execArgv, isinitdEntry(), "--fencer"], { detached: true, stdio: ["ignore", "ignore", "inherit", "pipe"] }))
  } catch (error) {
    return String(error)
  }
}

/** Listens on a started fencer's channel: `ready` once it says so, `lost` once it is gone. */
const watchFencer = (child: ChildProcess, handlers: { readonly ready: () => void; readonly lost: (why: string) => void }): Running => {
  const channel = child.stdio[3] as Socket
  const running: Running = { child, channel, ready: false }
  // Neither keeps the daemon alive: it exits when it is done, whatever its fencer does.
  child.unref()
  channel.unref()
  channel.on("error", (error) => handlers.lost(`lost its channel (${error.message})`))
  channel.on("close", () => handlers.lost("exited"))
  channel.setEncoding("utf8").on("data", (chunk: string) => {
    if (!chunk.includes('"ready"') || running.ready) return
    running.ready = true
    handlers.ready()
  })
  return running
}

/** Writes `message` to the fencer, if one runs; a deadline goes on the fencer's clock (`onFencerClock`: both clocks read now, together). */
const sendTo = (running: Running | undefined, message: FencerMessage, onFencerClock: (at: number) => number): void => {
  if (running === undefined) return
  const out = message.op === "arm" ? { ...message, termAt: onFencerClock(message.termAt), killAt: onFencerClock(message.killAt) } : message
  running.channel.write(`${JSON.stringify(out)}\n`)
}

export const makeFencing = (options: FencingOptions): Fencing => {
  const { clock, note } = kernelClock()
  if (note !== undefined) options.log.line({ what: "warning", message: note })
  const arms = new Map<string, Arm>()
  /** Groups whose refused hold was logged since the fencer was last ready. */
  const refused = new Set<string>()
  let current: Running | undefined
  let closed = false
  let retry: NodeJS.Timeout | undefined

  const send = (message: FencerMessage): void => sendTo(current, message, (at) => at - options.now() + clock.nowMs())

  const startLater = (): void => void (retry ??= setTimeout(() => ((retry = undefined), start()), restartDelayMs))

  const start = (): void => {
    // A restart already waiting (after a fencer that died at once) is not brought forward.
    if (closed || current !== undefined || retry !== undefined) return
    const startedAt = performance.now()
    const child = spawnFencer()
    if (typeof child === "string") {
      options.log.line({ what: "warning", message: `cannot start the fencer: ${child}; failover groups do not start here until it runs` })
      return startLater()
    }
    const running = watchFencer(child, {
      ready: () => {
        refused.clear()
        options.log.line({ what: "fencer", message: `fencer pid ${child.pid ?? "?"} ready (deadlines on CLOCK_${clock.kind.toUpperCase()})` })
      },
      lost: (why) => {
        if (current !== running) return
        current = undefined
        if (closed) return
        // Another at once, unless this one died within a second of its start: then a second later,
        // so a fencer that dies at once (a broken environment) is not restarted in a tight loop.
        const quick = performance.now() - startedAt < restartDelayMs
        options.log.line({ what: "warning", message: `the fencer (pid ${child.pid ?? "?"}) ${why}: starting another${quick ? " in a second" : ""}` })
        if (quick) startLater()
        else start()
      },
    })
    current = running
    send({ op: "hello", daemon: process.pid, instance: options.instance, clock: clock.kind })
    for (const arm of arms.values()) send(arm)
  }

  return {
    ensure: start,
    arm: (group, epoch, termAt, killAt) => {
      const arm: Arm = { op: "arm", group, epoch, termAt, killAt }
      arms.set(group, arm)
      start()
      send(arm)
    },
    disarm: (group) => {
      arms.delete(group)
      send({ op: "disarm", group })
    },
    ready: () => current?.ready === true,
    refusing: (group) => !refused.has(group) && refused.add(group) !== undefined,
    pid: () => current?.child.pid,
    close: () => {
      closed = true
      if (retry !== undefined) clearTimeout(retry)
      current?.channel.end()
      current = undefined
    },
  }
}
