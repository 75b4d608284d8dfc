/**
 * A lease kept alive by the node's own keep-alives (not the etcd3 client's: its `lost` event comes
 * 2 × TTL of wall-clock time after the last *answer*, after another node may have taken over).
 *
 * Each keep-alive's send time is recorded. When etcd acknowledges one with a TTL above zero, the
 * lease was alive when etcd received it, which was after it was sent; so it stays alive until at
 * least `sent + TTL` of etcd's time, and the node relies on it only until `confirmed +
 * renewDeadline` of its own. An answer with TTL 0 means the lease is gone, with every key on it.
 * Keep-alives go out every renewDeadline / 3, so two may be lost before the deadline.
 */
import type { Step } from "./step.ts"
import { emit, retryDelay, wake } from "./step.ts"
import type { Lease, LeaseName } from "./types.ts"

export const noLease: Lease = { _tag: "None" }

export interface Terms {
  readonly ttlMs: number
  readonly renewDeadlineMs: number
}

/** Until when the lease is known alive (−∞ without one). */
export const validUntil = (lease: Lease): number => (lease._tag === "Live" ? lease.confirmed + lease.renewDeadlineMs : -Infinity)

const interval = (lease: { readonly renewDeadlineMs: number }): number => Math.max(1, Math.floor(lease.renewDeadlineMs / 3))

/** Keep a needed lease: grant it (again after a backoff), and send its keep-alives when due. */
export const keepLease = (step: Step, name: LeaseName, lease: Lease, terms: Terms): Lease => {
  const now = step.s.now
  switch (lease._tag) {
    case "None":
      emit(step, { _tag: "Grant", lease: name, ttlMs: terms.ttlMs })
      return { _tag: "Granting", sentAt: now, attempt: 0 }
    case "Backoff":
      if (now < lease.until) return lease
      emit(step, { _tag: "Grant", lease: name, ttlMs: terms.ttlMs })
      return { _tag: "Granting", sentAt: now, attempt: lease.attempt }
    case "Granting":
      return lease
    case "Live": {
      if (now < lease.nextKeepAlive) return lease
      // A send older than the renew deadline can no longer extend anything: forget it.
      const sent = new Map([...lease.sent].filter(([, at]) => at > now - lease.renewDeadlineMs))
      sent.set(lease.nextSeq, now)
      emit(step, { _tag: "KeepAlive", lease: name, id: lease.id, seq: lease.nextSeq })
      const nextKeepAlive = now + interval(lease)
      wake(step, nextKeepAlive)
      return { ...lease, sent, nextSeq: lease.nextSeq + 1, nextKeepAlive }
    }
  }
}

/** Give a lease back (its keys go with it). */
export const dropLease = (step: Step, name: LeaseName, lease: Lease): Lease => {
  if (lease._tag === "Live") emit(step, { _tag: "Revoke", lease: name, id: lease.id })
  return noLease
}

export const granted = (step: Step, name: LeaseName, lease: Lease, id: string, ttlMs: number, renewDeadlineMs: number): Lease => {
  if (lease._tag !== "Granting") {
    emit(step, { _tag: "Revoke", lease: name, id }) // nobody waits for it any more
    return lease
  }
  const confirmed = lease.sentAt
  const live: Lease = { _tag: "Live", id, ttlMs, renewDeadlineMs, confirmed, nextKeepAlive: step.s.now + interval({ renewDeadlineMs }), nextSeq: 1, sent: new Map() }
  wake(step, live.nextKeepAlive)
  return live
}

export const grantFailed = (step: Step, lease: Lease): Lease => {
  if (lease._tag !== "Granting") return lease
  const until = step.s.now + retryDelay(lease.attempt)
  wake(step, until)
  return { _tag: "Backoff", attempt: lease.attempt + 1, until }
}

/** An acknowledged keep-alive: the lease is confirmed from its send time; TTL 0: the lease is gone. */
export const keptAlive = (lease: Lease, id: string, seq: number, ttlMs: number): Lease | "lost" => {
  if (lease._tag !== "Live" || lease.id !== id) return lease
  if (ttlMs <= 0) return "lost"
  const sentAt = lease.sent.get(seq)
  const sent = new Map([...lease.sent].filter(([s]) => s > seq))
  if (sentAt === undefined || sentAt <= lease.confirmed) return { ...lease, sent }
  return { ...lease, sent, confirmed: sentAt }
}

export const keepAliveFailed = (lease: Lease, id: string, seq: number): Lease => {
  if (lease._tag !== "Live" || lease.id !== id) return lease
  return { ...lease, sent: new Map([...lease.sent].filter(([s]) => s !== seq)) }
}
