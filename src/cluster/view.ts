/**
 * The cluster as `isinit status` and `isinit tell --wait` see it: the live nodes' published
 * status set against what etcd says they should run. Pure; the data comes from the store.
 */
import type { Config } from "../core/config.ts"
import type { NodeStatus } from "./codecs.ts"
import type { FailoverRead } from "./store/failover.ts"
import type { DesiredLevel, Effective, Obeyed } from "./desired.ts"
import { effectiveFor } from "./desired.ts"

interface Cell {
  readonly state: string
  readonly level: string
  /** What etcd wants for this node and group, if anything. */
  readonly wanted: Effective | undefined
  /**
   * The node has not caught up: it has not yet taken the wanted revision, or is still at another
   * level, or still starting. A `fail` at the wanted level is failed, not lagging.
   */
  readonly lagging: boolean
}

export interface Row {
  readonly node: string
  readonly at: string
  /**
   * The node runs another config than the one in etcd; while etcd has none, another config than
   * most live nodes (every node, when no config is run by more nodes than any other).
   */
  readonly drift: boolean
  readonly configSeq: number | null
  readonly cells: ReadonlyMap<string, Cell>
}

const cellOf = (status: NodeStatus, group: string, wanted: Effective | undefined): Cell => {
  const reported = status.report.groups.find((g) => g.group === group)
  const state = reported?.state ?? "absent"
  const level = reported?.level ?? ""
  const taken = status.desired[group]?.revision
  const lagging =
    wanted !== undefined && (taken === undefined || taken < wanted.revision || level !== wanted.level || state === "start")
  return { state, level, wanted, lagging }
}

/** The config hash every live node should run: etcd's, else the one most nodes run (none on a tie). */
const expectedConfig = (obeyed: Obeyed, live: readonly NodeStatus[]): string | null | undefined => {
  if (obeyed.config !== undefined) return obeyed.config.value.sha256
  const counts = new Map<string | null, number>()
  for (const status of live) counts.set(status.configSha256, (counts.get(status.configSha256) ?? 0) + 1)
  if (counts.size <= 1) return live[0]?.configSha256
  const ranked = [...counts].sort((a, b) => b[1] - a[1])
  return ranked[0] !== undefined && ranked[1] !== undefined && ranked[0][1] > ranked[1][1] ? ranked[0][0] : undefined
}

/** One row per live node, with a cell for every group the node reports or etcd wants of it. */
export const clusterRows = (obeyed: Obeyed, live: readonly NodeStatus[]): readonly Row[] => {
  const expected = expectedConfig(obeyed, live)
  return live.map((status) => {
    const effective = effectiveFor(obeyed, status.node)
    const groups = new Set<string>([...status.report.groups.map((g) => g.group), ...effective.keys()])
    const cells = new Map([...groups].sort().map((group) => [group, cellOf(status, group, effective.get(group))] as const))
    const drift = status.configSha256 !== expected
    return { node: status.node, at: status.at, drift, configSeq: status.configSeq, cells }
  })
}

/**
 * What became of a tell's desired key since the tell wrote it at `revision`: still in force, or
 * replaced by a later tell, or removed by `clear`. Either way the tell is superseded: the nodes
 * that have not reached it yet never will.
 */
type TellFate =
  | { readonly _tag: "InForce" }
  | { readonly _tag: "Replaced"; readonly by: DesiredLevel }
  | { readonly _tag: "Cleared" }

export type Superseding = Exclude<TellFate, { readonly _tag: "InForce" }>

/** The fate of a tell written at `revision`, given the desired key as it stands now. */
const fateOf = (current: DesiredLevel | undefined, revision: number): TellFate => {
  if (current === undefined) return { _tag: "Cleared" }
  return current.revision > revision ? { _tag: "Replaced", by: current } : { _tag: "InForce" }
}

export interface TellProgress {
  /** At the told level and `run`, having taken the tell's revision (or a later one). */
  readonly done: readonly string[]
  /** Took the tell and ended in `fail`. */
  readonly failed: readonly string[]
  /** Not there yet. */
  readonly pending: readonly string[]
  /** A node override wins over this cluster-wide tell: the node will not follow it. */
  readonly overridden: readonly string[]
  /** Not there, and never will be: a later tell replaced this one, or a clear removed it. */
  readonly superseded: readonly { readonly node: string; readonly by: Superseding }[]
}

type Standing = { readonly _tag: "Done" } | { readonly _tag: "Failed" } | { readonly _tag: "Pending" } | { readonly _tag: "Superseded"; readonly by: Superseding }

/** Where one node stands with a tell of `group` to `level` written at `revision`. */
const standingOf = (status: NodeStatus | undefined, group: string, level: string, revision: number, fate: TellFate): Standing => {
  const reported = status?.report.groups.find((g) => g.group === group)
  const taken = (status?.desired[group]?.revision ?? 0) >= revision
  if (taken && reported?.level === level && reported.state === "run") return { _tag: "Done" }
  if (taken && reported?.level === level && reported.state === "fail") return { _tag: "Failed" }
  return fate._tag === "InForce" ? { _tag: "Pending" } : { _tag: "Superseded", by: fate }
}

const progressOf = (standings: readonly (readonly [string, Standing])[], overridden: readonly string[]): TellProgress => ({
  done: standings.flatMap(([node, s]) => (s._tag === "Done" ? [node] : [])),
  failed: standings.flatMap(([node, s]) => (s._tag === "Failed" ? [node] : [])),
  pending: standings.flatMap(([node, s]) => (s._tag === "Pending" ? [node] : [])),
  overridden,
  superseded: standings.flatMap(([node, s]) => (s._tag === "Superseded" ? [{ node, by: s.by }] : [])),
})

/**
 * Where a cluster-wide tell of `group` to `level`, written at `revision`, stands on the live
 * nodes that run the group (report it). `tell --wait` is over when `pending` is empty.
 */
export const tellProgress = (obeyed: Obeyed, live: readonly NodeStatus[], group: string, level: string, revision: number): TellProgress => {
  const fate = fateOf(obeyed.cluster.get(group), revision)
  const standings: (readonly [string, Standing])[] = []
  const overridden: string[] = []
  for (const status of live) {
    if (!status.report.groups.some((g) => g.group === group)) continue
    if (effectiveFor(obeyed, status.node).get(group)?.source === "node") overridden.push(status.node)
    else standings.push([status.node, standingOf(status, group, level, revision, fate)])
  }
  return progressOf(standings, overridden)
}

/**
 * Where a tell of `group` to `level` addressed to the named nodes stands; `written` holds the
 * revision that wrote each node's override. A named node that is not live has not answered.
 */
export const nodeTellProgress = (
  obeyed: Obeyed,
  live: readonly NodeStatus[],
  written: ReadonlyMap<string, number>,
  group: string,
  level: string,
): TellProgress =>
  progressOf(
    [...written].map(([node, revision]) => {
      const fate = fateOf(obeyed.nodes.get(node)?.get(group), revision)
      return [node, standingOf(live.find((s) => s.node === node), group, level, revision, fate)] as const
    }),
    [],
  )

// ---------------------------------------------------------------------------------------------
// Failover groups (docs/cluster.md "Failover groups"), as `status` shows them

export interface FailoverRow {
  readonly group: string
  /** The level it runs at on its holder, from the config in etcd (undefined: not a failover group there). */
  readonly level: string | undefined
  /** Eligible nodes in order of preference; empty: any node. */
  readonly nodes: readonly string[]
  /** Who runs it now: the last proclamation, still running, whose candidate key still stands. */
  readonly holder: { readonly node: string; readonly epoch: number; readonly since: string | null; readonly leaseLeftMs: number | null } | null
  /** The last proclamation (holder or not), with why the group came to or left it. */
  readonly last: { readonly node: string; readonly epoch: number; readonly state: string; readonly reason: string; readonly at: string | null } | null
  /** The election queue, first = leader; the epoch is the create revision. */
  readonly candidates: readonly { readonly node: string; readonly epoch: number; readonly leaseLeftMs: number | null }[]
  readonly bans: readonly { readonly node: string; readonly reason: string; readonly leftMs: number | null }[]
  readonly move: { readonly node: string; readonly by: string | null; readonly leftMs: number | null } | null
}

const orNull = <T>(value: T | undefined): T | null => (value === undefined ? null : value)

/** One row per failover group of the config, and per group with failover keys in etcd. */
export const failoverRows = (config: Config | undefined, read: FailoverRead): readonly FailoverRow[] => {
  const groups = new Set([...(config?.failover.groups.keys() ?? []), ...read.candidates.keys(), ...read.proclamations.keys(), ...read.bans.keys(), ...read.moves.keys()])
  return [...groups].sort().map((group): FailoverRow => {
    const declared = config?.failover.groups.get(group)
    const candidates = read.candidates.get(group) ?? []
    const last = (read.proclamations.get(group) ?? []).at(-1)
    const standing = last === undefined ? undefined : candidates.find((c) => c.node === last.node && c.createRevision === last.epoch)
    const holder = last !== undefined && last.state === "running" && standing !== undefined ? { node: last.node, epoch: last.epoch, since: orNull(last.at), leaseLeftMs: orNull(standing.leftMs) } : null
    const move = read.moves.get(group)
    return {
      group,
      level: declared?.level,
      nodes: declared?.nodes ?? [],
      holder,
      last: last === undefined ? null : { node: last.node, epoch: last.epoch, state: last.state, reason: last.reason, at: orNull(last.at) },
      candidates: candidates.map((c) => ({ node: c.node, epoch: c.createRevision, leaseLeftMs: orNull(c.leftMs) })),
      bans: (read.bans.get(group) ?? []).map((b) => ({ node: b.node, reason: b.reason, leftMs: orNull(b.leftMs) })),
      move: move === undefined ? null : { node: move.node, by: orNull(move.by), leftMs: orNull(move.leftMs) },
    }
  })
}
