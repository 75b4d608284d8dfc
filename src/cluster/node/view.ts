/**
 * The node's view of what it watches in etcd: config and desired levels (../desired.ts) and the
 * failover keys, kept current from the watch in revision order.
 */
import { applyEvent, emptyObeyed } from "../desired.ts"
import { withEntry } from "./step.ts"
import type { Active, Candidate, Change, ClusterSnapshot, FailoverChange, FailoverView, Move, Proclamation, View } from "./types.ts"
import { emptyFailoverView } from "./types.ts"

const withCandidate = (list: readonly Candidate[], candidate: Candidate): readonly Candidate[] =>
  [...list.filter((c) => c.key !== candidate.key), candidate].sort((a, b) => a.createRevision - b.createRevision)

/** The last holder of a group: of every node's proclamation, the one with the highest epoch. */
const latest = (byNode: ReadonlyMap<string, Proclamation> | undefined): Active | undefined => {
  let best: Active | undefined
  for (const { active } of byNode?.values() ?? []) if (best === undefined || active.epoch > best.epoch) best = active
  return best
}

const withProclamation = (view: FailoverView, group: string, node: string, proclamation: Proclamation | undefined): FailoverView => {
  const byNode = withEntry(view.proclamations.get(group) ?? new Map<string, Proclamation>(), node, proclamation)
  const proclamations = withEntry(view.proclamations, group, byNode.size === 0 ? undefined : byNode)
  return { ...view, proclamations, active: withEntry(view.active, group, latest(byNode)) }
}

const applyFailover = (view: FailoverView, change: FailoverChange): FailoverView => {
  switch (change._tag) {
    case "CandidateSet":
      return { ...view, candidates: withEntry(view.candidates, change.group, withCandidate(view.candidates.get(change.group) ?? [], change.candidate)) }
    case "CandidateGone": {
      const left = (view.candidates.get(change.group) ?? []).filter((c) => c.key !== change.key)
      return { ...view, candidates: withEntry(view.candidates, change.group, left.length === 0 ? undefined : left) }
    }
    case "ActiveSet":
      return withProclamation(view, change.group, change.active.node, { active: change.active, modRevision: change.modRevision })
    case "ActiveGone":
      return withProclamation(view, change.group, change.node, undefined)
    case "MoveSet":
      return { ...view, moves: withEntry(view.moves, change.group, change.move) }
    case "MoveGone":
      return { ...view, moves: withEntry(view.moves, change.group, undefined) }
    case "ClaimSet":
      return { ...view, claims: withEntry(view.claims, change.node, change.instance) }
    case "ClaimGone":
      return { ...view, claims: withEntry(view.claims, change.node, undefined) }
  }
}

export const isFailover = (change: Change): change is FailoverChange =>
  change._tag === "CandidateSet" ||
  change._tag === "CandidateGone" ||
  change._tag === "ActiveSet" ||
  change._tag === "ActiveGone" ||
  change._tag === "MoveSet" ||
  change._tag === "MoveGone" ||
  change._tag === "ClaimSet" ||
  change._tag === "ClaimGone"

/** The view after one watch batch at `revision`. */
export const applyChanges = (view: View, revision: number, changes: readonly Change[]): View => {
  let next = view
  for (const change of changes) {
    next = isFailover(change) ? { ...next, failover: applyFailover(next.failover, change) } : { ...next, obeyed: applyEvent(next.obeyed, change) }
  }
  return { ...next, revision: Math.max(next.revision, revision) }
}

/** Everything a node follows, read at `revision`: each key as the change that would have put it there. */
export const snapshotOf = (revision: number, changes: readonly Change[]): ClusterSnapshot => {
  const view = applyChanges({ revision: 0, obeyed: emptyObeyed, failover: emptyFailoverView }, revision, changes)
  return { revision, obeyed: { ...view.obeyed, revision }, failover: view.failover }
}

/** Which parts of the view a batch touched: converging is needed only for config and desired levels. */
export const touchesObeyed = (changes: readonly Change[]): boolean => changes.some((c) => !isFailover(c))

/** Our candidate in GROUP's queue (found by instance and epoch), or why not: it is gone, or not seen yet. */
export const ours = (view: View, group: string, instance: string, epoch: number): Candidate | "gone" | "unseen" => {
  const mine = (view.failover.candidates.get(group) ?? []).find((c) => c.instance === instance && c.createRevision === epoch)
  if (mine !== undefined) return mine
  return view.revision >= epoch ? "gone" : "unseen"
}

/**
 * The move of GROUP still in force: written, and its target has not proclaimed since (a node may
 * not delete the operator's key, so a move is done once its target's proclamation is newer).
 */
export const moveOf = (view: View | undefined, group: string): Move | undefined => {
  const move = view?.failover.moves.get(group)
  if (move === undefined) return undefined
  const target = view?.failover.proclamations.get(group)?.get(move.node)
  return target !== undefined && target.modRevision > move.modRevision ? undefined : move
}
