/**
 * Presence: the node's status under `nodes/NODE` on its presence lease (docs/cluster.md
 * "Presence"), and the connection it reports locally.
 *
 * One publish in flight, of the latest state; a failed one is retried with backoff. The node
 * counts as *connected* only while etcd has acknowledged, within the renew deadline, a keep-alive
 * of that lease (and the watch runs, and the last publish went through): so a daemon whose
 * socket sits on an etcd member that lost quorum says "unreachable" before its published status
 * can have expired, not "connected".
 */
import { report } from "../../core/report.ts"
import { isCoreCommand } from "./core.ts"
import type { Step } from "./step.ts"
import { emit, log, retryDelay, wake } from "./step.ts"
import { validUntil } from "./lease.ts"
import type { Connection, NodeState, Presence, PublishedStatus, StatusBasis, WriteOutcome } from "./types.ts"

/** The presence lease's renew deadline, as a fraction of its TTL (the failover default). */
export const presenceDeadline = (ttlMs: number): number => Math.round(ttlMs * 0.6)

export const newPresence = (ttlMs: number): Presence => ({
  lease: { _tag: "None" },
  ttlMs,
  published: undefined,
  publishing: { _tag: "Idle" },
  seq: 0,
  seenOn: undefined,
  lastError: undefined,
  basis: undefined,
})

const statusOf = (s: Pick<NodeState, "running" | "convergence" | "core">): PublishedStatus => ({
  configSha256: s.running._tag === "Etcd" ? s.running.config.value.sha256 : s.running._tag === "File" ? s.running.sha256 : null,
  configSeq: s.running._tag === "Etcd" ? s.running.config.value.seq : null,
  desired: Object.fromEntries(s.convergence.taken),
  report: report(s.core),
})

/** The status to publish, computed again only when the core, the taken levels or the config changed. */
const basisOf = (s: NodeState): StatusBasis => {
  const b = s.presence.basis
  if (b !== undefined && b.core === s.core && b.taken === s.convergence.taken && b.running === s.running) return b
  const status = statusOf(s)
  return { core: s.core, taken: s.convergence.taken, running: s.running, status, text: JSON.stringify(status) }
}

/** Whether this step sent the core a command: its answer (`CoreAnswered`) comes next, with the core's new state. */
const awaitingCore = (step: Step): boolean => step.out.some(isCoreCommand)

/**
 * Publish the latest status when the lease is live, nothing is in flight and the text changed;
 * never while a core command of this step is unanswered: its taken revision beside the core's old
 * state would read, to `tell --wait` or a rollout, as the new level's outcome (a `fail` from before).
 */
export const advancePublish = (step: Step): void => {
  const p = step.s.presence
  const pub = p.publishing
  if (p.lease._tag !== "Live" || pub._tag === "InFlight" || (pub._tag === "Backoff" && step.s.now < pub.until) || awaitingCore(step)) return
  const basis = basisOf(step.s)
  if (basis.text === p.published) {
    step.s.presence = { ...p, basis, publishing: { _tag: "Idle" } }
    return
  }
  const seq = p.seq + 1
  const seen = p.seenOn === p.lease.id ? "keep" : "mark"
  emit(step, { _tag: "Write", write: { _tag: "Publish", seq, lease: p.lease.id, status: basis.status, seen } })
  const attempt = pub._tag === "Backoff" ? pub.attempt : 0
  step.s.presence = { ...p, basis, seq, publishing: { _tag: "InFlight", seq, text: basis.text, attempt }, seenOn: p.lease.id }
}

export const published = (step: Step, seq: number, outcome: WriteOutcome): void => {
  const p = step.s.presence
  const pub = p.publishing
  if (pub._tag !== "InFlight" || pub.seq !== seq) return
  if (outcome._tag === "Done") {
    if (p.lastError !== undefined) log(step, "cluster", `status published again as node ${step.s.node}`)
    step.s.presence = { ...p, published: pub.text, publishing: { _tag: "Idle" }, lastError: undefined }
    return
  }
  const reason = outcome._tag === "Lost" ? "lost a race" : outcome.reason
  if (p.lastError === undefined) log(step, "etcd-outage", `publishing the status failed: ${reason}; retrying`)
  const until = step.s.now + retryDelay(pub.attempt)
  wake(step, until)
  // The mark of `seen` may not have landed either: write it again with the next publish.
  step.s.presence = { ...p, publishing: { _tag: "Backoff", attempt: pub.attempt + 1, until, reason }, lastError: reason, seenOn: undefined }
}

/** Why the node is not connected now, or undefined when it is. */
const disconnection = (s: NodeState): string | undefined => {
  if (s.sync._tag !== "Watching") return s.sync.reason ?? "reading from etcd"
  const lease = s.presence.lease
  if (lease._tag !== "Live") return "waiting for etcd to grant the node's lease"
  if (s.now >= validUntil(lease)) return "etcd acknowledged no keep-alive of the node's lease within its renew deadline"
  return s.presence.lastError === undefined ? undefined : `publishing the status failed: ${s.presence.lastError}`
}

export const connectionOf = (s: NodeState): Connection => {
  const reason = disconnection(s)
  const was = s.connection
  if (reason === undefined) return was._tag === "Up" ? was : { _tag: "Up", since: s.now }
  return was._tag === "Down" ? (was.reason === reason ? was : { ...was, reason }) : { _tag: "Down", since: s.now, reason }
}
