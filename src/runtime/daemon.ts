/**
 * isinitd's wiring: paths, config loading, the runtime services, the socket handler, signals.
 *
 * Lifecycle: read the isinittab (unreadable, or as root writable by others: refuse to start),
 * judge the state file a crashed predecessor left (persistence.ts), claim the socket (a live
 * daemon there: refuse to start), re-adopt the predecessor's live processes (the Restore event
 * comes first), write the status file, then serve. Every tell re-reads the isinittab,
 * as the original does, so edits apply at the next tell; SIGHUP re-reads it and re-applies every
 * group's level. `stopall`, SIGTERM and SIGINT stop every process; once the last one is gone
 * (lifecycle `halted`) the daemon flushes the status file, removes its socket and exits 0, as the
 * original's stopall does. A hand-over (`{"op":"handover"}` or SIGUSR2) instead writes the state
 * file one last time and exits leaving every process running, for the next isinitd to adopt.
 *
 * The state is the reducer's alone; it is written to the state file after every batch that
 * changed it, and the file is removed after a clean exit.
 */
import { mkdirSync, readFileSync } from "node:fs"
import { readFile } from "node:fs/promises"
import { dirname, join, resolve } from "node:path"
import * as Effect from "effect/Effect"
import * as Queue from "effect/Queue"
import * as Ref from "effect/Ref"
import type * as Scope from "effect/Scope"
import type { AgentOptions, ClusterAgent } from "../cluster/agent.ts"
import type { DaemonProcess, Request, Response, WaitOutcome } from "../codec/protocol.ts"
import { failure, planAnswer, success } from "../codec/protocol.ts"
import type { Parsed } from "../core/config.ts"
import { describeRejection, rejectionOf } from "../core/effects.ts"
import type { Event, Guard } from "../core/events.ts"
import { reload, stopAll, tell } from "../core/events.ts"
import { formatProblem, parseInittab } from "../core/inittab.ts"
import { plan } from "../core/plan.ts"
import { report } from "../core/report.ts"
import type { State } from "../core/state.ts"
import { groupOf, initialStateWith } from "../core/state.ts"
import { renderStatusFile, statusRows } from "../core/status.ts"
import type { LogService } from "./log.ts"
import { Log } from "./log.ts"
import type { LoopService } from "./loop.ts"
import { Inbox, makeLoop } from "./loop.ts"
import type { Peer } from "./peer.ts"
import { describePeer, peerOf } from "./peer.ts"
import type { Output, ProcessesService } from "./processes.ts"
import { ProcessReports, Processes, makeProcesses, processIdentity } from "./processes.ts"
import type { Handler } from "./server.ts"
import { serve } from "./server.ts"
import type { StatusWriter } from "./statusFile.ts"
import { StatusFile, makeStatusFile } from "./statusFile.ts"
import type { Persistence } from "./persistence.ts"
import { openPersistence } from "./persistence.ts"
import type { Reaper } from "./reaper.ts"
import { startReaper } from "./reaper.ts"
import { socketPathProblem } from "./socketPath.ts"
import { statePathFor } from "./stateFile.ts"
import { insecureConfigReason } from "./strictModes.ts"

export const defaultConfigPath = "/etc/isinittab"
export const defaultSocketPath = "/var/run/is/init.s"
/** Without `--initstat` or `:::initstat:`, the status file lives beside the socket. */
export const defaultInitstatName = "initstat"

export const version = ((): string => {
  try {
    const pkg: unknown = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8"))
    const v = typeof pkg === "object" && pkg !== null ? (pkg as { readonly version?: unknown }).version : undefined
    return typeof v === "string" ? v : "unknown"
  } catch {
    return "unknown"
  }
})()

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
  /** Install SIGTERM/SIGINT/SIGHUP handlers (the CLI does; in-process tests may not). */
  readonly handleSignals?: boolean
  /** Told once the daemon serves, with the paths it settled on. */
  readonly onReady?: (paths: Paths) => void
  /** `--state`; else `isinitd.state` beside the status file (see persistence.ts). */
  readonly statePath?: string | undefined
  /** Cluster mode (`--etcd`): config and desired levels from etcd; see src/cluster/agent.ts. */
  readonly cluster?: Omit<AgentOptions, "localConfigPath" | "log"> | undefined
  /**
   * `reap` (the default): become a child subreaper and reap orphans (reaper.ts); `leave`: not, for
   * a daemon run inside a process that has children of its own (tests).
   */
  readonly orphans?: "reap" | "leave"
}

export interface Paths {
  readonly config: string
  readonly socket: string
  readonly initstat: string
}

export const configPathFrom = (flag: string | undefined, env: NodeJS.ProcessEnv): string =>
  flag ?? (env["ISINITTAB"] !== undefined && env["ISINITTAB"] !== "" ? env["ISINITTAB"] : defaultConfigPath)

export const resolvePaths = (options: Pick<DaemonOptions, "configPath" | "socketPath" | "initstatPath">, parsed: Parsed): Paths => {
  const socket = resolve(options.socketPath ?? parsed.config.socket ?? defaultSocketPath)
  const initstat = resolve(options.initstatPath ?? parsed.config.initstat ?? join(dirname(socket), defaultInitstatName))
  return { config: resolve(options.configPath), socket, initstat }
}

const reasonOf = (e: unknown): string => {
  const err = e as NodeJS.ErrnoException
  return err.code !== undefined ? `${err.code} (${err.message})` : String(e)
}

/**
 * The isinittab, read now: every tell and SIGHUP sees the file as it is at that moment. As root,
 * a file others may write is refused each time (see strictModes.ts).
 */
export const readConfig = (path: string): Effect.Effect<Parsed, string> =>
  Effect.flatMap(
    Effect.tryPromise({ try: () => insecureConfigReason(path), catch: (e) => `cannot check the isinittab ${path}: ${reasonOf(e)}` }),
    (insecure) =>
      insecure !== undefined
        ? Effect.fail(insecure)
        : Effect.tryPromise({
            try: async () => parseInittab(await readFile(path, "utf8")),
            catch: (e) => `cannot read the isinittab ${path}: ${reasonOf(e)}`,
          }),
  )

/** How the transition of `group` numbered `seq` stands, or `undefined` while it runs. */
export const transitionOutcome = (state: State, group: string, seq: number): WaitOutcome | undefined => {
  const g = groupOf(state, group)
  if (g.seq !== seq) return "superseded"
  if (state.lifecycle !== "running") return "stopped"
  if (g.phase === "run" || g.phase === "fail") return g.phase
  return undefined
}

const failedTests = (state: State, group: string): string => {
  const failed = report(state)
    .groups.find((g) => g.group === group)
    ?.entries.filter((e) => e.state === "failed")
    .map((e) => (e.lastExit === null ? e.tag : `${e.tag} (${e.lastExit})`))
  return failed === undefined || failed.length === 0 ? "a test failed" : `failed: ${failed.join(", ")}`
}

export interface HandlerDeps {
  readonly loop: LoopService
  readonly configPath: string
  readonly log: LogService
  /** This daemon process, named in the answers to stopall and handover so that clients can wait for its exit. */
  readonly self?: DaemonProcess | undefined
  /** Answers a hand-over request (the daemon exits once the answer is out); without it, hand-overs are refused. */
  readonly handOver?: () => Effect.Effect<Response>
  /** In cluster mode: the config comes from the agent, and local tells are recorded in etcd. */
  readonly cluster?: Pick<ClusterAgent, "currentConfig" | "recordLocalTell" | "info"> | undefined
}

/**
 * A re-read file may be half-written: the guard holds back a change that would stop a large share
 * of what runs (core/reread.ts), unless the request confirms it (`force`). (In cluster mode a
 * tell's config may be etcd's: checked when it was pushed, and already applied by the agent.)
 */
const guardOf = (force: boolean | undefined): Guard | undefined => (force === true ? undefined : "removals")

/** Answers socket requests; nothing here changes state except through the loop's events. */
export const makeHandler = ({ loop, configPath, log, cluster, self, handOver }: HandlerDeps): Handler => {
  const daemon = self === undefined ? {} : { daemon: self }
  const configOrFailure = (what: string): Effect.Effect<Parsed, Response> =>
    Effect.mapError(cluster === undefined ? readConfig(configPath) : cluster.currentConfig(), (reason) => {
      log.line({ what: "rejected", message: `${what}: ${reason}; nothing was changed` })
      return failure(`${reason}; nothing was changed`)
    })

  const onTell = (request: Extract<Request, { readonly op: "tell" }>): Effect.Effect<Response> =>
    Effect.gen(function* () {
      const { group, level } = request
      const parsed = yield* configOrFailure(`tell ${group} ${level}`)
      // The answer is the reducer's, from the event as it was applied (the loop logs a refusal).
      const applied = yield* loop.submit(tell(group, level, parsed, loop.now(), guardOf(request.force)))
      const rejection = rejectionOf(applied.effects)
      if (rejection !== undefined) return failure(rejection.reason)
      const seq = groupOf(applied.after, group).seq
      const note = cluster === undefined ? undefined : yield* cluster.recordLocalTell(group, level)
      if (!request.wait) return success(note === undefined ? { op: "tell", group, level, seq } : { op: "tell", group, level, seq, message: note })
      const final = yield* loop.waitFor((s) => transitionOutcome(s, group, seq) !== undefined, request.timeoutMs)
      const outcome = final === undefined ? "timeout" : (transitionOutcome(final, group, seq) ?? "timeout")
      const message =
        outcome === "fail" && final !== undefined
          ? failedTests(final, group)
          : outcome === "superseded"
            ? "a later tell for the group replaced this one"
            : outcome === "stopped"
              ? "the daemon is stopping every process"
              : outcome === "timeout"
                ? `the transition was still running after ${request.timeoutMs ?? 0} ms`
                : undefined
      return success(message === undefined ? { op: "tell", group, level, seq, outcome } : { op: "tell", group, level, seq, outcome, message })
    }).pipe(Effect.catch((response: Response) => Effect.succeed(response)))

  const onPlan = (group: string, level: string): Effect.Effect<Response> =>
    Effect.gen(function* () {
      const parsed = yield* configOrFailure(`plan ${group} ${level}`)
      const state = yield* Ref.get(loop.state)
      return success(planAnswer(group, level, plan(state, group, level, parsed, loop.now())))
    }).pipe(Effect.catch((response: Response) => Effect.succeed(response)))

  const onReload = (force: boolean | undefined): Effect.Effect<Response> =>
    Effect.gen(function* () {
      const parsed = yield* configOrFailure("reload")
      const applied = yield* loop.submit(reload(parsed, loop.now(), guardOf(force)))
      const rejection = rejectionOf(applied.effects)
      return rejection === undefined ? success({ op: "reload" }) : failure(describeRejection(rejection))
    }).pipe(Effect.catch((response: Response) => Effect.succeed(response)))

  return (request) => {
    switch (request.op) {
      case "tell":
        return onTell(request)
      case "stopall":
        return Effect.as(loop.submit(stopAll(loop.now())), success({ op: "stopall", ...daemon }))
      case "status":
        return Effect.map(Ref.get(loop.state), (state) =>
          success({ op: "status", report: report(state), now: loop.now(), ...(cluster === undefined ? {} : { cluster: cluster.info() }) }),
        )
      case "plan":
        return onPlan(request.group, request.level)
      case "ping":
        return Effect.succeed(success({ op: "ping", pid: process.pid, version }))
      case "reload":
        return onReload(request.force)
      case "handover":
        return handOver?.() ?? Effect.succeed(failure("this daemon cannot hand over"))
    }
  }
}

const loggedChanges = new Set<Request["op"]>(["tell", "stopall", "reload", "handover"])

/** Who asked for a change on the socket, so the log says who switched what (peer.ts). */
const logChange = (log: LogService, request: Request, peer: Peer | undefined): void => {
  if (peer === undefined || !loggedChanges.has(request.op)) return
  const what = request.op === "tell" ? `tell ${request.group} ${request.level}` : request.op
  log.line({ what: "request", ...(request.op === "tell" ? { group: request.group } : {}), message: `${what} from ${describePeer(peer)}` })
}

const statusId = (): string => `${process.pid}.${Math.random().toString(36).slice(2, 10)}`


/**
 * SIGTERM and SIGINT stop everything (as systemd's stop and Ctrl-C mean); SIGHUP re-reads the
 * isinittab; SIGUSR2 hands over. SIGUSR2, as nginx and unicorn use it for a binary upgrade: no
 * key sends it by accident (Ctrl-\ sends SIGQUIT), and Node keeps SIGUSR1 for its inspector.
 */
const installSignals = (
  loop: LoopService,
  configOf: () => Effect.Effect<Parsed, string>,
  log: LogService,
  handOver: (why: string) => void,
): Effect.Effect<void, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const stop = (signal: NodeJS.Signals) => (): void => {
        log.line({ what: "signal", message: `${signal}: stopping every process` })
        loop.offer(stopAll(loop.now()))
      }
      const onTerm = stop("SIGTERM")
      const onInt = stop("SIGINT")
      const onHup = (): void => {
        log.line({ what: "signal", message: "SIGHUP: re-reading the isinittab" })
        void Effect.runPromise(Effect.result(configOf())).then((read) =>
          read._tag === "Success"
            ? loop.offer(reload(read.success, loop.now(), "removals"))
            : log.line({ what: "rejected", message: `reload: ${read.failure}; nothing was changed` }),
        )
      }
      const onUsr2 = (): void => handOver("SIGUSR2")
      process.on("SIGTERM", onTerm)
      process.on("SIGINT", onInt)
      process.on("SIGHUP", onHup)
      process.on("SIGUSR2", onUsr2)
      return { onTerm, onInt, onHup, onUsr2 }
    }),
    ({ onTerm, onInt, onHup, onUsr2 }) =>
      Effect.sync(() => {
        process.off("SIGTERM", onTerm)
        process.off("SIGINT", onInt)
        process.off("SIGHUP", onHup)
        process.off("SIGUSR2", onUsr2)
      }),
  ).pipe(Effect.asVoid)

/** How the daemon's run ended: every process gone after a stopall, or handed over to a successor. */
export type DaemonEnd = "halted" | "handedOver"

/**
 * The hand-over, asked for by a request or SIGUSR2 while the daemon runs normally (never in the
 * middle of a stopall, which finishes what it started). `asked` resolves once it was asked for:
 * for a request, only once the answer is out, since leaving closes every connection.
 */
const makeHandOver = (loop: LoopService, log: LogService, liveRuns: Effect.Effect<number>, self: DaemonProcess | undefined) => {
  let ask: (why: string) => void = () => undefined
  const asked = new Promise<string>((resolveAsked) => (ask = resolveAsked))
  const refusal = (): string | undefined =>
    Ref.getUnsafe(loop.state).lifecycle === "running" ? undefined : "a stopall is under way and finishes first"
  const signal = (why: string): void => {
    const refused = refusal()
    log.line(refused === undefined ? { what: "signal", message: `${why}: handing over` } : { what: "rejected", message: `${why}: no hand-over: ${refused}` })
    if (refused === undefined) ask(why)
  }
  const answer = (): Effect.Effect<Response> =>
    Effect.map(liveRuns, (processes) => {
      const refused = refusal()
      return refused === undefined ? success({ op: "handover", processes, ...(self === undefined ? {} : { daemon: self }) }) : failure(refused)
    })
  const answered = (request: Request, response: Response): void => {
    if (request.op !== "handover" || !response.ok) return
    log.line({ what: "handover", message: "asked by a client: handing over" })
    ask("a client")
  }
  return { asked, signal, answer, answered, self }
}

/**
 * Started before anything is spawned, so that every orphan of every run comes to us; a process
 * table without `ownsChild` (a test fake) gets a reaper that reaps nothing.
 */
const orphanReaper = (options: DaemonOptions, processes: ProcessesService): Effect.Effect<Reaper | undefined, never, Scope.Scope> =>
  options.orphans === "leave"
    ? Effect.succeed(undefined)
    : startReaper({ ownsChild: processes.ownsChild ?? (() => true), onReaped: processes.recheck, log: (what, message) => options.log.line({ what, message }) })

/** For the ready line: what becomes of a service's orphaned processes. */
const orphansNote = (reaper: Reaper | undefined): string => {
  if (reaper === undefined) return "left alone"
  if (reaper._tag === "Off") return "not reaped (no koffi)"
  return { "pid 1": "reaped (isinitd is pid 1)", subreaper: "reaped (child subreaper)", parent: "go to the host's init (no subreaper)" }[reaper.as]
}

/** This daemon process, as answers name it (see `DaemonProcess`); unknown without /proc. */
const selfProcess = (): DaemonProcess | undefined => {
  const identity = processIdentity(process.pid)
  return identity === undefined ? undefined : { pid: process.pid, identity }
}

interface LeaveDeps {
  readonly status: StatusWriter
  readonly persistence: Persistence
  readonly liveRuns: Effect.Effect<number>
  readonly log: LogService
}

/**
 * The last steps before the socket goes (closing the scope removes it): the status file is
 * flushed; after a hand-over the state file is written one last time and kept for the successor,
 * after a stopall (everything gone) it is removed.
 */
const leave = (end: DaemonEnd, { status, persistence, liveRuns, log }: LeaveDeps): Effect.Effect<DaemonEnd> =>
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

/** What startup failed on, for the CLI to print before exiting 1. */
export interface StartupFailure {
  readonly _tag: "StartupFailure"
  readonly message: string
}

const startupFailure = (message: string): StartupFailure => ({ _tag: "StartupFailure", message })

/**
 * Creates the socket's directory owner-only if it does not exist yet (an existing one is left as
 * is), after checking the path's length: one cut to the kernel's limit would be another socket.
 */
const prepareSocketDir = (socket: string): Effect.Effect<void, StartupFailure> => {
  const tooLong = socketPathProblem(socket)
  if (tooLong !== undefined) return Effect.fail(startupFailure(tooLong.message))
  return Effect.try({
    try: () => void mkdirSync(dirname(socket), { recursive: true, mode: 0o700 }),
    catch: (e) => startupFailure(`cannot create the socket directory ${dirname(socket)}: ${reasonOf(e)}`),
  })
}

/** Loaded only in cluster mode, so a single-host daemon never loads the etcd client. */
const startAgent = (options: DaemonOptions, cluster: NonNullable<DaemonOptions["cluster"]>): Effect.Effect<ClusterAgent, StartupFailure, Scope.Scope> =>
  Effect.flatMap(
    Effect.promise(() => import("../cluster/agent.ts")),
    ({ makeClusterAgent }) =>
      Effect.mapError(makeClusterAgent({ ...cluster, localConfigPath: options.configPath, log: options.log }), (e) => startupFailure(e.message)),
  )

/**
 * Runs the daemon until every process is gone after a stopall (or SIGTERM/SIGINT), or until it
 * hands over. Fails with a `StartupFailure` when it cannot start (unreadable config, socket in
 * use or unusable).
 */
export const runDaemon = (options: DaemonOptions): Effect.Effect<DaemonEnd, StartupFailure> =>
  Effect.scoped(
    Effect.gen(function* () {
      const log = options.log
      const agent = options.cluster === undefined ? undefined : yield* startAgent(options, options.cluster)
      const parsed = agent === undefined ? yield* Effect.mapError(readConfig(options.configPath), startupFailure) : agent.initialConfig
      for (const problem of parsed.problems) log.line({ what: "config", message: formatProblem(options.configPath, problem) })
      const paths = resolvePaths(options, parsed)
      yield* prepareSocketDir(paths.socket)

      const persistence = openPersistence({ path: resolve(options.statePath ?? statePathFor(paths.initstat)), log })
      if (persistence._tag === "Refused") return yield* Effect.fail(startupFailure(persistence.message))

      const stateRef = yield* Ref.make(initialStateWith(parsed.config))
      const queue = yield* Queue.unbounded<Event>()
      const inbox = Inbox.of({ queue, now: persistence.clock, offer: (event) => void Queue.offerUnsafe(queue, event) })
      const reports = ProcessReports.of({ report: (r) => inbox.offer({ ...r, now: inbox.now() }) })
      const processes = yield* makeProcesses({
        ...(options.output === undefined ? {} : { output: options.output }),
        warn: (message) => log.line({ what: "warning", message }),
        instance: persistence.path,
        beforeSpawn: persistence.beforeSpawn,
      }).pipe(Effect.provideService(ProcessReports, reports))
      const reaper = yield* orphanReaper(options, processes)
      const status = yield* makeStatusFile({
        path: paths.initstat,
        render: () => renderStatusFile(statusRows(Ref.getUnsafe(stateRef)), statusId()),
        warn: (message) => log.line({ what: "warning", message }),
      })
      const loop = yield* makeLoop(stateRef, { onBatch: persistence.onBatch }).pipe(
        Effect.provideService(Inbox, inbox),
        Effect.provideService(Processes, processes),
        Effect.provideService(StatusFile, status),
        Effect.provideService(Log, log),
      )

      // Requests wait until the predecessor's processes are taken over (the Restore event comes
      // first); a change is answered once the state file holds it, so an acknowledged tell survives a crash.
      let takenOver: () => void = () => undefined
      const ready = new Promise<void>((resolveReady) => (takenOver = resolveReady))
      const handOver = makeHandOver(loop, log, processes.liveRuns, selfProcess())
      const serveRequest = makeHandler({ loop, configPath: paths.config, log, cluster: agent, self: handOver.self, handOver: handOver.answer })
      const changes = new Set<Request["op"]>(["tell", "stopall", "reload", "handover"])
      const handler: Handler = (request, peer) =>
        Effect.andThen(
          Effect.promise(() => ready),
          Effect.tap(Effect.andThen(Effect.sync(() => logChange(log, request, peer)), serveRequest(request)), () =>
            changes.has(request.op) ? Effect.promise(() => persistence.flush()) : Effect.void,
          ),
        )
      yield* serve(paths.socket, handler, {
        peerOf,
        ...(options.socketMode === undefined ? {} : { mode: options.socketMode }),
        onReject: (reason) => log.line({ what: "rejected", message: reason }),
        onAnswered: handOver.answered,
      }).pipe(Effect.mapError((e) => startupFailure(e.message)))
      // Only now that the socket is ours: a refused second daemon must not touch the status or state file.
      const takeOver = persistence.takeOver(parsed)
      for (const adopted of takeOver.adopt) yield* processes.adopt?.(adopted) ?? Effect.void
      if (takeOver.event !== undefined) inbox.offer(takeOver.event)
      takenOver()
      status.request()
      const configOf = (): Effect.Effect<Parsed, string> => agent?.currentConfig() ?? readConfig(paths.config)
      if (options.handleSignals ?? true) yield* installSignals(loop, configOf, log, handOver.signal)
      log.line({
        what: "ready",
        message: `isinitd ${version} pid ${process.pid}: config ${paths.config}, socket ${paths.socket}, status ${paths.initstat}, state ${persistence.path}, orphans ${orphansNote(reaper)}`,
      })
      options.onReady?.(paths)
      if (agent !== undefined) yield* agent.start(loop)

      const end: DaemonEnd = yield* Effect.raceFirst(
        Effect.as(loop.waitFor((s) => s.lifecycle === "halted"), "halted" as const),
        Effect.as(Effect.promise(() => handOver.asked), "handedOver" as const),
      )
      return yield* leave(end, { status, persistence, liveRuns: processes.liveRuns, log })
    }),
  )
