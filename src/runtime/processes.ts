/**
 * The process adapter: spawns entries in their own session and process group, signals whole
 * groups, and reports when a run is over. It decides nothing (no restarts, no escalation to
 * SIGKILL): that is the reducer's job. It only keeps what the kernel knows and the reducer must
 * not guess: which process group belongs to which run, and whether that group is gone.
 *
 * A run is over when its leader has been reaped (Node reaps its own children) AND its process
 * group has no member left that is not a zombie. Grandchildren orphaned by a shell that exited
 * are re-parented to init, which may take its time reaping them; a zombie cannot hold anything,
 * so it counts as gone. The group is checked once on the leader's exit (a cheap `kill(-pgid, 0)`
 * usually answers ESRCH), then by polling /proc with a backoff, only while such runs exist. A
 * leader that exits while members live on is reported at once (`LeaderExited`): the reducer
 * decides what happens to the rest of the group (rule 14); the run's end follows as today.
 *
 * Pgids are safe to signal while the run is not reported gone: the kernel never hands out a pid
 * that is still some group's id, and the leader's pid stays ours until Node reaps it.
 *
 * Adopted runs (a previous daemon's, after a crash) are not our children: no exit event comes.
 * They are polled like lingering groups (backoff up to 500 ms, only while such runs exist): a
 * leader that still shows its recorded start time is alive (one small /proc read); otherwise the
 * run is over once its group has no live member, or at once if its pid now names another process.
 * Their exit status cannot be known: they end as `Vanished`, and a leader seen gone while its
 * group lives on is reported as a `LeaderExited` with that outcome. Before a signal, a leader pid
 * that shows another start time ends the run instead of being signalled.
 */
import { spawn as spawnChild } from "node:child_process"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type { SpawnHold } from "../core/effects.ts"
import type { Outcome } from "../core/events.ts"
import { argvOf } from "../core/command.ts"
import type { LogPlace } from "../core/logs.ts"
import type { EntryOptions } from "../core/options.ts"
import { noOptions } from "../core/options.ts"
import { execPlan } from "./execContext.ts"
import { openChildOutput } from "./logs.ts"
import { livePgids, processIdentity, statFields } from "./procfs.ts"

/** What the adapter tells the loop; the loop stamps the time and turns it into an event. */
export type ProcessReport =
  | {
      readonly _tag: "Started"
      readonly tag: string
      readonly run: number
      readonly pid: number
      /** The process's start time in clock ticks since boot (/proc/PID/stat field 22): with the pid, it names this process and no later one. */
      readonly identity?: string
    }
  | { readonly _tag: "ChildExit"; readonly tag: string; readonly run: number; readonly outcome: Outcome }
  /** The leader exited (or an adopted leader vanished) while members of its group live on. */
  | { readonly _tag: "LeaderExited"; readonly tag: string; readonly run: number; readonly outcome: Outcome }

/** One start: which run, its command, and the context it runs in (the entry's options; execContext.ts). */
export interface SpawnSpec {
  readonly tag: string
  readonly run: number
  readonly command: string
  /** A failover group's process: its group and hold (core/effects.ts `SpawnHold`). */
  readonly failover?: { readonly group: string; readonly hold: SpawnHold } | undefined
  /** The entry's options (the definition being spawned, as the Spawn effect carries it). */
  readonly options?: EntryOptions | undefined
}

/** Where the children's stdout and stderr go: the daemon's own, nowhere, or an open file descriptor. */
export type Output = "inherit" | "ignore" | number

export interface ProcessesService {
  /**
   * Start a run; `Started` or `ChildExit{SpawnFailed}` follows through the report callback. Gives
   * the leader's pid at once (the fork is done when spawn returns), or `undefined` if it failed.
   */
  readonly spawn: (spec: SpawnSpec) => Effect.Effect<number | undefined>
  /** Signal the run's whole process group, unless the run has already been reported gone. */
  readonly kill: (tag: string, run: number, signal: NodeJS.Signals) => Effect.Effect<void>
  /** Runs not yet reported gone (spawning, alive, or leader reaped with members left). */
  readonly liveRuns: Effect.Effect<number>
  /** Supervise a process a previous daemon started (not our child): `ChildExit{Vanished}` when its group is gone. */
  readonly adopt: (adopted: AdoptedProcess) => Effect.Effect<void>
  /** Whether `pid` is a leader we spawned and libuv has not reaped yet (the orphan reaper must leave it alone). */
  readonly ownsChild: (pid: number) => boolean
  /** Look at the lingering groups now (orphans were just reaped: some may be gone). */
  readonly recheck: () => void
}

/** A run of a previous daemon, verified alive: its leader's pid (= its pgid) and start time. */
export interface AdoptedProcess {
  readonly tag: string
  readonly run: number
  readonly pid: number
  readonly identity: string
}

const firstPollMs = 20
const maxPollMs = 500

interface Run {
  readonly tag: string
  readonly run: number
  pgid: number | undefined
  /** The leader's status, once Node has reaped it (or once an adopted leader was seen gone). */
  leaderOutcome: Outcome | undefined
  /** Group poll backoff, used once the leader is gone but members remain. */
  pollDelayMs: number
  pollAt: number
  /** Set for adopted runs: the leader's start time, checked before every signal and poll. */
  readonly adoptedIdentity?: string
}

export interface ProcessesOptions {
  /** Asked at each spawn when a function (isinitd's log moves children's output to a file once its stderr is gone). */
  readonly output?: Output | (() => Output)
  /** Where a run logs (core/logs.ts); `output` is its `Inherit`. Without it, every run inherits. */
  readonly logPlace?: (spec: SpawnSpec) => LogPlace
  /** Environment of the children; the daemon's own by default. */
  readonly env?: NodeJS.ProcessEnv
  /** Told when something goes wrong that is not a run's outcome (an unexpected kill error). */
  readonly warn?: (message: string) => void
  /**
   * Names this daemon's lineage (isinitd passes its state file's path). When set, every child
   * gets ISINIT_INSTANCE, ISINIT_TAG and ISINIT_RUN in its environment, so that a successor
   * can find runs started after the last state-file write.
   */
  readonly instance?: string
  /** Called synchronously right before each process is created (isinitd journals the spawn there). */
  readonly beforeSpawn?: (spec: SpawnSpec) => void
  /**
   * Cluster mode: a failover group's process gets `ISINIT_EPOCH` and the fencer's marker in its
   * environment, and is not forked once the daemon's clock has reached its hold's end (the daemon
   * may have stalled between the reducer's decision and the fork).
   */
  readonly failover?: { readonly now: () => number; readonly environment: (group: string, epoch: number) => Readonly<Record<string, string>> } | undefined
}

/** Environment names of the run markers (see `ProcessesOptions.instance`). */
export const runMarkers = { instance: "ISINIT_INSTANCE", tag: "ISINIT_TAG", run: "ISINIT_RUN" } as const

const keyOf = (tag: string, run: number): string => `${run}\u0000${tag}`

const outcomeOf = (code: number | null, signal: NodeJS.Signals | null): Outcome =>
  signal !== null ? { _tag: "Signaled", signal } : { _tag: "Exited", code: code ?? 0 }

/** Whether `pid` is the process started at `identity` and is not a zombie. */
const sameLiveProcess = (pid: number, identity: string): boolean => {
  const fields = statFields(pid)
  return fields !== undefined && fields[19] === identity && fields[0] !== "Z" && fields[0] !== "X"
}

/** Whether `pid` now names a process other than the one started at `identity` (the pid was reused). */
const pidReused = (pid: number, identity: string): boolean => {
  const found = statFields(pid)?.[19]
  return found !== undefined && found !== identity
}

const groupExists = (pgid: number): boolean => {
  try {
    process.kill(-pgid, 0)
    return true
  } catch (e) {
    return (e as NodeJS.ErrnoException).code !== "ESRCH"
  }
}

/** The table's state: the runs not yet reported gone, and the poll of the lingering groups. */
interface Table {
  readonly runs: Map<string, Run>
  /** Pids of the leaders we spawned that libuv has not reaped yet: its to reap, nobody else's. */
  readonly leaders: Set<number>
  /** Runs whose leader is gone but whose group was not empty at the last look. */
  readonly lingering: Set<Run>
  readonly report: (report: ProcessReport) => void
  readonly poll: { timer: NodeJS.Timeout | undefined; at: number }
}

const finish = (table: Table, run: Run, outcome: Outcome): void => {
  table.runs.delete(keyOf(run.tag, run.run))
  table.lingering.delete(run)
  table.report({ _tag: "ChildExit", tag: run.tag, run: run.run, outcome })
}

/** The outcome a run ends with: its leader's; an adopted run's cannot be known. */
const endOf = (run: Run): Outcome => (run.adoptedIdentity !== undefined ? { _tag: "Vanished" } : (run.leaderOutcome ?? { _tag: "Exited", code: 0 }))

const reportLeaderExit = (table: Table, run: Run, outcome: Outcome): void => {
  run.leaderOutcome = outcome
  table.report({ _tag: "LeaderExited", tag: run.tag, run: run.run, outcome })
}

/** Arms the one poll timer for the earliest lingering run's next look (none while none lingers). */
const armPoll = (table: Table): void => {
  let earliest = Infinity
  for (const run of table.lingering) earliest = Math.min(earliest, run.pollAt)
  if (earliest === table.poll.at) return
  if (table.poll.timer !== undefined) clearTimeout(table.poll.timer)
  table.poll.timer = undefined
  table.poll.at = earliest
  if (earliest === Infinity) return
  table.poll.timer = setTimeout(() => poll(table), Math.max(1, earliest - performance.now()))
}

/** What a look at a lingering run found: its group gone, its adopted leader just seen gone, or nothing new. */
type Look = "Gone" | "LeaderGone" | "Lingers"

/** One lingering run looked at; `live` scans /proc for the live groups, once per poll at most. */
const look = (run: Run, live: () => ReadonlySet<number>): Look => {
  const adopted = run.adoptedIdentity !== undefined && run.pgid !== undefined ? { pgid: run.pgid, identity: run.adoptedIdentity } : undefined
  // An adopted leader that is still itself answers cheaply; the /proc scan only when needed.
  const leaderAlive = adopted !== undefined && sameLiveProcess(adopted.pgid, adopted.identity)
  // A reused leader pid means the old group is gone (the kernel reuses no live group's id).
  if (adopted !== undefined && !leaderAlive && pidReused(adopted.pgid, adopted.identity)) return "Gone"
  if (!leaderAlive && (run.pgid === undefined || !live().has(run.pgid))) return "Gone"
  return adopted !== undefined && !leaderAlive && run.leaderOutcome === undefined ? "LeaderGone" : "Lingers"
}

const poll = (table: Table): void => {
  table.poll.timer = undefined
  table.poll.at = Infinity
  let scanned: ReadonlySet<number> | undefined
  const live = (): ReadonlySet<number> => (scanned ??= livePgids())
  const now = performance.now()
  for (const run of table.lingering) {
    const found = look(run, live)
    if (found === "Gone") {
      finish(table, run, endOf(run))
      continue
    }
    if (found === "LeaderGone") reportLeaderExit(table, run, { _tag: "Vanished" })
    if (run.pollAt <= now) {
      run.pollDelayMs = Math.min(maxPollMs, run.pollDelayMs * 2)
      run.pollAt = now + run.pollDelayMs
    }
  }
  armPoll(table)
}

const linger = (table: Table, run: Run): void => {
  run.pollDelayMs = firstPollMs
  run.pollAt = performance.now() + firstPollMs
  table.lingering.add(run)
  armPoll(table)
}

const leaderExited = (table: Table, run: Run, outcome: Outcome): void => {
  // Zombies count as gone: only a member that still runs outlives its leader (the scan runs only then).
  if (run.pgid === undefined || !groupExists(run.pgid) || !livePgids().has(run.pgid)) return finish(table, run, outcome)
  reportLeaderExit(table, run, outcome)
  linger(table, run)
}

/** How children are started: where their output goes, their environment, what happens just before. */
interface Spawner {
  readonly output: () => Output
  readonly logPlace: (spec: SpawnSpec) => LogPlace
  readonly warn: (message: string) => void
  readonly env: (spec: SpawnSpec) => NodeJS.ProcessEnv
  readonly beforeSpawn: (spec: SpawnSpec) => void
  /** A failover group's process whose hold has run out by the daemon's clock (or that has no cluster mode to hold it). */
  readonly holdRanOut: (spec: SpawnSpec) => boolean
}

const makeSpawner = (options: ProcessesOptions): Spawner => {
  const markedEnv: NodeJS.ProcessEnv | undefined =
    options.instance === undefined ? undefined : { ...(options.env ?? process.env), [runMarkers.instance]: options.instance }
  return {
    output: () => (typeof options.output === "function" ? options.output() : (options.output ?? "inherit")),
    logPlace: options.logPlace ?? (() => ({ _tag: "Inherit" })),
    warn: options.warn ?? (() => undefined),
    env: (spec) => {
      const failover = spec.failover === undefined ? undefined : options.failover?.environment(spec.failover.group, spec.failover.hold.epoch)
      if (markedEnv === undefined) return failover === undefined ? (options.env ?? process.env) : { ...(options.env ?? process.env), ...failover }
      // One object reused: spawn copies the environment synchronously, so setting the run's
      // markers right before each spawn costs nothing (a copy per spawn costs about 60 us); only
      // an entry with env, env-file or user options gets a copy (execContext.ts environmentOf).
      markedEnv[runMarkers.tag] = spec.tag
      markedEnv[runMarkers.run] = String(spec.run)
      // A failover child's epoch and fence marker go in a copy: they must not reach later children.
      return failover === undefined ? markedEnv : { ...markedEnv, ...failover }
    },
    beforeSpawn: options.beforeSpawn ?? (() => undefined),
    holdRanOut: (spec) => spec.failover !== undefined && (options.failover === undefined || options.failover.now() >= spec.failover.hold.until),
  }
}

/** Forks the run's leader in its own session; its start, exit or failure reach the table. */
const startChild = (table: Table, spawner: Spawner, run: Run, spec: SpawnSpec): number | undefined => {
  const argv = argvOf(spec.command)
  let settled = false
  const fail = (reason: string): void => {
    if (settled) return
    settled = true
    finish(table, run, { _tag: "SpawnFailed", reason })
  }
  // A user, directory or env file that is missing ends this run, with the reason; nothing else.
  const exec = execPlan(argv, spec.options ?? noOptions, spawner.env(spec))
  if (exec._tag === "Refused") {
    queueMicrotask(() => fail(exec.reason))
    return undefined
  }
  // Opened for this fork only: the child keeps its copy, the daemon none (runtime/logs.ts).
  const opened = openChildOutput(spawner.logPlace(spec), spawner.output, spawner.warn)
  if (opened._tag === "Failed") {
    queueMicrotask(() => fail(opened.reason))
    return undefined
  }
  // Journaled once only the fork can fail, or a hold found run out right before it: a journaled
  // run that never got a process is found gone by the next daemon.
  spawner.beforeSpawn(spec)
  try {
    // Right before the fork (after the exec plan's and the log's file system work, which may be
    // slow): a hold that ran out since the reducer decided (a stalled daemon) starts nothing.
    if (spawner.holdRanOut(spec)) {
      queueMicrotask(() => fail("failover hold ran out before the fork"))
      return undefined
    }
    const stdio: ["ignore", Output, Output] = ["ignore", opened.output, opened.output]
    const child = spawnChild(exec.file, exec.args, { detached: true, stdio, env: exec.env, cwd: exec.cwd })
    child.once("error", (e: NodeJS.ErrnoException) => {
      // After a successful spawn, 'error' only means a failed kill or IPC; exits still come.
      if (child.pid === undefined) fail(e.code ?? e.message)
    })
    // The pid is known as soon as spawn returns (libuv waits for the exec), so a kill that
    // comes before the 'spawn' event still reaches the group.
    run.pgid = child.pid
    if (child.pid !== undefined) table.leaders.add(child.pid)
    child.once("spawn", () => {
      if (child.pid === undefined) return
      const identity = processIdentity(child.pid)
      table.report({ _tag: "Started", tag: spec.tag, run: spec.run, pid: child.pid, ...(identity === undefined ? {} : { identity }) })
    })
    child.once("exit", (code, signal) => {
      if (child.pid !== undefined) table.leaders.delete(child.pid)
      if (settled) return
      settled = true
      leaderExited(table, run, outcomeOf(code, signal))
    })
    // The daemon must not wait for its children to exit itself.
    child.unref()
    return child.pid
  } catch (e) {
    const err = e as NodeJS.ErrnoException
    queueMicrotask(() => fail(err.code ?? err.message))
    return undefined
  } finally {
    opened.close()
  }
}

const spawnRun = (table: Table, spawner: Spawner, spec: SpawnSpec): number | undefined => {
  const key = keyOf(spec.tag, spec.run)
  if (table.runs.has(key)) return undefined
  const run: Run = { tag: spec.tag, run: spec.run, pgid: undefined, leaderOutcome: undefined, pollDelayMs: firstPollMs, pollAt: 0 }
  table.runs.set(key, run)
  return startChild(table, spawner, run, spec)
}

const killRun = (table: Table, warn: (message: string) => void, tag: string, runNumber: number, signal: NodeJS.Signals): void => {
  const run = table.runs.get(keyOf(tag, runNumber))
  if (run === undefined || run.pgid === undefined) return
  // Not our child: its pid may have been freed and reused since the last poll; never signal that.
  if (run.adoptedIdentity !== undefined && pidReused(run.pgid, run.adoptedIdentity)) return finish(table, run, endOf(run))
  // A leaderless group may have emptied since the last poll; once its last member is reaped its
  // id is free for reuse, so look again right before signalling (narrows the window to microseconds).
  if (table.lingering.has(run) && run.adoptedIdentity === undefined && !livePgids().has(run.pgid)) return finish(table, run, endOf(run))
  try {
    process.kill(-run.pgid, signal)
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code
    if (code !== "ESRCH") warn(`kill ${signal} -${run.pgid} (${tag}): ${code ?? String(e)}`)
  }
  // A signalled lingering group is likely to die now: look again soon.
  if (table.lingering.has(run)) {
    table.lingering.delete(run)
    linger(table, run)
  }
}

/** Watched by the group poll (at most every 500 ms while adopted runs exist), never reaped by us. */
const adoptRun = (table: Table, { tag, run: runNumber, pid, identity }: AdoptedProcess): void => {
  const key = keyOf(tag, runNumber)
  if (table.runs.has(key)) return
  const run: Run = { tag, run: runNumber, pgid: pid, leaderOutcome: undefined, pollDelayMs: firstPollMs, pollAt: 0, adoptedIdentity: identity }
  table.runs.set(key, run)
  linger(table, run)
}

/** The adapter without Effect, for the loop's callbacks; `makeProcesses` wraps it. */
export const makeProcessTable = (report: (report: ProcessReport) => void, options: ProcessesOptions = {}) => {
  const table: Table = { runs: new Map(), leaders: new Set(), lingering: new Set(), report, poll: { timer: undefined, at: Infinity } }
  const spawner = makeSpawner(options)
  const warn = options.warn ?? (() => undefined)
  const stop = (): void => {
    if (table.poll.timer !== undefined) clearTimeout(table.poll.timer)
    table.poll.timer = undefined
    table.poll.at = Infinity
  }
  return {
    spawn: (spec: SpawnSpec): number | undefined => spawnRun(table, spawner, spec),
    kill: (tag: string, run: number, signal: NodeJS.Signals): void => killRun(table, warn, tag, run, signal),
    adopt: (adopted: AdoptedProcess): void => adoptRun(table, adopted),
    liveRuns: (): number => table.runs.size,
    stop,
    ownsChild: (pid: number): boolean => table.leaders.has(pid),
    /** Look at the lingering groups now (orphans were just reaped: some may be gone). */
    recheck: (): void => {
      if (table.lingering.size > 0) poll(table)
    },
  }
}

export type ProcessTable = ReturnType<typeof makeProcessTable>

/** The real adapter; its poll timer is cleared when the scope closes (children are left alone). */
export const makeProcesses = (report: (report: ProcessReport) => void, options: ProcessesOptions = {}): Effect.Effect<ProcessesService, never, Scope.Scope> =>
  Effect.map(
    Effect.acquireRelease(
      Effect.sync(() => makeProcessTable(report, options)),
      (table) => Effect.sync(() => table.stop()),
    ),
    (table) => ({
      spawn: (spec) => Effect.sync(() => table.spawn(spec)),
      kill: (tag, run, signal) => Effect.sync(() => table.kill(tag, run, signal)),
      liveRuns: Effect.sync(() => table.liveRuns()),
      adopt: (adopted) => Effect.sync(() => table.adopt(adopted)),
      ownsChild: table.ownsChild,
      recheck: table.recheck,
    }),
  )
