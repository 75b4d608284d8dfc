/**
 * Rolling tells (`isinit --etcd URLS tell GROUP LEVEL --rolling N`): every decision of a rollout,
 * as pure functions of its record, what etcd shows of the nodes, and the time. No etcd, clock or
 * I/O here: the client (src/cli/rollout.ts) reads, calls `decide`, and commits what it says in one
 * transaction guarded by the record's mod revision, so two clients never both take a step.
 *
 * How a rollout moves a group (docs/cluster.md, "Rolling tells"):
 * - The plan is fixed at the start: the live nodes that run the group, in the order asked for
 *   (node names in natural order by default), without the nodes that keep their own override.
 * - Batches of at most N nodes each get an override `desired-node/NODE/GROUP = LEVEL`. The next
 *   batch starts only once every node of this one has *settled*: it reports the group `run` at
 *   LEVEL with the override's revision taken (view.ts's standing, as `tell --wait` reads it), or
 *   it failed: `fail` at LEVEL, its override changed by another write, it dropped out, or the
 *   batch timed out. `--pause S` waits S seconds after a batch settled.
 * - A node that is not live when its turn comes is skipped and reported, never waited for and
 *   not counted as a failure: it takes the level from the cluster-wide key when it comes back.
 * - K failed nodes (`--max-failures`, default 1) stop the rollout: nothing more is written, the
 *   nodes not reached are untouched, and `resume` tries the failed and skipped nodes again.
 * - When every node has settled, the cluster-wide level is written, then the overrides the
 *   rollout wrote are deleted (at most `maxClearsPerWrite` per transaction, each only while its
 *   revision is still the rollout's), so nothing of the rollout is left behind. The cluster-wide
 *   write comes first: a node that sees its override vanish finds the same level cluster-wide, so
 *   nothing runs again (converging, not replaying).
 * - A tell or clear of the group's cluster-wide level by someone else stops the rollout: it no
 *   longer decides what the nodes without an override run.
 */

/** What became of one planned node. A revision is the etcd revision that wrote its override. */
export type NodeStep =
  | { readonly _tag: "Pending" }
  /** Override written; `undefined`: by the very write that stores this record (the store fills it in). */
  | { readonly _tag: "Moving"; readonly revision: number | undefined }
  | { readonly _tag: "Done"; readonly revision: number }
  | { readonly _tag: "Failed"; readonly revision: number; readonly reason: string }
  | { readonly _tag: "Skipped"; readonly reason: string }

export interface RolloutNode {
  readonly node: string
  readonly step: NodeStep
  /**
   * The revision of an override this rollout must clear at its end though it did not write it
   * (again): one an aborted rollout left, or its own on a failed node that `resume` made pending.
   */
  readonly adopted?: number | undefined
}

export type Phase =
  | { readonly _tag: "Running"; readonly since: number; readonly pauseUntil: number | undefined }
  /** Cluster-wide level written; these nodes' overrides are still to be deleted. */
  | { readonly _tag: "Finishing"; readonly clearing: readonly string[] }
  | { readonly _tag: "Done"; readonly at: number }
  | { readonly _tag: "Stopped"; readonly at: number; readonly reason: string }
  | { readonly _tag: "Aborted"; readonly at: number; readonly by: string }

export interface RolloutOptions {
  readonly group: string
  readonly level: string
  /** N: at most this many nodes move at once. */
  readonly batchSize: number
  readonly pauseMs: number
  /** K: this many failed nodes stop the rollout. */
  readonly maxFailures: number
  /** A node of a batch that has not settled this long after the batch started has failed. */
  readonly batchTimeoutMs: number
}

export interface Rollout extends RolloutOptions {
  /** The mod revision of `desired/GROUP` when the rollout started (0: none): a change stops it. */
  readonly clusterRevision: number
  readonly started: { readonly by: string; readonly at: number }
  /** Batches started so far. */
  readonly batches: number
  readonly nodes: readonly RolloutNode[]
  readonly phase: Phase
}

/** Where a moving node stands with its override (view.ts's `nodeTellProgress`). */
export type Standing = "Done" | "Failed" | "Pending" | "Superseded"

/** What the client read from etcd, at about one moment. */
export interface Observed {
  readonly live: ReadonlySet<string>
  /** Of each moving node. A node missing here is pending. */
  readonly standings: ReadonlyMap<string, Standing>
  /** The mod revision of each node's override of the group, for the nodes that have one. */
  readonly overrides: ReadonlyMap<string, number>
  /** The mod revision of `desired/GROUP` (0: none). */
  readonly clusterRevision: number
}

/** A write the client makes, in the same transaction as the record. */
export type RolloutWrite =
  /** Only while the node's override is still as the rollout saw it: none (0), or the one it adopted. */
  | { readonly _tag: "SetOverride"; readonly node: string; readonly expected: number }
  /** Only while `desired/GROUP`'s mod revision is still `expected`. */
  | { readonly _tag: "SetClusterWide"; readonly expected: number }
  /** Only while the override's mod revision is still `revision`: never someone else's. */
  | { readonly _tag: "ClearOverride"; readonly node: string; readonly revision: number }

/** What changed between two readings of a rollout, for a client (driving it or following) to say. */
export type RolloutNote =
  | { readonly _tag: "BatchStarted"; readonly batch: number; readonly nodes: readonly string[]; readonly revision: number | undefined }
  | { readonly _tag: "Reached"; readonly nodes: readonly string[] }
  | { readonly _tag: "NodeFailed"; readonly node: string; readonly reason: string }
  | { readonly _tag: "NodeSkipped"; readonly node: string; readonly reason: string }
  | { readonly _tag: "Pausing"; readonly until: number }
  | { readonly _tag: "SetClusterWide" }
  | { readonly _tag: "Finished" }
  | { readonly _tag: "Stopped"; readonly reason: string }
  | { readonly _tag: "Aborted"; readonly by: string }

export type Decision =
  /** Nothing to write now; look again, at `until` at the latest (a timeout or the pause's end). */
  | { readonly _tag: "Wait"; readonly until: number | undefined }
  | {
      readonly _tag: "Commit"
      readonly next: Rollout
      readonly writes: readonly RolloutWrite[]
      /** The audit record's text, for commits that change a desired level or the rollout's course. */
      readonly audit: string | undefined
    }
  /** Done, stopped or aborted: nothing more to do unless an operator resumes it. */
  | { readonly _tag: "Ended" }

/** etcd refuses transactions of more than 128 operations (`--max-txn-ops`); the record and the audit record come on top. */
export const maxBatchSize = 100
export const maxClearsPerWrite = 100

// ---------------------------------------------------------------------------------------------
// Reading a rollout

/** The revision of the override this rollout wrote on a node, if it wrote one. */
export const writtenRevision = (step: NodeStep): number | undefined =>
  step._tag === "Moving" || step._tag === "Done" || step._tag === "Failed" ? step.revision : undefined

/** The override of this node the rollout must delete at its end, if it is still the one written or adopted. */
const ownedOverride = (n: RolloutNode, overrides: ReadonlyMap<string, number>): number | undefined => {
  const mine = writtenRevision(n.step) ?? n.adopted
  return mine !== undefined && overrides.get(n.node) === mine ? mine : undefined
}

export interface RolloutSummary {
  readonly done: readonly string[]
  readonly moving: readonly string[]
  readonly failed: readonly { readonly node: string; readonly reason: string }[]
  readonly skipped: readonly { readonly node: string; readonly reason: string }[]
  readonly pending: readonly string[]
  /** Every node whose override this rollout wrote: done, failed and moving ones, in plan order. */
  readonly moved: readonly string[]
}

export const summaryOf = (r: Rollout): RolloutSummary => {
  const named = (tag: NodeStep["_tag"]): string[] => r.nodes.filter((n) => n.step._tag === tag).map((n) => n.node)
  const reasons = (tag: "Failed" | "Skipped") =>
    r.nodes.flatMap((n) => (n.step._tag === tag ? [{ node: n.node, reason: n.step.reason }] : []))
  return {
    done: named("Done"),
    moving: named("Moving"),
    failed: reasons("Failed"),
    skipped: reasons("Skipped"),
    pending: named("Pending"),
    moved: r.nodes.filter((n) => writtenRevision(n.step) !== undefined).map((n) => n.node),
  }
}

/** Whether the rollout still moves by itself (a driver has work); ended ones wait for an operator. */
export const isUnderWay = (r: Rollout): boolean => r.phase._tag === "Running" || r.phase._tag === "Finishing"

/**
 * The record as etcd stores it at `revision` (its mod revision): the overrides written in the
 * same transaction carry that revision. Every reader goes through this before deciding.
 */
export const asStored = (r: Rollout, revision: number): Rollout =>
  r.nodes.some((n) => n.step._tag === "Moving" && n.step.revision === undefined)
    ? { ...r, nodes: r.nodes.map((n) => (n.step._tag === "Moving" && n.step.revision === undefined ? { ...n, step: { _tag: "Moving", revision } } : n)) }
    : r

// ---------------------------------------------------------------------------------------------
// Deciding the next step

const commit = (next: Rollout, writes: readonly RolloutWrite[], audit?: string): Decision => ({ _tag: "Commit", next, writes, audit })

const withSteps = (r: Rollout, steps: ReadonlyMap<string, NodeStep>): Rollout =>
  steps.size === 0 ? r : { ...r, nodes: r.nodes.map((n) => ({ ...n, step: steps.get(n.node) ?? n.step })) }

const what = (r: Rollout): string => `${r.group}=${r.level}`

const stop = (r: Rollout, now: number, reason: string): Decision =>
  commit({ ...r, phase: { _tag: "Stopped", at: now, reason } }, [], `${what(r)} stopped: ${reason}`)

/** A moving node's outcome, once it has one; undefined while it is still on its way. */
const settle = (r: Rollout, since: number, node: string, revision: number, observed: Observed, now: number): NodeStep | undefined => {
  switch (observed.standings.get(node) ?? "Pending") {
    case "Done":
      return { _tag: "Done", revision }
    case "Failed":
      return { _tag: "Failed", revision, reason: `${what(r)} failed there (fail)` }
    case "Superseded":
      return { _tag: "Failed", revision, reason: "another write changed its override" }
    case "Pending":
      if (!observed.live.has(node)) return { _tag: "Failed", revision, reason: "dropped out during its batch" }
      if (now >= since + r.batchTimeoutMs) return { _tag: "Failed", revision, reason: `not run at ${r.level} within ${r.batchTimeoutMs / 1000} s` }
      return undefined
  }
}

const failureText = (r: Rollout): string => {
  const failed = summaryOf(r).failed
  return `${failed.length} failed node${failed.length === 1 ? "" : "s"} (--max-failures ${r.maxFailures}): ${failed.map((f) => `${f.node} (${f.reason})`).join(", ")}`
}

/** The last commit of a rollout's course: the cluster-wide level, and the first of its overrides deleted. */
const finish = (r: Rollout, observed: Observed, now: number): Decision => {
  const owned = r.nodes.flatMap((n) => {
    const revision = ownedOverride(n, observed.overrides)
    return revision === undefined ? [] : [{ node: n.node, revision }]
  })
  const chunk = owned.slice(0, maxClearsPerWrite)
  const rest = owned.slice(maxClearsPerWrite).map((o) => o.node)
  const phase: Phase = rest.length === 0 ? { _tag: "Done", at: now } : { _tag: "Finishing", clearing: rest }
  const writes: RolloutWrite[] = [{ _tag: "SetClusterWide", expected: r.clusterRevision }, ...chunk.map((o) => ({ _tag: "ClearOverride", ...o }) as const)]
  return commit({ ...r, phase }, writes, `${what(r)} rolled out: set cluster-wide, ${owned.length} override${owned.length === 1 ? "" : "s"} cleared`)
}

/** After a settled batch (and its pause): the next up to N live pending nodes, or the end. */
const nextBatch = (r: Rollout, observed: Observed, now: number): Decision => {
  const steps = new Map<string, NodeStep>()
  const batch: string[] = []
  const writes: RolloutWrite[] = []
  for (const { node, step, adopted } of r.nodes) {
    if (batch.length >= r.batchSize) break
    if (step._tag !== "Pending") continue
    const current = observed.overrides.get(node)
    if (!observed.live.has(node)) steps.set(node, { _tag: "Skipped", reason: "not live when its turn came" })
    // Someone gave it an override of its own meanwhile: it keeps it, as from a cluster-wide tell.
    else if (current !== undefined && current !== adopted) steps.set(node, { _tag: "Skipped", reason: "it got an override of its own during the rollout" })
    else {
      batch.push(node)
      writes.push({ _tag: "SetOverride", node, expected: current ?? 0 })
      steps.set(node, { _tag: "Moving", revision: undefined })
    }
  }
  const after = withSteps(r, steps)
  if (batch.length === 0) return finish(after, observed, now)
  const batches = r.batches + 1
  return commit(
    { ...after, batches, phase: { _tag: "Running", since: now, pauseUntil: undefined } },
    writes,
    `${what(r)} batch ${batches}: ${batch.join(", ")}`,
  )
}

const running = (r: Rollout, phase: Extract<Phase, { readonly _tag: "Running" }>, observed: Observed, now: number): Decision => {
  if (observed.clusterRevision !== r.clusterRevision) return stop(r, now, `a later tell or clear of ${r.group} changed its cluster-wide level`)
  const settled = new Map<string, NodeStep>()
  for (const { node, step } of r.nodes) {
    if (step._tag !== "Moving") continue
    if (step.revision === undefined) throw new Error(`rollout of ${what(r)}: ${node}'s override revision unknown (the record was not read through asStored)`)
    const outcome = settle(r, phase.since, node, step.revision, observed, now)
    if (outcome !== undefined) settled.set(node, outcome)
  }
  const after = withSteps(r, settled)
  if (after.nodes.some((n) => n.step._tag === "Moving")) {
    return settled.size === 0 ? { _tag: "Wait", until: phase.since + r.batchTimeoutMs } : commit(after, [])
  }
  if (summaryOf(after).failed.length >= r.maxFailures) return stop(after, now, failureText(after))
  const more = after.nodes.some((n) => n.step._tag === "Pending")
  if (settled.size > 0 && r.pauseMs > 0 && more) return commit({ ...after, phase: { ...phase, pauseUntil: now + r.pauseMs } }, [])
  if (phase.pauseUntil !== undefined && now < phase.pauseUntil) return { _tag: "Wait", until: phase.pauseUntil }
  return nextBatch(after, observed, now)
}

const finishing = (r: Rollout, phase: Extract<Phase, { readonly _tag: "Finishing" }>, observed: Observed, now: number): Decision => {
  const byName = new Map(r.nodes.map((n) => [n.node, n]))
  const chunk = phase.clearing.slice(0, maxClearsPerWrite).flatMap((node) => {
    const n = byName.get(node)
    const revision = n === undefined ? undefined : ownedOverride(n, observed.overrides)
    return revision === undefined ? [] : [{ _tag: "ClearOverride", node, revision } as const]
  })
  const rest = phase.clearing.slice(maxClearsPerWrite)
  const next: Phase = rest.length === 0 ? { _tag: "Done", at: now } : { _tag: "Finishing", clearing: rest }
  return commit({ ...r, phase: next }, chunk)
}

/**
 * The rollout's next step, given what etcd shows now. `now` is the client's clock (epoch ms): it
 * only measures a batch's timeout and the pause, which any client that resumes reads the same way.
 */
export const decide = (r: Rollout, observed: Observed, now: number): Decision => {
  switch (r.phase._tag) {
    case "Running":
      return running(r, r.phase, observed, now)
    case "Finishing":
      return finishing(r, r.phase, observed, now)
    case "Done":
    case "Stopped":
    case "Aborted":
      return { _tag: "Ended" }
  }
}

/** What changed from one reading of a rollout to the next (none: the first reading), in the order it happened. */
export const changes = (prev: Rollout | undefined, next: Rollout): readonly RolloutNote[] => {
  const was = new Map((prev?.nodes ?? []).map((n) => [n.node, n.step._tag]))
  const newly = (tag: NodeStep["_tag"]): readonly RolloutNode[] => next.nodes.filter((n) => n.step._tag === tag && was.get(n.node) !== tag)
  const notes: RolloutNote[] = []
  const reached = newly("Done").map((n) => n.node)
  if (reached.length > 0) notes.push({ _tag: "Reached", nodes: reached })
  for (const n of newly("Failed")) if (n.step._tag === "Failed") notes.push({ _tag: "NodeFailed", node: n.node, reason: n.step.reason })
  for (const n of newly("Skipped")) if (n.step._tag === "Skipped") notes.push({ _tag: "NodeSkipped", node: n.node, reason: n.step.reason })
  if (next.batches > (prev?.batches ?? 0)) {
    const moving = next.nodes.filter((n) => n.step._tag === "Moving")
    const first = moving[0]?.step
    notes.push({ _tag: "BatchStarted", batch: next.batches, nodes: moving.map((n) => n.node), revision: first?._tag === "Moving" ? first.revision : undefined })
  }
  const [p, q] = [prev?.phase, next.phase]
  if (q._tag === "Running" && q.pauseUntil !== undefined && (p?._tag !== "Running" || p.pauseUntil !== q.pauseUntil)) notes.push({ _tag: "Pausing", until: q.pauseUntil })
  if ((q._tag === "Finishing" || q._tag === "Done") && p?._tag === "Running") notes.push({ _tag: "SetClusterWide" })
  if (q._tag === "Done" && p?._tag !== "Done") notes.push({ _tag: "Finished" })
  if (q._tag === "Stopped" && p?._tag !== "Stopped") notes.push({ _tag: "Stopped", reason: q.reason })
  if (q._tag === "Aborted" && p?._tag !== "Aborted") notes.push({ _tag: "Aborted", by: q.by })
  return notes
}

// ---------------------------------------------------------------------------------------------
// Starting, resuming, aborting

export type Verdict = { readonly _tag: "Ok"; readonly next: Rollout } | { readonly _tag: "Refused"; readonly reason: string }

const iso = (ms: number): string => new Date(ms).toISOString()

/** Why a new rolling tell of the group may not start while `previous` is its record; undefined: it may. */
export const startRefusal = (previous: Rollout | undefined): string | undefined => {
  if (previous === undefined || previous.phase._tag === "Done" || previous.phase._tag === "Aborted") return undefined
  const state = previous.phase._tag === "Stopped" ? `stopped (${previous.phase.reason})` : "under way"
  return `a rollout of ${what(previous)} (started by ${previous.started.by} at ${iso(previous.started.at)}) is ${state}: rollout resume ${previous.group} continues it, rollout abort ${previous.group} ends it`
}

/** Natural order: n2 before n10, as an operator reads node names. */
export const byNodeName = (a: string, b: string): number => {
  const parts = (s: string): readonly (string | number)[] => s.split(/(\d+)/).map((p, i) => (i % 2 === 1 ? Number(p) : p))
  const [pa, pb] = [parts(a), parts(b)]
  for (let i = 0; i < Math.min(pa.length, pb.length); i++) {
    const [x, y] = [pa[i] ?? "", pb[i] ?? ""]
    if (x !== y) return typeof x === "number" && typeof y === "number" ? x - y : String(x) < String(y) ? -1 : 1
  }
  return pa.length - pb.length || (a < b ? -1 : a > b ? 1 : 0)
}

export interface PlanInput {
  /** Live nodes, each with whether it reports the group. */
  readonly live: readonly { readonly node: string; readonly runsGroup: boolean }[]
  /** The mod revision of each node's override of the group. */
  readonly overrides: ReadonlyMap<string, number>
  /** The group's last rollout, if any: overrides it left behind (aborted) are this one's to replace. */
  readonly previous: Rollout | undefined
  /** `--order`: these first, in this order; the rest in node-name order. */
  readonly order: readonly string[]
}

export interface Plan {
  readonly nodes: readonly RolloutNode[]
  /** Live nodes that keep an override of their own (a rolling tell, like a cluster-wide one, leaves them alone). */
  readonly overridden: readonly string[]
  /** Named in --order, live, but not running the group. */
  readonly notRunning: readonly string[]
}

/** Which nodes the rollout takes, in which order. Nodes an aborted rollout left an override on are taken (and cleared) too. */
export const planOf = (input: PlanInput): Plan => {
  const left = new Map(
    (input.previous?.nodes ?? []).flatMap((n) => {
      const revision = writtenRevision(n.step) ?? n.adopted
      return revision !== undefined && input.overrides.get(n.node) === revision ? [[n.node, revision] as const] : []
    }),
  )
  const liveByName = new Map(input.live.map((l) => [l.node, l.runsGroup]))
  const named = [...new Set(input.order)]
  const rest = [...input.live.map((l) => l.node), ...left.keys()].filter((n) => !named.includes(n)).sort(byNodeName)
  const overridden: string[] = []
  const notRunning: string[] = []
  const nodes: RolloutNode[] = []
  for (const node of new Set([...named, ...rest])) {
    const runs = liveByName.get(node)
    if (input.overrides.has(node) && !left.has(node)) overridden.push(node)
    else if (runs === false && !left.has(node)) notRunning.push(node)
    else if (runs === true || named.includes(node) || left.has(node)) nodes.push({ node, step: { _tag: "Pending" }, adopted: left.get(node) })
  }
  return { nodes, overridden: overridden.filter((n) => liveByName.get(n) === true), notRunning: notRunning.filter((n) => named.includes(n)) }
}

export const newRollout = (options: RolloutOptions, plan: Plan, clusterRevision: number, started: Rollout["started"]): Rollout => ({
  ...options,
  clusterRevision,
  started,
  batches: 0,
  nodes: plan.nodes,
  phase: { _tag: "Running", since: started.at, pauseUntil: undefined },
})

/**
 * `rollout resume`: a stopped rollout goes on, trying its failed and skipped nodes again first
 * (a node that got there is never touched again), and takes the cluster-wide level as it is now.
 * One under way goes on as it is (its driver died, or another client drives it).
 */
export const resume = (r: Rollout, clusterRevision: number, now: number): Verdict => {
  switch (r.phase._tag) {
    case "Running":
    case "Finishing":
      return { _tag: "Ok", next: r }
    case "Stopped": {
      // A failed node keeps its override until it is moved again: `adopted` has the rollout clear it at the end if it never is.
      const nodes = r.nodes.map((n): RolloutNode => {
        if (n.step._tag === "Failed") return { node: n.node, step: { _tag: "Pending" }, adopted: n.step.revision }
        return n.step._tag === "Skipped" ? { ...n, step: { _tag: "Pending" } } : n
      })
      return { _tag: "Ok", next: { ...r, clusterRevision, nodes, phase: { _tag: "Running", since: now, pauseUntil: undefined } } }
    }
    case "Done":
      return { _tag: "Refused", reason: `the rollout of ${what(r)} finished at ${iso(r.phase.at)}: nothing to resume` }
    case "Aborted":
      return { _tag: "Refused", reason: `the rollout of ${what(r)} was aborted by ${r.phase.by} at ${iso(r.phase.at)}: start a new rolling tell` }
  }
}

/** `rollout abort`: the rollout writes nothing more; what it wrote stays (the moved nodes keep their overrides). */
export const abort = (r: Rollout, by: string, now: number): Verdict =>
  isUnderWay(r) || r.phase._tag === "Stopped"
    ? { _tag: "Ok", next: { ...r, phase: { _tag: "Aborted", at: now, by } } }
    : { _tag: "Refused", reason: `the rollout of ${what(r)} has ${r.phase._tag === "Done" ? "finished" : "already been aborted"}: nothing to abort` }
