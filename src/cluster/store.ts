/**
 * Cluster mode's access to etcd, as an Effect service over the `etcd3` client. Key layout and
 * precedence: keys.ts. Values: codecs.ts. The pure view and convergence rules: desired.ts.
 *
 * Failure model: every one-shot operation fails with a typed `EtcdUnavailable` (bounded by a call
 * deadline) and is never retried behind the caller's back except for lost transaction races.
 * The watch and the node presence are long-lived: they survive outages on their own, retrying with
 * capped exponential backoff; the watch reports the outage, then resynchronises (reads everything
 * at the current revision and watches from there). Bad keys and values never fail an operation:
 * they come back as rejections with a reason, and are logged.
 */
import type { IKeyValue, IOptions, IWatchResponse, Lease, Watcher } from "etcd3"
import { Etcd3 } from "etcd3"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Queue from "effect/Queue"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import * as Semaphore from "effect/Semaphore"
import { hasErrors } from "../core/config.ts"
import { parseInittab } from "../core/inittab.ts"
import type { LogService } from "../log.ts"
import type { ConfigValue, NodeStatus, SeenValue } from "./codecs.ts"
import {
  decodeConfig,
  decodeConfigValue,
  decodeDesired,
  decodeNodeStatus,
  decodeSeen,
  describeProblems,
  encodeValue,
  sha256Of,
} from "./codecs.ts"
import type { EtcdView, Obeyed, Rejection, StoredConfig, WatchEvent } from "./desired.ts"
import { applyEvent, emptyObeyed } from "./desired.ts"
import type { ClusterKey, Target } from "./keys.ts"
import {
  clusterTarget,
  configHistoryKey,
  configHistoryPrefix,
  configKey,
  defaultCluster,
  desiredKeyFor,
  nameProblem,
  nodeTarget,
  nodeStatusKey,
  nodeStatusPrefix,
  obeyedRange,
  parseKey,
  seenKey,
  seenPrefix,
} from "./keys.ts"

// ---------------------------------------------------------------------------------------------
// Errors

/** etcd did not answer (down, unreachable, deadline passed) or refused the call. */
export class EtcdUnavailable extends Data.TaggedError("EtcdUnavailable")<{
  readonly operation: string
  readonly reason: string
}> {
  override get message(): string {
    return `etcd unavailable (${this.operation}): ${this.reason}`
  }
}

/** `config push` of an isinittab with errors: one `line N: message` per error. */
export class ConfigRejected extends Data.TaggedError("ConfigRejected")<{ readonly problems: readonly string[] }> {
  override get message(): string {
    return `config rejected:\n${this.problems.join("\n")}`
  }
}

export class InvalidName extends Data.TaggedError("InvalidName")<{ readonly reason: string }> {
  override get message(): string {
    return this.reason
  }
}

/** A desired level for a group that the stored config does not define. */
export class UnknownGroup extends Data.TaggedError("UnknownGroup")<{ readonly group: string; readonly configSeq: number }> {
  override get message(): string {
    return `unknown group "${this.group}": config #${this.configSeq} in etcd does not define it`
  }
}

/** A transaction kept losing races with other writers. */
export class Contended extends Data.TaggedError("Contended")<{ readonly operation: string }> {
  override get message(): string {
    return `${this.operation}: too many concurrent writers, try again`
  }
}

// ---------------------------------------------------------------------------------------------
// The service

export interface ClusterOptions {
  /** etcd client URLs, e.g. `http://127.0.0.1:2379` (a comma-separated string is split). */
  readonly hosts: string | readonly string[]
  readonly cluster?: string | undefined
  /** Lease of each node's status (default 10 s): a dead node drops out within this time. */
  readonly leaseTtlSeconds?: number | undefined
  /** Deadline of every one-shot call (default 5 s). */
  readonly callTimeoutMs?: number | undefined
  /** Backoff of the watch and presence retries: starts here, doubles, capped (default 200 ms to 5 s). */
  readonly backoff?: { readonly initialMs: number; readonly maxMs: number } | undefined
  readonly log?: LogService | undefined
  /** Revoke node leases when the store closes (default true), so a clean stop shows at once. */
  readonly revokeOnClose?: boolean | undefined
}

export interface PushedConfig {
  readonly _tag: "Pushed" | "Unchanged"
  readonly seq: number
  readonly revision: number
  readonly sha256: string
  /** Warnings of the parse, `line N: message`. */
  readonly warnings: readonly string[]
}

export type ConfigRead =
  | { readonly _tag: "None" }
  | { readonly _tag: "Valid"; readonly config: StoredConfig }
  | { readonly _tag: "Invalid"; readonly rejection: Rejection }

export interface HistoryEntry extends ConfigValue {
  readonly revision: number
}

/** What a node publishes; the store adds its name and the time. */
export type StatusInput = Omit<NodeStatus, "node" | "at">

export interface Nodes {
  readonly revision: number
  /** Nodes whose status is on a live lease, by name. */
  readonly live: readonly NodeStatus[]
  /** Nodes seen before whose status is gone (lease expired or revoked), by name. */
  readonly missing: readonly SeenValue[]
  readonly rejections: readonly Rejection[]
}

export interface ClusterStore {
  readonly cluster: string
  /** Config and desired levels at one revision; the watch continues from `obeyed.revision`. */
  readonly readDesired: () => Effect.Effect<EtcdView, EtcdUnavailable>
  /**
   * Reports every change after `fromRevision`, in order, to `onChange` (one at a time), until
   * interrupted. Outages are reported, retried with backoff and followed by a `Resynced` view.
   */
  readonly watchDesired: (fromRevision: number, onChange: (event: WatchEvent) => Effect.Effect<void>) => Effect.Effect<never>
  /** Sets a group's desired level, cluster-wide or (with `node`) as that node's override. */
  readonly setDesired: (
    group: string,
    level: string,
    options?: { readonly node?: string | undefined; readonly by?: string | undefined },
  ) => Effect.Effect<{ readonly revision: number }, EtcdUnavailable | InvalidName | UnknownGroup>
  /** Removes a desired level; for a node override, the cluster-wide level applies again. */
  readonly clearDesired: (
    group: string,
    options?: { readonly node?: string | undefined },
  ) => Effect.Effect<{ readonly revision: number; readonly deleted: boolean }, EtcdUnavailable | InvalidName>
  /** Validates and stores an isinittab; identical text is not pushed again. */
  readonly pushConfig: (
    text: string,
    options?: { readonly by?: string | undefined },
  ) => Effect.Effect<PushedConfig, ConfigRejected | EtcdUnavailable | Contended>
  readonly currentConfig: () => Effect.Effect<ConfigRead, EtcdUnavailable>
  /** Every pushed config, oldest first. */
  readonly configHistory: () => Effect.Effect<{ readonly entries: readonly HistoryEntry[]; readonly rejections: readonly Rejection[] }, EtcdUnavailable>
  /**
   * Publishes `node`'s status on its lease (granted on first use, kept alive, re-granted and
   * re-published with backoff if lost) and marks the node seen.
   */
  readonly publishStatus: (node: string, status: StatusInput) => Effect.Effect<void, EtcdUnavailable | InvalidName>
  /** Revokes `node`'s lease: its status disappears now (a clean stop). */
  readonly withdraw: (node: string) => Effect.Effect<void, EtcdUnavailable>
  readonly nodes: () => Effect.Effect<Nodes, EtcdUnavailable>
  readonly liveNodes: () => Effect.Effect<readonly NodeStatus[], EtcdUnavailable>
  readonly missingNodes: () => Effect.Effect<readonly SeenValue[], EtcdUnavailable>
  /** Stops listing a missing node (decommissioned). */
  readonly forgetNode: (node: string) => Effect.Effect<void, EtcdUnavailable | InvalidName>
}

export class Cluster extends Context.Service<Cluster, ClusterStore>()("isinit/cluster/Cluster") {}

export const layer = (options: ClusterOptions): Layer.Layer<Cluster, InvalidName> => Layer.effect(Cluster, makeClusterStore(options))

// ---------------------------------------------------------------------------------------------
// Helpers

const describe = (error: unknown): string => (error instanceof Error ? `${error.name}: ${error.message}` : String(error))

const splitHosts = (hosts: string | readonly string[]): string[] =>
  (typeof hosts === "string" ? hosts.split(",") : [...hosts]).map((h) => h.trim()).filter((h) => h !== "")

type HostPolicy = ReturnType<NonNullable<NonNullable<IOptions["faultHandling"]>["host"]>>

/**
 * etcd3 guards each host with a circuit breaker that refuses calls for 5 s after three failures,
 * which would delay every resync after an outage; our own backoff already paces retries.
 */
const passThrough: HostPolicy = {
  _altReturn: undefined as never,
  onSuccess: () => ({ dispose: () => undefined }),
  onFailure: () => ({ dispose: () => undefined }),
  execute: async (fn, signal) => fn({ signal: signal ?? new AbortController().signal }),
}

/** What the io-ts decoders of codecs.ts return, seen structurally (this module speaks effect, not fp-ts). */
type Decoded<A> = { readonly _tag: "Left"; readonly left: string } | { readonly _tag: "Right"; readonly right: A }

const revisionOf = (value: string | number | undefined | null): number => (value === undefined || value === null ? 0 : Number(value))

const validName = (what: string, name: string): Effect.Effect<string, InvalidName> => {
  const problem = nameProblem(what, name)
  return problem === undefined ? Effect.succeed(name) : Effect.fail(new InvalidName({ reason: problem }))
}

interface Presence {
  lease: Lease | undefined
  last: StatusInput
  withdrawn: boolean
}

// ---------------------------------------------------------------------------------------------
// Construction

export const makeClusterStore = (options: ClusterOptions): Effect.Effect<ClusterStore, InvalidName, Scope.Scope> =>
  Effect.gen(function* () {
    const cluster = yield* validName("cluster", options.cluster ?? defaultCluster)
    const ttl = options.leaseTtlSeconds ?? 10
    const callTimeoutMs = options.callTimeoutMs ?? 5_000
    const backoff = options.backoff ?? { initialMs: 200, maxMs: 5_000 }
    const log = options.log
    const retrySchedule = Schedule.min([Schedule.exponential(backoff.initialMs, 2), Schedule.spaced(backoff.maxMs)])

    const client = yield* Effect.acquireRelease(
      Effect.sync(
        () =>
          new Etcd3({
            hosts: splitHosts(options.hosts),
            dialTimeout: callTimeoutMs,
            // Streams (watch, lease keep-alive) live long; only one-shot calls get a deadline.
            defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + callTimeoutMs }),
            faultHandling: { host: () => passThrough },
            // Notice a silently vanished etcd (no RST) instead of waiting on a dead stream forever.
            grpcOptions: { "grpc.keepalive_time_ms": 10_000, "grpc.keepalive_timeout_ms": 5_000 },
          }),
      ),
      (c) => Effect.sync(() => c.close()),
    )

    const call = <A>(operation: string, run: () => Promise<A>): Effect.Effect<A, EtcdUnavailable> =>
      Effect.tryPromise({ try: run, catch: (error) => new EtcdUnavailable({ operation, reason: describe(error) }) }).pipe(
        Effect.timeoutOrElse({
          duration: callTimeoutMs + 1_000,
          orElse: () => Effect.fail(new EtcdUnavailable({ operation, reason: `no answer within ${callTimeoutMs} ms` })),
        }),
      )

    const reject = (rejection: Rejection): Rejection => {
      log?.line({ what: "etcd-rejected", message: `${rejection.key} (revision ${rejection.revision}): ${rejection.reason}` })
      return rejection
    }

    /**
     * One key-value pair of a prefix read: its parsed key if it is of `kind`, and its value if it
     * decodes and `check` accepts it; otherwise nothing, with the refusal logged into `rejections`.
     */
    const accept = <K extends ClusterKey["_tag"], A>(
      kv: IKeyValue,
      kind: K,
      decode: (text: string) => Decoded<A>,
      rejections: Rejection[],
      check: (key: Extract<ClusterKey, { readonly _tag: K }>, value: A) => string | undefined = () => undefined,
    ): { readonly key: Extract<ClusterKey, { readonly _tag: K }>; readonly value: A; readonly revision: number } | undefined => {
      const key = kv.key.toString("utf8")
      const revision = revisionOf(kv.mod_revision)
      const refuse = (reason: string): undefined => void rejections.push(reject({ key, revision, reason }))
      const parsed = parseKey(cluster, key)
      const isKind = (k: ClusterKey): k is Extract<ClusterKey, { readonly _tag: K }> => k._tag === kind
      if (!isKind(parsed)) return refuse(`unknown key: ${parsed._tag === "Unknown" ? parsed.reason : parsed._tag}`)
      const decoded = decode(kv.value.toString("utf8"))
      if (decoded._tag === "Left") return refuse(decoded.left)
      const problem = check(parsed, decoded.right)
      return problem === undefined ? { key: parsed, value: decoded.right, revision } : refuse(problem)
    }

    // -------------------------------------------------------------------------------------------
    // Reading what daemons obey

    /** The watch event a put or delete of `kv` means; undefined for keys outside the obeyed set. */
    const classify = (kv: IKeyValue, deleted: boolean): WatchEvent | undefined => {
      const key = kv.key.toString("utf8")
      const revision = revisionOf(kv.mod_revision)
      const rejected = (reason: string): WatchEvent => ({ _tag: "Rejected", rejection: reject({ key, revision, reason }) })
      const parsed = parseKey(cluster, key)
      switch (parsed._tag) {
        case "Desired": {
          if (deleted) return { _tag: "DesiredCleared", target: parsed.target, group: parsed.group, revision }
          const decoded = decodeDesired(kv.value.toString("utf8"))
          if (decoded._tag === "Left") return rejected(decoded.left)
          const { level, by, at } = decoded.right
          return { _tag: "DesiredSet", target: parsed.target, group: parsed.group, desired: { level, revision, by, at } }
        }
        case "Config": {
          if (deleted) return { _tag: "ConfigCleared", revision }
          const decoded = decodeConfig(kv.value.toString("utf8"))
          return decoded._tag === "Left" ? rejected(decoded.left) : { _tag: "ConfigSet", config: { ...decoded.right, revision } }
        }
        case "Unknown":
          return deleted ? undefined : rejected(`unknown key: ${parsed.reason}`)
        case "ConfigHistory":
        case "NodeStatus":
        case "Seen":
          return undefined
      }
    }

    const readDesired = (): Effect.Effect<EtcdView, EtcdUnavailable> =>
      Effect.map(
        call("read desired", () => client.getAll().inRange(obeyedRange(cluster)).exec()),
        (response) => {
          let obeyed: Obeyed = emptyObeyed
          const rejections: Rejection[] = []
          for (const kv of response.kvs) {
            const event = classify(kv, false)
            if (event === undefined) continue
            if (event._tag === "Rejected") rejections.push(event.rejection)
            obeyed = applyEvent(obeyed, event)
          }
          return { obeyed: { ...obeyed, revision: revisionOf(response.header.revision) }, rejections }
        },
      )

    // -------------------------------------------------------------------------------------------
    // The watch

    type Signal =
      | { readonly _tag: "Response"; readonly session: number; readonly response: IWatchResponse }
      | { readonly _tag: "Lost"; readonly session: number; readonly reason: string }

    const watchDesired = (fromRevision: number, onChange: (event: WatchEvent) => Effect.Effect<void>): Effect.Effect<never> =>
      Effect.gen(function* () {
        const signals = yield* Queue.unbounded<Signal>()
        let session = 0
        let watcher: Watcher | undefined
        let revision = fromRevision

        const open = (after: number): void => {
          session += 1
          const mine = session
          const w = client.watch().inRange(obeyedRange(cluster)).startRevision(String(after + 1)).watcher()
          w.on("data", (response) => void Queue.offerUnsafe(signals, { _tag: "Response", session: mine, response }))
          w.on("disconnected", (error) => void Queue.offerUnsafe(signals, { _tag: "Lost", session: mine, reason: describe(error) }))
          // Also a compacted start revision: the resync that follows covers it.
          w.on("error", (error) => void Queue.offerUnsafe(signals, { _tag: "Lost", session: mine, reason: describe(error) }))
          watcher = w
        }

        const close = Effect.suspend(() => {
          const w = watcher
          watcher = undefined
          session += 1
          if (w === undefined) return Effect.void
          return Effect.ignore(call("cancel watch", () => w.cancel()))
        })

        const deliver = (response: IWatchResponse): Effect.Effect<void> =>
          Effect.gen(function* () {
            // Events of one revision arrive together; anything at or below what was delivered is a replay.
            const before = revision
            for (const event of response.events) {
              const at = revisionOf(event.kv.mod_revision)
              if (at <= before) continue
              const change = classify(event.kv, event.type === "Delete")
              if (change !== undefined) yield* onChange(change)
              if (at > revision) revision = at
            }
          })

        const resync = (reason: string): Effect.Effect<void> =>
          Effect.gen(function* () {
            yield* close
            log?.line({ what: "etcd-outage", message: `watch lost: ${reason}; retrying` })
            yield* onChange({ _tag: "Outage", reason })
            const view = yield* Effect.retry(readDesired(), retrySchedule).pipe(
              Effect.catch(() => Effect.never), // unreachable: the schedule never gives up
            )
            revision = view.obeyed.revision
            log?.line({ what: "etcd-resync", message: `resynchronised at revision ${revision}` })
            yield* onChange({ _tag: "Resynced", view })
            open(revision)
          })

        open(revision)
        return yield* Effect.forever(
          Effect.gen(function* () {
            const signal = yield* Queue.take(signals)
            if (signal.session !== session) return
            if (signal._tag === "Response") yield* deliver(signal.response)
            else yield* resync(signal.reason)
          }),
        ).pipe(Effect.ensuring(close))
      })

    // -------------------------------------------------------------------------------------------
    // Desired levels

    const currentConfig = (): Effect.Effect<ConfigRead, EtcdUnavailable> =>
      Effect.map(call("read config", () => client.get(configKey(cluster)).exec()), (response): ConfigRead => {
        const kv = response.kvs[0]
        if (kv === undefined) return { _tag: "None" }
        const event = classify(kv, false)
        if (event?._tag === "ConfigSet") return { _tag: "Valid", config: event.config }
        if (event?._tag === "Rejected") return { _tag: "Invalid", rejection: event.rejection }
        return { _tag: "None" }
      })

    const setDesired: ClusterStore["setDesired"] = (group, level, opts = {}) =>
      Effect.gen(function* () {
        yield* validName("group", group)
        yield* validName("level", level)
        const target: Target = opts.node === undefined ? clusterTarget : nodeTarget(yield* validName("node", opts.node))
        const config = yield* currentConfig()
        if (config._tag === "Valid" && !config.config.parsed.config.byGroup.has(group)) {
          return yield* Effect.fail(new UnknownGroup({ group, configSeq: config.config.value.seq }))
        }
        const value = encodeValue({ level, at: new Date().toISOString(), ...(opts.by === undefined ? {} : { by: opts.by }) })
        const response = yield* call("set desired", () => client.put(desiredKeyFor(cluster, target, group)).value(value).exec())
        return { revision: revisionOf(response.header.revision) }
      })

    const clearDesired: ClusterStore["clearDesired"] = (group, opts = {}) =>
      Effect.gen(function* () {
        yield* validName("group", group)
        const target: Target = opts.node === undefined ? clusterTarget : nodeTarget(yield* validName("node", opts.node))
        const response = yield* call("clear desired", () => client.delete().key(desiredKeyFor(cluster, target, group)).exec())
        return { revision: revisionOf(response.header.revision), deleted: revisionOf(response.deleted) > 0 }
      })

    // -------------------------------------------------------------------------------------------
    // Config

    const lastHistorySeq = (): Effect.Effect<number, EtcdUnavailable> =>
      Effect.map(
        call("read history", () => client.getAll().prefix(configHistoryPrefix(cluster)).sort("Key", "Descend").limit(1).keys()),
        (keys) => {
          const key = keys[0]
          if (key === undefined) return 0
          const parsed = parseKey(cluster, key)
          return parsed._tag === "ConfigHistory" ? parsed.seq : 0
        },
      )

    const pushConfig: ClusterStore["pushConfig"] = (text, opts = {}) =>
      Effect.gen(function* () {
        const parsed = parseInittab(text)
        if (hasErrors(parsed)) return yield* Effect.fail(new ConfigRejected({ problems: describeProblems(parsed) }))
        const warnings = parsed.problems.filter((p) => p.severity === "warning").map((p) => `line ${p.line}: ${p.message}`)
        const sha256 = sha256Of(text)
        for (let attempt = 0; attempt < 10; attempt++) {
          const current = yield* call("read config", () => client.get(configKey(cluster)).exec())
          const kv = current.kvs[0]
          const stored = kv === undefined ? undefined : decodeConfig(kv.value.toString("utf8"))
          if (kv !== undefined && stored?._tag === "Right" && stored.right.value.sha256 === sha256) {
            return { _tag: "Unchanged", seq: stored.right.value.seq, revision: revisionOf(kv.mod_revision), sha256, warnings } as const
          }
          // Numbered after the history, so a hand-damaged config value cannot make a push overwrite it.
          const seq = Math.max(stored?._tag === "Right" ? stored.right.value.seq : 0, yield* lastHistorySeq()) + 1
          const value: ConfigValue = { text, sha256, seq, pushedAt: new Date().toISOString(), ...(opts.by === undefined ? {} : { by: opts.by }) }
          const encoded = encodeValue(value)
          const result = yield* call("push config", () =>
            client
              .if(configKey(cluster), "Mod", "==", revisionOf(kv?.mod_revision))
              .and(configHistoryKey(cluster, seq), "Create", "==", 0)
              .then(client.put(configKey(cluster)).value(encoded), client.put(configHistoryKey(cluster, seq)).value(encoded))
              .commit(),
          )
          if (result.succeeded) return { _tag: "Pushed", seq, revision: revisionOf(result.header.revision), sha256, warnings } as const
        }
        return yield* Effect.fail(new Contended({ operation: "push config" }))
      })

    const configHistory: ClusterStore["configHistory"] = () =>
      Effect.map(call("read history", () => client.getAll().prefix(configHistoryPrefix(cluster)).sort("Key", "Ascend").exec()), (response) => {
        const entries: HistoryEntry[] = []
        const rejections: Rejection[] = []
        for (const kv of response.kvs) {
          const ok = accept(kv, "ConfigHistory", decodeConfigValue, rejections, (key, value) => (value.seq === key.seq ? undefined : `holds push #${value.seq}`))
          if (ok !== undefined) entries.push({ ...ok.value, revision: ok.revision })
        }
        return { entries, rejections }
      })

    // -------------------------------------------------------------------------------------------
    // Presence: node status on a lease

    const presences = new Map<string, Presence>()
    const presenceLock = yield* Semaphore.make(1)
    const lost = yield* Queue.unbounded<string>()

    const grant = (node: string, presence: Presence): Effect.Effect<Lease, EtcdUnavailable> =>
      Effect.gen(function* () {
        if (presence.lease !== undefined && !presence.lease.revoked()) return presence.lease
        const lease = client.lease(ttl)
        lease.on("lost", (error) => {
          if (presence.lease !== lease) return
          presence.lease = undefined
          log?.line({ what: "etcd-lease-lost", message: `${node}: ${describe(error)}; publishing again` })
          Queue.offerUnsafe(lost, node)
        })
        yield* call("grant lease", () => lease.grant()).pipe(Effect.tapError(() => Effect.sync(() => lease.release())))
        presence.lease = lease
        const seen: SeenValue = { node, joinedAt: new Date().toISOString() }
        yield* call("mark seen", () => client.put(seenKey(cluster, node)).value(encodeValue(seen)).exec())
        return lease
      })

    const put = (node: string, presence: Presence): Effect.Effect<void, EtcdUnavailable> =>
      Effect.gen(function* () {
        if (presence.withdrawn) return
        const lease = yield* grant(node, presence)
        const status: NodeStatus = { ...presence.last, node, at: new Date().toISOString() }
        yield* call("publish status", () => lease.put(nodeStatusKey(cluster, node)).value(encodeValue(status)).exec())
      }).pipe(Semaphore.withPermit(presenceLock))

    const publishStatus: ClusterStore["publishStatus"] = (node, status) =>
      Effect.gen(function* () {
        yield* validName("node", node)
        const presence = presences.get(node) ?? { lease: undefined, last: status, withdrawn: false }
        presence.last = status
        presence.withdrawn = false
        presences.set(node, presence)
        yield* put(node, presence)
      })

    // A lost lease (etcd down longer than the TTL, or the lease expired) is re-granted and the last
    // status published again, so a node reappears by itself once etcd is back.
    yield* Effect.forkScoped(
      Effect.forever(
        Effect.gen(function* () {
          const node = yield* Queue.take(lost)
          const presence = presences.get(node)
          if (presence === undefined || presence.withdrawn) return
          yield* Effect.retry(put(node, presence), retrySchedule).pipe(Effect.ignore)
        }),
      ),
    )

    const withdraw: ClusterStore["withdraw"] = (node) =>
      Effect.gen(function* () {
        const presence = presences.get(node)
        if (presence === undefined) return
        presence.withdrawn = true
        const lease = presence.lease
        presence.lease = undefined
        presences.delete(node)
        if (lease !== undefined) yield* call("revoke lease", () => lease.revoke())
      }).pipe(Semaphore.withPermit(presenceLock))

    yield* Effect.addFinalizer(() =>
      Effect.forEach([...presences.values()], (presence) => {
        const lease = presence.lease
        presence.withdrawn = true
        presence.lease = undefined
        if (lease === undefined) return Effect.void
        if (options.revokeOnClose === false) return Effect.sync(() => lease.release())
        return Effect.ignore(call("revoke lease", () => lease.revoke()))
      }, { discard: true }),
    )

    // -------------------------------------------------------------------------------------------
    // Listing nodes

    const nodes: ClusterStore["nodes"] = () =>
      Effect.gen(function* () {
        const seenResponse = yield* call("read seen", () => client.getAll().prefix(seenPrefix(cluster)).exec())
        const revision = revisionOf(seenResponse.header.revision)
        // Read at the same revision, so a node cannot be both missing and live, or neither.
        const liveResponse = yield* call("read nodes", () => client.getAll().prefix(nodeStatusPrefix(cluster)).revision(revision).exec())
        const rejections: Rejection[] = []
        const live: NodeStatus[] = []
        for (const kv of liveResponse.kvs) {
          const ok = accept(kv, "NodeStatus", decodeNodeStatus, rejections, (key, value) => (value.node === key.node ? undefined : `status of node "${value.node}"`))
          if (ok !== undefined) live.push(ok.value)
        }
        const liveNames = new Set(live.map((n) => n.node))
        const missing: SeenValue[] = []
        for (const kv of seenResponse.kvs) {
          const ok = accept(kv, "Seen", decodeSeen, rejections)
          if (ok !== undefined && !liveNames.has(ok.key.node)) missing.push({ ...ok.value, node: ok.key.node })
        }
        const byName = <T extends { readonly node: string }>(a: T, b: T): number => (a.node < b.node ? -1 : a.node > b.node ? 1 : 0)
        return { revision, live: live.sort(byName), missing: missing.sort(byName), rejections }
      })

    const forgetNode: ClusterStore["forgetNode"] = (node) =>
      Effect.gen(function* () {
        yield* validName("node", node)
        yield* call("forget node", () => client.delete().key(seenKey(cluster, node)).exec())
      })

    return {
      cluster,
      readDesired,
      watchDesired,
      setDesired,
      clearDesired,
      pushConfig,
      currentConfig,
      configHistory,
      publishStatus,
      withdraw,
      nodes,
      liveNodes: () => Effect.map(nodes(), (n) => n.live),
      missingNodes: () => Effect.map(nodes(), (n) => n.missing),
      forgetNode,
    } satisfies ClusterStore
  })
