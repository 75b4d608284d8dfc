/**
 * isinitd's runtime, put together: config loading, the services, the socket, signals, the end.
 *
 * Lifecycle: read the isinittab (unreadable, or as root writable by others: refuse to start),
 * judge the state file a crashed predecessor left (persistence.ts), claim the socket (a live
 * daemon there: refuse to start), re-adopt the predecessor's live processes (the Restore event
 * comes first), write the status file, then serve. Every tell re-reads the isinittab,
 * as the original does, so edits apply at the next tell; SIGHUP re-reads it and re-applies every
 * group's level. `stopall`, SIGTERM and SIGINT stop every process; once the last one is gone
 * (lifecycle `halted`) the daemon flushes the status file, removes its socket and exits 0, as the
 * original's stopall does. A hand-over (`{"op":"handover"}` or SIGUSR2) instead writes the state
 * file one last time and exits leaving every process running, for the next isinitd to adopt. A
 * bug (loop.ts) ends the run too, leaving every process running, as a crash would.
 *
 * Wiring: each part is a scoped constructor given its dependencies as arguments (the etcd store
 * is built the same way): the order matters (the state file's clock before the inbox, the reaper
 * before the first spawn, the socket before the take-over) and explicit arguments show it. This
 * module knows nothing of cluster mode beyond `ClusterPort` (ports.ts); the composition root,
 * cli/isinitd.ts, passes one in.
 *
 * The state is the reducer's alone; it is written to the state file after every batch that
 * changed it, and the file is removed after a clean exit.
 */
import { mkdirSync } from "node:fs"
import { dirname, resolve } from "node:path"
import * as Data from "effect/Data"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Ref from "effect/Ref"
import type * as Scope from "effect/Scope"
import type { DaemonProcess, Request, Response } from "../codec/protocol.ts"
import { failure, success } from "../codec/protocol.ts"
import type { Parsed } from "../core/config.ts"
import { reload, stopAll } from "../core/events.ts"
import { formatProblem } from "../core/inittab.ts"
import { noOptions } from "../core/options.ts"
import type { LogFile } from "../core/logs.ts"
import { logDirOf, logFilesOf, logPlaceOf } from "../core/logs.ts"
import { batchProblem } from "../core/invariants.ts"
import type { State } from "../core/state.ts"
import { initialStateWith } from "../core/state.ts"
import { renderStatusFile, statusRows } from "../core/status.ts"
import type { LogService } from "../log.ts"
import type { Paths } from "../paths.ts"
import { resolvePaths, version } from "../paths.ts"
import type { ConfigError, ConfigSource } from "./config.ts"
import { readConfig } from "./config.ts"
import { changes, logChange, makeHandler } from "./handler.ts"
import type { Loop, LoopBug } from "./loop.ts"
import { makeInbox, makeLoop } from "./loop.ts"
import { peerOf } from "./peer.ts"
import type { Rotation } from "./logs.ts"
import { startLogRotation } from "./logs.ts"
import type { Persistence } from "./persistence.ts"
import { StateFileInUse, openPersistence } from "./persistence.ts"
import type { ClusterBug, ClusterPort, LoopService } from "./ports.ts"
import type { Output, ProcessesService } from "./processes.ts"
import { makeProcesses } from "./processes.ts"
import { processIdentity } from "./procfs.ts"
import type { Reaper } from "./reaper.ts"
import { startReaper } from "./reaper.ts"
import type { Handler, ServeError } from "./server.ts"
import type { HookRunner } from "./hooks.ts"
import { makeHookRunner } from "./hooks.ts"
import type { DaemonView, NoticeFeed, OperationsPort } from "./observe.ts"
import { makeNoticeFeed } from "./observe.ts"
import { serve } from "./server.ts"
import type { DaemonSignal } from "./signals.ts"
import { handleSignals } from "./signals.ts"
import type { SocketPathTooLong } from "./socketPath.ts"
import { socketPathProblem } from "./socketPath.ts"
import { statePathFor } from "./stateFile.ts"
import type { StatusWriter } from "./statusFile.ts"
import { makeStatusFile } from "./statusFile.ts"
import { describeError } from "./errors.ts"

export interface DaemonOptions {
  readonly configPath: string
  /** `-s`; else the config's `:::socket:`; else the default. */
  readonly socketPath?: string | undefined
  /** `--initstat`; else the config's `:::initstat:`; else `initstat` beside the socket. */
  readonly initstatPath?: string | undefined
  /** Permission bits of the socket file (default 0600). */
  readonly socketMode?: number | undefined
  /** Where children write (the daemon's stdout/stderr by default), asked at each spawn when a function. */
  readonly output?: Output | (() => Output)
  readonly log: LogService
  /** Told once the daemon serves, with the paths it settled on. */
  readonly onReady?: (paths: Paths) => void
  /** `--state`; else `isinitd.state` beside the status file (see persistence.ts). */
  readonly statePath?: string | undefined
  /** Cluster mode (`--etcd`): the config and desired levels come from etcd (cli/isinitd.ts fills it from the agent). */
  readonly cluster?: ClusterPort | undefined
  /** The state invariant check the loop runs after every batch (loop.ts `stateProblem`); the core's `batchProblem` by default. */
  readonly stateProblem?: (state: State) => string | undefined
  /** `--metrics` and `--http` (runtime/ops.ts, loaded by the composition root only when asked for). */
  readonly operations?: OperationsPort | undefined
}

/** How the daemon's run ended: every process gone after a stopall, or handed over to a successor. */
export type DaemonEnd = "halted" | "handedOver"

/** The socket's directory cannot be created. */
export class SocketDirUnusable extends Data.TaggedError("SocketDirUnusable")<{ readonly dir: string; readonly reason: string }> {
  override get message(): string {
    return `cannot create the socket directory ${this.dir}: ${this.reason}`
  }
}

/** Why the daemon could not start (the CLI prints it and exits 1), or the bug that ended it (exit 70). */
export type DaemonError = ConfigError | SocketDirUnusable | SocketPathTooLong | StateFileInUse | ServeError | LoopBug | ClusterBug


const statusId = (): string => `${process.pid}.${Math.random().toString(36).slice(2, 10)}`

/** The hand-over's gate: asked for by a request or SIGUSR2, while the daemon runs normally. */
interface HandOver {
  /** Resumes once a hand-over was asked for (for a request, once its answer is out: leaving closes every connection). */
  readonly asked: Effect.Effect<string>
  /** SIGUSR2. */
  readonly signal: (why: string) => void
  /** The answer to a hand-over request. */
  readonly answer: () => Effect.Effect<Response>
  /** Told every answer that went out. */
  readonly answered: (request: Request, response: Response) => void
}

/** Never in the middle of a stopall, which finishes what it started. */
const makeHandOver = (loop: LoopService, log: LogService, liveRuns: Effect.Effect<number>, self: DaemonProcess | undefined): Effect.Effect<HandOver> =>
  Effect.map(Deferred.make<string>(), (gate) => {
    const ask = (why: string): void => void Deferred.doneUnsafe(gate, Effect.succeed(why))
    const refusal = (): string | undefined =>
      Ref.getUnsafe(loop.state).lifecycle === "running" ? undefined : "a stopall is under way and finishes first"
    return {
      asked: Deferred.await(gate),
      signal: (why) => {
        const refused = refusal()
        log.line(refused === undefined ? { what: "signal", message: `${why}: handing over` } : { what: "rejected", message: `${why}: no hand-over: ${refused}` })
        if (refused === undefined) ask(why)
      },
      answer: () =>
        Effect.map(liveRuns, (processes) => {
          const refused = refusal()
          return refused === undefined ? success({ op: "handover", processes, ...(self === undefined ? {} : { daemon: self }) }) : failure(refused)
        }),
      answered: (request, response) => {
        if (request.op !== "handover" || !response.ok) return
        log.line({ what: "handover", message: "asked by a client: handing over" })
        ask("a client")
      },
    }
  })

/** What a signal does (signals.ts): stop everything, re-read the isinittab, or hand over. */
const actOnSignal = (loop: LoopService, config: ConfigSource, log: LogService, handOver: HandOver) => (signal: DaemonSignal): Effect.Effect<void> => {
  switch (signal) {
    case "SIGTERM":
    case "SIGINT":
      return Effect.sync(() => {
        log.line({ what: "signal", message: `${signal}: stopping every process` })
        loop.offer(stopAll(loop.now()))
      })
    case "SIGHUP":
      log.line({ what: "signal", message: "SIGHUP: re-reading the isinittab" })
      return Effect.match(config(), {
        onSuccess: (parsed) => loop.offer(reload(parsed, loop.now(), "removals")),
        onFailure: (error) => log.line({ what: "rejected", message: `reload: ${error.message}; nothing was changed` }),
      })
    case "SIGUSR2":
      return Effect.sync(() => handOver.signal("SIGUSR2"))
  }
}

/**
 * Started before anything is spawned, so that every orphan of every run comes to us. The entries'
 * leaders are libuv's to reap (`ownsChild`), and so are the fencer's, hooks' and probes' processes
 * (registered in spawned.ts, which the reaper reads itself).
 */
const orphanReaper = (log: LogService, processes: ProcessesService): Effect.Effect<Reaper, never, Scope.Scope> =>
  startReaper({ ownsChild: processes.ownsChild, onReaped: processes.recheck, log: (what, message) => log.line({ what, message }) })

/** For the ready line: what becomes of a service's orphaned processes. */
const orphansNote = (reaper: Reaper): string => {
  if (reaper._tag === "Off") return "not reaped (no koffi)"
  return { "pid 1": "reaped (isinitd is pid 1)", subreaper: "reaped (child subreaper)", parent: "go to the host's init (no subreaper)" }[reaper.as]
}

/** This daemon process, as answers name it (see `DaemonProcess`); unknown without /proc. */
const selfProcess = (): DaemonProcess | undefined => {
  const identity = processIdentity(process.pid)
  return identity === undefined ? undefined : { pid: process.pid, identity }
}

/**
 * Creates the socket's directory owner-only if it does not exist yet (an existing one is left as
 * is), after checking the path's length: one cut to the kernel's limit would be another socket.
 */
const prepareSocketDir = (socket: string): Effect.Effect<void, SocketDirUnusable | SocketPathTooLong> => {
  const tooLong = socketPathProblem(socket)
  if (tooLong !== undefined) return Effect.fail(tooLong)
  return Effect.try({
    try: () => void mkdirSync(dirname(socket), { recursive: true, mode: 0o700 }),
    catch: (e) => new SocketDirUnusable({ dir: dirname(socket), reason: describeError(e) }),
  })
}

/** The config the daemon starts with: cluster mode's, else the isinittab (its problems logged). */
const startConfig = (options: DaemonOptions): Effect.Effect<Parsed, ConfigError> =>
  Effect.tap(options.cluster === undefined ? readConfig(options.configPath) : Effect.succeed(options.cluster.initialConfig), (parsed) =>
    Effect.sync(() => {
      for (const problem of parsed.problems) options.log.line({ what: "config", message: formatProblem(options.configPath, problem) })
    }),
  )

/** The rotation of every file the config's entries log to; the list is rebuilt only when the config changes. */
const rotateLogs = (stateRef: Ref.Ref<State>, logDir: string, warn: (message: string) => void): Effect.Effect<Rotation, never, Scope.Scope> => {
  let seen: State["config"] | undefined
  let files: readonly LogFile[] = []
  const current = (): readonly LogFile[] => {
    const config = Ref.getUnsafe(stateRef).config
    if (config !== seen) [seen, files] = [config, logFilesOf(config, logDir)]
    return files
  }
  return Effect.acquireRelease(Effect.sync(() => startLogRotation({ files: current, warn })), (rotation) => Effect.sync(() => rotation.stop()))
}

/** The runtime's parts, built in order, for the life of the scope. */
interface Parts {
  readonly loop: Loop
  readonly processes: ProcessesService
  readonly status: StatusWriter
  readonly reaper: Reaper
  readonly notices: NoticeFeed
  readonly hookStats: HookRunner["stats"]
}

const buildParts = (options: DaemonOptions, paths: Paths, parsed: Parsed, persistence: Persistence): Effect.Effect<Parts, never, Scope.Scope> =>
  Effect.gen(function* () {
    const log = options.log
    const warn = (message: string): void => log.line({ what: "warning", message })
    const stateRef = yield* Ref.make(initialStateWith(parsed.config))
    const inbox = yield* makeInbox(persistence.clock)
    const logDir = logDirOf(paths.initstat)
    const rotation = yield* rotateLogs(stateRef, logDir, warn)
    const processes = yield* makeProcesses((report) => inbox.offer({ ...report, now: inbox.now() }), {
      ...(options.output === undefined ? {} : { output: options.output }),
      logPlace: (spec) => {
        // A new writer: the rotation's check resumes if it was idle (a new directory may not be watched).
        rotation.wake()
        return logPlaceOf(spec.tag, spec.options ?? noOptions, logDir)
      },
      warn,
      instance: persistence.path,
      beforeSpawn: persistence.beforeSpawn,
      failover: options.cluster === undefined ? undefined : { now: inbox.now, environment: options.cluster.failoverEnvironment },
    })
    const info = options.cluster?.info()
    const hooks = yield* makeHookRunner({ log, site: { node: info?.node, cluster: info?.cluster } })
    const notices = makeNoticeFeed(hooks, log)
    const reaper = yield* orphanReaper(log, processes)
    const status = yield* makeStatusFile({ path: paths.initstat, render: () => renderStatusFile(statusRows(Ref.getUnsafe(stateRef)), statusId()), warn })
    const loop = yield* makeLoop(stateRef, {
      inbox,
      processes,
      status,
      log,
      onBatch: persistence.onBatch,
      onStep: notices.onStep,
      stateProblem: options.stateProblem ?? batchProblem,
    })
    return { loop, processes, status, reaper, notices, hookStats: hooks.stats }
  })

/**
 * Serves the socket. Requests wait until the predecessor's processes are taken over (`ready`: the
 * Restore event comes first); a change is answered once the state file holds it, so an
 * acknowledged tell survives a crash.
 */
const serveSocket = (options: DaemonOptions, paths: Paths, config: ConfigSource, parts: Parts, persistence: Persistence, handOver: HandOver, ready: Deferred.Deferred<void>) => {
  const log = options.log
  const serveRequest = makeHandler({ loop: parts.loop, config, log, cluster: options.cluster, self: selfProcess(), handOver: handOver.answer, logDir: logDirOf(paths.initstat) })
  const handler: Handler = (request, peer) =>
    Effect.gen(function* () {
      yield* Deferred.await(ready)
      logChange(log, request, peer)
      const response = yield* serveRequest(request)
      if (changes.has(request.op)) yield* Effect.promise(() => persistence.flush())
      return response
    })
  return serve(paths.socket, handler, {
    peerOf,
    ...(options.socketMode === undefined ? {} : { mode: options.socketMode }),
    onReject: (reason) => log.line({ what: "rejected", message: reason }),
    onAnswered: handOver.answered,
  })
}

const startedAt = Date.now()

/** What the metrics and the status page read (observe.ts). */
const viewOf = (options: DaemonOptions, parts: Parts): DaemonView => ({
  loop: parts.loop,
  notices: parts.notices,
  hookStats: parts.hookStats,
  cluster: options.cluster?.info,
  version,
  pid: process.pid,
  startedAt,
})

/** The predecessor's processes, taken over (only once the socket is ours: a refused second daemon must not touch the files). */
const takeOverPredecessor = (parts: Parts, persistence: Persistence, parsed: Parsed): Effect.Effect<void> =>
  Effect.gen(function* () {
    const takeOver = persistence.takeOver(parsed)
    for (const adopted of takeOver.adopt) yield* parts.processes.adopt(adopted)
    if (takeOver.event !== undefined) parts.loop.offer(takeOver.event)
  })

/**
 * The last steps before the socket goes (closing the scope removes it): the status file is
 * flushed; after a hand-over the state file is written one last time and kept for the successor,
 * after a stopall (everything gone) it is removed.
 */
const leave = (end: DaemonEnd, { status, persistence, liveRuns, log }: { readonly status: StatusWriter; readonly persistence: Persistence; readonly liveRuns: Effect.Effect<number>; readonly log: LogService }): Effect.Effect<DaemonEnd> =>
  Effect.gen(function* () {
    yield* Effect.promise(() => status.flush())
    if (end === "halted") {
      yield* Effect.promise(() => persistence.finish())
      log.line({ what: "exit", message: "every process is gone; removing the socket and the state file, exiting" })
      return end
    }
    yield* Effect.promise(() => persistence.handOver())
    const left = yield* liveRuns
    log.line({ what: "exit", message: `handed over: ${left} process(es) keep running for the next isinitd on the state file ${persistence.path}; removing the socket, exiting` })
    return end
  })

/**
 * Runs the daemon in the caller's scope until every process is gone after a stopall (or
 * SIGTERM/SIGINT), or until it hands over. Fails with a `DaemonError` when it cannot start
 * (unreadable config, socket in use or unusable, a live predecessor), or when a bug stopped its
 * loop. The composition root (cli/isinitd.ts) runs it, in one scope with cluster mode's agent.
 */
export const daemon = (options: DaemonOptions): Effect.Effect<DaemonEnd, DaemonError, Scope.Scope> =>
  Effect.gen(function* () {
    const log = options.log
    const parsed = yield* startConfig(options)
    const paths = resolvePaths(options, parsed.config)
    yield* prepareSocketDir(paths.socket)
    const persistence = openPersistence({ path: resolve(options.statePath ?? statePathFor(paths.initstat)), log })
    if (persistence._tag === "StateFileInUse") return yield* persistence
    const parts = yield* buildParts(options, paths, parsed, persistence)
    const handOver = yield* makeHandOver(parts.loop, log, parts.processes.liveRuns, selfProcess())
    const ready = yield* Deferred.make<void>()
    // Every tell, plan, reload and SIGHUP reads the config as it is then.
    const config: ConfigSource = options.cluster?.currentConfig ?? (() => readConfig(paths.config))
    yield* serveSocket(options, paths, config, parts, persistence, handOver, ready)
    yield* takeOverPredecessor(parts, persistence, parsed)
    yield* Deferred.succeed(ready, undefined)
    parts.status.request()
    yield* handleSignals(actOnSignal(parts.loop, config, log, handOver))
    log.line({
      what: "ready",
      message: `isinitd ${version} pid ${process.pid}: config ${paths.config}, socket ${paths.socket}, status ${paths.initstat}, state ${persistence.path}, orphans ${orphansNote(parts.reaper)}`,
    })
    options.onReady?.(paths)
    const clusterCrashed = options.cluster === undefined ? Effect.never : yield* options.cluster.start(parts.loop)
    if (options.operations !== undefined) yield* options.operations.start(viewOf(options, parts))
    const end: DaemonEnd = yield* Effect.raceFirst(
      Effect.raceFirst(Effect.as(parts.loop.waitFor((s) => s.lifecycle === "halted"), "halted" as const), Effect.as(handOver.asked, "handedOver" as const)),
      Effect.raceFirst(parts.loop.crashed, clusterCrashed),
    )
    // Failover groups handed over cleanly and leases given back before the daemon goes (not after a hand-over).
    if (end === "halted" && options.cluster !== undefined) yield* options.cluster.stop()
    return yield* leave(end, { status: parts.status, persistence, liveRuns: parts.processes.liveRuns, log })
  })
