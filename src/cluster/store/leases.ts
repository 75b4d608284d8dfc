/**
 * etcd leases as the node reducer keeps them (src/cluster/node/lease.ts): a grant, one keep-alive
 * request at a time the reducer sends (each answered on its own), and a revoke. No etcd3 `Lease`
 * object and no automatic keep-alive: its `lost` event fires 2 × TTL of wall-clock time after the
 * last *answer*, when another node may already run a failover group. The reducer records when it
 * sends each keep-alive and relies on the lease only until the renew deadline after that send.
 *
 * Keep-alives of one lease go on one long-lived LeaseKeepAlive stream, which etcd answers in the
 * order of the requests, so each answer belongs to the oldest request still waiting. A stream that
 * errs, ends, or leaves a request unanswered past the call deadline is closed, and every request
 * on it fails; the next keep-alive opens a new stream. The stream carries etcd's `hasleader`
 * metadata, so a member without a leader refuses it at once: a node on such a member sees its
 * keep-alives fail, and stops counting itself connected, by its renew deadline.
 */
import type { IDuplexStream, ILeaseKeepAliveRequest, ILeaseKeepAliveResponse } from "etcd3/lib/rpc.js"
import * as Effect from "effect/Effect"
import type { EtcdClient } from "./client.ts"
import { describe, requireLeader, revisionOf } from "./client.ts"
import type { EtcdFailure } from "./errors.ts"
import { EtcdUnavailable } from "./errors.ts"

export interface Granted {
  readonly id: string
  /** What etcd granted (it may round a TTL up to its minimum). */
  readonly ttlMs: number
}

export interface Leases {
  readonly grant: (ttlMs: number) => Effect.Effect<Granted, EtcdFailure>
  /** One keep-alive sent now; the TTL etcd answered in ms (0: etcd no longer has the lease). */
  readonly keepAlive: (id: string) => Effect.Effect<number, EtcdFailure>
  readonly revoke: (id: string) => Effect.Effect<void, EtcdFailure>
  /** What is left of a lease, in ms (-1: no such lease); for `status`. */
  readonly timeToLive: (id: string) => Effect.Effect<number, EtcdFailure>
  /** Closes every keep-alive stream. */
  readonly close: () => void
}

interface Waiting {
  readonly resolve: (ttlMs: number) => void
  readonly reject: (reason: string) => void
}

/** One lease's keep-alive stream and the requests on it still waiting for their answer. */
interface Stream {
  readonly stream: IDuplexStream<ILeaseKeepAliveRequest, ILeaseKeepAliveResponse>
  readonly waiting: Waiting[]
  closed: boolean
}

const seconds = (ttlMs: number): number => Math.max(1, Math.ceil(ttlMs / 1000))

export const makeLeases = (client: EtcdClient, callTimeoutMs: number): Leases => {
  const { etcd, call } = client
  const streams = new Map<string, Promise<Stream>>()

  const shut = (id: string, s: Stream, reason: string): void => {
    if (s.closed) return
    s.closed = true
    streams.delete(id)
    for (const w of s.waiting.splice(0)) w.reject(reason)
    try {
      // Half-closed, not cancelled: etcd3 counts a cancelled stream as a failed member and
      // closes every call on its channel, a publish or revoke under way included.
      s.stream.end()
    } catch {
      // already gone
    }
  }

  const open = (id: string): Promise<Stream> => {
    const opening = etcd.leaseClient.leaseKeepAlive({ interceptors: [requireLeader] }).then((stream) => {
      const s: Stream = { stream, waiting: [], closed: false }
      stream.on("data", (answer) => s.waiting.shift()?.resolve(revisionOf(answer.TTL) * 1000))
      stream.on("error", (error) => shut(id, s, describe(error)))
      stream.on("end", () => shut(id, s, "the keep-alive stream ended"))
      return s
    })
    streams.set(id, opening)
    opening.catch(() => streams.delete(id))
    return opening
  }

  const sendOnce = (id: string): Promise<number> =>
    (streams.get(id) ?? open(id)).then(
      (s) =>
        new Promise<number>((resolve, reject) => {
          if (s.closed) return reject(new Error("the keep-alive stream closed"))
          const timer = setTimeout(() => shut(id, s, `no answer within ${callTimeoutMs} ms`), callTimeoutMs)
          s.waiting.push({
            resolve: (ttl) => (clearTimeout(timer), resolve(ttl)),
            reject: (reason) => (clearTimeout(timer), reject(new Error(reason))),
          })
          s.stream.write({ ID: id })
        }),
    )

  const keepAlive: Leases["keepAlive"] = (id) =>
    Effect.tryPromise({ try: () => sendOnce(id), catch: (e) => new EtcdUnavailable({ operation: "lease keep-alive", reason: describe(e) }) })

  const grant: Leases["grant"] = (ttlMs) =>
    Effect.map(call("grant lease", () => etcd.leaseClient.leaseGrant({ TTL: seconds(ttlMs) })), (r) => ({ id: r.ID, ttlMs: revisionOf(r.TTL) * 1000 }))

  const revoke: Leases["revoke"] = (id) =>
    Effect.gen(function* () {
      const s = streams.get(id)
      if (s !== undefined) void s.then((open) => shut(id, open, "revoked"), () => undefined)
      yield* call("revoke lease", () => etcd.leaseClient.leaseRevoke({ ID: id }).then(() => undefined))
    })

  const timeToLive: Leases["timeToLive"] = (id) =>
    Effect.map(call("lease time to live", () => etcd.leaseClient.leaseTimeToLive({ ID: id, keys: false })), (r) => {
      const ttl = revisionOf(r.TTL)
      return ttl < 0 ? -1 : ttl * 1000
    })

  const close = (): void => {
    for (const [id, s] of streams) void s.then((open) => shut(id, open, "closed"), () => undefined)
  }

  return { grant, keepAlive, revoke, timeToLive, close }
}
