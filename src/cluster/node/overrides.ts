/**
 * Local tells recorded as this node's override (docs/cluster.md "Local tells"): a tell on the
 * host's socket applies at once (the core took it), then `desired-node/NODE/GROUP` is written so
 * that a restarted daemon converges to the same state. One write at a time; the latest level per
 * group wins; while etcd does not answer, writes wait and retry with backoff and `status` lists
 * them as pending. Each client gets one note within a second: where its override was recorded,
 * or why not yet.
 */
import type { Step } from "./step.ts"
import { emit, log, retryDelay, wake, withEntry } from "./step.ts"
import type { Overrides, WriteOutcome } from "./types.ts"

export const noOverrides: Overrides = { pending: new Map(), writer: { _tag: "Idle" }, replyBy: new Map() }

/** How long a client waits for its note before it is told that recording takes long. */
export const replyWithinMs = 1_000

const reply = (step: Step, requests: readonly number[], note: string): void => {
  const o = step.s.overrides
  const replyBy = new Map(o.replyBy)
  for (const request of requests) {
    if (!replyBy.delete(request)) continue // already told that it takes long
    emit(step, { _tag: "Reply", request, note })
  }
  step.s.overrides = { ...o, replyBy }
}

export const localTell = (step: Step, request: number, group: string, level: string): void => {
  const o = step.s.overrides
  const requests = [...(o.pending.get(group)?.requests ?? []), request]
  const at = step.s.now + replyWithinMs
  wake(step, at)
  step.s.overrides = { ...o, pending: withEntry(o.pending, group, { level, requests }), replyBy: withEntry(o.replyBy, request, at) }
}

/** Start the next write if none is under way; tell clients whose note is overdue. */
export const advanceOverrides = (step: Step): void => {
  const now = step.s.now
  const overdue = [...step.s.overrides.replyBy].filter(([, at]) => at <= now).map(([request]) => request)
  if (overdue.length > 0) reply(step, overdue, "applied here; recording it in etcd is taking long (see the daemon's log)")
  const o = step.s.overrides
  if (o.writer._tag === "Backoff" && now < o.writer.until) return
  if (o.writer._tag === "Writing") return
  const next = o.pending.entries().next()
  if (next.done === true) {
    if (o.writer._tag !== "Idle") step.s.overrides = { ...o, writer: { _tag: "Idle" } }
    return
  }
  const [group, { level }] = next.value
  const c = step.s.convergence
  step.s.convergence = { ...c, echoes: withEntry(c.echoes, group, level) }
  step.s.overrides = { ...o, writer: { _tag: "Writing", group, level } }
  emit(step, { _tag: "Write", write: { _tag: "Override", group, level } })
}

export const overrideWritten = (step: Step, group: string, level: string, outcome: WriteOutcome): void => {
  const o = step.s.overrides
  const pending = o.pending.get(group)
  // A newer local tell of the group may have come meanwhile: it stays for the next write.
  const current = pending?.level === level ? pending : undefined
  const node = step.s.node
  switch (outcome._tag) {
    case "Done": {
      step.s.overrides = { ...o, writer: { _tag: "Idle" }, pending: current === undefined ? o.pending : withEntry(o.pending, group, undefined) }
      const note = `recorded in etcd as ${node}'s override (revision ${outcome.revision})`
      log(step, "cluster", `local tell ${group} ${level} ${note}`, group)
      return reply(step, current?.requests ?? [], note)
    }
    case "Unavailable":
    case "Lost": {
      const attempt = o.writer._tag === "Backoff" ? o.writer.attempt + 1 : 0
      const until = step.s.now + retryDelay(attempt)
      wake(step, until)
      step.s.overrides = { ...o, writer: { _tag: "Backoff", attempt, until } }
      const reason = outcome._tag === "Lost" ? "lost a race" : outcome.reason
      return reply(step, current?.requests ?? [], `applied here; etcd did not answer (${reason}): the override is written once it does`)
    }
    case "Refused": {
      const c = step.s.convergence
      step.s.overrides = { ...o, writer: { _tag: "Idle" }, pending: current === undefined ? o.pending : withEntry(o.pending, group, undefined) }
      if (current === undefined) return
      step.s.convergence = { ...c, echoes: withEntry(c.echoes, group, undefined) }
      const note = `applied here only: etcd refused the override: ${outcome.reason}`
      log(step, "rejected", `local tell ${group} ${level} ${note}`, group)
      return reply(step, current.requests, note)
    }
  }
}

/** etcd answers again: pending writes go now rather than after their backoff. */
export const retryOverridesNow = (step: Step): void => {
  const o = step.s.overrides
  if (o.writer._tag === "Backoff") step.s.overrides = { ...o, writer: { _tag: "Idle" } }
}
