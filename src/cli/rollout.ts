/**
 * Rolling tells from the client: `isinit --etcd URLS tell GROUP LEVEL --rolling N [--pause S]
 * [--max-failures K] [--order A,B,...] [--timeout S] [--wait]`, `rollout resume GROUP [--wait]`
 * and `rollout abort GROUP`, and the rollouts' part of `status`.
 *
 * Nodes do not drive rollouts; a client does: it polls etcd, asks rollout.ts's `decide` what to
 * do, and commits it (store/rollouts.ts). The rollout's record lives in etcd, so a client that
 * dies leaves it where it was, and `rollout resume` (from anywhere) goes on from there. One client
 * drives at a time, holding `rollout-driver/GROUP` on its lease; another that resumes meanwhile
 * follows, and takes over when that lease lapses. Exit codes as for every cluster command:
 * 0 ok, 1 stopped, aborted, refused or etcd unavailable, 2 usage.
 */
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import type { NodeStatus } from "../cluster/codecs.ts"
import type { Obeyed } from "../cluster/desired.ts"
import { nameProblem } from "../cluster/keys.ts"
import type { Observed, Rollout, RolloutNote, RolloutOptions, Standing } from "../cluster/rollout.ts"
import { abort, byNodeName, changes, decide, isUnderWay, maxBatchSize, newRollout, planOf, resume, startRefusal, summaryOf } from "../cluster/rollout.ts"
import type { DriverValue } from "../cluster/rolloutCodec.ts"
import type { ClusterStore, Driving, EtcdFailure, InvalidName, StoredRollout } from "../cluster/store.ts"
import { Deadline } from "../cluster/store/client.ts"
import { UnknownGroup, validName } from "../cluster/store/errors.ts"
import { nodeTellProgress } from "../cluster/view.ts"
import { UsageError, defaultWaitSeconds, expectCount, timeoutOptionMs } from "./args.ts"
import { table } from "./format.ts"
import type { Io } from "./io.ts"

export type RolloutCommand =
  | { readonly _tag: "RollingTell"; readonly options: RolloutOptions; readonly order: readonly string[]; readonly wait: boolean }
  | { readonly _tag: "RolloutResume"; readonly group: string; readonly wait: boolean }
  | { readonly _tag: "RolloutAbort"; readonly group: string }

/** The flags a rolling tell reads (cluster.ts parses them with the rest). */
export interface RollingFlags {
  readonly rolling?: string | undefined
  readonly pause?: string | undefined
  readonly "max-failures"?: string | undefined
  readonly order?: string | undefined
  readonly node?: readonly string[] | undefined
  readonly wait?: boolean | undefined
  readonly timeout?: string | undefined
}

export const rollingFlags = ["rolling", "pause", "max-failures", "order"] as const

// ---------------------------------------------------------------------------------------------
// The command line

const wholeNumber = (flag: string, text: string, max: number): number => {
  const n = Number(text)
  if (!/^\d+$/.test(text) || n < 1 || n > max) throw new UsageError(`${flag} takes a whole number from 1 to ${max}, not "${text}"`)
  return n
}

const pauseMs = (text: string): number => {
  const seconds = Number(text)
  if (text.trim() === "" || !Number.isFinite(seconds) || seconds < 0 || seconds > 86_400) throw new UsageError(`--pause takes seconds from 0 to 86400, not "${text}"`)
  return Math.round(seconds * 1000)
}

/** `tell GROUP LEVEL --rolling N ...`; `--timeout` is each batch's here, and needs no --wait. */
export const rollingTellOf = (group: string, level: string, values: RollingFlags): RolloutCommand => {
  if (values.node !== undefined) throw new UsageError("--rolling goes over every node that runs the group (--order sets the order); --node does not apply")
  const order = (values.order ?? "").split(",").map((n) => n.trim()).filter((n) => n !== "")
  for (const node of order) {
    const problem = nameProblem("node", node)
    if (problem !== undefined) throw new UsageError(`--order: ${problem}`)
  }
  const options: RolloutOptions = {
    group,
    level,
    batchSize: wholeNumber("--rolling", values.rolling ?? "", maxBatchSize),
    pauseMs: values.pause === undefined ? 0 : pauseMs(values.pause),
    maxFailures: values["max-failures"] === undefined ? 1 : wholeNumber("--max-failures", values["max-failures"], 1_000_000),
    batchTimeoutMs: values.timeout === undefined ? defaultWaitSeconds * 1000 : timeoutOptionMs(values.timeout),
  }
  return { _tag: "RollingTell", options, order, wait: values.wait === true }
}

/** Refuses --pause, --max-failures and --order without --rolling: they would do nothing. */
export const noRollingFlags = (values: RollingFlags): void => {
  for (const flag of ["pause", "max-failures", "order"] as const) if (values[flag] !== undefined) throw new UsageError(`--${flag} applies only with --rolling N`)
}

export const rolloutCommandOf = (rest: readonly string[], values: RollingFlags): RolloutCommand => {
  const [verb, ...args] = rest
  if (verb !== "resume" && verb !== "abort") throw new UsageError(`rollout takes resume GROUP or abort GROUP${verb === undefined ? "" : `, not "${verb}"`}`)
  const [group = ""] = expectCount(`rollout ${verb}`, args, 1, "GROUP")
  if (verb === "abort" && values.wait !== undefined) throw new UsageError("--wait does not apply to rollout abort")
  return verb === "resume" ? { _tag: "RolloutResume", group, wait: values.wait === true } : { _tag: "RolloutAbort", group }
}

// ---------------------------------------------------------------------------------------------
// Reading etcd

export interface RolloutEnv {
  readonly io: Io
  readonly store: ClusterStore
  /** user@host: who drives, and who the desired levels and audit records say wrote them. */
  readonly by: string
}

type Failure = EtcdFailure | InvalidName | UnknownGroup

/** How often a driving or following client reads etcd. */
const pollMs = 200
/** The driver key's lease: how long a dead client's rollout waits before `rollout resume` elsewhere takes over. */
const driverTtlSeconds = 5
const callDeadlineMs = 5_000

/** Each poll's calls get their own deadline (the command's one deadline would end a long rollout). */
const within = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.suspend(() => Effect.provideService(effect, Deadline, Date.now() + callDeadlineMs))

/** A rollout outlives short etcd outages: a read or step that found etcd unavailable is tried again (about 30 s in all). */
const patient = <A, R>(effect: Effect.Effect<A, Failure, R>): Effect.Effect<A, Failure, R> =>
  Effect.retry(within(effect), { schedule: Schedule.min([Schedule.exponential(200, 2), Schedule.spaced(5_000)]), times: 9, while: (e) => e._tag === "EtcdUnavailable" })

interface Snapshot {
  readonly stored: StoredRollout | undefined
  /** The mod revision of a record that did not decode, so that a new rollout can replace it. */
  readonly refused: number | undefined
  readonly obeyed: Obeyed
  readonly live: ReadonlySet<string>
  /** The statuses of the rollout's moving nodes: what a batch's progress is read from. */
  readonly statuses: readonly NodeStatus[]
}

/**
 * The record first, then what the nodes obey and which are live, then the moving nodes' statuses:
 * all at least as new as the record. A poll reads the fleet's names but only a batch's statuses,
 * so its cost does not grow with the fleet's status values.
 */
const snapshot = (store: ClusterStore, group: string): Effect.Effect<Snapshot, Failure> =>
  patient(
    Effect.gen(function* () {
      const read = yield* store.readRollout(group)
      const [view, live] = yield* Effect.all([store.readDesired(), store.liveNames()])
      const moving = (read.stored?.rollout.nodes ?? []).filter((n) => n.step._tag === "Moving" && live.has(n.node)).map((n) => n.node)
      const statuses = yield* store.statusesOf(moving)
      return { stored: read.stored, refused: read.rejections[0]?.revision, obeyed: view.obeyed, live, statuses }
    }),
  )

const overridesOf = (obeyed: Obeyed, group: string): ReadonlyMap<string, number> =>
  new Map([...obeyed.nodes].flatMap(([node, groups]) => {
    const d = groups.get(group)
    return d === undefined ? [] : [[node, d.revision] as const]
  }))

/** What `decide` needs, from the same per-node progress `tell --wait` reads (view.ts). */
const observe = (r: Rollout, s: Snapshot): Observed => {
  const moving = new Map(r.nodes.flatMap((n) => (n.step._tag === "Moving" && n.step.revision !== undefined ? [[n.node, n.step.revision] as const] : [])))
  const p = nodeTellProgress(s.obeyed, s.statuses, moving, r.group, r.level)
  const standings = new Map<string, Standing>([
    ...p.done.map((n) => [n, "Done"] as const),
    ...p.failed.map((n) => [n, "Failed"] as const),
    ...p.pending.map((n) => [n, "Pending"] as const),
    ...p.superseded.map((x) => [x.node, "Superseded"] as const),
  ])
  return { live: s.live, standings, overrides: overridesOf(s.obeyed, r.group), clusterRevision: s.obeyed.cluster.get(r.group)?.revision ?? 0 }
}

// ---------------------------------------------------------------------------------------------
// Saying what happens

const iso = (ms: number): string => new Date(ms).toISOString()
const what = (r: Rollout): string => `${r.group}=${r.level}`
const names = (nodes: readonly string[]): string => (nodes.length === 0 ? "none" : nodes.join(", "))

const noteText = (r: Rollout, note: RolloutNote): string | undefined => {
  switch (note._tag) {
    case "BatchStarted":
      return `batch ${note.batch}: ${what(r)} on ${note.nodes.join(", ")}${note.revision === undefined ? "" : ` (override, revision ${note.revision})`}`
    case "Reached":
      return `${what(r)} reached (run) on ${note.nodes.join(", ")}`
    case "NodeFailed":
      return `${what(r)} FAILED on ${note.node}: ${note.reason}`
    case "NodeSkipped":
      return `skipped ${note.node}: ${note.reason}`
    case "Pausing":
      return `pausing ${(r.pauseMs / 1000).toFixed(1)} s before the next batch`
    case "SetClusterWide":
      return `every node settled: ${what(r)} set cluster-wide, clearing the rollout's overrides`
    case "Finished":
    case "Stopped":
    case "Aborted":
      return undefined // the closing report says these
  }
}

const say = (io: Io, prev: Rollout | undefined, next: Rollout): void => {
  for (const note of changes(prev, next)) {
    const text = noteText(next, note)
    if (text !== undefined) io.err(`isinit: ${text}\n`)
  }
}

const leftAsItIs = (io: Io, r: Rollout): void => {
  const s = summaryOf(r)
  const failed = s.failed.map((f) => f.node)
  io.err(`isinit: moved (their overrides stay): ${names(s.moved)}${failed.length === 0 ? "" : `; of them failed: ${failed.join(", ")}`}\n`)
  io.err(`isinit: untouched: ${names([...s.pending, ...s.skipped.map((x) => x.node)])}\n`)
}

/** How a rollout that is over ended; resolves to the exit code. With --wait, 0 only when every node got there. */
const closing = (io: Io, r: Rollout, wait: boolean): number => {
  const s = summaryOf(r)
  switch (r.phase._tag) {
    case "Done": {
      io.out(`${what(r)} rolled out: reached (run) on ${names(s.done)}; now set cluster-wide\n`)
      for (const f of s.failed) io.err(`isinit: ${what(r)} failed on ${f.node} (${f.reason}), within --max-failures ${r.maxFailures}\n`)
      if (s.skipped.length > 0) io.err(`isinit: skipped (not live when their turn came): ${s.skipped.map((x) => x.node).join(", ")}; they take ${what(r)} from the cluster-wide level when they come back\n`)
      return wait && s.failed.length + s.skipped.length > 0 ? 1 : 0
    }
    case "Stopped":
      io.err(`isinit: the rollout of ${what(r)} stopped: ${r.phase.reason}\n`)
      leftAsItIs(io, r)
      io.err(`isinit: isinit --etcd ... rollout resume ${r.group} tries the failed nodes again and goes on; rollout abort ${r.group} ends it\n`)
      return 1
    case "Aborted":
      io.err(`isinit: the rollout of ${what(r)} was aborted by ${r.phase.by} at ${iso(r.phase.at)}\n`)
      leftAsItIs(io, r)
      return 1
    case "Running":
    case "Finishing":
      return 1
  }
}

const driverText = (d: DriverValue | undefined): string => (d === undefined ? "another client" : `${d.by} (since ${iso(d.since)})`)

// ---------------------------------------------------------------------------------------------
// Driving

/**
 * Drives (or follows) the group's rollout until it is over, saying each change; resolves to the
 * exit code. Every step is re-read before the next: a step that lost a race is decided again.
 */
const drive = (env: RolloutEnv, group: string, wait: boolean, start: Rollout | undefined): Effect.Effect<number, Failure> =>
  Effect.scoped(
    Effect.gen(function* () {
      let driving: Driving | undefined
      let seen = start
      let following: string | undefined
      for (;;) {
        const s = yield* snapshot(env.store, group)
        if (s.stored === undefined) return noRollout(env.io, group)
        const r = s.stored.rollout
        say(env.io, seen, r)
        seen = r
        if (!isUnderWay(r)) return closing(env.io, r, wait)
        // Our lease lapsed (the key shows another driver, or none): claim again, or follow.
        const ours = driving?.value
        if (driving !== undefined && (!driving.held() || s.stored.driver?.since !== ours?.since || s.stored.driver?.by !== ours?.by)) driving = undefined
        if (driving === undefined && s.stored.driver === undefined) {
          const claim = yield* patient(env.store.claimDriver(group, env.by, driverTtlSeconds))
          if (claim._tag === "Claimed") driving = claim.driving
          continue
        }
        if (driving === undefined) {
          const who = driverText(s.stored.driver)
          if (who !== following) env.io.err(`isinit: the rollout of ${what(r)} is driven by ${who}; following it (taking over if that client goes)\n`)
          following = who
          yield* Effect.sleep(pollMs)
          continue
        }
        const decision = decide(r, observe(r, s), Date.now())
        if (decision._tag === "Commit") {
          const step = { expected: s.stored.revision, driving, next: decision.next, writes: decision.writes }
          // A lost race is decided again on a fresh reading; the short pause keeps that from spinning.
          if ((yield* patient(env.store.commitRollout(step, decision.audit, env.by)))._tag === "Lost") yield* Effect.sleep(20)
        } else if (decision._tag === "Wait") yield* Effect.sleep(Math.max(1, Math.min(pollMs, (decision.until ?? Infinity) - Date.now())))
      }
    }),
  )

const noRollout = (io: Io, group: string): number => {
  io.err(`isinit: no rollout of group ${group} (start one with: tell ${group} LEVEL --rolling N)\n`)
  return 1
}

const orderText = (nodes: readonly string[]): string => (nodes.length <= 20 ? nodes.join(", ") : `${nodes.slice(0, 10).join(", ")}, ... ${nodes.slice(-3).join(", ")}`)

const rollingTell = (env: RolloutEnv, command: Extract<RolloutCommand, { readonly _tag: "RollingTell" }>): Effect.Effect<number, Failure> =>
  Effect.gen(function* () {
    const { io, store } = env
    const { group, level, batchSize } = command.options
    yield* validName("group", group)
    yield* validName("level", level)
    const s = yield* snapshot(store, group)
    const config = s.obeyed.config
    if (config !== undefined && !config.parsed.config.byGroup.has(group)) return yield* Effect.fail(new UnknownGroup({ group, configSeq: config.value.seq }))
    const refusal = startRefusal(s.stored?.rollout)
    if (refusal !== undefined) {
      io.err(`isinit: ${refusal}; nothing was changed\n`)
      return 1
    }
    // The plan needs every live node's groups: the one full reading of the fleet's statuses.
    const live = (yield* patient(store.liveNodes())).map((l) => ({ node: l.node, runsGroup: l.report.groups.some((g) => g.group === group) }))
    const plan = planOf({ live, overrides: overridesOf(s.obeyed, group), previous: s.stored?.rollout, order: command.order })
    for (const n of plan.overridden) io.err(`isinit: ${n} keeps its own override for ${group} (isinit --etcd ... clear ${group} --node ${n} hands it back)\n`)
    if (plan.notRunning.length > 0) io.err(`isinit: left out, they do not run ${group}: ${plan.notRunning.join(", ")}\n`)
    const rollout = newRollout(command.options, plan, s.obeyed.cluster.get(group)?.revision ?? 0, { by: env.by, at: Date.now() })
    const count = `${plan.nodes.length} node${plan.nodes.length === 1 ? "" : "s"}`
    const expected = s.stored?.revision ?? s.refused ?? 0
    const started = yield* patient(store.commitRollout({ expected, driving: undefined, next: rollout, writes: [] }, `${group}=${level} rolling over ${count}, ${batchSize} at a time`, env.by))
    if (started._tag === "Lost") {
      io.err(`isinit: another client started or changed the rollout of ${group} meanwhile; nothing was changed\n`)
      return 1
    }
    io.err(`isinit: rolling ${group}=${level} over ${count}, ${batchSize} at a time, in this order: ${orderText(plan.nodes.map((n) => n.node))}\n`)
    io.err(`isinit: the rollout is recorded in etcd: if this client stops, isinit --etcd ... rollout resume ${group} goes on from where it is\n`)
    return yield* drive(env, group, command.wait, rollout)
  })

const resumeCommand = (env: RolloutEnv, command: Extract<RolloutCommand, { readonly _tag: "RolloutResume" }>): Effect.Effect<number, Failure> =>
  Effect.gen(function* () {
    const s = yield* snapshot(env.store, command.group)
    if (s.stored === undefined) return noRollout(env.io, command.group)
    const r = s.stored.rollout
    const verdict = resume(r, s.obeyed.cluster.get(command.group)?.revision ?? 0, Date.now())
    if (verdict._tag === "Refused") {
      env.io.err(`isinit: ${verdict.reason}\n`)
      return r.phase._tag === "Done" ? closing(env.io, r, command.wait) : 1
    }
    if (verdict.next !== r) {
      const step = { expected: s.stored.revision, driving: undefined, next: verdict.next, writes: [] }
      const resumed = yield* patient(env.store.commitRollout(step, `${what(r)} resumed`, env.by))
      if (resumed._tag === "Lost") {
        env.io.err(`isinit: the rollout of ${command.group} changed meanwhile; nothing was changed: try again\n`)
        return 1
      }
      env.io.err(`isinit: resuming the rollout of ${what(r)}: trying ${names(summaryOf(verdict.next).pending)}\n`)
    }
    return yield* drive(env, command.group, command.wait, verdict.next)
  })

/** Marks the rollout aborted, whoever drives it: the driver's next guarded step fails, and it stops. */
const abortCommand = (env: RolloutEnv, group: string): Effect.Effect<number, Failure> =>
  Effect.gen(function* () {
    // A driver may take a step between the read and the write: read again and retry.
    for (let attempt = 0; attempt < 20; attempt++) {
      const s = yield* snapshot(env.store, group)
      if (s.stored === undefined) return noRollout(env.io, group)
      const verdict = abort(s.stored.rollout, env.by, Date.now())
      if (verdict._tag === "Refused") {
        env.io.err(`isinit: ${verdict.reason}\n`)
        return 1
      }
      const done = yield* patient(env.store.commitRollout({ expected: s.stored.revision, driving: undefined, next: verdict.next, writes: [] }, `${what(verdict.next)} aborted`, env.by))
      if (done._tag === "Committed") {
        env.io.err(`isinit: the rollout of ${what(verdict.next)} is aborted: it writes nothing more\n`)
        leftAsItIs(env.io, verdict.next)
        const moved = summaryOf(verdict.next).moved
        if (moved.length > 0) env.io.err(`isinit: a new rolling tell of ${group} takes these overrides over; clear ${group} --node NODE hands one back\n`)
        return 0
      }
    }
    env.io.err(`isinit: the rollout of ${group} kept changing; nothing was changed: try again\n`)
    return 1
  })

export const runRolloutCommand = (env: RolloutEnv, command: RolloutCommand): Effect.Effect<number, Failure> => {
  switch (command._tag) {
    case "RollingTell":
      return rollingTell(env, command)
    case "RolloutResume":
      return resumeCommand(env, command)
    case "RolloutAbort":
      return abortCommand(env, command.group)
  }
}

// ---------------------------------------------------------------------------------------------
// In `status`

const stateText = (r: Rollout): string => {
  const p = r.phase
  switch (p._tag) {
    case "Running": {
      const moving = summaryOf(r).moving
      if (moving.length > 0) return `batch ${r.batches}: moving ${moving.join(", ")}`
      return p.pauseUntil !== undefined && p.pauseUntil > Date.now() ? `pausing until ${iso(p.pauseUntil)}` : "between batches"
    }
    case "Finishing":
      return `finishing: ${p.clearing.length} overrides to clear`
    case "Done":
      return `done at ${iso(p.at)}`
    case "Stopped":
      return `STOPPED: ${p.reason}`
    case "Aborted":
      return `aborted by ${p.by} at ${iso(p.at)}`
  }
}

const nodesText = (r: Rollout): string => {
  const s = summaryOf(r)
  const listed = (label: string, xs: readonly { readonly node: string }[]) => (xs.length === 0 ? [] : [`${label} ${xs.map((x) => x.node).join(", ")}`])
  return [`${s.done.length}/${r.nodes.length} done`, ...listed("failed", s.failed), ...listed("skipped", s.skipped), ...(s.pending.length === 0 ? [] : [`${s.pending.length} pending`])].join("; ")
}

const driverCell = (s: StoredRollout): string => {
  if (s.driver !== undefined) return s.driver.by
  return isUnderWay(s.rollout) || s.rollout.phase._tag === "Stopped" ? `nobody: rollout resume ${s.rollout.group} | abort` : "-"
}

/** The rollouts of `groups` under the status table. */
export const rolloutsText = (stored: readonly StoredRollout[], groups: readonly string[]): string => {
  const shown = stored.filter((s) => groups.includes(s.rollout.group)).sort((a, b) => byNodeName(a.rollout.group, b.rollout.group))
  if (shown.length === 0) return ""
  return `rollouts:\n${table(
    ["GROUP", "LEVEL", "BATCH", "STATE", "NODES", "DRIVEN BY", "STARTED BY"],
    shown.map((s) => [s.rollout.group, s.rollout.level, String(s.rollout.batchSize), stateText(s.rollout), nodesText(s.rollout), driverCell(s), s.rollout.started.by]),
    "  ",
  )}`
}

/** The rollouts of `groups` for `status --json`: each record as stored, its summary and driver. */
export const rolloutsJson = (stored: readonly StoredRollout[], groups: readonly string[]) =>
  stored
    .filter((s) => groups.includes(s.rollout.group))
    .map((s) => ({ ...s.rollout, state: s.rollout.phase._tag.toLowerCase(), revision: s.revision, driver: s.driver ?? null, summary: summaryOf(s.rollout) }))
