/**
 * The daemon side of cluster mode: what `isinitd --etcd URLS` adds to a daemon.
 *
 * - Config: the daemon runs the config stored in etcd. While etcd has none (or cannot be reached
 *   at start), it runs its local isinittab (`-c`, `$ISINITTAB`, `/etc/isinittab`), re-read at each
 *   tell as in single-host mode, and never pushes it. When a config appears or changes in etcd, the
 *   daemon switches to it with a `Reload` (as SIGHUP does): every group re-enters its level.
 * - Desired levels: read at one revision, then watched from it (store.ts). After every change the
 *   agent tells each group whose effective desired level (desired.ts) has a revision it has not
 *   taken yet, as a `Tell` event through the daemon's loop: the reducer decides, and a refused tell
 *   is logged with its reason and changes nothing. A group already at the wanted level (starting or
 *   running) only takes the revision: converging, not replaying, so a restarted or reconnected
 *   daemon does not re-run `wait`/`test` entries of a level it is already in.
 * - Local tells (`isinit GROUP LEVEL` on the host) apply at once through the loop as always, and
 *   are recorded in etcd as this node's override; if etcd is down the write is retried until it
 *   lands (latest level per group wins), so a restarted daemon converges to the same state.
 * - Presence: after every batch of the loop that changed the state, the node's report, the config
 *   hash and the revisions taken are published on the node's lease (one publish in flight, the
 *   latest state wins; failures are retried with backoff).
 * - Outages change nothing that runs: they are logged, shown in the local status answer, retried
 *   with backoff and followed by a resync.
 */
import { readFile } from "node:fs/promises"
import * as Effect from "effect/Effect"
import * as Queue from "effect/Queue"
import * as Ref from "effect/Ref"
import type * as Scope from "effect/Scope"
import type { ClusterInfo } from "../codec/protocol.ts"
import type { Parsed } from "../core/config.ts"
import { emptyConfig } from "../core/config.ts"
import { rejectionOf } from "../core/effects.ts"
import { reload, tell } from "../core/events.ts"
import { parseInittab } from "../core/inittab.ts"
import { report } from "../core/report.ts"
import type { State } from "../core/state.ts"
import { groupOf } from "../core/state.ts"
import type { LogService } from "../log.ts"
import type { LoopService } from "../runtime/ports.ts"
import type { NodeStatus } from "./codecs.ts"
import { sha256Of } from "./codecs.ts"
import type { ToldLevels, EtcdView, Effective, Obeyed, StoredConfig, WatchEvent } from "./desired.ts"
import { applyEvent, effectiveFor, emptyObeyed, pendingTells } from "./desired.ts"
import { nameProblem } from "./keys.ts"
import type { ClusterOptions, StatusInput } from "./store.ts"
import { makeClusterStore } from "./store.ts"

export interface AgentOptions {
  /** etcd client URLs, comma-separated. */
  readonly hosts: string
  readonly cluster?: string | undefined
  readonly node: string
  readonly leaseTtlSeconds?: number | undefined
  readonly callTimeoutMs?: number | undefined
  readonly backoff?: { readonly initialMs: number; readonly maxMs: number } | undefined
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
  /** The config a tell, plan or reload uses now. */
  readonly currentConfig: () => Effect.Effect<Parsed, string>
  /** Starts converging and publishing against the daemon's loop, for the life of the scope. */
  readonly start: (loop: LoopService) => Effect.Effect<void, never, Scope.Scope>
  /**
   * A local tell the loop accepted: record it as this node's override. Resolves (within about a
   * second) with a note for the client: recorded, or queued until etcd answers.
   */
  readonly recordLocalTell: (group: string, level: string) => Effect.Effect<string>
  /** For the local status answer. */
  readonly info: () => ClusterInfo
}

export interface AgentStartFailure {
  readonly _tag: "AgentStartFailure"
  readonly message: string
}

/** What runs: etcd's config, the local file (before etcd has one), or nothing readable. */
type Local = { readonly _tag: "File"; readonly parsed: Parsed; readonly sha256: string } | { readonly _tag: "None"; readonly reason: string }
type Running = { readonly _tag: "Etcd"; readonly config: StoredConfig } | Local

const describe = (error: unknown): string =>
  typeof error === "object" && error !== null && "message" in error ? String((error as { readonly message: unknown }).message) : String(error)

const emptyParsed: Parsed = { config: emptyConfig, problems: [] }

/** Reads and parses the local isinittab; a file with errors is refused like one that is missing. */
const readLocal = (path: string): Effect.Effect<Local> =>
  Effect.match(
    Effect.tryPromise({ try: () => readFile(path, "utf8"), catch: (e) => `cannot read ${path}: ${describe(e)}` }),
    {
      onFailure: (reason): Local => ({ _tag: "None", reason }),
      onSuccess: (text): Local => {
        const parsed = parseInittab(text)
        return { _tag: "File", parsed, sha256: sha256Of(text) }
      },
    },
  )

const parsedOf = (running: Running): Parsed =>
  running._tag === "Etcd" ? running.config.parsed : running._tag === "File" ? running.parsed : emptyParsed

/** A group already moving into or at `level` has nothing to do for a desired level equal to it. */
const alreadyAt = (state: State, group: string, level: string): boolean => {
  const g = groupOf(state, group)
  return g.level === level && (g.phase === "start" || g.phase === "run")
}

interface PendingOverride {
  level: string
  readonly waiters: Array<(note: string) => void>
}

export const makeClusterAgent = (options: AgentOptions): Effect.Effect<ClusterAgent, AgentStartFailure, Scope.Scope> =>
  Effect.gen(function* () {
    const { log, node } = options
    const nodeProblem = nameProblem("node", node)
    if (nodeProblem !== undefined) return yield* Effect.fail<AgentStartFailure>({ _tag: "AgentStartFailure", message: `--node: ${nodeProblem}` })
    const backoff = options.backoff ?? { initialMs: 200, maxMs: 5_000 }
    const store = yield* makeClusterStore({
      hosts: options.hosts,
      cluster: options.cluster,
      leaseTtlSeconds: options.leaseTtlSeconds,
      callTimeoutMs: options.callTimeoutMs,
      backoff,
      log,
      ...options.secure,
    }).pipe(Effect.mapError((e): AgentStartFailure => ({ _tag: "AgentStartFailure", message: `--cluster: ${e.reason}` })))
    const cluster = store.cluster

    // ---------------------------------------------------------------------------------------------
    // Connection state, for the local status answer

    const nowIso = (): string => new Date().toISOString()
    let watchError: string | undefined
    let publishError: string | undefined
    let connectedSince = nowIso()
    let wasConnected = true
    const noteConnection = (): void => {
      const connected = watchError === undefined && publishError === undefined
      if (connected !== wasConnected) connectedSince = nowIso()
      wasConnected = connected
    }

    // ---------------------------------------------------------------------------------------------
    // Start: etcd's config if it has one, else the local file

    const first = yield* Effect.match(store.readDesired(), {
      onFailure: (e) => ({ _tag: "Down", reason: e.message }) as const,
      onSuccess: (snapshot) => ({ _tag: "Read", snapshot }) as const,
    })
    let initialSnapshot: EtcdView | undefined
    let running: Running
    if (first._tag === "Read" && first.snapshot.obeyed.config !== undefined) {
      initialSnapshot = first.snapshot
      running = { _tag: "Etcd", config: first.snapshot.obeyed.config }
      log.line({ what: "cluster", message: `running config #${running.config.value.seq} from etcd (sha256 ${running.config.value.sha256.slice(0, 12)})` })
    } else {
      if (first._tag === "Read") initialSnapshot = first.snapshot
      else {
        watchError = first.reason
        noteConnection()
        log.line({ what: "etcd-outage", message: `${first.reason}; starting without etcd, retrying` })
      }
      running = yield* readLocal(options.localConfigPath)
      const why = first._tag === "Read" ? "etcd has no config yet" : "etcd is unreachable"
      log.line({
        what: "cluster",
        message:
          running._tag === "File"
            ? `${why}: running the local isinittab ${options.localConfigPath} (not pushed)`
            : `${why}, and ${running._tag === "None" ? running.reason : "?"}: running nothing until a config arrives`,
      })
    }
    const initialConfig = parsedOf(running)

    /** The config for a tell now: etcd's; or the local file read afresh, as single-host mode does. */
    const currentConfig = (): Effect.Effect<Parsed, string> =>
      Effect.suspend(() => {
        if (running._tag === "Etcd") return Effect.succeed(running.config.parsed)
        return Effect.flatMap(readLocal(options.localConfigPath), (local) => {
          // etcd's config may have arrived while the file was read.
          if (running._tag === "Etcd") return Effect.succeed(running.config.parsed)
          running = local
          return local._tag === "File"
            ? Effect.succeed(local.parsed)
            : Effect.fail(`no config: etcd has none yet and ${local.reason}; push one with isinit --etcd URLS config push FILE`)
        })
      })

    // ---------------------------------------------------------------------------------------------
    // What this node has taken from etcd

    let obeyed: Obeyed = initialSnapshot?.obeyed ?? emptyObeyed
    let applied: ToldLevels = new Map()
    const taken = new Map<string, Effective>()
    /** Groups whose desired level the reducer refused: retried when the config changes. */
    const refused = new Set<string>()
    /** Local tells not yet recorded in etcd, by group. */
    const overrides = new Map<string, PendingOverride>()
    /** Local tells recorded in etcd whose watch echo must not be told again. */
    const echoes = new Map<string, string>()

    const kicks = yield* Queue.sliding<true>(1)
    const kick = (): void => void Queue.offerUnsafe(kicks, true)
    const writes = yield* Queue.sliding<true>(1)
    const wakeWriter = (): void => void Queue.offerUnsafe(writes, true)

    const info = (): ClusterInfo => {
      const error = watchError ?? publishError
      return {
        cluster,
        node,
        etcd: options.hosts,
        connected: error === undefined,
        since: connectedSince,
        ...(error === undefined ? {} : { error }),
        configSource: running._tag === "Etcd" ? "etcd" : running._tag === "File" ? "file" : "none",
        configSeq: running._tag === "Etcd" ? running.config.value.seq : null,
        configSha256: running._tag === "Etcd" ? running.config.value.sha256 : running._tag === "File" ? running.sha256 : null,
        pendingOverrides: [...overrides].map(([group, o]) => `${group}=${o.level}`),
      }
    }

    const start = (loop: LoopService): Effect.Effect<void, never, Scope.Scope> =>
      Effect.gen(function* () {
        const take = (group: string, wanted: Effective): void => {
          applied = new Map([...applied, [group, { level: wanted.level, revision: wanted.revision }]])
          taken.set(group, wanted)
        }

        const applyConfig = (config: StoredConfig): Effect.Effect<void> =>
          Effect.gen(function* () {
            running = { _tag: "Etcd", config }
            const result = yield* loop.submit(reload(config.parsed, loop.now()))
            const rejected = rejectionOf(result.effects)
            if (rejected !== undefined) log.line({ what: "rejected", message: `config #${config.value.seq} from etcd: ${rejected.reason}` })
            else log.line({ what: "cluster", message: `config #${config.value.seq} from etcd applied (sha256 ${config.value.sha256.slice(0, 12)})` })
            // Levels refused under the old config get another chance under the new one.
            if (refused.size > 0) {
              applied = new Map([...applied].filter(([group]) => !refused.has(group)))
              refused.clear()
            }
          })

        const tellOne = (group: string, wanted: Effective): Effect.Effect<void> =>
          Effect.gen(function* () {
            const { level, revision, source } = wanted
            const state = yield* Ref.get(loop.state)
            const echo = echoes.get(group)
            echoes.delete(group)
            if (source === "node" && echo === level && groupOf(state, group).level === level) return take(group, wanted)
            if (alreadyAt(state, group, level)) return take(group, wanted)
            const parsed = yield* Effect.orElseSucceed(currentConfig(), () => emptyParsed)
            const what = `desired ${group}=${level} from etcd (${source === "node" ? `override for ${node}` : "cluster-wide"}, revision ${revision})`
            const rejected = rejectionOf((yield* loop.submit(tell(group, level, parsed, loop.now()))).effects)
            take(group, wanted)
            if (rejected !== undefined) {
              refused.add(group)
              log.line({ what: "rejected", group, message: `${what}: ${rejected.reason}; nothing was changed` })
            } else {
              refused.delete(group)
              log.line({ what: "cluster", group, message: `${what}: told` })
            }
          })

        const converge = Effect.gen(function* () {
          const config = obeyed.config
          if (config !== undefined && !(running._tag === "Etcd" && running.config.value.sha256 === config.value.sha256)) yield* applyConfig(config)
          else if (config !== undefined) running = { _tag: "Etcd", config }
          const effective = effectiveFor(obeyed, node)
          for (const group of taken.keys()) if (!effective.has(group)) taken.delete(group)
          applied = new Map([...applied].filter(([group]) => effective.has(group)))
          for (const pending of pendingTells(effective, applied)) {
            const wanted = effective.get(pending.group)
            if (wanted !== undefined) yield* tellOne(pending.group, wanted)
          }
          kick()
        })

        const onChange = (event: WatchEvent): Effect.Effect<void> =>
          Effect.suspend(() => {
            switch (event._tag) {
              case "Outage":
                watchError = event.reason
                noteConnection()
                return Effect.void
              case "Resynced":
                watchError = undefined
                noteConnection()
                obeyed = event.view.obeyed
                wakeWriter()
                return converge
              case "ConfigCleared":
                log.line({ what: "cluster", message: "the config was deleted from etcd: keeping the one that runs" })
                obeyed = applyEvent(obeyed, event)
                return converge
              default:
                obeyed = applyEvent(obeyed, event)
                return converge
            }
          })

        const retryDelay = (attempt: number): number => Math.min(backoff.maxMs, backoff.initialMs * 2 ** Math.min(attempt, 20))

        /** The first read (again, if it failed at start), then the watch from its revision. */
        const follow = Effect.gen(function* () {
          let snapshot = initialSnapshot
          for (let attempt = 0; snapshot === undefined; attempt++) {
            yield* Effect.sleep(retryDelay(attempt))
            snapshot = yield* Effect.match(store.readDesired(), {
              onFailure: (e) => {
                watchError = e.message
                noteConnection()
                return undefined
              },
              onSuccess: (s) => s,
            })
          }
          yield* onChange({ _tag: "Resynced", view: snapshot })
          return yield* store.watchDesired(snapshot.obeyed.revision, onChange)
        })

        const statusInput = (state: State): StatusInput => ({
          configSha256: running._tag === "Etcd" ? running.config.value.sha256 : running._tag === "File" ? running.sha256 : null,
          configSeq: running._tag === "Etcd" ? running.config.value.seq : null,
          desired: Object.fromEntries(taken) as NodeStatus["desired"],
          report: report(state),
        })

        /** One publish at a time, of the latest state; a failed one is retried after a backoff. */
        const publisher = Effect.gen(function* () {
          let last = ""
          let attempt = 0
          for (;;) {
            yield* Queue.take(kicks)
            const input = statusInput(yield* Ref.get(loop.state))
            const text = JSON.stringify(input)
            if (text === last) continue
            const failed = yield* Effect.match(store.publishStatus(node, input), {
              onFailure: (e) => describe(e),
              onSuccess: () => undefined,
            })
            if (failed === undefined) {
              if (publishError !== undefined) log.line({ what: "cluster", message: `status published again as node ${node}` })
              publishError = undefined
              noteConnection()
              last = text
              attempt = 0
              continue
            }
            if (publishError === undefined) log.line({ what: "etcd-outage", message: `publishing the status failed: ${failed}; retrying` })
            publishError = failed
            noteConnection()
            yield* Effect.sleep(retryDelay(attempt++))
            kick()
          }
        })

        /** Each batch of the loop that changed the state asks for a publish. */
        const batches = Effect.gen(function* () {
          let seen = yield* Ref.get(loop.state)
          for (;;) {
            const next = yield* loop.waitFor((s) => s !== seen)
            if (next !== undefined) seen = next
            kick()
          }
        })

        /** Writes local tells to etcd as overrides; keeps the latest per group until it lands. */
        const writer = Effect.gen(function* () {
          let attempt = 0
          for (;;) {
            yield* Queue.take(writes)
            let failed = false
            // A copy: local tells may add to the map while a write is under way.
            for (const [group, pending] of Array.from(overrides)) {
              const level = pending.level
              echoes.set(group, level)
              const outcome = yield* Effect.match(store.setDesired(group, level, { node, by: `isinit on ${node}` }), {
                onFailure: (e) => e,
                onSuccess: (r) => r,
              })
              // A newer local tell of the group may have arrived meanwhile: it stays for the next round.
              const current = pending.level === level
              const waiters = current ? pending.waiters.splice(0) : []
              if ("revision" in outcome) {
                if (current) overrides.delete(group)
                const note = `recorded in etcd as ${node}'s override (revision ${outcome.revision})`
                log.line({ what: "cluster", group, message: `local tell ${group} ${level} ${note}` })
                for (const w of waiters) w(note)
              } else if (outcome._tag === "EtcdUnavailable") {
                failed = true
                const note = `applied here; etcd did not answer (${outcome.reason}): the override is written once it does`
                for (const w of waiters) w(note)
              } else if (current) {
                overrides.delete(group)
                echoes.delete(group)
                const note = `applied here only: etcd refused the override: ${outcome.message}`
                log.line({ what: "rejected", group, message: `local tell ${group} ${level} ${note}` })
                for (const w of waiters) w(note)
              }
            }
            if (!failed) {
              attempt = 0
              if (overrides.size > 0) wakeWriter()
              continue
            }
            yield* Effect.sleep(retryDelay(attempt++))
            wakeWriter()
          }
        })

        yield* Effect.forkScoped(publisher)
        yield* Effect.forkScoped(batches)
        yield* Effect.forkScoped(writer)
        yield* Effect.forkScoped(follow)
        kick()
      })

    const recordLocalTell = (group: string, level: string): Effect.Effect<string> =>
      Effect.callback<string>((resume) => {
        const pending = overrides.get(group) ?? { level, waiters: [] }
        pending.level = level
        let done = false
        const finish = (note: string): void => {
          if (done) return
          done = true
          clearTimeout(timer)
          resume(Effect.succeed(note))
        }
        pending.waiters.push(finish)
        overrides.set(group, pending)
        const timer = setTimeout(() => finish("applied here; recording it in etcd is taking long (see the daemon's log)"), 1_000)
        wakeWriter()
        return Effect.sync(() => {
          done = true
          clearTimeout(timer)
        })
      })

    return { cluster, node, initialConfig, currentConfig, start, recordLocalTell, info } satisfies ClusterAgent
  })
