/**
 * Where cluster mode keeps its data in etcd. Everything of one cluster lives under
 * `/isinit/<cluster>/`:
 *
 * | key                              | value (JSON, see codecs.ts)                  | lease |
 * |----------------------------------|----------------------------------------------|-------|
 * | `config`                         | the isinittab text, its sha256, push number  | no    |
 * | `history/<seq>`                  | every pushed config, seq zero-padded         | no    |
 * | `desired/<group>`                | the level wanted on every node               | no    |
 * | `desired-node/<node>/<group>`    | the level wanted on one node (an override)   | no    |
 * | `nodes/<node>`                   | what the node runs: groups, entries, config  | yes   |
 * | `seen/<node>`                    | when the node last joined                    | no    |
 * | `failover/<group>/move`          | `{node}`: where `isinit move` sends the group | its own: it expires by itself |
 * | `failover-node/<node>/claim`     | `{instance}`: the daemon that claimed a name | the node's failover lease |
 * | `failover-node/<node>/cand/<group>` | `{instance}`: a candidate; its create     | the node's failover lease |
 * |                                  | revision is its place in the queue and the   |       |
 * |                                  | epoch (fencing token) while it holds         |       |
 * | `failover-node/<node>/active/<group>` | the node's last proclamation as holder  | no    |
 * |                                  | `{node, epoch, state, ttlMs, renewDeadlineMs, killGraceMs, reason, at}` | |
 * | `failover-node/<node>/ban/<group>` | `{reason, at}`: the node sits out a ban    | its own, as long as the ban |
 * | `rollout/<group>`                | a rolling tell's plan and progress (rollout.ts) | no |
 * | `rollout-driver/<group>`         | `{by, since}`: the client driving that rollout | the client's own |
 *
 * Failover (docs/cluster.md "Failover groups"; the rules in src/cluster/node/election.ts): every
 * key a node writes sits under `failover-node/<node>/`, so that a per-node etcd role can allow a
 * node its own keys and nothing of another node's (scripts/etcd-roles.sh); operators write only
 * `failover/<group>/move`. A group's election queue is every node's `cand/<group>` key, read
 * across nodes and ordered by create revision in code (the lowest leads, as in etcd's
 * `concurrency.Election`); the last holder is the proclamation with the highest epoch. A node's
 * `active/<group>` and its candidate key change together under the guard `Create(candidate) ==
 * epoch`, so a deposed holder cannot write. Everything a daemon watches, config, desired levels
 * and the failover keys, sorts in one range: `[config, failover0)`.
 *
 * Rolling tells (`tell --rolling`) are driven by a client, not obeyed by nodes: the client writes
 * node overrides batch by batch and, at the end, the cluster-wide level. Their keys sort after
 * `nodes/` and outside the watched range, so a rollout's progress never wakes a daemon.
 *
 * Precedence: a node's override (`desired-node/<node>/<group>`) wins over the cluster-wide level
 * (`desired/<group>`) for that node and group; deleting the override hands the group back to the
 * cluster-wide level. A local `isinit GROUP LEVEL` on a host in cluster mode writes that host's
 * override, so a restarted daemon converges to the same state; a cluster-wide `isinit tell`
 * without `--node` writes `desired/<group>` and leaves existing overrides in force.
 *
 * `config`, `desired-node/` and `desired/` sort together (between `config` and `desired0`), so one
 * range read gives a consistent snapshot of everything a daemon obeys, and one watch from that
 * snapshot's revision gives every later change in revision order. The config history, node status
 * and seen-marks sort after that range: they never wake the daemons' watch nor weigh on a resync.
 */

import { maxNameLength, nameProblem as baseNameProblem } from "../codec/names.ts"

/** Group, level, node and cluster names: the socket's rule, plus what may not be one key segment. */
export { maxNameLength }

export const nameProblem = (what: string, name: string): string | undefined => {
  const problem = baseNameProblem(what, name)
  if (problem !== undefined) return problem
  if (name.includes("/")) return `${what} contains a slash`
  if (name === "." || name === "..") return `${what} is "${name}"`
  return undefined
}

export const defaultCluster = "default"

const prefixOf = (cluster: string): string => `/isinit/${cluster}/`

export const configKey = (cluster: string): string => `${prefixOf(cluster)}config`

/** Pushes are numbered from 1; the zero padding keeps etcd's byte order equal to push order. */
export const configHistoryKey = (cluster: string, seq: number): string =>
  `${prefixOf(cluster)}history/${String(seq).padStart(10, "0")}`

export const configHistoryPrefix = (cluster: string): string => `${prefixOf(cluster)}history/`

export const desiredKey = (cluster: string, group: string): string => `${prefixOf(cluster)}desired/${group}`

export const nodeDesiredKey = (cluster: string, node: string, group: string): string =>
  `${prefixOf(cluster)}desired-node/${node}/${group}`

export const nodeStatusKey = (cluster: string, node: string): string => `${prefixOf(cluster)}nodes/${node}`

export const nodeStatusPrefix = (cluster: string): string => `${prefixOf(cluster)}nodes/`

export const seenKey = (cluster: string, node: string): string => `${prefixOf(cluster)}seen/${node}`

export const seenPrefix = (cluster: string): string => `${prefixOf(cluster)}seen/`

export const auditPrefix = (cluster: string): string => `${prefixOf(cluster)}audit/`

/** An audit record's key: the writer's clock in ms, zero-padded (so keys sort by time), and a random tail. */
export const auditKey = (cluster: string, atMs: number, random: string): string =>
  `${auditPrefix(cluster)}${String(atMs).padStart(15, "0")}-${random}`

/** What operators write about failover (`move`): `failover/<group>/`. */
export const failoverPrefix = (cluster: string): string => `${prefixOf(cluster)}failover/`

export const moveKey = (cluster: string, group: string): string => `${failoverPrefix(cluster)}${group}/move`

/** Everything node N writes for failover, and nothing of another node's: `failover-node/N/`. */
export const nodeFailoverPrefix = (cluster: string, node: string): string => `${prefixOf(cluster)}failover-node/${node}/`

export const claimKey = (cluster: string, node: string): string => `${nodeFailoverPrefix(cluster, node)}claim`

export const candidateKey = (cluster: string, node: string, group: string): string => `${nodeFailoverPrefix(cluster, node)}cand/${group}`

export const activeKey = (cluster: string, node: string, group: string): string => `${nodeFailoverPrefix(cluster, node)}active/${group}`

export const banKey = (cluster: string, node: string, group: string): string => `${nodeFailoverPrefix(cluster, node)}ban/${group}`

/** Every node's failover keys (bans, candidates, proclamations): what `status` reads. */
export const nodesFailoverPrefix = (cluster: string): string => `${prefixOf(cluster)}failover-node/`

/** A rolling tell of `group`: its plan and progress (one per group: a new rollout replaces an ended one). */
export const rolloutKey = (cluster: string, group: string): string => `${prefixOf(cluster)}rollout/${group}`

export const rolloutPrefix = (cluster: string): string => `${prefixOf(cluster)}rollout/`

/** Who drives the rollout of `group` now, on the driving client's lease: gone when that client is. */
export const rolloutDriverKey = (cluster: string, group: string): string => `${prefixOf(cluster)}rollout-driver/${group}`

export const rolloutDriverPrefix = (cluster: string): string => `${prefixOf(cluster)}rollout-driver/`

/** The key range `[start, end)` holding config and desired levels: what a client reads to tell. */
export const obeyedRange = (cluster: string): { readonly start: string; readonly end: string } => ({
  start: configKey(cluster),
  end: `${prefixOf(cluster)}desired0`,
})

/**
 * What a daemon reads and watches: config, desired levels and every failover key, in one range
 * (`failover-node/` and `failover/` sort after `desired0`; history, nodes, seen and audit sort
 * outside it, so node statuses never wake the daemons).
 */
export const watchedRange = (cluster: string): { readonly start: string; readonly end: string } => ({
  start: configKey(cluster),
  end: `${prefixOf(cluster)}failover0`,
})

/** Whom a desired level addresses: every node (cluster-wide) or one node (its override). */
export type Target = { readonly _tag: "Cluster" } | { readonly _tag: "Node"; readonly node: string }

export const clusterTarget: Target = { _tag: "Cluster" }
export const nodeTarget = (node: string): Target => ({ _tag: "Node", node })

export const desiredKeyFor = (cluster: string, target: Target, group: string): string =>
  target._tag === "Cluster" ? desiredKey(cluster, group) : nodeDesiredKey(cluster, target.node, group)

/** What a key under the cluster prefix is. */
export type ClusterKey =
  | { readonly _tag: "Config" }
  | { readonly _tag: "ConfigHistory"; readonly seq: number }
  | { readonly _tag: "Desired"; readonly target: Target; readonly group: string }
  | { readonly _tag: "NodeStatus"; readonly node: string }
  | { readonly _tag: "Seen"; readonly node: string }
  | { readonly _tag: "Audit"; readonly id: string }
  | { readonly _tag: "Rollout"; readonly group: string }
  | { readonly _tag: "RolloutDriver"; readonly group: string }
  | { readonly _tag: "Move"; readonly group: string }
  | { readonly _tag: "Claim"; readonly node: string }
  | { readonly _tag: "Candidate"; readonly node: string; readonly group: string }
  | { readonly _tag: "Active"; readonly node: string; readonly group: string }
  | { readonly _tag: "Ban"; readonly node: string; readonly group: string }
  | { readonly _tag: "Unknown"; readonly reason: string }

const unknown = (reason: string): ClusterKey => ({ _tag: "Unknown", reason })

const named = (what: string, name: string, make: (name: string) => ClusterKey): ClusterKey => {
  const problem = nameProblem(what, name)
  return problem === undefined ? make(name) : unknown(problem)
}

/** `failover-node/NODE/claim`, `.../cand/GROUP`, `.../active/GROUP`, `.../ban/GROUP`. */
const nodeFailoverKey = (parts: readonly string[]): ClusterKey => {
  const [node, what, group, ...more] = parts
  if (node === undefined || more.length > 0) return unknown("failover-node/ must be followed by node/claim or node/KIND/group")
  if (what === "claim" && group === undefined) return named("node", node, () => ({ _tag: "Claim", node }))
  if (group === undefined || (what !== "cand" && what !== "active" && what !== "ban")) {
    return unknown("failover-node/NODE/ must be followed by claim, cand/GROUP, active/GROUP or ban/GROUP")
  }
  const tag = what === "cand" ? "Candidate" : what === "active" ? "Active" : "Ban"
  return named("node", node, () => named("group", group, () => ({ _tag: tag, node, group })))
}

/** Classifies a full etcd key; total: anything unexpected is `Unknown` with the reason. */
export const parseKey = (cluster: string, key: string): ClusterKey => {
  const prefix = prefixOf(cluster)
  if (!key.startsWith(prefix)) return unknown(`not under ${prefix}`)
  const rest = key.slice(prefix.length)
  const slash = rest.indexOf("/")
  const kind = slash < 0 ? rest : rest.slice(0, slash)
  const tail = slash < 0 ? undefined : rest.slice(slash + 1)
  switch (kind) {
    case "config":
      return tail === undefined ? { _tag: "Config" } : unknown("nothing may follow config/")
    case "history":
      return tail !== undefined && /^\d{1,15}$/.test(tail) && Number(tail) > 0
        ? { _tag: "ConfigHistory", seq: Number(tail) }
        : unknown("history/ must be followed by a push number")
    case "desired":
      return tail === undefined
        ? unknown("desired/ must be followed by a group")
        : named("group", tail, (group) => ({ _tag: "Desired", target: clusterTarget, group }))
    case "desired-node": {
      const parts = tail === undefined ? [] : tail.split("/")
      const [node, group] = parts
      if (parts.length !== 2 || node === undefined || group === undefined) {
        return unknown("desired-node/ must be followed by node/group")
      }
      return named("node", node, () => named("group", group, () => ({ _tag: "Desired", target: nodeTarget(node), group })))
    }
    case "nodes":
      return tail === undefined ? unknown("nodes/ must be followed by a node") : named("node", tail, (node) => ({ _tag: "NodeStatus", node }))
    case "seen":
      return tail === undefined ? unknown("seen/ must be followed by a node") : named("node", tail, (node) => ({ _tag: "Seen", node }))
    case "rollout":
      return tail === undefined ? unknown("rollout/ must be followed by a group") : named("group", tail, (group) => ({ _tag: "Rollout", group }))
    case "rollout-driver":
      return tail === undefined ? unknown("rollout-driver/ must be followed by a group") : named("group", tail, (group) => ({ _tag: "RolloutDriver", group }))
    case "audit":
      return tail !== undefined && /^\d{15}-[0-9a-f]{1,32}$/.test(tail) ? { _tag: "Audit", id: tail } : unknown("audit/ must be followed by TIME-RANDOM")
    case "failover": {
      const [group, what, ...more] = tail === undefined ? [] : tail.split("/")
      if (group === undefined || what !== "move" || more.length > 0) return unknown("failover/ must be followed by group/move")
      return named("group", group, () => ({ _tag: "Move", group }))
    }
    case "failover-node":
      return nodeFailoverKey(tail === undefined ? [] : tail.split("/"))
    default:
      return unknown(`unknown key kind "${kind}"`)
  }
}
