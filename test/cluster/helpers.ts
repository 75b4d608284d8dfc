/**
 * Running the cluster store from async tests: open in a scope, follow desired levels and the config
 * with the daemon's own watch (store/follow.ts), publish a node's status as its daemon does (no
 * daemon needed where only the client reads it), close.
 */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import type { StatusReport } from "../../src/core/report.ts"
import type { ObeyedChange, PublishedStatus } from "../../src/cluster/node/types.ts"
import { isFailover } from "../../src/cluster/node/view.ts"
import type { ClusterOptions, ClusterStore } from "../../src/cluster/store.ts"
import { makeClusterStore } from "../../src/cluster/store.ts"
import { memoryLog } from "../../src/runtime/log.ts"
import { clientSecurity } from "./etcd-harness.ts"

export const run = <A, E>(effect: Effect.Effect<A, E>): Promise<A> => Effect.runPromise(effect)

/** The typed failure of an effect that must fail (rejects if it succeeds). */
export const failure = <A, E>(effect: Effect.Effect<A, E>): Promise<E> => Effect.runPromise(Effect.flip(effect))

export interface OpenStore {
  readonly store: ClusterStore
  readonly log: ReturnType<typeof memoryLog>
  readonly close: () => Promise<void>
}

export const openStore = async (url: string, options: Partial<ClusterOptions> = {}): Promise<OpenStore> => {
  const scope = await run(Scope.make())
  const log = memoryLog()
  const store = await run(
    makeClusterStore({ hosts: url, cluster: "t", callTimeoutMs: 3_000, log, security: clientSecurity(), ...options }).pipe(
      Scope.provide(scope),
    ),
  )
  return { store, log, close: () => run(Scope.close(scope, Exit.void)) }
}

export interface Followed {
  /** Config and desired-level changes, in revision order (failover keys left out). */
  readonly events: ObeyedChange[]
  /** Why the watch ended, once (then nothing more arrives: resyncing is the node reducer's). */
  readonly lost: string[]
  readonly stop: () => void
}

/** The daemon's watch (store/follow.ts `watchAll`) from `fromRevision` on, into arrays. */
export const follow = (store: ClusterStore, fromRevision: number): Followed => {
  const events: ObeyedChange[] = []
  const lost: string[] = []
  const stop = store.watchAll(fromRevision, {
    batch: (_revision, changes) => void events.push(...changes.flatMap((c) => (isFailover(c) ? [] : [c]))),
    lost: (reason) => void lost.push(reason),
  })
  return { events, lost, stop }
}

/**
 * Publishes `node`'s status with the daemon's own writer (store/election.ts: `nodes/NODE` on a
 * lease, `seen/NODE` marked) on a lease of `ttlMs` that nobody keeps alive; returns the lease,
 * whose revoke is the node's clean stop (`withdrawNode`).
 */
export const publishNode = async (store: ClusterStore, node: string, status: PublishedStatus, ttlMs = 120_000): Promise<string> => {
  const lease = await run(store.leases.grant(ttlMs))
  const outcome = await run(store.election(node).write({ _tag: "Publish", seq: 1, lease: lease.id, status, seen: "mark" }))
  if (outcome._tag !== "Done") throw new Error(`publishing ${node}: ${JSON.stringify(outcome)}`)
  return lease.id
}

/** A clean stop of a node published by `publishNode`: its status disappears now. */
export const withdrawNode = (store: ClusterStore, lease: string): Promise<void> => run(store.leases.revoke(lease))

export const report = (groups: readonly { readonly group: string; readonly level: string; readonly state: "run" | "start" | "fail" }[]): StatusReport => ({
  lifecycle: "running",
  groups: groups.map((g) => ({ group: g.group, state: g.state, level: g.level, seq: 1, entries: [] })),
})

export const statusInput = (level: string): PublishedStatus => ({
  configSha256: null,
  configSeq: null,
  desired: { web: { level, revision: 1, source: "cluster" } },
  report: report([{ group: "web", level, state: "run" }]),
})

export const inittab = (lines: readonly string[]): string => `${lines.join("\n")}\n`

export const goodConfig = inittab([
  "web:web-server:3,:respawn:sleep 3600",
  "web:web-check:3,:test:true",
  "db:db-server:2,3:respawn:sleep 3600",
])
