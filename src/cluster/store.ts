/**
 * Cluster mode's access to etcd, as one store over the `etcd3` client, put together from one
 * module per concern under store/: the shared client and its `call` (client.ts), what a key-value
 * pair means (kv.ts), desired levels (desired.ts), the config (config.ts), the member lists
 * (nodes.ts), the audit trail (audit.ts), rolling tells (rollouts.ts); for a daemon, what it
 * follows (follow.ts: one read and one watch of everything it follows), its leases (leases.ts:
 * grant, keep-alives it sends itself) and its own writes (election.ts: failover keys and its
 * status). watch.ts and presence.ts are the earlier self-healing watch and presence, which no
 * daemon uses any more (the node reducer decides resyncs and re-grants now); their tests still
 * hold them to what they say. Key layout and
 * precedence: keys.ts. Values: codecs.ts. The pure view and convergence rules: desired.ts.
 *
 * Failure model: every one-shot operation fails with a typed `EtcdUnavailable` (bounded by a call
 * deadline, or the caller's `Deadline`), or `EtcdRefused` when etcd said no (wrong credentials, or
 * the etcd user's roles do not allow it), and is retried behind the caller's back only while etcd
 * has no leader (client.ts) and for lost transaction races.
 * The watch and the node presence are long-lived: they survive outages on their own, retrying with
 * capped exponential backoff; the watch reports the outage, then resynchronises (reads everything
 * at the current revision and watches from there). Bad keys and values never fail an operation:
 * they come back as rejections with a reason, and are logged.
 */
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import type { LogService } from "../log.ts"
import type { EtcdSecurity } from "./connection.ts"
import { defaultCluster } from "./keys.ts"
import type { TrustedKeys } from "./signing.ts"
import { signatureProblem } from "./signing.ts"
import type { AuditTrail, Author } from "./store/audit.ts"
import { makeAuditTrail, makeAuditing } from "./store/audit.ts"
import { openEtcdClient } from "./store/client.ts"
import type { Configs } from "./store/config.ts"
import { makeConfigs } from "./store/config.ts"
import type { DesiredLevels } from "./store/desired.ts"
import { makeDesiredLevels } from "./store/desired.ts"
import type { InvalidName } from "./store/errors.ts"
import { validName } from "./store/errors.ts"
import { keyValues } from "./store/kv.ts"
import type { Membership } from "./store/nodes.ts"
import { makeMembership } from "./store/nodes.ts"
import type { Presence } from "./store/presence.ts"
import { makePresence } from "./store/presence.ts"
import type { Rollouts } from "./store/rollouts.ts"
import { makeRollouts } from "./store/rollouts.ts"
import type { Watching } from "./store/watch.ts"
import { makeWatching } from "./store/watch.ts"
import type { Election } from "./store/election.ts"
import { makeElection } from "./store/election.ts"
import type { Following } from "./store/follow.ts"
import { makeFollowing } from "./store/follow.ts"
import type { Leases } from "./store/leases.ts"
import type { FailoverStore } from "./store/failover.ts"
import { makeFailoverStore } from "./store/failover.ts"
import { makeLeases } from "./store/leases.ts"

export type { AuditEntry, Author } from "./store/audit.ts"
export type { FailoverRead } from "./store/failover.ts"
export type { ConfigRead, HistoryEntry, PushedConfig, Signer } from "./store/config.ts"
export type { ConfigRejected, Contended, EtcdFailure, EtcdRefused, EtcdUnavailable, FailoverGroupTold, InvalidName, NodeLive, UnknownGroup, UnknownNode } from "./store/errors.ts"
export type { Nodes } from "./store/nodes.ts"
export type { StatusInput } from "./store/presence.ts"
export type { Claim, Driving, StoredRollout } from "./store/rollouts.ts"

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
  /** TLS and credentials (connection.ts); none: plain http without authentication. */
  readonly security?: EtcdSecurity | undefined
  /** Obey only configs signed by one of these keys (signing.ts); none: any valid config. */
  readonly trustedKeys?: TrustedKeys | undefined
  /** Whether every write is recorded in the audit trail, and as whose (store/audit.ts); default not. */
  readonly author?: Author | undefined
}

export interface ClusterStore extends DesiredLevels, Configs, Watching, Presence, Membership, AuditTrail, Rollouts, Following, FailoverStore {
  readonly cluster: string
  /** Leases as a daemon keeps them itself (store/leases.ts). */
  readonly leases: Leases
  /** A node's own writes: claim, election keys, bans, its status (store/election.ts). */
  readonly election: (node: string) => Election
}

export const makeClusterStore = (options: ClusterOptions): Effect.Effect<ClusterStore, InvalidName, Scope.Scope> =>
  Effect.gen(function* () {
    const cluster = yield* validName("cluster", options.cluster ?? defaultCluster)
    const backoff = options.backoff ?? { initialMs: 200, maxMs: 5_000 }
    const retrySchedule = Schedule.min([Schedule.exponential(backoff.initialMs, 2), Schedule.spaced(backoff.maxMs)])
    const log = options.log
    const client = yield* openEtcdClient({ hosts: options.hosts, callTimeoutMs: options.callTimeoutMs ?? 5_000, security: options.security })
    const trusted = options.trustedKeys
    const kv = keyValues(cluster, log, trusted === undefined ? undefined : (value) => signatureProblem(trusted, cluster, value))
    const audit = makeAuditing(client, cluster, options.author ?? { _tag: "Unaudited" })
    const configs = makeConfigs(client, kv, cluster, audit)
    const desired = makeDesiredLevels(client, kv, configs, cluster, audit)
    const watching = makeWatching(client, kv, desired.readDesired, { cluster, backoff, retrySchedule, log })
    const presence = yield* makePresence(client, {
      cluster,
      leaseTtlSeconds: options.leaseTtlSeconds ?? 10,
      retrySchedule,
      log,
      onClose: options.revokeOnClose === false ? "Release" : "Revoke",
    })
    const membership = makeMembership(client, kv, cluster, audit)
    const trail = makeAuditTrail(client, kv, cluster)
    const following = makeFollowing(client, kv, cluster)
    const leases = makeLeases(client, options.callTimeoutMs ?? 5_000)
    yield* Effect.addFinalizer(() => Effect.sync(() => leases.close()))
    const elections = new Map<string, Election>()
    const election = (node: string): Election => {
      const made = elections.get(node) ?? makeElection(client, leases, cluster, node)
      elections.set(node, made)
      return made
    }
    const failover = makeFailoverStore(client, leases, cluster, audit)
    const rollouts = makeRollouts(client, cluster, audit)
    return { cluster, ...desired, ...configs, ...watching, ...presence, ...membership, ...trail, ...rollouts, ...following, ...failover, leases, election } satisfies ClusterStore
  })
