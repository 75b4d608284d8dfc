/**
 * (Not used by isinitd any more: its node reducer keeps its lease itself, store/leases.ts.)
 * A node's presence: its status under `nodes/NODE` on a lease that the etcd client keeps alive,
 * and `seen/NODE` for the missing list. A lost lease (etcd down longer than the TTL, or the lease
 * expired) is granted again and the last status published again, with backoff, so a node
 * reappears by itself once etcd is back. A clean stop revokes the lease, so the node drops out at once.
 */
import type { Lease } from "etcd3"
import * as Effect from "effect/Effect"
import * as Queue from "effect/Queue"
import type * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import * as Semaphore from "effect/Semaphore"
import type { LogService } from "../../log.ts"
import type { NodeStatus, SeenValue } from "../codecs.ts"
import { encodeValue } from "../codecs.ts"
import { nodeStatusKey, seenKey } from "../keys.ts"
import type { EtcdClient } from "./client.ts"
import { describe } from "./client.ts"
import type { EtcdFailure, InvalidName } from "./errors.ts"
import { validName } from "./errors.ts"

/** What a node publishes; the store adds its name and the time. */
export type StatusInput = Omit<NodeStatus, "node" | "at">

export interface Presence {
  /**
   * Publishes `node`'s status on its lease (granted on first use, kept alive, re-granted and
   * re-published with backoff if lost) and marks the node seen.
   */
  readonly publishStatus: (node: string, status: StatusInput) => Effect.Effect<void, EtcdFailure | InvalidName>
  /** Revokes `node`'s lease: its status disappears now (a clean stop). */
  readonly withdraw: (node: string) => Effect.Effect<void, EtcdFailure>
}

interface PresenceOptions {
  readonly cluster: string
  readonly leaseTtlSeconds: number
  readonly retrySchedule: Schedule.Schedule<unknown>
  readonly log: LogService | undefined
  /** Revoke the leases when the scope closes (a clean stop), or leave them to expire (a crash). */
  readonly onClose: "Revoke" | "Release"
}

/** One published node: the lease its status is on, and the status to publish again if it is lost. */
interface Published {
  lease: Lease | undefined
  last: StatusInput
  withdrawn: boolean
}

interface Deps {
  readonly client: EtcdClient
  readonly options: PresenceOptions
  /** Nodes whose lease was lost, to publish again. */
  readonly lost: Queue.Queue<string>
  /** One publish or withdraw at a time, so a lease is never granted twice for one node. */
  readonly lock: Semaphore.Semaphore
}

const grant = (deps: Deps, node: string, entry: Published): Effect.Effect<Lease, EtcdFailure> =>
  Effect.gen(function* () {
    if (entry.lease !== undefined && !entry.lease.revoked()) return entry.lease
    const { client, options } = deps
    const lease = client.etcd.lease(options.leaseTtlSeconds)
    lease.on("lost", (error) => {
      if (entry.lease !== lease) return
      entry.lease = undefined
      options.log?.line({ what: "etcd-lease-lost", message: `${node}: ${describe(error)}; publishing again` })
      Queue.offerUnsafe(deps.lost, node)
    })
    yield* client.call("grant lease", () => lease.grant()).pipe(Effect.tapError(() => Effect.sync(() => lease.release())))
    entry.lease = lease
    const seen: SeenValue = { node, joinedAt: new Date().toISOString() }
    yield* client.call("mark seen", () => client.etcd.put(seenKey(options.cluster, node)).value(encodeValue(seen)).exec())
    return lease
  })

const put = (deps: Deps, node: string, entry: Published): Effect.Effect<void, EtcdFailure> =>
  Effect.gen(function* () {
    if (entry.withdrawn) return
    const lease = yield* grant(deps, node, entry)
    const status: NodeStatus = { ...entry.last, node, at: new Date().toISOString() }
    yield* deps.client.call("publish status", () => lease.put(nodeStatusKey(deps.options.cluster, node)).value(encodeValue(status)).exec())
  }).pipe(Semaphore.withPermit(deps.lock))

/** Publishes again, with backoff, every node whose lease was lost and that was not withdrawn. */
const republishLost = (deps: Deps, published: ReadonlyMap<string, Published>): Effect.Effect<never> =>
  Effect.forever(
    Effect.gen(function* () {
      const node = yield* Queue.take(deps.lost)
      const entry = published.get(node)
      if (entry === undefined || entry.withdrawn) return
      yield* Effect.retry(put(deps, node, entry), deps.options.retrySchedule).pipe(Effect.ignore)
    }),
  )

/** At the scope's end: every lease revoked (a clean stop) or released to expire (a crash). */
const closeAll = (deps: Deps, published: ReadonlyMap<string, Published>): Effect.Effect<void> =>
  Effect.forEach([...published.values()], (entry) => {
    const lease = entry.lease
    entry.withdrawn = true
    entry.lease = undefined
    if (lease === undefined) return Effect.void
    if (deps.options.onClose === "Release") return Effect.sync(() => lease.release())
    return Effect.ignore(deps.client.call("revoke lease", () => lease.revoke()))
  }, { discard: true })

export const makePresence = (client: EtcdClient, options: PresenceOptions): Effect.Effect<Presence, never, Scope.Scope> =>
  Effect.gen(function* () {
    const deps: Deps = { client, options, lost: yield* Queue.unbounded<string>(), lock: yield* Semaphore.make(1) }
    const published = new Map<string, Published>()

    const publishStatus: Presence["publishStatus"] = (node, status) =>
      Effect.gen(function* () {
        yield* validName("node", node)
        const entry = published.get(node) ?? { lease: undefined, last: status, withdrawn: false }
        entry.last = status
        entry.withdrawn = false
        published.set(node, entry)
        yield* put(deps, node, entry)
      })

    const withdraw: Presence["withdraw"] = (node) =>
      Effect.gen(function* () {
        const entry = published.get(node)
        if (entry === undefined) return
        entry.withdrawn = true
        const lease = entry.lease
        entry.lease = undefined
        published.delete(node)
        if (lease !== undefined) yield* client.call("revoke lease", () => lease.revoke())
      }).pipe(Semaphore.withPermit(deps.lock))

    yield* Effect.forkScoped(republishLost(deps, published))
    yield* Effect.addFinalizer(() => closeAll(deps, published))
    return { publishStatus, withdraw }
  })
