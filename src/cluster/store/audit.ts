/**
 * The audit trail: a record under `audit/` for every write `isinit --etcd` makes (tell, clear,
 * config push, forget), saying who (user@host, and the etcd user when etcd authenticated the
 * client) did what, and when. The record goes into the same transaction as the write: no write
 * without its record, and an etcd user that may not add records may not write either. A delete
 * (clear, forget) leaves no value behind to say who deleted it: its record does.
 *
 * Daemons do not audit (their local tells carry `by` and `etcdUser` in the override itself), so a
 * node's role needs no right to `audit/`. The trail keeps the newest `keep` records: each audited
 * write past `keep + slack` records removes the oldest, so the trail costs a bounded space.
 *
 * What the trail is worth: it is written by the client. Whoever may write a key may also write a
 * record that lies, or delete records: etcd's permissions cannot make a range append-only. For a
 * trail that a client cannot touch, keep etcd's own backups (docs/cluster.md, "Audit").
 */
import { randomBytes } from "node:crypto"
import type { IOperation, ITxnResponse } from "etcd3"
import * as Effect from "effect/Effect"
import type { AuditValue } from "../codecs.ts"
import { decodeAudit, encodeValue } from "../codecs.ts"
import type { Rejection } from "../desired.ts"
import { auditKey, auditPrefix } from "../keys.ts"
import type { EtcdClient } from "./client.ts"
import type { EtcdFailure } from "./errors.ts"
import type { KeyValues } from "./kv.ts"

export interface AuditEntry extends AuditValue {
  readonly revision: number
}

export interface Auditing {
  /**
   * Commits `ops` in one transaction, after checking `key`'s mod revision is above -1 (always
   * true: a transaction needs a comparison, and one on the written key needs no other right),
   * together with the audit record of the write when this store audits.
   */
  readonly commit: (key: string, op: string, what: string, ops: readonly IOperation[]) => Promise<ITxnResponse>
  /** The audit record to add to a transaction of the caller's own; none when this store does not audit. */
  readonly record: (op: string, what: string) => readonly IOperation[]
  /** After an audited write: drops the oldest records beyond the bound. Never fails the write. */
  readonly trim: () => Effect.Effect<void>
}

export interface AuditTrail {
  /** The newest `limit` audit records, newest first. */
  readonly auditTrail: (limit: number) => Effect.Effect<{ readonly entries: readonly AuditEntry[]; readonly rejections: readonly Rejection[] }, EtcdFailure>
}

/** Who writes: `by` is user@host; the etcd user comes from the client's credentials. */
export type Author = { readonly _tag: "Audited"; readonly by: string } | { readonly _tag: "Unaudited" }

const keep = 1_000
const slack = 100

export const makeAuditing = (client: EtcdClient, cluster: string, author: Author): Auditing => {
  const { etcd, call } = client
  const record: Auditing["record"] = (op, what) => {
    if (author._tag === "Unaudited") return []
    const now = new Date()
    const value: AuditValue = { op, what, by: author.by, at: now.toISOString(), ...(client.identity === undefined ? {} : { etcdUser: client.identity }) }
    return [etcd.put(auditKey(cluster, now.getTime(), randomBytes(6).toString("hex"))).value(encodeValue(value))]
  }
  const commit: Auditing["commit"] = (key, op, what, ops) =>
    etcd
      .if(key, "Mod", ">", -1)
      .then(...ops, ...record(op, what))
      .commit()
  const trim: Auditing["trim"] = () =>
    author._tag === "Unaudited"
      ? Effect.void
      : Effect.ignore(
          Effect.gen(function* () {
            const prefix = auditPrefix(cluster)
            const count = yield* call("count audit records", () => etcd.getAll().prefix(prefix).count())
            if (count <= keep + slack) return
            const oldest = yield* call("read audit records", () => etcd.getAll().prefix(prefix).sort("Key", "Ascend").limit(count - keep).keys())
            const last = oldest[oldest.length - 1]
            if (last !== undefined) yield* call("trim audit records", () => etcd.delete().inRange({ start: prefix, end: `${last}\0` }).exec())
          }),
        )
  return { commit, record, trim }
}

export const makeAuditTrail = (client: EtcdClient, kv: KeyValues, cluster: string): AuditTrail => ({
  auditTrail: (limit) =>
    Effect.map(
      client.call("read audit records", () => client.etcd.getAll().prefix(auditPrefix(cluster)).sort("Key", "Descend").limit(limit).exec()),
      (response) => {
        const entries: AuditEntry[] = []
        const rejections: Rejection[] = []
        for (const pair of response.kvs) {
          const ok = kv.accept(pair, "Audit", decodeAudit, rejections)
          if (ok !== undefined) entries.push({ ...ok.value, revision: ok.revision })
        }
        return { entries, rejections }
      },
    ),
})
