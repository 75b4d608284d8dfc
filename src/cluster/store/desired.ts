/**
 * Desired levels in etcd: everything daemons obey read at one revision, and the writes of
 * `isinit --etcd tell` and `clear` (cluster-wide, or one node's override).
 */
import * as Effect from "effect/Effect"
import { encodeValue } from "../codecs.ts"
import type { EtcdView, Obeyed, Rejection } from "../desired.ts"
import { applyEvent, emptyObeyed } from "../desired.ts"
import type { Target } from "../keys.ts"
import { clusterTarget, desiredKeyFor, nodeTarget, obeyedRange } from "../keys.ts"
import type { Auditing } from "./audit.ts"
import type { EtcdClient } from "./client.ts"
import { revisionOf } from "./client.ts"
import type { Configs } from "./config.ts"
import type { EtcdFailure, InvalidName } from "./errors.ts"
import { FailoverGroupTold, UnknownGroup, validName } from "./errors.ts"
import type { KeyValues } from "./kv.ts"

export interface DesiredLevels {
  /** Config and desired levels at one revision; the watch continues from `obeyed.revision`. */
  readonly readDesired: () => Effect.Effect<EtcdView, EtcdFailure>
  /** Sets a group's desired level, cluster-wide or (with `node`) as that node's override. */
  readonly setDesired: (
    group: string,
    level: string,
    options?: { readonly node?: string | undefined; readonly by?: string | undefined },
  ) => Effect.Effect<{ readonly revision: number }, EtcdFailure | InvalidName | UnknownGroup | FailoverGroupTold>
  /** Removes a desired level; for a node override, the cluster-wide level applies again. */
  readonly clearDesired: (
    group: string,
    options?: { readonly node?: string | undefined },
  ) => Effect.Effect<{ readonly revision: number; readonly deleted: boolean }, EtcdFailure | InvalidName>
}

const targetOf = (node: string | undefined): Effect.Effect<Target, InvalidName> =>
  node === undefined ? Effect.succeed(clusterTarget) : Effect.map(validName("node", node), nodeTarget)

const describeTarget = (target: Target): string => (target._tag === "Cluster" ? "" : ` on ${target.node}`)

export const makeDesiredLevels = (client: EtcdClient, kv: KeyValues, configs: Configs, cluster: string, audit: Auditing): DesiredLevels => {
  const { etcd, call } = client

  const readDesired: DesiredLevels["readDesired"] = () =>
    Effect.map(call("read desired", () => etcd.getAll().inRange(obeyedRange(cluster)).exec()), (response) => {
      let obeyed: Obeyed = emptyObeyed
      const rejections: Rejection[] = []
      for (const pair of response.kvs) {
        const event = kv.classify(pair, "Put")
        if (event === undefined) continue
        if (event._tag === "Rejected") rejections.push(event.rejection)
        obeyed = applyEvent(obeyed, event)
      }
      return { obeyed: { ...obeyed, revision: revisionOf(response.header.revision) }, rejections }
    })

  const setDesired: DesiredLevels["setDesired"] = (group, level, opts = {}) =>
    Effect.gen(function* () {
      yield* validName("group", group)
      yield* validName("level", level)
      const target = yield* targetOf(opts.node)
      const config = yield* configs.currentConfig()
      if (config._tag === "Valid" && !config.config.parsed.config.byGroup.has(group)) {
        return yield* Effect.fail(new UnknownGroup({ group, configSeq: config.config.value.seq }))
      }
      if (config._tag === "Valid" && config.config.parsed.config.failover.groups.has(group)) return yield* Effect.fail(new FailoverGroupTold({ group }))
      const value = encodeValue({
        level,
        at: new Date().toISOString(),
        ...(opts.by === undefined ? {} : { by: opts.by }),
        ...(client.identity === undefined ? {} : { etcdUser: client.identity }),
      })
      const key = desiredKeyFor(cluster, target, group)
      const response = yield* call("set desired", () => audit.commit(key, "tell", `${group}=${level}${describeTarget(target)}`, [etcd.put(key).value(value)]))
      yield* audit.trim()
      return { revision: revisionOf(response.header.revision) }
    })

  const clearDesired: DesiredLevels["clearDesired"] = (group, opts = {}) =>
    Effect.gen(function* () {
      yield* validName("group", group)
      const target = yield* targetOf(opts.node)
      const key = desiredKeyFor(cluster, target, group)
      const response = yield* call("clear desired", () => audit.commit(key, "clear", `${group}${describeTarget(target)}`, [etcd.delete().key(key)]))
      yield* audit.trim()
      return { revision: revisionOf(response.header.revision), deleted: revisionOf(response.responses[0]?.response_delete_range?.deleted) > 0 }
    })

  return { readDesired, setDesired, clearDesired }
}
