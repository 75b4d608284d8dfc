/**
 * Failover groups as an operator sees them (`isinit --etcd status`, `move`): every node's
 * candidate keys, proclamations and bans, and the operators' moves, read at one revision, with
 * the time left on the leases they sit on; and `move`, which writes a group's move preference on
 * a lease of its own (it expires by itself) in one transaction with its audit record.
 */
import type { IKeyValue } from "etcd3"
import * as Effect from "effect/Effect"
import type { ActiveValue, BanValue, MoveValue } from "../codecs.ts"
import { decodeActive, decodeBan, decodeInstance, decodeMove, encodeValue } from "../codecs.ts"
import type { Rejection } from "../desired.ts"
import { failoverPrefix, moveKey, nodesFailoverPrefix, parseKey } from "../keys.ts"
import type { Auditing } from "./audit.ts"
import type { EtcdClient } from "./client.ts"
import { revisionOf } from "./client.ts"
import type { EtcdFailure, InvalidName } from "./errors.ts"
import { validName } from "./errors.ts"
import type { Leases } from "./leases.ts"

/** A key on a lease, with what is left of the lease when it was read (ms; undefined: no lease, or gone). */
interface Leased {
  readonly lease: string
  readonly leftMs: number | undefined
}

export interface FailoverRead {
  readonly revision: number
  /** Per group, every node's candidate key, by create revision (the first one leads). */
  readonly candidates: ReadonlyMap<string, readonly ({ readonly node: string; readonly instance: string; readonly createRevision: number } & Leased)[]>
  /** Per group, every node's last proclamation. */
  readonly proclamations: ReadonlyMap<string, readonly (ActiveValue & { readonly modRevision: number })[]>
  readonly bans: ReadonlyMap<string, readonly (BanValue & { readonly node: string } & Leased)[]>
  readonly moves: ReadonlyMap<string, MoveValue & { readonly modRevision: number } & Leased>
  readonly rejections: readonly Rejection[]
}

export interface FailoverStore {
  readonly readFailover: () => Effect.Effect<FailoverRead, EtcdFailure>
  /** `failover/GROUP/move` = NODE on a lease of `ttlMs`; the revision that wrote it. */
  readonly moveGroup: (group: string, node: string, ttlMs: number, by: string) => Effect.Effect<{ readonly revision: number }, EtcdFailure | InvalidName>
  /** Deletes the move if it is still the one written at `modRevision` (once it is done). */
  readonly clearMove: (group: string, modRevision: number) => Effect.Effect<void, EtcdFailure>
}

const push = <V>(map: Map<string, V[]>, key: string, value: V): void => void map.set(key, [...(map.get(key) ?? []), value])

type Collected = {
  readonly candidates: Map<string, ({ readonly node: string; readonly instance: string; readonly createRevision: number; readonly lease: string })[]>
  readonly proclamations: Map<string, (ActiveValue & { readonly modRevision: number })[]>
  readonly bans: Map<string, (BanValue & { readonly node: string; readonly lease: string })[]>
  readonly moves: Map<string, MoveValue & { readonly modRevision: number; readonly lease: string }>
  readonly rejections: Rejection[]
}

/** Sorts one key into what it is; a value that does not decode is a rejection. */
const collect = (cluster: string, kv: IKeyValue, into: Collected): void => {
  const key = kv.key.toString("utf8")
  const text = kv.value.toString("utf8")
  const revision = revisionOf(kv.mod_revision)
  const parsed = parseKey(cluster, key)
  const reject = (reason: string): void => void into.rejections.push({ key, revision, reason })
  const either = <A>(decoded: { readonly _tag: "Left"; readonly left: string } | { readonly _tag: "Right"; readonly right: A }, use: (a: A) => void): void =>
    decoded._tag === "Left" ? reject(decoded.left) : use(decoded.right)
  switch (parsed._tag) {
    case "Candidate":
      return either(decodeInstance(text), (v) => push(into.candidates, parsed.group, { node: parsed.node, instance: v.instance, createRevision: revisionOf(kv.create_revision), lease: kv.lease }))
    case "Active":
      return either(decodeActive(text), (v) => push(into.proclamations, parsed.group, { ...v, modRevision: revision }))
    case "Ban":
      return either(decodeBan(text), (v) => push(into.bans, parsed.group, { ...v, node: parsed.node, lease: kv.lease }))
    case "Move":
      return either(decodeMove(text), (v) => void into.moves.set(parsed.group, { ...v, modRevision: revision, lease: kv.lease }))
    default:
      return
  }
}

export const makeFailoverStore = (client: EtcdClient, leases: Leases, cluster: string, audit: Auditing): FailoverStore => {
  const { etcd, call } = client

  /** What is left of each lease, asked once per lease. */
  const leftOf = (ids: readonly string[]): Effect.Effect<ReadonlyMap<string, number | undefined>> =>
    Effect.map(
      Effect.forEach([...new Set(ids.filter((id) => id !== "0"))], (id) =>
        Effect.map(Effect.orElseSucceed(leases.timeToLive(id), () => -1), (ms) => [id, ms < 0 ? undefined : ms] as const),
      ),
      (pairs) => new Map(pairs),
    )

  const readFailover: FailoverStore["readFailover"] = () =>
    Effect.gen(function* () {
      const nodesRead = yield* call("read failover keys", () => etcd.getAll().prefix(nodesFailoverPrefix(cluster)).exec())
      const revision = revisionOf(nodesRead.header.revision)
      const movesRead = yield* call("read moves", () => etcd.getAll().prefix(failoverPrefix(cluster)).revision(revision).exec())
      const into: Collected = { candidates: new Map(), proclamations: new Map(), bans: new Map(), moves: new Map(), rejections: [] }
      for (const kv of [...nodesRead.kvs, ...movesRead.kvs]) collect(cluster, kv, into)
      const left = yield* leftOf([...[...into.candidates.values()].flat(), ...[...into.bans.values()].flat(), ...into.moves.values()].map((x) => x.lease))
      const leased = <T extends { readonly lease: string }>(x: T): T & Leased => ({ ...x, leftMs: left.get(x.lease) })
      return {
        revision,
        candidates: new Map([...into.candidates].map(([g, list]) => [g, list.map(leased).sort((a, b) => a.createRevision - b.createRevision)])),
        proclamations: new Map([...into.proclamations].map(([g, list]) => [g, [...list].sort((a, b) => a.epoch - b.epoch)])),
        bans: new Map([...into.bans].map(([g, list]) => [g, list.map(leased)])),
        moves: new Map([...into.moves].map(([g, m]) => [g, leased(m)])),
        rejections: into.rejections,
      }
    })

  const moveGroup: FailoverStore["moveGroup"] = (group, node, ttlMs, by) =>
    Effect.gen(function* () {
      yield* validName("group", group)
      yield* validName("node", node)
      const lease = yield* leases.grant(ttlMs)
      const value = encodeValue({ node, by, at: new Date().toISOString(), ...(client.identity === undefined ? {} : { etcdUser: client.identity }) })
      const key = moveKey(cluster, group)
      const r = yield* call("move", () => audit.commit(key, "move", `${group} to ${node}`, [etcd.put(key).value(value).lease(lease.id)]))
      yield* audit.trim()
      return { revision: revisionOf(r.header.revision) }
    })

  const clearMove: FailoverStore["clearMove"] = (group, modRevision) =>
    Effect.asVoid(call("clear move", () => etcd.if(moveKey(cluster, group), "Mod", "==", modRevision).then(etcd.delete().key(moveKey(cluster, group))).commit()))

  return { readFailover, moveGroup, clearMove }
}
