/**
 * The daemon side of cluster mode: what `isinitd --etcd URLS` adds to a daemon. A thin shell over
 * the cluster node reducer (src/cluster/node/reduce.ts), which makes every decision: convergence
 * to etcd's config and desired levels, local tells recorded as overrides, presence, failover
 * elections and holds, outages and resyncs (docs/cluster.md; the wiring: docs/cluster-wiring.md).
 *
 * This module only carries messages: it reads etcd once at start (to choose the config the daemon
 * starts with), then runs the reducer (shell/runner.ts) with its commands performed against etcd,
 * the daemon's loop and the fencer (shell/commands.ts, fencing.ts), feeds it the core's state after
 * every batch that changed it, and answers the daemon's questions (the config a local tell uses,
 * the note a local tell gets, the status answer's `cluster` field).
 */
import { randomBytes } from "node:crypto"
import { readFile } from "node:fs/promises"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Ref from "effect/Ref"
import type * as Scope from "effect/Scope"
import type { ClusterInfo } from "../codec/protocol.ts"
import type { Parsed } from "../core/config.ts"
import { parseInittab } from "../core/inittab.ts"
import type { LogService } from "../log.ts"
import type { ClusterBug, LoopService } from "../runtime/ports.ts"
import { fenceMarker, fenceMarkerVariable } from "../fence.ts"
import { sha256Of } from "./codecs.ts"
import type { Fencing } from "./fencing.ts"
import { makeFencing } from "./fencing.ts"
import { nameProblem } from "./keys.ts"
import { infoOf, initialRunning } from "./node/info.ts"
import { startNode, stopped } from "./node/reduce.ts"
import { configOf, parsedOf } from "./node/step.ts"
import type { ClusterSnapshot, Local, NodeState, Running } from "./node/types.ts"
import { makePerform } from "./shell/commands.ts"
import type { Input, Runner } from "./shell/runner.ts"
import { makeRunner } from "./shell/runner.ts"
import type { ClusterOptions, ClusterStore } from "./store.ts"
import { makeClusterStore } from "./store.ts"

export interface AgentOptions {
  /** etcd client URLs, comma-separated. */
  readonly hosts: string
  readonly cluster?: string | undefined
  readonly node: string
  /** TTL of the node's presence lease (`--lease-ttl`, default 10 s). */
  readonly leaseTtlSeconds?: number | undefined
  readonly callTimeoutMs?: number | undefined
  /** The isinittab run while etcd has no config. */
  readonly localConfigPath: string
  /** TLS, credentials and the keys configs must be signed with (isinitd's --etcd-* and --trusted-keys). */
  readonly secure?: Pick<ClusterOptions, "security" | "trustedKeys"> | undefined
  readonly log: LogService
}

export interface ClusterAgent {
  readonly cluster: string
  readonly node: string
  /** The config the daemon starts with (etcd's, else the local file's, else an empty one). */
  readonly initialConfig: Parsed
  /** The config a tell, plan or reload uses now: etcd's; else the local file, read now. */
  readonly currentConfig: () => Effect.Effect<Parsed, string>
  /** Starts the node against the daemon's loop, for the life of the scope; gives back what fails on a bug. */
  readonly start: (loop: LoopService) => Effect.Effect<Effect.Effect<never, ClusterBug>, never, Scope.Scope>
  /** A local tell the loop accepted: record it as this node's override; resolves with the client's note (within about a second). */
  readonly recordLocalTell: (group: string, level: string) => Effect.Effect<string>
  /** For the local status answer. */
  readonly info: () => ClusterInfo
  /** What a failover group's child gets in its environment: its epoch and the fencer's marker. */
  readonly failoverEnvironment: (group: string, epoch: number) => Readonly<Record<string, string>>
  /** After the core halted (stopall, SIGTERM): held groups handed over cleanly, leases given back (at most 5 s). */
  readonly stop: () => Effect.Effect<void>
}

export interface AgentStartFailure {
  readonly _tag: "AgentStartFailure"
  readonly message: string
}

/** A tagged error's or an Error's message. */
const describe = (error: unknown): string =>
  typeof error === "object" && error !== null && "message" in error ? String((error as { readonly message: unknown }).message) : String(error)

/** Reads and parses the local isinittab; a file that cannot be read runs nothing. */
const readLocal = (path: string): Effect.Effect<Local> =>
  Effect.match(
    Effect.tryPromise({ try: () => readFile(path, "utf8"), catch: (e) => `cannot read ${path}: ${describe(e)}` }),
    {
      onFailure: (reason): Local => ({ _tag: "None", reason }),
      onSuccess: (text): Local => ({ _tag: "File", parsed: parseInittab(text), sha256: sha256Of(text) }),
    },
  )

/** Start-up: one read of etcd, then etcd's config, else the local file, else nothing; logged. */
const startingPoint = (store: ClusterStore, options: AgentOptions) =>
  Effect.gen(function* () {
    const { log } = options
    const read = yield* Effect.result(store.readAll())
    const snapshot: ClusterSnapshot | undefined = read._tag === "Success" ? read.success : undefined
    const config = snapshot?.obeyed.config
    if (config !== undefined) {
      log.line({ what: "cluster", message: `running config #${config.value.seq} from etcd (sha256 ${config.value.sha256.slice(0, 12)})` })
      return { snapshot, running: initialRunning(snapshot, { _tag: "None", reason: "unused" }) }
    }
    if (read._tag === "Failure") log.line({ what: "etcd-outage", message: `${read.failure.message}; starting without etcd, retrying` })
    const local = yield* readLocal(options.localConfigPath)
    const why = read._tag === "Success" ? "etcd has no config yet" : "etcd is unreachable"
    const message =
      local._tag === "File"
        ? `${why}: running the local isinittab ${options.localConfigPath} (not pushed)`
        : `${why}, and ${local.reason}: running nothing until a config arrives`
    log.line({ what: "cluster", message })
    return { snapshot, running: initialRunning(snapshot, local) }
  })

/** Local clients waiting for the note of their tell. */
const makeReplies = () => {
  let seq = 0
  const waiting = new Map<number, (note: string) => void>()
  return {
    ask: (offer: (input: Input) => void, group: string, level: string): Effect.Effect<string> =>
      Effect.callback<string>((resume) => {
        const request = ++seq
        waiting.set(request, (note) => resume(Effect.succeed(note)))
        offer((now) => ({ _tag: "LocalTell", now, request, group, level }))
        return Effect.sync(() => void waiting.delete(request))
      }),
    reply: (request: number, note: string): void => {
      waiting.get(request)?.(note)
      waiting.delete(request)
    },
  }
}

/** The status answer's `cluster` field, from the node's state (its monotonic `since` as a date). */
const clusterInfo = (options: AgentOptions, cluster: string, state: NodeState | undefined, now: () => number): ClusterInfo => {
  if (state === undefined) {
    return { cluster, node: options.node, etcd: options.hosts, connected: false, since: new Date().toISOString(), error: "starting", configSource: "none", configSeq: null, configSha256: null, pendingOverrides: [] }
  }
  const info = infoOf(state)
  return {
    cluster,
    node: info.node,
    etcd: options.hosts,
    connected: info.connected,
    since: new Date(Date.now() - (now() - info.since)).toISOString(),
    ...(info.error === undefined ? {} : { error: info.error }),
    configSource: info.configSource,
    configSeq: info.configSeq,
    configSha256: info.configSha256,
    pendingOverrides: info.pendingOverrides,
    failover: info.failover,
    identity: info.identity,
  }
}

/** How long a stopping daemon waits for its groups to be handed over and its leases given back. */
const stopWithinMs = 5_000

/** Runs the node once the daemon's loop is there; the runner lives as long as the scope. */
const startNodeRunner = (deps: {
  readonly options: AgentOptions
  readonly store: ClusterStore
  readonly instance: string
  readonly start: { readonly snapshot: ClusterSnapshot | undefined; readonly running: Running }
  readonly fencing: Fencing
  readonly replies: ReturnType<typeof makeReplies>
  readonly loop: LoopService
}) =>
  Effect.gen(function* () {
    const { options, loop, store, fencing } = deps
    const scope = yield* Effect.scope
    const [initial, startCommands] = startNode({
      node: options.node,
      instance: deps.instance,
      presenceTtlMs: (options.leaseTtlSeconds ?? 10) * 1000,
      running: deps.start.running,
      snapshot: deps.start.snapshot,
      core: yield* Ref.get(loop.state),
      now: loop.now(),
    })
    const runner = yield* makeRunner({ initial, startCommands, now: loop.now, log: options.log })
    const { perform, stopWatching, revoked } = makePerform({
      store,
      node: options.node,
      loop,
      fencing,
      log: options.log,
      scope,
      state: runner.state,
      offer: runner.offer,
      reply: deps.replies.reply,
      readLocal: () => readLocal(options.localConfigPath),
    })
    // A config with failover groups: the fencer runs before the first hold needs it.
    const fencerIfNeeded = (state: NodeState): void => {
      if (configOf(state).failover.groups.size > 0) fencing.ensure()
    }
    fencerIfNeeded(initial)
    runner.onStep(fencerIfNeeded)
    yield* Effect.addFinalizer(() => Effect.sync(stopWatching))
    const running = yield* Effect.forkIn(runner.run(perform), scope)
    yield* Effect.forkIn(coreChanges(loop, runner), scope)
    return { runner, revoked, crashed: Fiber.join(running) }
  })

/** The core's state after every batch that changed it, as `CoreChanged` (several coalesce into the latest). */
const coreChanges = (loop: LoopService, runner: Runner): Effect.Effect<never> =>
  Effect.gen(function* () {
    let seen = yield* Ref.get(loop.state)
    let queued = false
    for (;;) {
      const next = yield* loop.waitFor((s) => s !== seen)
      if (next !== undefined) seen = next
      if (queued) continue
      queued = true
      runner.offer((now) => {
        queued = false
        return { _tag: "CoreChanged", now, core: Ref.getUnsafe(loop.state) }
      })
    }
  })

export const makeClusterAgent = (options: AgentOptions): Effect.Effect<ClusterAgent, AgentStartFailure, Scope.Scope> =>
  Effect.gen(function* () {
    const { log, node } = options
    const nodeProblem = nameProblem("node", node)
    if (nodeProblem !== undefined) return yield* Effect.fail<AgentStartFailure>({ _tag: "AgentStartFailure", message: `--node: ${nodeProblem}` })
    const store = yield* makeClusterStore({ hosts: options.hosts, cluster: options.cluster, callTimeoutMs: options.callTimeoutMs, log, ...options.secure }).pipe(
      Effect.mapError((e): AgentStartFailure => ({ _tag: "AgentStartFailure", message: `--cluster: ${e.reason}` })),
    )
    const start = yield* startingPoint(store, options)
    const instance = randomBytes(8).toString("hex")
    const replies = makeReplies()
    let runner: Runner | undefined
    let revoked: () => Promise<void> = () => Promise.resolve()
    let clock: (() => number) | undefined
    let running = start.running
    const runningNow = (): Running => runner?.state().running ?? running

    const currentConfig = (): Effect.Effect<Parsed, string> =>
      Effect.suspend(() => {
        const now = runningNow()
        if (now._tag === "Etcd") return Effect.succeed(now.config.parsed)
        return Effect.flatMap(readLocal(options.localConfigPath), (local) => {
          // etcd's config may have arrived while the file was read.
          const after = runningNow()
          if (after._tag === "Etcd") return Effect.succeed(after.config.parsed)
          running = local
          runner?.offer((at) => ({ _tag: "LocalFile", now: at, local }))
          return local._tag === "File"
            ? Effect.succeed(local.parsed)
            : Effect.fail(`no config: etcd has none yet and ${local.reason}; push one with isinit --etcd URLS config push FILE`)
        })
      })

    const agent: ClusterAgent = {
      cluster: store.cluster,
      node,
      initialConfig: parsedOf(start.running),
      currentConfig,
      start: (loop) =>
        Effect.gen(function* () {
          const made = makeFencing({ instance, now: loop.now, log })
          clock = loop.now
          yield* Effect.addFinalizer(() => Effect.sync(() => made.close()))
          const started = yield* startNodeRunner({ options, store, instance, start, fencing: made, replies, loop })
          runner = started.runner
          revoked = started.revoked
          return started.crashed
        }),
      recordLocalTell: (group, level) => (runner === undefined ? Effect.succeed("applied here; the cluster agent is still starting") : replies.ask(runner.offer, group, level)),
      info: () => clusterInfo(options, store.cluster, runner?.state(), clock ?? (() => 0)),
      failoverEnvironment: (group, epoch) => ({ ISINIT_EPOCH: String(epoch), [fenceMarkerVariable]: fenceMarker(instance, group, epoch) }),
      stop: () => stopRunner(runner, () => revoked()),
    }
    return agent
  })

/** Feeds `Stopping` and waits (bounded) until the node has handed its groups over and its leases are revoked. */
const stopRunner = (runner: Runner | undefined, revoked: () => Promise<void>): Effect.Effect<void> => {
  if (runner === undefined) return Effect.void
  return Effect.callback<void>((resume) => {
    let done = false
    const finish = (): void => {
      if (done) return
      done = true
      clearTimeout(timer)
      resume(Effect.void)
    }
    const timer = setTimeout(finish, stopWithinMs)
    runner.onStep((state) => {
      if (stopped(state)) void revoked().then(finish)
    })
    runner.offer((now) => ({ _tag: "Stopping", now }))
  })
}
