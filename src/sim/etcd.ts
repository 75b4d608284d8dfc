/**
 * A model of etcd for the cluster simulator: what isinit relies on, and the ways it is known to
 * surprise (peers-and-failover.md §3.3).
 *
 * - One revision counter; every write transaction that changes something takes the next revision,
 *   and all its changes carry it. Keys remember their create and mod revisions.
 * - Leases with a TTL, counted down only by the etcd leader, on the leader's clock (which may run
 *   fast or slow within the drift bound). While there is no leader (an outage) nothing counts
 *   down; an election refreshes every lease to its full TTL. Expiry deletes the lease's keys.
 * - Watches deliver every change after a revision, in order (the cluster world adds the delays).
 * - The transactions isinit's shell issues (src/cluster/node/types.ts `Write`), with their guards.
 *
 * Time here is real (simulated) time in ms; the world calls `expireDue` when a lease may be due.
 */
import type { StoredConfig } from "../cluster/desired.ts"
import type { Active, Change, ClusterSnapshot, PublishedStatus, Write } from "../cluster/node/types.ts"
import { snapshotOf as snapshotFrom } from "../cluster/node/view.ts"

export type Value =
  | { readonly kind: "config"; readonly config: Omit<StoredConfig, "revision"> }
  | { readonly kind: "desired"; readonly level: string }
  | { readonly kind: "candidate"; readonly node: string; readonly instance: string }
  | { readonly kind: "active"; readonly active: Active }
  | { readonly kind: "move"; readonly node: string }
  | { readonly kind: "claim"; readonly instance: string }
  | { readonly kind: "status"; readonly status: PublishedStatus }
  | { readonly kind: "ban"; readonly reason: string }
  | { readonly kind: "seen" }

export interface Kv {
  readonly key: string
  readonly value: Value
  readonly create: number
  readonly mod: number
  readonly lease: string | undefined
}

export interface KvChange {
  readonly revision: number
  readonly key: string
  /** The new value, or undefined for a delete. */
  readonly kv: Kv | undefined
}

interface LeaseRecord {
  readonly ttlMs: number
  /** Real time at which the leader's countdown reaches zero. */
  expiresAt: number
  readonly keys: Set<string>
}

export type WriteResult =
  | { readonly _tag: "Done"; readonly revision: number; readonly createRevision: number }
  | { readonly _tag: "Lost" }
  | { readonly _tag: "Unavailable"; readonly reason: string }
  | { readonly _tag: "Refused"; readonly reason: string }

// The layout of keys.ts without the cluster prefix: what a node writes sits under `failover-node/NODE/`.
export const candidateKey = (node: string, group: string): string => `failover-node/${node}/cand/${group}`
const claimKey = (node: string): string => `failover-node/${node}/claim`
const activeKey = (node: string, group: string): string => `failover-node/${node}/active/${group}`
export const moveKey = (group: string): string => `failover/${group}/move`

export class EtcdModel {
  revision = 0
  readonly kv = new Map<string, Kv>()
  readonly leases = new Map<string, LeaseRecord>()
  /** Every change, in order (no compaction). */
  readonly history: KvChange[] = []
  #nextLease = 1
  #pending: KvChange[] = []

  /** The etcd leader's clock rate: TTLs elapse in `ttl / rate` ms of real time. */
  readonly rate: number

  constructor(rate: number) {
    this.rate = rate
  }

  // -------------------------------------------------------------------------------------------
  // Transactions: collect changes, then commit them under one new revision.

  #put(key: string, value: Value, lease: string | undefined): void {
    const before = this.kv.get(key)
    const revision = this.revision + 1
    if (before?.lease !== undefined) this.leases.get(before.lease)?.keys.delete(key)
    const kv: Kv = { key, value, create: before?.create ?? revision, mod: revision, lease }
    this.kv.set(key, kv)
    if (lease !== undefined) this.leases.get(lease)?.keys.add(key)
    this.#pending.push({ revision, key, kv })
  }

  #delete(key: string): void {
    const before = this.kv.get(key)
    if (before === undefined) return
    if (before.lease !== undefined) this.leases.get(before.lease)?.keys.delete(key)
    this.kv.delete(key)
    this.#pending.push({ revision: this.revision + 1, key, kv: undefined })
  }

  /** Ends a transaction: returns its changes (empty when it changed nothing). */
  #commit(): readonly KvChange[] {
    const changes = this.#pending
    this.#pending = []
    if (changes.length === 0) return changes
    this.revision += 1
    this.history.push(...changes)
    return changes
  }

  put(key: string, value: Value, lease?: string): readonly KvChange[] {
    this.#put(key, value, lease)
    return this.#commit()
  }

  delete(key: string): readonly KvChange[] {
    this.#delete(key)
    return this.#commit()
  }

  // -------------------------------------------------------------------------------------------
  // Leases

  grant(ttlMs: number, now: number): string {
    const id = `L${this.#nextLease++}`
    this.leases.set(id, { ttlMs, expiresAt: now + ttlMs / this.rate, keys: new Set() })
    return id
  }

  /** A keep-alive received now: the remaining TTL after it (0 when the lease is gone). */
  keepAlive(id: string, now: number): number {
    const lease = this.leases.get(id)
    if (lease === undefined) return 0
    lease.expiresAt = Math.max(lease.expiresAt, now + lease.ttlMs / this.rate)
    return lease.ttlMs
  }

  revoke(id: string): readonly KvChange[] {
    const lease = this.leases.get(id)
    if (lease === undefined) return []
    this.leases.delete(id)
    for (const key of lease.keys) this.#delete(key) // deleting the current element of a Set is safe
    return this.#commit()
  }

  /** Leases whose countdown reached zero are deleted with their keys, one transaction each. */
  expireDue(now: number): readonly KvChange[] {
    const out: KvChange[] = []
    for (const [id, lease] of this.leases) if (lease.expiresAt <= now) out.push(...this.revoke(id))
    return out
  }

  /** A new leader: every lease starts its full TTL again (etcd PR #4778). */
  refreshAll(now: number): void {
    for (const lease of this.leases.values()) lease.expiresAt = now + lease.ttlMs / this.rate
  }

  nextExpiry(): number | undefined {
    let next: number | undefined
    for (const lease of this.leases.values()) if (next === undefined || lease.expiresAt < next) next = lease.expiresAt
    return next
  }

  // -------------------------------------------------------------------------------------------
  // isinit's writes, as the shell performs them

  #guarded(key: string, epoch: number, apply: () => void): WriteResult {
    if (this.kv.get(key)?.create !== epoch) return { _tag: "Lost" }
    apply()
    const changes = this.#commit()
    return { _tag: "Done", revision: changes[0]?.revision ?? this.revision, createRevision: epoch }
  }

  #onLease(lease: string, apply: () => WriteResult): WriteResult {
    return this.leases.has(lease) ? apply() : { _tag: "Unavailable", reason: "etcdserver: requested lease not found" }
  }

  /**
   * `If(Create(key) == 0) Then Put Else Get`; a key of this instance on another lease (an earlier
   * lease of the same daemon, not yet expired) is moved onto this one and keeps its place.
   */
  #createOnLease(key: string, value: Value & { readonly instance: string }, lease: string): WriteResult {
    const held = this.kv.get(key)
    if (held !== undefined && !("instance" in held.value && held.value.instance === value.instance)) return { _tag: "Lost" }
    if (held === undefined || held.lease !== lease) this.put(key, value, lease)
    return done(this.kv.get(key))
  }

  write(node: string, write: Write, now: number): WriteResult {
    switch (write._tag) {
      case "Claim":
        return this.#onLease(write.lease, () => this.#createOnLease(claimKey(node), { kind: "claim", instance: write.instance }, write.lease))
      case "Campaign":
        return this.#onLease(write.lease, () =>
          this.#createOnLease(candidateKey(node, write.group), { kind: "candidate", node, instance: write.instance }, write.lease),
        )
      case "Proclaim":
        return this.#guarded(write.key, write.epoch, () => this.#put(activeKey(node, write.group), { kind: "active", active: write.active }, undefined))
      case "Resign":
        return this.#guarded(write.key, write.epoch, () => {
          this.#put(activeKey(node, write.group), { kind: "active", active: write.active }, undefined)
          this.#delete(write.key)
        })
      case "Withdraw":
        return this.#guarded(write.key, write.epoch, () => this.#delete(write.key))
      case "Ban":
        this.put(`failover-node/${node}/ban/${write.group}`, { kind: "ban", reason: write.reason }, this.grant(write.ttlMs, now))
        return { _tag: "Done", revision: this.revision, createRevision: 0 }
      case "Override":
        this.put(`desired-node/${node}/${write.group}`, { kind: "desired", level: write.level })
        return { _tag: "Done", revision: this.revision, createRevision: 0 }
      case "Publish":
        return this.#onLease(write.lease, () => {
          this.#put(`nodes/${node}`, { kind: "status", status: write.status }, write.lease)
          if (write.seen === "mark") this.#put(`seen/${node}`, { kind: "seen" }, undefined)
          this.#commit()
          return { _tag: "Done", revision: this.revision, createRevision: 0 }
        })
    }
  }
}

const done = (kv: Kv | undefined): WriteResult =>
  kv === undefined ? { _tag: "Lost" } : { _tag: "Done", revision: kv.mod, createRevision: kv.create }

// ---------------------------------------------------------------------------------------------
// What a node's shell makes of keys: watch changes and snapshots (the real shell's classify)

type Target = { readonly _tag: "Cluster" } | { readonly _tag: "Node"; readonly node: string }

const targetOf = (key: string): { readonly group: string; readonly target: Target } | undefined => {
  const parts = key.split("/")
  if (parts[0] === "desired" && parts.length === 2 && parts[1] !== undefined) return { group: parts[1], target: { _tag: "Cluster" } }
  if (parts[0] === "desired-node" && parts.length === 3 && parts[1] !== undefined && parts[2] !== undefined) return { group: parts[2], target: { _tag: "Node", node: parts[1] } }
  return undefined
}

const moveChangeOf = (c: KvChange, parts: readonly string[]): Change | undefined => {
  const [, group, kind] = parts
  const kv = c.kv
  if (group === undefined || kind !== "move") return undefined
  return kv === undefined ? { _tag: "MoveGone", group } : kv.value.kind === "move" ? { _tag: "MoveSet", group, move: { node: kv.value.node, modRevision: kv.mod } } : undefined
}

/** `failover-node/NODE/claim`, `.../cand/GROUP`, `.../active/GROUP` (bans are not watched into the view). */
const nodeChangeOf = (c: KvChange, parts: readonly string[]): Change | undefined => {
  const [, node, kind, group] = parts
  const kv = c.kv
  if (node === undefined) return undefined
  if (kind === "claim") return kv === undefined ? { _tag: "ClaimGone", node } : kv.value.kind === "claim" ? { _tag: "ClaimSet", node, instance: kv.value.instance } : undefined
  if (group === undefined) return undefined
  if (kind === "cand") {
    if (kv === undefined) return { _tag: "CandidateGone", group, key: c.key }
    return kv.value.kind === "candidate" ? { _tag: "CandidateSet", group, candidate: { key: c.key, createRevision: kv.create, node, instance: kv.value.instance } } : undefined
  }
  if (kind !== "active") return undefined
  return kv === undefined ? { _tag: "ActiveGone", group, node } : kv.value.kind === "active" ? { _tag: "ActiveSet", group, active: kv.value.active, modRevision: kv.mod } : undefined
}

/** The node event a key change means; undefined for keys a node does not watch. */
export const changeOf = (c: KvChange): Change | undefined => {
  const kv = c.kv
  if (c.key === "config") {
    if (kv === undefined) return { _tag: "ConfigCleared", revision: c.revision }
    return kv.value.kind === "config" ? { _tag: "ConfigSet", config: { ...kv.value.config, revision: kv.mod } } : undefined
  }
  const parts = c.key.split("/")
  if (parts[0] === "failover") return moveChangeOf(c, parts)
  if (parts[0] === "failover-node") return nodeChangeOf(c, parts)
  const desired = targetOf(c.key)
  if (desired === undefined) return undefined
  if (kv === undefined) return { _tag: "DesiredCleared", target: desired.target, group: desired.group, revision: c.revision }
  return kv.value.kind === "desired" ? { _tag: "DesiredSet", target: desired.target, group: desired.group, desired: { level: kv.value.level, revision: kv.mod } } : undefined
}

/** Everything a node watches, read at the current revision. */
export const snapshotOf = (etcd: EtcdModel): ClusterSnapshot => {
  const changes: Change[] = []
  for (const key of [...etcd.kv.keys()].sort()) {
    const kv = etcd.kv.get(key)
    const change = kv === undefined ? undefined : changeOf({ revision: kv.mod, key, kv })
    if (change !== undefined) changes.push(change)
  }
  return snapshotFrom(etcd.revision, changes)
}
