/**
 * What the daemons obey (config and desired levels), as plain data, and the pure rules that turn
 * it into tells. No etcd and no effect here, so the daemon and the tests can use it directly.
 *
 * Converging, not replaying: a daemon keeps the view up to date from the watch and, after every
 * event, tells each group whose effective desired level (see `effectiveFor`) has a different
 * etcd revision from the one it last told. A resync after an outage replaces the view; groups
 * whose desired key did not change keep their revision and are not told again, so nothing is
 * applied twice, and anything written during the outage has a new revision and is applied once.
 */
import type { ValidConfig } from "./codecs.ts"
import type { Target } from "./keys.ts"

/** One desired level as stored, with the etcd revision that wrote it. */
export interface DesiredLevel {
  readonly level: string
  readonly revision: number
  readonly by?: string | undefined
  readonly at?: string | undefined
  /** Whom etcd authenticated the writer as, when it was. */
  readonly etcdUser?: string | undefined
}

/** The config stored in etcd, validated, with the etcd revision that wrote it. */
export interface StoredConfig extends ValidConfig {
  readonly revision: number
}

export interface Obeyed {
  /** The etcd revision this view is complete up to. */
  readonly revision: number
  /** Cluster-wide levels, by group. */
  readonly cluster: ReadonlyMap<string, DesiredLevel>
  /** Per-node overrides, by node then group. */
  readonly nodes: ReadonlyMap<string, ReadonlyMap<string, DesiredLevel>>
  /** The last valid config; a rejected write leaves the previous one in force. */
  readonly config: StoredConfig | undefined
}

export const emptyObeyed: Obeyed = { revision: 0, cluster: new Map(), nodes: new Map(), config: undefined }

/** A key or value in etcd that was refused, and why. */
export interface Rejection {
  readonly key: string
  readonly revision: number
  readonly reason: string
}

/** A read of everything obeyed at one revision, with the keys refused on the way. */
export interface EtcdView {
  readonly obeyed: Obeyed
  readonly rejections: readonly Rejection[]
}

/** A change of what daemons obey, as a watch reports it, in etcd revision order. */
export type WatchEvent =
  | { readonly _tag: "DesiredSet"; readonly target: Target; readonly group: string; readonly desired: DesiredLevel }
  | { readonly _tag: "DesiredCleared"; readonly target: Target; readonly group: string; readonly revision: number }
  | { readonly _tag: "ConfigSet"; readonly config: StoredConfig }
  /** The config key was deleted: daemons keep running the config they have. */
  | { readonly _tag: "ConfigCleared"; readonly revision: number }
  | { readonly _tag: "Rejected"; readonly rejection: Rejection }

const withGroup = (
  map: ReadonlyMap<string, DesiredLevel>,
  group: string,
  desired: DesiredLevel | undefined,
): ReadonlyMap<string, DesiredLevel> => {
  const next = new Map(map)
  if (desired === undefined) next.delete(group)
  else next.set(group, desired)
  return next
}

const setDesired = (obeyed: Obeyed, target: Target, group: string, desired: DesiredLevel | undefined): Obeyed => {
  if (target._tag === "Cluster") return { ...obeyed, cluster: withGroup(obeyed.cluster, group, desired) }
  const nodes = new Map(obeyed.nodes)
  const groups = withGroup(obeyed.nodes.get(target.node) ?? new Map(), group, desired)
  if (groups.size === 0) nodes.delete(target.node)
  else nodes.set(target.node, groups)
  return { ...obeyed, nodes }
}

const atLeast = (obeyed: Obeyed, revision: number): Obeyed =>
  revision > obeyed.revision ? { ...obeyed, revision } : obeyed

/** The view after one watch event. */
export const applyEvent = (obeyed: Obeyed, event: WatchEvent): Obeyed => {
  switch (event._tag) {
    case "DesiredSet":
      return atLeast(setDesired(obeyed, event.target, event.group, event.desired), event.desired.revision)
    case "DesiredCleared":
      return atLeast(setDesired(obeyed, event.target, event.group, undefined), event.revision)
    case "ConfigSet":
      return atLeast({ ...obeyed, config: event.config }, event.config.revision)
    case "ConfigCleared":
      return atLeast({ ...obeyed, config: undefined }, event.revision)
    case "Rejected":
      return atLeast(obeyed, event.rejection.revision)
  }
}

export interface Effective {
  readonly level: string
  readonly revision: number
  readonly source: "cluster" | "node"
}

/** The level each group should be at on `node`: its override if any, else the cluster-wide one. */
export const effectiveFor = (obeyed: Obeyed, node: string): ReadonlyMap<string, Effective> => {
  const result = new Map<string, Effective>()
  for (const [group, d] of obeyed.cluster) result.set(group, { level: d.level, revision: d.revision, source: "cluster" })
  for (const [group, d] of obeyed.nodes.get(node) ?? []) result.set(group, { level: d.level, revision: d.revision, source: "node" })
  return result
}

/** What a daemon last told each group from etcd: the level and the revision it came from. */
export type ToldLevels = ReadonlyMap<string, { readonly level: string; readonly revision: number }>

/**
 * Groups to tell now, in name order. A group with no desired level at all is left alone (it keeps
 * running what it runs), as is one whose desired revision was already told.
 */
export const pendingTells = (
  effective: ReadonlyMap<string, Effective>,
  applied: ToldLevels,
): readonly { readonly group: string; readonly level: string; readonly revision: number }[] =>
  [...effective]
    .filter(([group, wanted]) => applied.get(group)?.revision !== wanted.revision)
    .map(([group, wanted]) => ({ group, level: wanted.level, revision: wanted.revision }))
    .sort((a, b) => (a.group < b.group ? -1 : a.group > b.group ? 1 : 0))
