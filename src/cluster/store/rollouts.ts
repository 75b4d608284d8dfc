/**
 * Rolling tells in etcd: the rollout record of a group (`rollout/<group>`, its plan and progress),
 * the key of the client driving it (`rollout-driver/<group>`, on that client's lease), and the
 * writes of each step. The decisions are rollout.ts's; this module only reads and commits them.
 *
 * Exclusion: each step is one transaction guarded by the record's mod revision (the client
 * decided on that record, and no one has written it since) and by the driver key still being on
 * this client's lease. A client that lost either re-reads, so two clients never both take a step,
 * and a client whose lease lapsed (stalled, cut off) writes nothing more. The guards on the
 * cluster-wide key and on each override to delete keep the rollout from overwriting what someone
 * else wrote meanwhile.
 */
import type { IKeyValue, IOperation, Lease } from "etcd3"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type { Rejection } from "../desired.ts"
import { encodeValue } from "../codecs.ts"
import { desiredKey, nodeDesiredKey, parseKey, rolloutDriverKey, rolloutDriverPrefix, rolloutKey, rolloutPrefix } from "../keys.ts"
import type { Rollout, RolloutWrite } from "../rollout.ts"
import { asStored } from "../rollout.ts"
import type { DriverValue } from "../rolloutCodec.ts"
import { decodeDriver, decodeRollout, encodeDriver, encodeRollout } from "../rolloutCodec.ts"
import type { Auditing } from "./audit.ts"
import type { EtcdClient } from "./client.ts"
import { revisionOf } from "./client.ts"
import type { EtcdFailure, InvalidName } from "./errors.ts"
import { validName } from "./errors.ts"

/** A rollout as stored, with the mod revision its next step is guarded by. */
export interface StoredRollout {
  readonly rollout: Rollout
  readonly revision: number
  /** Who drives it now, if a client does (its lease is alive). */
  readonly driver: DriverValue | undefined
}

export interface RolloutRead {
  /** The group's rollout; none if there never was one, or its value was refused (`rejections`). */
  readonly stored: StoredRollout | undefined
  readonly rejections: readonly Rejection[]
}

/** This client drives the group's rollout while `lease` lives. */
export interface Driving {
  readonly lease: string
  /** What it wrote under the driver key: a reading that shows another value shows another driver. */
  readonly value: DriverValue
  /** Whether etcd still has the lease, as far as this client knows. */
  readonly held: () => boolean
}

export type Claim = { readonly _tag: "Claimed"; readonly driving: Driving } | { readonly _tag: "Held"; readonly by: DriverValue | undefined }

export type Committed = { readonly _tag: "Committed"; readonly revision: number } | { readonly _tag: "Lost" }

export interface Rollouts {
  readonly readRollout: (group: string) => Effect.Effect<RolloutRead, EtcdFailure | InvalidName>
  /** Every group's rollout, by group. */
  readonly rollouts: () => Effect.Effect<{ readonly rollouts: readonly StoredRollout[]; readonly rejections: readonly Rejection[] }, EtcdFailure>
  /**
   * Writes `next` with `writes`, only if the record's mod revision is still `expected` (0: no
   * record yet) and, when driving, the driver key is still on this client's lease; audited when
   * `audit` says what it does. `by` signs the desired levels written.
   */
  readonly commitRollout: (
    step: { readonly expected: number; readonly driving: Driving | undefined; readonly next: Rollout; readonly writes: readonly RolloutWrite[] },
    audit: string | undefined,
    by: string,
  ) => Effect.Effect<Committed, EtcdFailure>
  /** Claims the driving of `group`'s rollout on a lease of `ttlSeconds` kept alive until the scope ends. */
  readonly claimDriver: (group: string, by: string, ttlSeconds: number) => Effect.Effect<Claim, EtcdFailure | InvalidName, Scope.Scope>
}

const decodeStored = (
  cluster: string,
  pair: IKeyValue,
  driver: IKeyValue | undefined,
  rejections: Rejection[],
): StoredRollout | undefined => {
  const key = pair.key.toString("utf8")
  const revision = revisionOf(pair.mod_revision)
  const parsed = parseKey(cluster, key)
  if (parsed._tag !== "Rollout") return void rejections.push({ key, revision, reason: "not a rollout key" })
  const decoded = decodeRollout(pair.value.toString("utf8"), parsed.group)
  if (decoded._tag === "Left") return void rejections.push({ key, revision, reason: decoded.left })
  const who = driver === undefined ? undefined : decodeDriver(driver.value.toString("utf8"))
  return { rollout: asStored(decoded.right, revision), revision, driver: who?._tag === "Right" ? who.right : undefined }
}

const commitRollout =
  (client: EtcdClient, cluster: string, audit: Auditing): Rollouts["commitRollout"] =>
  (step, what, by) =>
    Effect.gen(function* () {
      const { etcd, call } = client
      const { group, level } = step.next
      const desired = encodeValue({ level, at: new Date().toISOString(), by, ...(client.identity === undefined ? {} : { etcdUser: client.identity }) })
      const ops: IOperation[] = []
      let txn = etcd.if(rolloutKey(cluster, group), "Mod", "==", step.expected)
      if (step.driving !== undefined) txn = txn.and(rolloutDriverKey(cluster, group), "Lease", "==", step.driving.lease)
      for (const w of step.writes) {
        switch (w._tag) {
          case "SetOverride":
            txn = txn.and(nodeDesiredKey(cluster, w.node, group), "Mod", "==", w.expected)
            ops.push(etcd.put(nodeDesiredKey(cluster, w.node, group)).value(desired))
            break
          case "SetClusterWide":
            // First in the transaction: a node then sees its override vanish with the level already set cluster-wide.
            txn = txn.and(desiredKey(cluster, group), "Mod", "==", w.expected)
            ops.unshift(etcd.put(desiredKey(cluster, group)).value(desired))
            break
          case "ClearOverride":
            txn = txn.and(nodeDesiredKey(cluster, w.node, group), "Mod", "==", w.revision)
            ops.push(etcd.delete().key(nodeDesiredKey(cluster, w.node, group)))
        }
      }
      const response = yield* call("write rollout", () =>
        txn.then(etcd.put(rolloutKey(cluster, group)).value(encodeRollout(step.next)), ...ops, ...(what === undefined ? [] : audit.record("rollout", what))).commit(),
      )
      if (!response.succeeded) return { _tag: "Lost" } as const
      if (what !== undefined) yield* audit.trim()
      return { _tag: "Committed", revision: revisionOf(response.header.revision) } as const
    })

/** The driver key on a new lease, if no one holds it; the lease lives until the scope ends. */
const claimDriver =
  (client: EtcdClient, cluster: string): Rollouts["claimDriver"] =>
  (group, by, ttlSeconds) =>
    Effect.gen(function* () {
      const { etcd, call } = client
      yield* validName("group", group)
      const key = rolloutDriverKey(cluster, group)
      const lease: Lease = etcd.lease(ttlSeconds)
      // Revoked when the client ends cleanly, so a `rollout resume` elsewhere need not wait for it to expire.
      yield* Effect.addFinalizer(() => Effect.ignore(call("revoke driver lease", () => lease.revoke())))
      let lost = false
      lease.on("lost", () => void (lost = true))
      // A grant or claim whose outcome is unknown must not leave a key alive on a lease kept alive here.
      const letGo = Effect.suspend(() => {
        lease.release()
        return Effect.ignore(call("revoke driver lease", () => lease.revoke()))
      })
      const id = yield* call("grant driver lease", () => lease.grant()).pipe(Effect.tapError(() => letGo))
      const value: DriverValue = { by, since: Date.now() }
      const response = yield* call("claim rollout", () =>
        etcd.if(key, "Create", "==", 0).then(etcd.put(key).value(encodeDriver(value)).lease(id)).else(etcd.get(key)).commit(),
      ).pipe(Effect.tapError(() => letGo))
      if (response.succeeded) return { _tag: "Claimed", driving: { lease: id, value, held: () => !lost && !lease.revoked() } } as const
      yield* letGo
      const holder = response.responses[0]?.response_range.kvs[0]
      const decoded = holder === undefined ? undefined : decodeDriver(holder.value.toString("utf8"))
      return { _tag: "Held", by: decoded?._tag === "Right" ? decoded.right : undefined } as const
    })

export const makeRollouts = (client: EtcdClient, cluster: string, audit: Auditing): Rollouts => {
  const { etcd, call } = client

  const readRollout: Rollouts["readRollout"] = (group) =>
    Effect.gen(function* () {
      yield* validName("group", group)
      // One transaction: the record and its driver at one revision.
      const response = yield* call("read rollout", () =>
        etcd.if(rolloutKey(cluster, group), "Mod", ">", -1).then(etcd.get(rolloutKey(cluster, group)), etcd.get(rolloutDriverKey(cluster, group))).commit(),
      )
      const [record, driver] = response.responses.map((r) => r.response_range.kvs[0])
      const rejections: Rejection[] = []
      const stored = record === undefined ? undefined : decodeStored(cluster, record, driver, rejections)
      return { stored, rejections }
    })

  const rollouts: Rollouts["rollouts"] = () =>
    Effect.map(
      call("read rollouts", () =>
        etcd.if(rolloutPrefix(cluster), "Mod", ">", -1).then(etcd.getAll().prefix(rolloutPrefix(cluster)), etcd.getAll().prefix(rolloutDriverPrefix(cluster))).commit(),
      ),
      (response) => {
        const [records, drivers] = response.responses.map((r) => r.response_range.kvs)
        const byGroup = new Map((drivers ?? []).map((d) => [d.key.toString("utf8").slice(rolloutDriverPrefix(cluster).length), d]))
        const rejections: Rejection[] = []
        const found = (records ?? []).flatMap((pair) => {
          const stored = decodeStored(cluster, pair, byGroup.get(pair.key.toString("utf8").slice(rolloutPrefix(cluster).length)), rejections)
          return stored === undefined ? [] : [stored]
        })
        return { rollouts: found, rejections }
      },
    )

  return { readRollout, rollouts, commitRollout: commitRollout(client, cluster, audit), claimDriver: claimDriver(client, cluster) }
}
