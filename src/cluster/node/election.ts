/**
 * Failover elections (docs/cluster.md "Failover groups"). Per failover group this node may hold:
 *
 *   Idle ─campaign→ Campaigning → Queued ─leads→ TakeoverWait ─delay over→ Proclaiming → Holding
 *   Holding ─move / failure / leaving→ Releasing ─processes gone→ Resigning → Idle | Banned
 *   Queued ─not wanted, or a preferred node queued behind→ Withdrawing → Idle
 *   any state with a key ─key gone (lease expired)→ Idle (a holder stops its group at once)
 *
 * The queue is etcd's: candidate keys on each node's failover lease, led by the lowest create
 * revision, which is also the epoch. A leader waits the takeover delay unless the previous holder
 * resigned after confirming its processes gone, proclaims itself under its key's guard, and only
 * then holds: the core runs the group while the hold is valid, i.e. until the renew deadline after
 * the last acknowledged keep-alive was sent, and stops it by itself when it is not renewed. The
 * fencer gets the same deadline, so a stalled daemon's group stops too.
 */
import * as HashMap from "effect/HashMap"
import type { FailoverGroup } from "../../core/failover.ts"
import { eligible, preferenceOf, takeoverDelayAfter } from "../../core/failover.ts"
import type { State as CoreState } from "../../core/state.ts"
import { entryOf, groupOf } from "../../core/state.ts"
import { dropLease, keepLease, noLease, validUntil } from "./lease.ts"
import type { Step } from "./step.ts"
import { configOf, emit, failoverGroup, log, retryDelay, wake, withEntry } from "./step.ts"
import type { Active, Candidate, Election, FailoverNode, Handover, NodeState, Write, WriteOutcome } from "./types.ts"
import { moveOf, ours } from "./view.ts"

const idle: Election = { _tag: "Idle" }

export const noFailoverNode: FailoverNode = { lease: noLease, terms: undefined, claim: { _tag: "Unclaimed" }, elections: new Map(), backoff: { attempt: 0, until: 0 } }

export const electionOf = (s: Pick<NodeState, "failover">, group: string): Election => s.failover.elections.get(group) ?? idle

const set = (step: Step, group: string, election: Election): void => {
  const f = step.s.failover
  step.s.failover = { ...f, elections: withEntry(f.elections, group, election._tag === "Idle" ? undefined : election) }
}

type Keyed = Extract<Election, { readonly epoch: number }>

const hasKey = (e: Election): e is Keyed => "epoch" in e

/** Failover writes pause after one found etcd unavailable. */
const writable = (s: NodeState): boolean => s.now >= s.failover.backoff.until

const noteOutcome = (step: Step, outcome: WriteOutcome): void => {
  const f = step.s.failover
  if (outcome._tag === "Unavailable") {
    const until = step.s.now + retryDelay(f.backoff.attempt)
    wake(step, until)
    step.s.failover = { ...f, backoff: { attempt: f.backoff.attempt + 1, until } }
  } else if (f.backoff.attempt > 0) step.s.failover = { ...f, backoff: { attempt: 0, until: 0 } }
}

// ---------------------------------------------------------------------------------------------
// Rules

/** Why this node must not run the group now; undefined when it may. */
const notWanted = (s: NodeState, group: string): string | undefined => {
  const failover = failoverGroup(s, group)
  if (failover === undefined) return "it is no longer a failover group"
  if (!eligible(failover, s.node)) return `${s.node} is not listed for it`
  if (s.lifecycle === "stopping") return "the daemon is stopping"
  const move = moveOf(s.view, group)
  return move !== undefined && move.node !== s.node ? `it is being moved to ${move.node}` : undefined
}

/** A holder's group failed here: a test failed at its level, or one of its entries was jailed. */
const failureOf = (s: NodeState, failover: FailoverGroup): string | undefined => {
  const at = groupOf(s.core, failover.group)
  if (at.level !== failover.level) return undefined
  if (at.phase === "fail") return `a test of ${failover.group} failed on ${s.node}`
  const jailed = (configOf(s).byGroup.get(failover.group) ?? []).find((def) => entryOf(s.core, def.tag).jail._tag === "Jailed")
  return jailed === undefined ? undefined : `${jailed.tag} respawned too fast on ${s.node} (jailed)`
}

const handoverOf = (s: NodeState, group: string): Handover | undefined => {
  const move = moveOf(s.view, group)
  if (move !== undefined && move.node !== s.node) return { _tag: "Move", to: move.node }
  const why = notWanted(s, group)
  if (why !== undefined) return { _tag: "Leaving", reason: why }
  const failover = failoverGroup(s, group)
  const failure = failover === undefined ? undefined : failureOf(s, failover)
  return failure === undefined ? undefined : { _tag: "Failed", reason: failure }
}

const describeHandover = (why: Handover): string =>
  why._tag === "Move" ? `moved to ${why.to} by an operator` : why._tag === "Failed" ? `failed: ${why.reason}` : why.reason

/** A more preferred node queued behind us: we queue again behind it (never a node that runs the group). */
const preferredBehind = (s: NodeState, group: string, epoch: number): boolean => {
  const failover = failoverGroup(s, group)
  if (failover === undefined || failover.nodes.length === 0 || moveOf(s.view, group)?.node === s.node) return false
  const mine = preferenceOf(failover, s.node)
  return (s.view?.failover.candidates.get(group) ?? []).some((c) => c.createRevision > epoch && preferenceOf(failover, c.node) < mine)
}

/** Whether any process of the group is alive on this node (started, or being stopped). */
const groupRuns = (core: CoreState, group: string): boolean => {
  for (const entry of HashMap.values(core.entries)) if (entry.proc._tag !== "Idle" && entry.proc.def.group === group) return true
  return false
}

const proclamation = (s: NodeState, epoch: number, state: Active["state"], reason: string): Active => {
  const terms = s.failover.terms ?? configOf(s).failover.timing
  return { node: s.node, epoch, state, ttlMs: terms.ttlMs, renewDeadlineMs: terms.renewDeadlineMs, killGraceMs: terms.killGraceMs, reason }
}

// ---------------------------------------------------------------------------------------------
// One step of a group's election

/** The core may run the group until the lease's renew deadline; the fencer stops it after that. */
export const hold = (step: Step, group: string, epoch: number): void => {
  const { lease, terms } = step.s.failover
  const until = validUntil(lease)
  if (terms === undefined || until <= step.s.now || step.s.core.lifecycle !== "running") return
  emit(step, { _tag: "ArmFencer", group, epoch, termAt: until, killAt: until + terms.killGraceMs })
  emit(step, { _tag: "HoldCore", group, epoch, until })
}

const campaign = (step: Step, group: string): void => {
  const s = step.s
  const lease = s.failover.lease
  if (notWanted(s, group) !== undefined || s.failover.claim._tag !== "Claimed" || lease._tag !== "Live" || s.view === undefined || !writable(s)) return
  emit(step, { _tag: "Write", write: { _tag: "Campaign", group, lease: lease.id, instance: s.instance } })
  set(step, group, { _tag: "Campaigning" })
}

const withdraw = (step: Step, group: string, mine: Candidate, epoch: number): void => {
  if (!writable(step.s)) return
  emit(step, { _tag: "Write", write: { _tag: "Withdraw", group, key: mine.key, epoch } })
  set(step, group, { _tag: "Withdrawing", key: mine.key, epoch })
}

/**
 * How long a node placing the group for the first time (nobody ever held it) waits per rank of
 * preference, so that nodes starting together place it on the most preferred one.
 */
export const placementStepMs = 1_000

/**
 * We lead: wait the takeover delay after a holder whose lease vanished; nothing after a clean
 * hand-over; at the first placement, a pause by our rank of preference.
 */
const startTakeover = (step: Step, group: string, key: string, epoch: number): Extract<Election, { readonly _tag: "TakeoverWait" }> => {
  const s = step.s
  const active = s.view?.failover.active.get(group)
  const own = configOf(s).failover.timing
  const failover = failoverGroup(s, group)
  const placement = failover === undefined ? 0 : Math.min(preferenceOf(failover, s.node), failover.nodes.length) * placementStepMs
  const delay = active === undefined ? placement : active.state === "released" ? 0 : takeoverDelayAfter(active, own)
  const reason =
    active === undefined ? "first holder" : active.state === "released" ? `handed over by ${active.node} (${active.reason})` : `took over from ${active.node} (its lease expired)`
  const wait = { _tag: "TakeoverWait", key, epoch, until: s.now + delay, reason } as const
  if (delay > 0) wake(step, wait.until)
  log(step, "failover", `${group}: leading the election (epoch ${epoch}); ${delay > 0 ? `starting in ${delay} ms` : "starting now"}: ${reason}`, group)
  set(step, group, wait)
  return wait
}

const queued = (step: Step, group: string, e: Extract<Election, { readonly _tag: "Queued" | "TakeoverWait" }>): void => {
  const s = step.s
  const view = s.view
  const mine = view === undefined ? "unseen" : ours(view, group, s.instance, e.epoch)
  if (mine === "unseen") return
  if (mine === "gone") return set(step, group, idle)
  // A leader yields to a preferred node only before the group ever ran (a takeover is not delayed for it).
  const yields = e._tag === "Queued" || view?.failover.active.has(group) === false
  if (notWanted(s, group) !== undefined || (yields && preferredBehind(s, group, e.epoch))) return withdraw(step, group, mine, e.epoch)
  if (view?.failover.candidates.get(group)?.[0]?.key !== mine.key) return
  const wait = e._tag === "TakeoverWait" ? e : startTakeover(step, group, mine.key, e.epoch)
  if (s.now < wait.until || !writable(s)) return
  const active = proclamation(s, e.epoch, "running", wait.reason)
  emit(step, { _tag: "Write", write: { _tag: "Proclaim", group, key: mine.key, epoch: e.epoch, active } })
  set(step, group, { _tag: "Proclaiming", key: mine.key, epoch: e.epoch, reason: wait.reason })
}

const holding = (step: Step, group: string, e: Extract<Election, { readonly _tag: "Holding" }>): void => {
  const view = step.s.view
  if (view !== undefined && ours(view, group, step.s.instance, e.epoch) === "gone") {
    emit(step, { _tag: "ReleaseCore", group })
    log(step, "failover", `${group}: our candidate key is gone (lease expired or deleted): stopping the group`, group)
    return set(step, group, idle)
  }
  const why = handoverOf(step.s, group)
  if (why === undefined) return
  emit(step, { _tag: "ReleaseCore", group })
  log(step, "failover", `${group}: handing over (${describeHandover(why)}): stopping the group here first`, group)
  set(step, group, { _tag: "Releasing", key: e.key, epoch: e.epoch, why })
}

/** The key is gone or resigned: after a failure the node sits out the ban. */
const finishHandover = (step: Step, group: string, why: Handover): void => {
  if (why._tag !== "Failed") return set(step, group, idle)
  const banMs = configOf(step.s).failover.timing.banMs
  const until = step.s.now + banMs
  wake(step, until)
  emit(step, { _tag: "Write", write: { _tag: "Ban", group, reason: why.reason, ttlMs: banMs } })
  log(step, "failover", `${group}: ${step.s.node} is banned from the group for ${banMs} ms: ${why.reason}`, group)
  set(step, group, { _tag: "Banned", until, reason: why.reason })
}

const releasing = (step: Step, group: string, e: Extract<Election, { readonly _tag: "Releasing" }>): void => {
  const s = step.s
  const mine = s.view === undefined ? "unseen" : ours(s.view, group, s.instance, e.epoch)
  if (mine === "gone") return finishHandover(step, group, e.why)
  if (mine === "unseen" || groupRuns(s.core, group) || !writable(s)) return
  const active = proclamation(s, e.epoch, "released", describeHandover(e.why))
  emit(step, { _tag: "Write", write: { _tag: "Resign", group, key: mine.key, epoch: e.epoch, active } })
  set(step, group, { _tag: "Resigning", key: mine.key, epoch: e.epoch, why: e.why })
}

/**
 * The config no longer makes the group a failover group: its processes (if any) are an ordinary
 * group's now and keep running; our key leaves the queue without a hand-over.
 */
const leave = (step: Step, group: string, e: Election): void => {
  const view = step.s.view
  if (!hasKey(e) || e._tag === "Proclaiming" || e._tag === "Resigning" || e._tag === "Withdrawing") {
    if (e._tag === "Banned" || e._tag === "Idle") set(step, group, idle)
    return
  }
  const mine = view === undefined ? "unseen" : ours(view, group, step.s.instance, e.epoch)
  if (mine === "gone") return set(step, group, idle)
  if (mine !== "unseen") withdraw(step, group, mine, e.epoch)
}

const decide = (step: Step, group: string): void => {
  const e = electionOf(step.s, group)
  if (failoverGroup(step.s, group) === undefined) return leave(step, group, e)
  switch (e._tag) {
    case "Idle":
      return campaign(step, group)
    case "Banned":
      if (step.s.now < e.until) return
      log(step, "failover", `${group}: the ban of ${step.s.node} is over`, group)
      set(step, group, idle)
      return campaign(step, group)
    case "Queued":
    case "TakeoverWait":
      return queued(step, group, e)
    case "Holding":
      return holding(step, group, e)
    case "Releasing":
      return releasing(step, group, e)
    case "Campaigning":
    case "Proclaiming":
    case "Resigning":
    case "Withdrawing":
      return // waiting for etcd's answer
  }
}

// ---------------------------------------------------------------------------------------------
// The node's failover lease and its claim on the node name

const keepFailoverLease = (step: Step): void => {
  const s = step.s
  const f = s.failover
  const config = configOf(s).failover
  const needed = s.lifecycle === "running" && [...config.groups.values()].some((g) => eligible(g, s.node))
  if (needed || [...f.elections.values()].some(hasKey)) {
    const lease = keepLease(step, "failover", f.lease, f.terms ?? config.timing)
    step.s.failover = { ...step.s.failover, lease }
  } else if (f.lease._tag !== "None") {
    step.s.failover = { ...f, lease: dropLease(step, "failover", f.lease), terms: undefined, claim: { _tag: "Unclaimed" } }
  }
}

const advanceClaim = (step: Step): void => {
  const s = step.s
  const f = s.failover
  if (f.lease._tag !== "Live") return
  if (f.claim._tag === "Conflict" && s.view !== undefined && !s.view.failover.claims.has(s.node)) {
    log(step, "failover", `the other daemon named ${s.node} is gone: claiming the name`)
    step.s.failover = { ...f, claim: { _tag: "Unclaimed" } }
  }
  if (step.s.failover.claim._tag !== "Unclaimed" || !writable(s)) return
  emit(step, { _tag: "Write", write: { _tag: "Claim", lease: f.lease.id, instance: s.instance } })
  step.s.failover = { ...step.s.failover, claim: { _tag: "Claiming" } }
}

export const advanceFailover = (step: Step): void => {
  keepFailoverLease(step)
  advanceClaim(step)
  const groups = new Set([...configOf(step.s).failover.groups.keys(), ...step.s.failover.elections.keys()])
  for (const group of groups) decide(step, group)
}

// ---------------------------------------------------------------------------------------------
// Answers

/** The failover lease is gone in etcd, and every key on it: holders stop at once. */
export const failoverLeaseLost = (step: Step): void => {
  log(step, "failover", "etcd no longer has the failover lease: every failover key of this node is gone")
  for (const [group, e] of step.s.failover.elections) {
    if (e._tag === "Holding") emit(step, { _tag: "ReleaseCore", group })
    if (e._tag === "Releasing" || e._tag === "Resigning") finishHandover(step, group, e.why)
    else if (hasKey(e) || e._tag === "Campaigning") set(step, group, idle)
  }
  step.s.failover = { ...step.s.failover, lease: noLease, terms: undefined, claim: { _tag: "Unclaimed" } }
}

/** Each acknowledged keep-alive of the failover lease extends every hold. */
export const renewHolds = (step: Step): void => {
  for (const [group, e] of step.s.failover.elections) if (e._tag === "Holding") hold(step, group, e.epoch)
}

const claimWritten = (step: Step, outcome: WriteOutcome): void => {
  const s = step.s
  if (s.failover.claim._tag !== "Claiming") return
  if (outcome._tag === "Done") {
    step.s.failover = { ...s.failover, claim: { _tag: "Claimed" } }
    return
  }
  if (outcome._tag !== "Lost") {
    step.s.failover = { ...s.failover, claim: { _tag: "Unclaimed" } }
    return
  }
  const instance = s.view?.failover.claims.get(s.node) ?? "another instance"
  log(step, "failover", `another isinitd (instance ${instance}) runs as node ${s.node}: this one does not campaign for failover groups until it is gone`)
  step.s.failover = { ...s.failover, claim: { _tag: "Conflict", instance } }
}

const proclaimed = (step: Step, group: string, e: Extract<Election, { readonly _tag: "Proclaiming" }>, outcome: WriteOutcome): void => {
  if (outcome._tag === "Lost") return set(step, group, idle)
  if (outcome._tag !== "Done") return set(step, group, { _tag: "TakeoverWait", key: e.key, epoch: e.epoch, until: step.s.now, reason: e.reason })
  log(step, "failover", `${group}: holding (epoch ${e.epoch}): ${e.reason}`, group)
  set(step, group, { _tag: "Holding", key: e.key, epoch: e.epoch, since: step.s.now })
  hold(step, group, e.epoch)
}

export const electionWritten = (step: Step, write: Write, outcome: WriteOutcome): void => {
  if (write._tag === "Claim") claimWritten(step, outcome)
  if (!("group" in write) || write._tag === "Override" || write._tag === "Ban") return noteOutcome(step, outcome)
  const e = electionOf(step.s, write.group)
  const group = write.group
  noteOutcome(step, outcome)
  const settled = outcome._tag === "Done" || outcome._tag === "Lost"
  if (write._tag === "Campaign" && e._tag === "Campaigning") {
    set(step, group, outcome._tag === "Done" ? { _tag: "Queued", epoch: outcome.createRevision } : idle)
  } else if (write._tag === "Proclaim" && e._tag === "Proclaiming" && e.epoch === write.epoch) {
    proclaimed(step, group, e, outcome)
  } else if (write._tag === "Resign" && e._tag === "Resigning" && e.epoch === write.epoch) {
    // Resigned with its processes confirmed gone: the fencer has nothing left to guard.
    if (settled) emit(step, { _tag: "DisarmFencer", group })
    if (settled) finishHandover(step, group, e.why)
    else set(step, group, { _tag: "Releasing", key: e.key, epoch: e.epoch, why: e.why })
  } else if (write._tag === "Withdraw" && e._tag === "Withdrawing" && e.epoch === write.epoch) {
    set(step, group, settled ? idle : { _tag: "Queued", epoch: e.epoch })
  }
}

/**
 * A move to this node that arrives while it already holds the group is done at once: the holder
 * proclaims again, so its proclamation is newer than the move (view.ts `moveOf`).
 */
export const moveSeen = (step: Step, group: string): void => {
  const move = moveOf(step.s.view, group)
  const e = electionOf(step.s, group)
  if (move?.node !== step.s.node || e._tag !== "Holding") return
  const active = proclamation(step.s, e.epoch, "running", "moved here by an operator (already holding)")
  emit(step, { _tag: "Write", write: { _tag: "Proclaim", group, key: e.key, epoch: e.epoch, active } })
}
