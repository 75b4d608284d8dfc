/**
 * The cluster node reducer: `(NodeState, NodeEvent) => [NodeState, NodeCommand[]]`, everything
 * `isinitd --etcd` decides, pure like the core's reducer. The shell performs the commands (etcd
 * reads, watches, leases and writes; core events; the fencer; replies to local clients) and answers
 * each with an event; it delivers a Tick at `nextWakeup`. Core commands must be handed to the core
 * in order and answered (`CoreAnswered`) before the next event from outside.
 *
 * Theory of operation. Each event records what it says (an answer, a watch batch, the core's new
 * state); then `settle` runs every state machine once, in a fixed order, and each one acts if
 * something is due: the read-then-watch session, the two leases (presence, failover), the claim on
 * the node name, each failover group's election (election.ts), the override writer
 * (overrides.ts), the status publish and the connection (presence.ts). Convergence to desired
 * levels (converge.ts) runs when the view or the config changed. Every machine is idempotent when
 * nothing is due, so settling after every event is safe; the times at which something falls due
 * are wake-ups in a heap (stale ones are harmless).
 */
import type { State as CoreState } from "../../core/state.ts"
import * as Heap from "../../core/heap.ts"
import { converge, coreAnswered, noConvergence } from "./converge.ts"
import { advanceFailover, electionWritten, failoverLeaseLost, moveSeen, noFailoverNode, renewHolds } from "./election.ts"
import { granted, grantFailed, keepAliveFailed, keepLease, keptAlive } from "./lease.ts"
import { advanceOverrides, localTell, noOverrides, overrideWritten, retryOverridesNow } from "./overrides.ts"
import { advancePublish, connectionOf, newPresence, presenceDeadline, published } from "./presence.ts"
import type { Step } from "./step.ts"
import { configOf, emit, log, retryDelay, wake } from "./step.ts"
import type { ClusterSnapshot, Lease, LeaseName, NodeCommand, NodeEvent, NodeState, OutageLog, Running, View, Write, WriteOutcome } from "./types.ts"
import { applyChanges, touchesObeyed } from "./view.ts"

export interface NodeOptions {
  readonly node: string
  readonly instance: string
  /** TTL of the presence lease (`--lease-ttl`, default 10 s). */
  readonly presenceTtlMs: number
  /** The config the daemon started with (etcd's, else the local file's): see `initialRunning`. */
  readonly running: Running
  /** The read made at start-up, if etcd answered. */
  readonly snapshot: ClusterSnapshot | undefined
  readonly core: CoreState
  readonly now: number
}

type EventOf<K extends NodeEvent["_tag"]> = Extract<NodeEvent, { readonly _tag: K }>

// ---------------------------------------------------------------------------------------------
// Start

const viewOf = (snapshot: ClusterSnapshot): View => ({ revision: snapshot.revision, obeyed: snapshot.obeyed, failover: snapshot.failover })

/** A daemon starts with every failover group at standby: it holds nothing until it wins an election. */
export const startNode = (options: NodeOptions): readonly [NodeState, readonly NodeCommand[]] => {
  const state: NodeState = {
    node: options.node,
    instance: options.instance,
    lifecycle: "running",
    now: options.now,
    running: options.running,
    sync: { _tag: "Reading", attempt: 0, reason: undefined, outage: "None" },
    view: undefined,
    convergence: noConvergence,
    overrides: noOverrides,
    presence: newPresence(options.presenceTtlMs),
    failover: noFailoverNode,
    core: options.core,
    connection: { _tag: "Down", since: options.now, reason: "starting" },
    wakeups: Heap.empty,
  }
  const step: Step = { s: { ...state }, out: [] }
  for (const group of configOf(state).failover.groups.keys()) emit(step, { _tag: "ReleaseCore", group })
  if (options.snapshot === undefined) emit(step, { _tag: "Read" })
  else snapshotRead(step, options.snapshot)
  return finish(step)
}

// ---------------------------------------------------------------------------------------------
// The read-then-watch session

const snapshotRead = (step: Step, snapshot: ClusterSnapshot): void => {
  const sync = step.s.sync
  const wasLost = sync._tag !== "Watching" && step.s.view !== undefined
  step.s.view = viewOf(snapshot)
  step.s.sync = sync._tag === "Watching" ? { ...sync, since: step.s.now, attempt: 0 } : { _tag: "Watching", since: step.s.now, attempt: sync.attempt, outage: sync.outage }
  emit(step, { _tag: "Watch", fromRevision: snapshot.revision })
  if (wasLost) {
    if (sync.outage === "Begun") log(step, "etcd-resync", `resynchronised at revision ${snapshot.revision}`)
    retryOverridesNow(step)
  }
  converge(step)
}

const readFailed = (step: Step, reason: string): void => {
  const sync = step.s.sync
  if (sync._tag !== "Reading") return
  if (sync.outage === "None") log(step, "etcd-outage", `reading from etcd failed: ${reason}; retrying`)
  const until = step.s.now + retryDelay(sync.attempt)
  wake(step, until)
  step.s.sync = { _tag: "Backoff", attempt: sync.attempt + 1, until, reason, outage: sync.outage === "None" ? "Begun" : sync.outage }
}

const watched = (step: Step, { revision, changes }: EventOf<"Watched">): void => {
  const view = step.s.view
  if (step.s.sync._tag !== "Watching" || view === undefined) return
  step.s.view = applyChanges(view, revision, changes)
  for (const change of changes) {
    if (change._tag === "ConfigCleared") log(step, "cluster", "the config was deleted from etcd: keeping the one that runs")
    if (change._tag === "MoveSet") moveSeen(step, change.group)
  }
  if (touchesObeyed(changes)) converge(step)
}

/** A watch that lived less than this is "lost again at once": the next read backs off. */
export const steadyWatchMs = 5_000

/**
 * An outage stops nothing: it is logged, shown, and followed by a fresh read: at once after a
 * watch that ran steadily, after a growing backoff when watches keep breaking as soon as they
 * start (an etcd member down behind the client: no bursts of resyncs). Such losses in a row are
 * one outage, logged once with its first resync; a watch that ran steadily ends it.
 */
const watchLost = (step: Step, reason: string): void => {
  const sync = step.s.sync
  if (sync._tag !== "Watching") return
  const steady = step.s.now - sync.since >= steadyWatchMs
  const outage: OutageLog = steady || sync.outage === "None" ? "Begun" : "Continued"
  if (outage === "Begun") log(step, "etcd-outage", `watch lost: ${reason}; retrying`)
  if (steady) {
    step.s.sync = { _tag: "Reading", attempt: 0, reason, outage }
    emit(step, { _tag: "Read" })
    return
  }
  const until = step.s.now + retryDelay(sync.attempt)
  wake(step, until)
  step.s.sync = { _tag: "Backoff", attempt: sync.attempt + 1, until, reason, outage }
}

const advanceSync = (step: Step): void => {
  const sync = step.s.sync
  if (sync._tag !== "Backoff" || step.s.now < sync.until) return
  step.s.sync = { _tag: "Reading", attempt: sync.attempt, reason: sync.reason, outage: sync.outage }
  emit(step, { _tag: "Read" })
}

// ---------------------------------------------------------------------------------------------
// Leases

const leaseOf = (s: NodeState, name: LeaseName): Lease => (name === "presence" ? s.presence.lease : s.failover.lease)

const setLease = (step: Step, name: LeaseName, lease: Lease): void => {
  if (name === "presence") step.s.presence = { ...step.s.presence, lease }
  else step.s.failover = { ...step.s.failover, lease }
}

const onGranted = (step: Step, { lease: name, id, ttlMs }: EventOf<"Granted">): void => {
  if (name === "presence") {
    const lease = granted(step, name, step.s.presence.lease, id, ttlMs, presenceDeadline(ttlMs))
    if (lease._tag === "Live") wake(step, lease.confirmed + lease.renewDeadlineMs)
    return setLease(step, name, lease)
  }
  const timing = configOf(step.s).failover.timing
  if (ttlMs < timing.ttlMs) {
    // The TTL was raised while the grant was under way: this lease is too short for today's D and G.
    emit(step, { _tag: "Revoke", lease: name, id })
    return setLease(step, name, { _tag: "None" })
  }
  // etcd counts whole seconds and may round a TTL up: a longer lease only makes the rule easier.
  setLease(step, name, granted(step, name, step.s.failover.lease, id, ttlMs, timing.renewDeadlineMs))
  step.s.failover = { ...step.s.failover, terms: { ...timing, ttlMs } }
}

const onKeptAlive = (step: Step, { lease: name, id, seq, ttlMs }: EventOf<"KeptAlive">): void => {
  const before = leaseOf(step.s, name)
  const after = keptAlive(before, id, seq, ttlMs)
  if (after !== "lost") {
    setLease(step, name, after)
    // A later confirmation: holds run longer; the connection is re-checked at the new deadline.
    if (after._tag === "Live" && before._tag === "Live" && after.confirmed > before.confirmed) {
      if (name === "failover") renewHolds(step)
      else wake(step, after.confirmed + after.renewDeadlineMs)
    }
    return
  }
  if (name === "failover") return failoverLeaseLost(step)
  log(step, "etcd-outage", "etcd no longer has the node's presence lease: publishing again under a new one")
  step.s.presence = { ...step.s.presence, lease: { _tag: "None" }, published: undefined }
}

const keepPresence = (step: Step): void => {
  const p = step.s.presence
  if (step.s.lifecycle === "running") setLease(step, "presence", keepLease(step, "presence", p.lease, { ttlMs: p.ttlMs, renewDeadlineMs: presenceDeadline(p.ttlMs) }))
}

// ---------------------------------------------------------------------------------------------

const onWritten = (step: Step, write: Write, outcome: WriteOutcome): void => {
  if (write._tag === "Override") return overrideWritten(step, write.group, write.level, outcome)
  if (write._tag === "Publish") return published(step, write.seq, outcome)
  electionWritten(step, write, outcome)
}

const handle = (step: Step, event: NodeEvent): void => {
  switch (event._tag) {
    case "Tick":
      return
    case "Snapshot":
      return snapshotRead(step, event.snapshot)
    case "ReadFailed":
      return readFailed(step, event.reason)
    case "Watched":
      return watched(step, event)
    case "WatchLost":
      return watchLost(step, event.reason)
    case "Granted":
      return onGranted(step, event)
    case "GrantFailed":
      return setLease(step, event.lease, grantFailed(step, leaseOf(step.s, event.lease)))
    case "KeptAlive":
      return onKeptAlive(step, event)
    case "KeepAliveFailed":
      return setLease(step, event.lease, keepAliveFailed(leaseOf(step.s, event.lease), event.id, event.seq))
    case "Written":
      return onWritten(step, event.write, event.outcome)
    case "CoreAnswered":
      step.s.core = event.core
      return coreAnswered(step, event.command, event.outcome)
    case "CoreChanged":
      step.s.core = event.core
      return
    case "LocalTell":
      return localTell(step, event.request, event.group, event.level)
    case "LocalFile":
      if (step.s.running._tag !== "Etcd") step.s.running = event.local
      return
    case "Stopping":
      step.s.lifecycle = "stopping"
      return
  }
}

/** Every machine acts on what is due now, in a fixed order. */
const settle = (step: Step): void => {
  advanceSync(step)
  keepPresence(step)
  advanceFailover(step)
  advanceOverrides(step)
  advancePublish(step)
  if (step.s.lifecycle === "stopping" && step.s.failover.lease._tag === "None" && step.s.presence.lease._tag === "Live") {
    emit(step, { _tag: "Revoke", lease: "presence", id: step.s.presence.lease.id })
    step.s.presence = { ...step.s.presence, lease: { _tag: "None" } }
  }
  step.s.connection = connectionOf(step.s)
}

const finish = (step: Step): readonly [NodeState, readonly NodeCommand[]] => {
  settle(step)
  // Wake-ups up to now were served by this settle.
  while ((Heap.peek(step.s.wakeups)?.at ?? Infinity) <= step.s.now) step.s.wakeups = Heap.pop(step.s.wakeups)
  return [step.s, step.out]
}

export const reduceNode = (state: NodeState, event: NodeEvent): readonly [NodeState, readonly NodeCommand[]] => {
  const step: Step = { s: { ...state, now: Math.max(state.now, event.now) }, out: [] }
  handle(step, event)
  return finish(step)
}

/** When the shell must deliver the next Tick; undefined when nothing is due. */
export const nextWakeup = (state: NodeState): number | undefined => Heap.peek(state.wakeups)?.at

/** After `Stopping`: every lease is given back (held groups were handed over first). */
export const stopped = (state: NodeState): boolean =>
  state.lifecycle === "stopping" && state.failover.lease._tag === "None" && state.presence.lease._tag !== "Live"
