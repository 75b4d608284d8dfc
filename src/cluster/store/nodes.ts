/**
 * The cluster's members as etcd lists them: live nodes (a status on a live lease) and missing ones
 * (seen before, no status now), read at one revision; and forgetting a decommissioned node.
 */
import * as Effect from "effect/Effect"
import type { NodeStatus, SeenValue } from "../codecs.ts"
import { decodeNodeStatus, decodeSeen } from "../codecs.ts"
import type { Rejection } from "../desired.ts"
import { nodeStatusKey, nodeStatusPrefix, parseKey, seenKey, seenPrefix } from "../keys.ts"
import type { Auditing } from "./audit.ts"
import type { EtcdClient } from "./client.ts"
import { revisionOf } from "./client.ts"
import type { EtcdFailure, InvalidName } from "./errors.ts"
import { NodeLive, UnknownNode, validName } from "./errors.ts"
import type { KeyValues } from "./kv.ts"

export interface Nodes {
  readonly revision: number
  /** Nodes whose status is on a live lease, by name. */
  readonly live: readonly NodeStatus[]
  /** Nodes seen before whose status is gone (lease expired or revoked), by name. */
  readonly missing: readonly SeenValue[]
  readonly rejections: readonly Rejection[]
}

export interface Membership {
  readonly nodes: () => Effect.Effect<Nodes, EtcdFailure>
  readonly liveNodes: () => Effect.Effect<readonly NodeStatus[], EtcdFailure>
  readonly missingNodes: () => Effect.Effect<readonly SeenValue[], EtcdFailure>
  /**
   * The names of the live nodes, from their keys alone: what a poll that follows a few nodes
   * needs of the whole fleet (the values, a few KB each, are read only for those few).
   */
  readonly liveNames: () => Effect.Effect<ReadonlySet<string>, EtcdFailure>
  /** The statuses of these nodes that are live, read at one revision. */
  readonly statusesOf: (nodes: readonly string[]) => Effect.Effect<readonly NodeStatus[], EtcdFailure>
  /** Stops listing a missing node (decommissioned); refuses a live node and one never seen. */
  readonly forgetNode: (node: string) => Effect.Effect<void, EtcdFailure | InvalidName | NodeLive | UnknownNode>
}

const byName = <T extends { readonly node: string }>(a: T, b: T): number => (a.node < b.node ? -1 : a.node > b.node ? 1 : 0)

/** A status under another node's key is refused (a node's role may write only its own key, but etcd's root may write any). */
const ownStatus = (key: { readonly node: string }, value: NodeStatus): string | undefined => (value.node === key.node ? undefined : `status of node "${value.node}"`)

const liveNames =
  ({ etcd, call }: EtcdClient, cluster: string): Membership["liveNames"] =>
  () =>
    Effect.map(call("read node names", () => etcd.getAll().prefix(nodeStatusPrefix(cluster)).keys()), (keys) => {
      const names = new Set<string>()
      for (const key of keys) {
        const parsed = parseKey(cluster, key)
        if (parsed._tag === "NodeStatus") names.add(parsed.node)
      }
      return names
    })

const statusesOf =
  ({ etcd, call }: EtcdClient, kv: KeyValues, cluster: string): Membership["statusesOf"] =>
  (names) =>
    Effect.gen(function* () {
      if (names.length === 0) return []
      const [first = ""] = names
      // One transaction of gets: a consistent reading (etcd takes up to 128 operations; callers ask for at most 100).
      const response = yield* call("read node statuses", () =>
        etcd.if(nodeStatusKey(cluster, first), "Mod", ">", -1).then(...names.map((n) => etcd.get(nodeStatusKey(cluster, n)))).commit(),
      )
      const rejections: Rejection[] = []
      return response.responses.flatMap((r) => {
        const pair = r.response_range.kvs[0]
        const ok = pair === undefined ? undefined : kv.accept(pair, "NodeStatus", decodeNodeStatus, rejections, ownStatus)
        return ok === undefined ? [] : [ok.value]
      })
    })

export const makeMembership = (client: EtcdClient, kv: KeyValues, cluster: string, audit: Auditing): Membership => {
  const { etcd, call } = client

  const nodes: Membership["nodes"] = () =>
    Effect.gen(function* () {
      const seenResponse = yield* call("read seen", () => etcd.getAll().prefix(seenPrefix(cluster)).exec())
      const revision = revisionOf(seenResponse.header.revision)
      // Read at the same revision, so a node cannot be both missing and live, or neither.
      const liveResponse = yield* call("read nodes", () => etcd.getAll().prefix(nodeStatusPrefix(cluster)).revision(revision).exec())
      const rejections: Rejection[] = []
      const live: NodeStatus[] = []
      for (const pair of liveResponse.kvs) {
        const ok = kv.accept(pair, "NodeStatus", decodeNodeStatus, rejections, ownStatus)
        if (ok !== undefined) live.push(ok.value)
      }
      const liveNames = new Set(live.map((n) => n.node))
      const missing: SeenValue[] = []
      for (const pair of seenResponse.kvs) {
        const ok = kv.accept(pair, "Seen", decodeSeen, rejections)
        if (ok !== undefined && !liveNames.has(ok.key.node)) missing.push({ ...ok.value, node: ok.key.node })
      }
      return { revision, live: live.sort(byName), missing: missing.sort(byName), rejections }
    })

  const forgetNode: Membership["forgetNode"] = (node) =>
    Effect.gen(function* () {
      yield* validName("node", node)
      // One transaction, so a node that comes back meanwhile is never forgotten while live.
      const result = yield* call("forget node", () =>
        etcd
          .if(nodeStatusKey(cluster, node), "Create", "==", 0)
          .and(seenKey(cluster, node), "Create", ">", 0)
          .then(etcd.delete().key(seenKey(cluster, node)), ...audit.record("forget", node))
          .else(etcd.get(nodeStatusKey(cluster, node)))
          .commit(),
      )
      if (result.succeeded) return yield* audit.trim()
      const live = (result.responses[0]?.response_range.kvs.length ?? 0) > 0
      return yield* Effect.fail(live ? new NodeLive({ node }) : new UnknownNode({ node, cluster }))
    })

  return {
    nodes,
    liveNodes: () => Effect.map(nodes(), (n) => n.live),
    liveNames: liveNames(client, cluster),
    statusesOf: statusesOf(client, kv, cluster),
    missingNodes: () => Effect.map(nodes(), (n) => n.missing),
    forgetNode,
  }
}
