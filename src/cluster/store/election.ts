/**
 * A node's own writes on its leases, as the node reducer asks for them (node/types.ts `Write`):
 * the claim on its name, its candidate keys, proclamations, resignations and bans for failover
 * groups (docs/cluster.md "Failover groups"), and its published status. Every key is under the
 * node's own prefixes (keys.ts), which its etcd role allows it and nobody else's.
 *
 * The election is etcd's recipe (`concurrency.Election`) spread over each node's keys: a
 * candidate key is created only if absent (`Create == 0`), its create revision is its place in
 * the queue and its epoch, and a proclamation or a resignation is written only while that key
 * still has that create revision, so a deposed holder cannot write.
 *
 * Each write answers with the reducer's `WriteOutcome`: `Done`, `Lost` (a guard failed: the key
 * is not ours any more, or another daemon's), `Unavailable` (etcd did not answer, or a lease it no
 * longer has), `Refused` (etcd said no: permission denied or bad credentials, which retrying
 * cannot fix; the reducer keeps retrying only what may succeed later).
 */
import type { IKeyValue, ITxnResponse } from "etcd3"
import * as Effect from "effect/Effect"
import type { ActiveValue, InstanceValue, NodeStatus, SeenValue } from "../codecs.ts"
import { decodeInstance, encodeValue } from "../codecs.ts"
import { activeKey, banKey, candidateKey, claimKey, nodeStatusKey, seenKey } from "../keys.ts"
import type { Active, PublishedStatus, Write, WriteOutcome } from "../node/types.ts"
import type { EtcdClient } from "./client.ts"
import { revisionOf } from "./client.ts"
import type { EtcdFailure } from "./errors.ts"
import type { Leases } from "./leases.ts"

export type NodeWrite = Exclude<Write, { readonly _tag: "Override" }>

export interface Election {
  /** Performs one of the node's writes; never fails: the outcome says what happened. */
  readonly write: (write: NodeWrite) => Effect.Effect<WriteOutcome>
}

const done = (revision: number, createRevision: number): WriteOutcome => ({ _tag: "Done", revision, createRevision })
const lost: WriteOutcome = { _tag: "Lost" }

/** A failure of the call, as an outcome: a refusal is for good, anything else may pass later. */
export const outcomeOfFailure = (e: EtcdFailure): WriteOutcome =>
  e._tag === "EtcdRefused" ? { _tag: "Refused", reason: e.message } : { _tag: "Unavailable", reason: e.message }

const revisionOfTxn = (r: ITxnResponse): number => revisionOf(r.header.revision)

/** The key a failed `Create == 0` transaction read back in its else branch. */
const readBack = (r: ITxnResponse): IKeyValue | undefined => r.responses[0]?.response_range?.kvs[0]

interface Deps {
  readonly client: EtcdClient
  readonly leases: Leases
  readonly cluster: string
  readonly node: string
}

/**
 * `If(Create(key) == 0) Then Put(value, lease) Else Get(key)`: created, or already this
 * instance's. A key of this instance on an earlier lease of its (not yet expired) is moved onto
 * this lease in place, keeping its create revision: the key never vanished, so its place in the
 * queue is still its own, and from now on it lives exactly as long as the lease we keep alive.
 */
const createOnLease = ({ client }: Deps, key: string, value: InstanceValue, lease: string, what: string): Effect.Effect<WriteOutcome, EtcdFailure> =>
  Effect.gen(function* () {
    const { etcd, call } = client
    const text = encodeValue(value)
    const created = yield* call(what, () => etcd.if(key, "Create", "==", 0).then(etcd.put(key).value(text).lease(lease)).else(etcd.get(key)).commit())
    if (created.succeeded) return done(revisionOfTxn(created), revisionOfTxn(created))
    const held = readBack(created)
    if (held === undefined) return lost // deleted meanwhile: the next attempt creates it
    const decoded = decodeInstance(held.value.toString("utf8"))
    if (decoded._tag === "Left" || decoded.right.instance !== value.instance) return lost
    const createRevision = revisionOf(held.create_revision)
    if (held.lease === lease) return done(revisionOf(held.mod_revision), createRevision)
    const moved = yield* call(what, () =>
      etcd.if(key, "Create", "==", createRevision).and(key, "Mod", "==", revisionOf(held.mod_revision)).then(etcd.put(key).value(text).lease(lease)).commit(),
    )
    return moved.succeeded ? done(revisionOfTxn(moved), createRevision) : lost
  })

type Then = Parameters<ReturnType<EtcdClient["etcd"]["if"]>["then"]>

/** `Then` ops run only while our candidate key still has `epoch` as its create revision. */
const guarded = ({ client, cluster, node }: Deps, group: string, epoch: number, what: string, ops: (cand: string) => Then): Effect.Effect<WriteOutcome, EtcdFailure> =>
  Effect.map(
    client.call(what, () => {
      const cand = candidateKey(cluster, node, group)
      return client.etcd.if(cand, "Create", "==", epoch).then(...ops(cand)).commit()
    }),
    (r) => (r.succeeded ? done(revisionOfTxn(r), epoch) : lost),
  )

const proclamation = (active: Active): string => encodeValue({ ...active, at: new Date().toISOString() } satisfies ActiveValue)

const publish = ({ client, cluster, node }: Deps, lease: string, status: PublishedStatus, seen: "mark" | "keep"): Effect.Effect<WriteOutcome, EtcdFailure> =>
  Effect.map(
    client.call("publish status", () => {
      const { etcd } = client
      const at = new Date().toISOString()
      const value: NodeStatus = { ...status, node, at }
      const key = nodeStatusKey(cluster, node)
      const mark = seen === "mark" ? [etcd.put(seenKey(cluster, node)).value(encodeValue({ node, joinedAt: at } satisfies SeenValue))] : []
      return etcd.if(key, "Mod", ">", -1).then(etcd.put(key).value(encodeValue(value)).lease(lease), ...mark).commit()
    }),
    (r) => done(revisionOfTxn(r), 0),
  )

const ban = ({ client, leases, cluster, node }: Deps, group: string, reason: string, ttlMs: number): Effect.Effect<WriteOutcome, EtcdFailure> =>
  Effect.gen(function* () {
    const lease = yield* leases.grant(ttlMs)
    const value = encodeValue({ reason, at: new Date().toISOString() })
    const r = yield* client.call("ban", () => client.etcd.put(banKey(cluster, node, group)).value(value).lease(lease.id).exec())
    return done(revisionOf(r.header.revision), 0)
  })

const perform = (deps: Deps, write: NodeWrite): Effect.Effect<WriteOutcome, EtcdFailure> => {
  const { etcd } = deps.client
  const { cluster, node } = deps
  switch (write._tag) {
    case "Claim":
      return createOnLease(deps, claimKey(cluster, node), { instance: write.instance }, write.lease, "claim node name")
    case "Campaign":
      return createOnLease(deps, candidateKey(cluster, node, write.group), { instance: write.instance, node }, write.lease, "campaign")
    case "Proclaim":
      return guarded(deps, write.group, write.epoch, "proclaim", () => [etcd.put(activeKey(cluster, node, write.group)).value(proclamation(write.active))])
    case "Resign":
      return guarded(deps, write.group, write.epoch, "resign", (cand) => [
        etcd.put(activeKey(cluster, node, write.group)).value(proclamation(write.active)),
        etcd.delete().key(cand),
      ])
    case "Withdraw":
      return guarded(deps, write.group, write.epoch, "withdraw", (cand) => [etcd.delete().key(cand)])
    case "Ban":
      return ban(deps, write.group, write.reason, write.ttlMs)
    case "Publish":
      return publish(deps, write.lease, write.status, write.seen)
  }
}

export const makeElection = (client: EtcdClient, leases: Leases, cluster: string, node: string): Election => {
  const deps: Deps = { client, leases, cluster, node }
  return { write: (write) => Effect.catch(perform(deps, write), (e) => Effect.succeed(outcomeOfFailure(e))) }
}
