/**
 * Runs the isinittab's event hooks (`:::hook:EVENT:COMMAND`, core/hooks.ts) for the notices the
 * loop's steps give (core/notices.ts).
 *
 * - Never blocks the loop: a notice only queues a run; the runs are forked after the batch
 *   (setImmediate), and nothing ever waits for a hook to end. Hooks are not entries: no
 *   transition waits for them, the reducer never hears of them.
 * - Rate-limited here, in the shell, not in the reducer: the limit protects the host from forking
 *   (a crash loop of many entries gives three notices per restart), which is the shell's
 *   business; in the reducer it would make every hook run part of the state, and of every
 *   property, for a decision that changes nothing the daemon supervises. Each hook has a token
 *   bucket (`:::hook-limit:N/DURATION`, 10/10s: a burst of N, then N per DURATION); at most
 *   `maxRunningHooks` hook processes run at once in all. An event over a limit is dropped and
 *   counted; the log says so once when a hook starts dropping and once with the count when it
 *   runs again (and the metrics count every drop).
 * - Time-limited: a hook still running after `:::hook-timeout:` (30s) is killed with SIGKILL to
 *   its process group (its own session, like an entry's), and that is logged.
 * - Failures are logged (non-zero exit, signal, spawn failure, timeout; with the end of what it
 *   wrote), never fatal.
 *
 * Hook processes are the daemon's children: they are registered in spawned.ts, which the orphan
 * reaper leaves to libuv, or it could take their exit status.
 */
import type { ChildProcessByStdio } from "node:child_process"
import { spawn } from "node:child_process"
import type { Readable } from "node:stream"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { argvOf, execArguments } from "../core/command.ts"
import type { Hook, HookConfig, HookLimit, HookSite } from "../core/hooks.ts"
import { hookName, runsOn } from "../core/hooks.ts"
import { hookEnvironment } from "../core/notices.ts"
import type { Notice } from "../core/notices.ts"
import type { LogService } from "../log.ts"
import { trackSpawned } from "../spawned.ts"
import { runMarkers } from "./processes.ts"

/** Hook processes running at once, all hooks together: beyond it, events are dropped like over a hook's own limit. */
const maxRunningHooks = 32

/** The last bytes a hook wrote, quoted in the log when it fails. */
const outputTailBytes = 400

/** A token bucket: `tokens` at `atMs`; refilled at `max` per `windowMs`, up to `max`. */
export interface Bucket {
  readonly tokens: number
  readonly atMs: number
}

/** Takes a token if there is one. Pure, so the limit's arithmetic is tested without processes. */
export const takeToken = (bucket: Bucket | undefined, limit: HookLimit, nowMs: number): { readonly bucket: Bucket; readonly admitted: boolean } => {
  const refilled = bucket === undefined ? limit.max : Math.min(limit.max, bucket.tokens + (Math.max(0, nowMs - bucket.atMs) * limit.max) / limit.windowMs)
  return refilled >= 1 ? { bucket: { tokens: refilled - 1, atMs: nowMs }, admitted: true } : { bucket: { tokens: refilled, atMs: nowMs }, admitted: false }
}

/** What happened to one hook so far (the metrics' counters). */
export interface HookStats {
  readonly name: string
  readonly line: number
  readonly runs: number
  readonly failures: number
  readonly timeouts: number
  readonly dropped: number
  readonly running: number
}

interface HookRecord {
  stats: { -readonly [K in keyof HookStats]: HookStats[K] }
  bucket: Bucket | undefined
  /** Drops not yet reported in the log with their count (the first one was logged as it happened). */
  droppedSinceLog: number
}

export interface HookRunner {
  /** A notice of a step, with the hooks of the config in force. Queues the runs it calls for; never blocks. */
  readonly notify: (notice: Notice, config: HookConfig) => void
  readonly stats: () => readonly HookStats[]
}

export interface HookRunnerOptions {
  readonly log: LogService
  readonly site: HookSite
  /** Monotonic ms, for the buckets. */
  readonly nowMs?: () => number
  /** The environment hooks start from (the daemon's by default). */
  readonly env?: NodeJS.ProcessEnv
}

/** A hook is the same hook across re-reads while its line, events and command are. */
const keyOf = (hook: Hook): string => `${hook.line}\u0000${hook.on._tag === "Every" ? "*" : hook.on.events.join(",")}\u0000${hook.command}`

const describeEnd = (code: number | null, signal: NodeJS.Signals | null): string => (signal !== null ? `signal ${signal}` : `exit ${code ?? "?"}`)

interface Queued {
  readonly hook: Hook
  readonly record: HookRecord
  readonly notice: Notice
  readonly timeoutMs: number
}

/** The event in words, for the log: `exited of web/srv`. */
const aboutOf = (notice: Notice): string => {
  const where = [notice.group, notice.tag].filter((x) => x !== undefined).join("/")
  return where === "" ? notice.event : `${notice.event} of ${where}`
}

type HookProcess = ChildProcessByStdio<null, Readable, Readable>

/** What starting a hook needs: where it logs, its environment, and the set of hook pids (the reaper's business). */
interface Starter {
  readonly log: LogService
  readonly site: HookSite
  readonly baseEnv: NodeJS.ProcessEnv
  readonly running: Set<number>
}

const failed = (log: LogService, item: Queued, outcome: string, why: string): void => {
  item.record.stats.failures++
  log.line({ what: "hook", group: item.notice.group, tag: item.notice.tag, outcome, message: `hook ${item.record.stats.name} for ${aboutOf(item.notice)} ${why}` })
}

/** Keeps the last bytes a hook wrote (stdout and stderr), for the log when it fails. */
const outputTail = (child: HookProcess): (() => string) => {
  let tail = ""
  const keep = (chunk: Buffer): void => {
    tail = (tail + chunk.toString("utf8")).slice(-outputTailBytes)
  }
  child.stdout.on("data", keep)
  child.stderr.on("data", keep)
  return () => (tail.trim() === "" ? "" : `: ${tail.trim().replace(/\s+/g, " ")}`)
}

/** Forks one hook run in its own session; kills its group at the timeout; logs how it failed, if it did. */
const startHook = (starter: Starter, item: Queued): void => {
  const { log, running } = starter
  const argv = execArguments(argvOf(item.hook.command))
  const env = { ...starter.baseEnv, ...hookEnvironment(item.notice, item.hook, starter.site, new Date().toISOString()) }
  const stats = item.record.stats
  stats.runs++
  let child: HookProcess
  try {
    child = spawn(argv[0] ?? "/bin/sh", argv.slice(1), { detached: true, stdio: ["ignore", "pipe", "pipe"], env })
  } catch (error) {
    return failed(log, item, `spawn failed: ${(error as NodeJS.ErrnoException).code ?? String(error)}`, "could not be started")
  }
  // libuv reaps it and reports its exit: the orphan reaper must leave it alone (spawned.ts).
  trackSpawned(child)
  const pid = child.pid
  // Without a pid the spawn failed ('error' says why); after it, 'error' is only a failed kill: the exit still comes.
  child.once("error", (error: NodeJS.ErrnoException) => {
    if (pid === undefined) failed(log, item, `spawn failed: ${error.code ?? error.message}`, "could not be started")
  })
  if (pid === undefined) return
  running.add(pid)
  stats.running++
  const said = outputTail(child)
  let timedOut = false
  const timer = setTimeout(() => {
    timedOut = true
    // The leader is not reaped yet, so its pid is still its group's id: safe to signal.
    try {
      process.kill(-pid, "SIGKILL")
    } catch {
      // gone meanwhile
    }
  }, item.timeoutMs)
  child.once("exit", (code, signal) => {
    clearTimeout(timer)
    running.delete(pid)
    stats.running--
    if (timedOut) stats.timeouts++
    if (timedOut) failed(log, item, describeEnd(code, signal), `killed after its timeout of ${item.timeoutMs} ms${said()}`)
    else if (code !== 0) failed(log, item, describeEnd(code, signal), `failed${said()}`)
  })
}

/** The limits: a token bucket per hook, and `maxRunningHooks` in all. Drops are counted, and said once per burst. */
const makeLimits = (log: LogService, nowMs: () => number, inFlight: () => number) => {
  const records = new Map<string, HookRecord>()
  const recordOf = (hook: Hook): HookRecord => {
    const key = keyOf(hook)
    const known = records.get(key)
    if (known !== undefined) return known
    const fresh: HookRecord = { stats: { name: hookName(hook), line: hook.line, runs: 0, failures: 0, timeouts: 0, dropped: 0, running: 0 }, bucket: undefined, droppedSinceLog: 0 }
    records.set(key, fresh)
    return fresh
  }
  const drop = (record: HookRecord, why: string): undefined => {
    record.stats.dropped++
    if (record.droppedSinceLog++ === 0) log.line({ what: "hook", message: `hook ${record.stats.name}: ${why}: dropping its events (counted) until it may run again` })
    return undefined
  }
  /** The hook's record if it may run now, else `undefined` (dropped). */
  const admit = (hook: Hook, config: HookConfig): HookRecord | undefined => {
    const record = recordOf(hook)
    const taken = takeToken(record.bucket, config.limit, nowMs())
    record.bucket = taken.bucket
    if (!taken.admitted) return drop(record, `over its limit of ${config.limit.max} runs per ${config.limit.windowMs} ms`)
    if (inFlight() >= maxRunningHooks) return drop(record, `${maxRunningHooks} hooks are running already`)
    if (record.droppedSinceLog > 0) {
      log.line({ what: "hook", message: `hook ${record.stats.name}: runs again; ${record.droppedSinceLog} event(s) were dropped over its limit` })
      record.droppedSinceLog = 0
    }
    return record
  }
  return { admit, stats: (): readonly HookStats[] => [...records.values()].map((r) => ({ ...r.stats })) }
}

/**
 * The hook runner for the life of the scope. When the scope closes (the daemon exits), runs still
 * queued are started and left running, as are those already running: a hook told of the last
 * `group-stopped` still gets to send its alert (their timeout then is theirs to keep).
 */
export const makeHookRunner = (options: HookRunnerOptions): Effect.Effect<HookRunner, never, Scope.Scope> =>
  Effect.gen(function* () {
    const baseEnv: NodeJS.ProcessEnv = { ...(options.env ?? process.env) }
    // A hook is no entry's run: a successor daemon must never adopt it.
    delete baseEnv[runMarkers.instance]
    const starter: Starter = { log: options.log, site: options.site, baseEnv, running: new Set() }
    let queued: Queued[] = []
    let flushing: NodeJS.Immediate | undefined
    const limits = makeLimits(options.log, options.nowMs ?? (() => performance.now()), () => starter.running.size + queued.length)
    const flush = (): void => {
      flushing = undefined
      const items = queued
      queued = []
      for (const item of items) startHook(starter, item)
    }
    const notify = (notice: Notice, config: HookConfig): void => {
      for (const hook of config.hooks) {
        if (!runsOn(hook, notice.event)) continue
        const record = limits.admit(hook, config)
        if (record === undefined) continue
        queued.push({ hook, record, notice, timeoutMs: config.timeoutMs })
        flushing ??= setImmediate(flush)
      }
    }
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        if (flushing !== undefined) clearImmediate(flushing)
        flush()
      }),
    )
    return { notify, stats: limits.stats }
  })
