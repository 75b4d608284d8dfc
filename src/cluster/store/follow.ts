/**
 * What a daemon follows in etcd, as the node reducer asks for it: one read of the watched range
 * (config, desired levels, failover keys: keys.ts `watchedRange`) at one revision, and one watch
 * from a revision on. The watch delivers each revision's changes once, in order, and reports its
 * loss once, then ends: resyncing after a loss (a new read, with backoff when watches keep breaking)
 * is the reducer's decision (src/cluster/node/reduce.ts), not this module's.
 */
import type { IKeyValue, IWatchResponse, Watcher } from "etcd3"
import * as Effect from "effect/Effect"
import { watchedRange } from "../keys.ts"
import type { Change, ClusterSnapshot } from "../node/types.ts"
import { snapshotOf } from "../node/view.ts"
import type { EtcdClient } from "./client.ts"
import { describe, revisionOf } from "./client.ts"
import type { EtcdFailure } from "./errors.ts"
import type { KeyValues } from "./kv.ts"

export interface WatchHandlers {
  /** Every change of one revision, in revision order. */
  readonly batch: (revision: number, changes: readonly Change[]) => void
  /** The watch broke (disconnected, compacted, canceled by a member without a leader): said once. */
  readonly lost: (reason: string) => void
}

export interface Following {
  /** Everything followed, at the revision of the read (linearizable). */
  readonly readAll: () => Effect.Effect<ClusterSnapshot, EtcdFailure>
  /** Watches from `fromRevision + 1` until lost or cancelled; returns the cancel. */
  readonly watchAll: (fromRevision: number, handlers: WatchHandlers) => () => void
}

/** The changes of a watch response, by revision; at or below `after` is a replay, dropped. */
const byRevision = (
  response: IWatchResponse,
  after: number,
  changeOf: (kv: IKeyValue, type: "Put" | "Delete") => Change | undefined,
): ReadonlyMap<number, Change[]> => {
  const out = new Map<number, Change[]>()
  for (const event of response.events) {
    const at = revisionOf(event.kv.mod_revision)
    if (at <= after) continue
    const change = changeOf(event.kv, event.type === "Delete" ? "Delete" : "Put")
    const list = out.get(at) ?? []
    if (change !== undefined) list.push(change)
    out.set(at, list)
  }
  return out
}

export const makeFollowing = (client: EtcdClient, kv: KeyValues, cluster: string): Following => {
  const { etcd, call } = client

  const readAll: Following["readAll"] = () =>
    Effect.map(call("read", () => etcd.getAll().inRange(watchedRange(cluster)).exec()), (response) => {
      const changes = response.kvs.flatMap((pair) => kv.change(pair, "Put") ?? [])
      return snapshotOf(revisionOf(response.header.revision), changes)
    })

  const watchAll: Following["watchAll"] = (fromRevision, handlers) => {
    let delivered = fromRevision
    let over = false
    let watcher: Watcher | undefined
    const end = (): void => {
      over = true
      const w = watcher
      watcher = undefined
      if (w !== undefined) void w.cancel().catch(() => undefined)
    }
    const lose = (error: unknown): void => {
      if (over) return
      end()
      handlers.lost(describe(error))
    }
    watcher = etcd.watch().inRange(watchedRange(cluster)).startRevision(String(fromRevision + 1)).watcher()
    watcher.on("data", (response) => {
      if (over) return
      for (const [revision, changes] of [...byRevision(response, delivered, kv.change)].sort((a, b) => a[0] - b[0])) {
        delivered = revision
        handlers.batch(revision, changes)
      }
    })
    // etcd3 would reconnect by itself and resume; the reducer decides instead (a fresh read).
    watcher.on("disconnected", lose)
    watcher.on("error", lose)
    return end
  }

  return { readAll, watchAll }
}
