/**
 * Cluster mode's access to etcd, as one store over the `etcd3` client, put together from one
 * module per concern under store/: the shared client and its `call` (client.ts), what a key-value
 * pair means (kv.ts), desired levels (desired.ts), the config (config.ts), the member lists
 * (nodes.ts), the audit trail (audit.ts), rolling tells (rollouts.ts); for a daemon, what it
 * follows (follow.ts: one read and one watch of everything it follows), its leases (leases.ts:
 * grant, keep-alives it sends itself) and its own writes (election.ts: failover keys and its
 * status). Key layout and precedence: keys.ts. Values: codecs.ts. The pure view and convergence
 * rules: desired.ts.
 *
 * Failure model: every one-shot operation fails with a typed `EtcdUnavailable` (bounded by a call
 * deadline, or the caller's `Deadline`), or `EtcdRefused` when etcd said no (wrong credentials, or
 * the etcd user's roles do not allow it), and is retried behind the caller's back only while etcd
 * has no leader (client.ts) and for lost transaction races. Nothing here heals itself: a daemon's
 * watch reports its loss once and ends, a lease is kept alive only by the keep-alives the daemon
 * sends; when to read again, re-grant or publish again, and with what backoff, is the node
 * reducer's decision (src/cluster/node/reduce.ts). Bad keys and values never fail an operation:
 * they come back as rejections with a reason, and are logged.
 */
import * as Effect from "effect/Effect"
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
import type { Rollouts } from "./store/rollouts.ts"
import { makeRollouts } from "./store/rollouts.ts"
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
export type { Claim, Driving, StoredRollout } from "./store/rollouts.ts"

export interface ClusterOptions {
  /** etcd client URLs, e.g. `http://127.0.0.1:2379` (a comma-separated string is split). */
  readonly hosts: string | readonly string[]
  readonly cluster?: string | undefined
  /** Deadline of every one-shot call (default 5 s). */
  readonly callTimeoutMs?: number | undefined
  readonly log?: LogService | undefined
  /** TLS and credentials (connection.ts); none: plain http without authentication. */
  readonly security?: EtcdSecurity | undefined
  /** Obey only configs signed by one of these keys (signing.ts); none: any valid config. */
  readonly trustedKeys?: TrustedKeys | undefined
  /** Whether every write is recorded in the audit trail, and as whose (store/audit.ts); default not. */
  readonly author?: Author | undefined
}

export interface ClusterStore extends DesiredLevels, Configs, Membership, AuditTrail, Rollouts, Following, FailoverStore {
  readonly cluster: string
  /** Leases as a daemon keeps them itself (store/leases.ts). */
  readonly leases: Leases
  /** A node's own writes: claim, election keys, bans, its status (store/election.ts). */
  readonly election: (node: string) => Election
}

export const makeClusterStore = (options: ClusterOptions): Effect.Effect<ClusterStore, InvalidName, Scope.Scope> =>
  Effect.gen(function* () {
    const cluster = yield* validName("cluster", options.cluster ?? defaultCluster)
    const log = options.log
    const client = yield* openEtcdClient({ hosts: options.hosts, callTimeoutMs: options.callTimeoutMs ?? 5_000, security: options.security })
    const trusted = options.trustedKeys
    const kv = keyValues(cluster, log, trusted === undefined ? undefined : (value) => signatureProblem(trusted, cluster, value))
    const audit = makeAuditing(client, cluster, options.author ?? { _tag: "Unaudited" })
    const configs = makeConfigs(client, kv, cluster, audit)
    const desired = makeDesiredLevels(client, kv, configs, cluster, audit)
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
    return { cluster, ...desired, ...configs, ...membership, ...trail, ...rollouts, ...following, ...failover, leases, election } satisfies ClusterStore
  })
