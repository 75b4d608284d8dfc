/**
 * Rolling tells (src/cluster/rollout.ts): the rollout's decisions, driven against a small model
 * of etcd (override and cluster-wide keys with revisions) and of nodes (each reaches the level
 * after a delay, fails there, never gets there, or is dead from some moment on), in virtual time.
 * Up to two clients drive it from their own, possibly stale, reads; each commit is guarded by the
 * record's mod revision, as the store's transaction is. Operators abort and resume at random.
 */
import { fc, test } from "@fast-check/vitest"
import { expect } from "vitest"
import type { Observed, Rollout, RolloutOptions, RolloutWrite, Standing } from "../src/cluster/rollout.ts"
import { abort, asStored, byNodeName, decide, newRollout, planOf, resume, summaryOf } from "../src/cluster/rollout.ts"

type Fate =
  | { readonly _tag: "Reaches"; readonly afterMs: number }
  | { readonly _tag: "Fails"; readonly afterMs: number }
  | { readonly _tag: "Stuck" }

interface NodeModel {
  readonly name: string
  readonly fate: Fate
  /** Not live from this time on (0: dead from the start). */
  readonly diesAt: number | undefined
}

type Act = { readonly _tag: "Drive"; readonly client: 0 | 1; readonly fresh: boolean } | { readonly _tag: "Abort" } | { readonly _tag: "Resume" } | { readonly _tag: "Meddle"; readonly node: number }

interface Scenario {
  readonly nodes: readonly NodeModel[]
  readonly options: RolloutOptions
  readonly steps: readonly { readonly dt: number; readonly act: Act }[]
}

const fateArb: fc.Arbitrary<Fate> = fc.oneof(
  { weight: 6, arbitrary: fc.integer({ min: 0, max: 3_000 }).map((afterMs) => ({ _tag: "Reaches", afterMs }) as const) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 3_000 }).map((afterMs) => ({ _tag: "Fails", afterMs }) as const) },
  { weight: 1, arbitrary: fc.constant({ _tag: "Stuck" } as const) },
)

const nodesArb = fc
  .array(fc.record({ fate: fateArb, diesAt: fc.option(fc.integer({ min: 0, max: 60_000 }), { nil: undefined, freq: 5 }) }), { minLength: 1, maxLength: 9 })
  .map((specs) => specs.map((s, i) => ({ name: `n${i + 1}`, ...s })))

const optionsArb: fc.Arbitrary<RolloutOptions> = fc.record({
  group: fc.constant("web"),
  level: fc.constant("2"),
  batchSize: fc.integer({ min: 1, max: 4 }),
  pauseMs: fc.constantFrom(0, 0, 500, 2_000),
  maxFailures: fc.integer({ min: 1, max: 3 }),
  batchTimeoutMs: fc.constantFrom(1_000, 5_000, 20_000),
})

const actArb = (nodes: number): fc.Arbitrary<Act> =>
  fc.oneof(
    { weight: 20, arbitrary: fc.record({ _tag: fc.constant("Drive" as const), client: fc.constantFrom<0 | 1>(0, 1), fresh: fc.boolean() }) },
    { weight: 1, arbitrary: fc.constant({ _tag: "Abort" } as const) },
    { weight: 3, arbitrary: fc.constant({ _tag: "Resume" } as const) },
    { weight: 1, arbitrary: fc.integer({ min: 0, max: nodes - 1 }).map((node) => ({ _tag: "Meddle", node }) as const) },
  )

const scenarioArb = (acts: { readonly abort: boolean; readonly meddle: boolean }): fc.Arbitrary<Scenario> =>
  fc.tuple(nodesArb, optionsArb).chain(([nodes, options]) =>
    fc
      .array(fc.record({ dt: fc.integer({ min: 0, max: 1_500 }), act: actArb(nodes.length) }), { minLength: 20, maxLength: 200 })
      .map((steps) => ({
        nodes,
        options,
        steps: steps.filter((s) => (acts.abort || s.act._tag !== "Abort") && (acts.meddle || s.act._tag !== "Meddle")),
      })),
  )

/** etcd as the rollout sees it, the nodes' behaviour, and a record of every write made. */
class Lab {
  revision = 10
  now = 1_000
  readonly overrides = new Map<string, number>()
  /** When the rollout last wrote each node's override, by revision: the node reacts from then. */
  readonly writtenAt = new Map<number, number>()
  clusterRevision = 0
  record: { rollout: Rollout; revision: number }
  readonly reads: ({ rollout: Rollout; revision: number } | undefined)[] = [undefined, undefined]
  readonly log: { readonly before: Rollout; readonly after: Rollout; readonly writes: readonly RolloutWrite[]; readonly observed: Observed | undefined }[] = []
  readonly byName: ReadonlyMap<string, NodeModel>
  /** Revisions of overrides someone else wrote, and the writes of the rollout that replaced or deleted one. */
  readonly meddled = new Set<number>()
  readonly overwrote: RolloutWrite[] = []

  readonly scenario: Scenario

  constructor(scenario: Scenario) {
    this.scenario = scenario
    this.byName = new Map(scenario.nodes.map((n) => [n.name, n]))
    const live = scenario.nodes.filter((n) => this.live(n.name)).map((n) => ({ node: n.name, runsGroup: true }))
    const plan = planOf({ live, overrides: this.overrides, previous: undefined, order: [] })
    this.record = { rollout: newRollout(scenario.options, plan, 0, { by: "ann@h1", at: this.now }), revision: this.bump() }
  }

  bump(): number {
    this.revision += 1
    return this.revision
  }

  live(node: string): boolean {
    const dies = this.byName.get(node)?.diesAt
    return dies === undefined || this.now < dies
  }

  standing(node: string, revision: number): Standing {
    if ((this.overrides.get(node) ?? 0) !== revision) return "Superseded"
    const model = this.byName.get(node)
    const since = this.writtenAt.get(revision)
    if (model === undefined || since === undefined || !this.live(node) || model.fate._tag === "Stuck") return "Pending"
    if (this.now < since + model.fate.afterMs) return "Pending"
    return model.fate._tag === "Reaches" ? "Done" : "Failed"
  }

  observed(rollout: Rollout): Observed {
    const standings = new Map<string, Standing>()
    for (const n of rollout.nodes) if (n.step._tag === "Moving" && n.step.revision !== undefined) standings.set(n.node, this.standing(n.node, n.step.revision))
    return { live: new Set(this.scenario.nodes.filter((n) => this.live(n.name)).map((n) => n.name)), standings, overrides: new Map(this.overrides), clusterRevision: this.clusterRevision }
  }

  /** A transaction guarded by the record's mod revision, as the store commits it; false if it lost the race. */
  commit(expected: number, next: Rollout, writes: readonly RolloutWrite[], observed?: Observed): boolean {
    if (expected !== this.record.revision) return false
    for (const w of writes) if (w._tag === "SetClusterWide" && w.expected !== this.clusterRevision) return false
    for (const w of writes) if (w._tag === "ClearOverride" && this.overrides.get(w.node) !== w.revision) return false
    for (const w of writes) if (w._tag === "SetOverride" && (this.overrides.get(w.node) ?? 0) !== w.expected) return false
    for (const w of writes) if (w._tag !== "SetClusterWide" && this.meddled.has(this.overrides.get(w.node) ?? 0)) this.overwrote.push(w)
    const revision = this.bump()
    for (const w of writes) {
      if (w._tag === "SetOverride") this.overrides.set(w.node, revision)
      if (w._tag === "ClearOverride") this.overrides.delete(w.node)
      if (w._tag === "SetClusterWide") this.clusterRevision = revision
    }
    this.writtenAt.set(revision, this.now)
    this.log.push({ before: this.record.rollout, after: next, writes, observed })
    this.record = { rollout: asStored(next, revision), revision }
    return true
  }

  drive(client: 0 | 1, fresh: boolean): void {
    const read = fresh || this.reads[client] === undefined ? this.record : (this.reads[client] ?? this.record)
    this.reads[client] = read
    const observed = this.observed(read.rollout)
    const decision = decide(read.rollout, observed, this.now)
    if (decision._tag !== "Commit") return
    if (!this.commit(read.revision, decision.next, decision.writes, observed)) this.reads[client] = this.record
  }

  act(act: Act): void {
    switch (act._tag) {
      case "Drive":
        return this.drive(act.client, act.fresh)
      case "Abort": {
        const v = abort(this.record.rollout, "bob@h2", this.now)
        if (v._tag === "Ok") this.commit(this.record.revision, v.next, [])
        return
      }
      case "Resume": {
        const v = resume(this.record.rollout, this.clusterRevision, this.now)
        if (v._tag === "Ok" && v.next !== this.record.rollout) this.commit(this.record.revision, v.next, [])
        return
      }
      case "Meddle": {
        // Someone else writes a node's override, as `tell --node` would.
        const node = this.scenario.nodes[act.node]?.name
        if (node !== undefined) this.overrides.set(node, this.bump())
        this.meddled.add(this.revision)
      }
    }
  }

  run(): this {
    for (const { dt, act } of this.scenario.steps) {
      this.now += dt
      this.act(act)
    }
    return this
  }

  /** Drives on, from one client with fresh reads, until the rollout ends (or a generous bound passes). */
  settle(): this {
    for (let i = 0; i < 10_000 && this.record.rollout.phase._tag !== "Done" && this.record.rollout.phase._tag !== "Stopped" && this.record.rollout.phase._tag !== "Aborted"; i++) {
      this.now += 250
      this.drive(0, true)
    }
    return this
  }
}

const movingCount = (r: Rollout): number => r.nodes.filter((n) => n.step._tag === "Moving").length
const overridesIn = (writes: readonly RolloutWrite[]): string[] => writes.flatMap((w) => (w._tag === "SetOverride" ? [w.node] : []))

test.prop([scenarioArb({ abort: true, meddle: true })], { numRuns: 300 })(
  "batches never exceed N: a commit writes at most N overrides, and at most N nodes are moving at any time",
  (scenario) => {
    const lab = new Lab(scenario).run().settle()
    for (const { after, writes } of lab.log) {
      expect(overridesIn(writes).length).toBeLessThanOrEqual(scenario.options.batchSize)
      expect(movingCount(after)).toBeLessThanOrEqual(scenario.options.batchSize)
    }
  },
)

test.prop([scenarioArb({ abort: true, meddle: true })], { numRuns: 300 })(
  "the next batch starts only once every node of the current one has settled: reported run at the level (its override's revision taken), or failed",
  (scenario) => {
    const lab = new Lab(scenario).run().settle()
    for (const { before, after, writes, observed } of lab.log) {
      const written = overridesIn(writes)
      if (written.length > 0) expect(after.nodes.filter((n) => n.step._tag === "Moving").map((n) => n.node)).toEqual(written)
      for (const n of after.nodes) {
        const was = before.nodes.find((b) => b.node === n.node)?.step._tag
        if (was === "Moving" && n.step._tag === "Done") expect(observed?.standings.get(n.node)).toBe("Done")
      }
    }
  },
)

test.prop([scenarioArb({ abort: false, meddle: true })], { numRuns: 300 })(
  "a failed batch stops the rollout: the commit that settles a batch with the K-th failure stops it and writes nothing, and nothing is written after it until an operator resumes",
  (scenario) => {
    const lab = new Lab(scenario).run().settle()
    let stopped = false
    for (const { before, after, writes } of lab.log) {
      const resumed = before.phase._tag === "Stopped" && after.phase._tag === "Running"
      if (resumed) stopped = false
      expect(stopped && !resumed, "a write after the stop").toBe(false)
      const failures = summaryOf(after).failed.length
      if (overridesIn(writes).length > 0 || writes.some((w) => w._tag === "SetClusterWide")) expect(failures).toBeLessThan(scenario.options.maxFailures)
      // The batch settles first (every node reached or failed), so the report says exactly which nodes got there.
      const settled = !after.nodes.some((n) => n.step._tag === "Moving")
      if (!resumed && settled && failures >= scenario.options.maxFailures && before.phase._tag === "Running") {
        expect(after.phase._tag).toBe("Stopped")
        expect(writes).toEqual([])
      }
      if (after.phase._tag === "Stopped") stopped = true
    }
  },
)

test.prop([scenarioArb({ abort: true, meddle: true })], { numRuns: 300 })(
  "the rollout never overwrites or deletes an override someone else wrote, even one written while the rollout runs",
  (scenario) => {
    const lab = new Lab(scenario).run().settle()
    expect(lab.overwrote).toEqual([])
  },
)

test.prop([scenarioArb({ abort: false, meddle: false })], { numRuns: 300 })(
  "a resumed rollout never re-touches a finished node: a node that reached the level is never written again",
  (scenario) => {
    const lab = new Lab(scenario).run().settle()
    const finished = new Set<string>()
    for (const { before, writes } of lab.log) {
      for (const n of before.nodes) if (n.step._tag === "Done") finished.add(n.node)
      for (const node of overridesIn(writes)) expect(finished.has(node), `${node} written again`).toBe(false)
      for (const w of writes) if (w._tag === "SetOverride") expect(lab.record.rollout.nodes.some((n) => n.node === w.node)).toBe(true)
    }
  },
)

test.prop([scenarioArb({ abort: true, meddle: true }), fc.integer({ min: 0, max: 199 })], { numRuns: 300 })(
  "an aborted rollout touches nothing more: no write of any kind after the abort, however it is driven or resumed",
  (scenario, at) => {
    const steps = [...scenario.steps.slice(0, at), { dt: 0, act: { _tag: "Abort" } as const }, ...scenario.steps.slice(at)]
    const lab = new Lab({ ...scenario, steps }).run().settle()
    const aborted = lab.log.findIndex((l) => l.after.phase._tag === "Aborted")
    if (aborted < 0) {
      // The rollout had already finished when the abort came: abort refuses and nothing changes.
      expect(lab.record.rollout.phase._tag).toBe("Done")
      return
    }
    expect(lab.log.slice(aborted + 1)).toEqual([])
    expect(decide(lab.record.rollout, lab.observed(lab.record.rollout), lab.now + 1e9)).toEqual({ _tag: "Ended" })
  },
)

test.prop([scenarioArb({ abort: false, meddle: false })], { numRuns: 300 })(
  "the final state has no leftover override: a finished rollout leaves the level cluster-wide and none of its overrides behind",
  (scenario) => {
    const lab = new Lab(scenario).run()
    // An operator resumes every stop until the rollout finishes (dead and stuck nodes end as skipped or failed).
    for (let i = 0; i < 50 && lab.record.rollout.phase._tag !== "Done"; i++) {
      lab.settle()
      if (lab.record.rollout.phase._tag === "Stopped") lab.record = { ...lab.record, rollout: { ...lab.record.rollout, maxFailures: 1_000 } }
      lab.act({ _tag: "Resume" })
    }
    const final = lab.record.rollout
    expect(final.phase._tag).toBe("Done")
    expect([...lab.overrides.keys()]).toEqual([])
    expect(lab.clusterRevision).toBeGreaterThan(0)
    // The cluster-wide level was written before (or with) the first override was cleared.
    const first = lab.log.findIndex((l) => l.writes.some((w) => w._tag === "ClearOverride"))
    const wide = lab.log.findIndex((l) => l.writes.some((w) => w._tag === "SetClusterWide"))
    if (first >= 0) expect(wide).toBeGreaterThanOrEqual(0)
    if (first >= 0) expect(wide).toBeLessThanOrEqual(first)
  },
)

test.prop([scenarioArb({ abort: false, meddle: false })], { numRuns: 200 })(
  "it ends by itself: driven on, every rollout finishes or stops within its batches' timeouts and pauses",
  (scenario) => {
    const lab = new Lab(scenario).run()
    const { batchTimeoutMs, pauseMs } = scenario.options
    const bound = lab.now + scenario.nodes.length * (batchTimeoutMs + pauseMs + 500) + 1_000
    lab.settle()
    expect(["Done", "Stopped"]).toContain(lab.record.rollout.phase._tag)
    expect(lab.now).toBeLessThanOrEqual(bound)
    if (lab.record.rollout.phase._tag === "Done") {
      const s = summaryOf(lab.record.rollout)
      // Every node got there, failed (fewer than K) or was skipped because it was dead at its turn.
      expect(s.done.length + s.failed.length + s.skipped.length).toBe(lab.record.rollout.nodes.length)
      for (const { node } of s.skipped) expect(lab.byName.get(node)?.diesAt).toBeDefined()
    }
  },
)

test("plan: live nodes running the group in natural name order, --order first, own overrides left alone, an aborted rollout's overrides taken over", () => {
  const live = ["n10", "n2", "n1", "db1", "x"].map((node) => ({ node, runsGroup: node !== "db1" }))
  expect(planOf({ live, overrides: new Map(), previous: undefined, order: [] }).nodes.map((n) => n.node)).toEqual(["n1", "n2", "n10", "x"])
  const ordered = planOf({ live, overrides: new Map([["n2", 40]]), previous: undefined, order: ["x", "gone", "db1"] })
  expect(ordered.nodes.map((n) => n.node)).toEqual(["x", "gone", "n1", "n10"])
  expect(ordered.overridden).toEqual(["n2"])
  expect(ordered.notRunning).toEqual(["db1"])
  const previous: Rollout = {
    ...newRollout({ group: "web", level: "3", batchSize: 1, pauseMs: 0, maxFailures: 1, batchTimeoutMs: 1_000 }, { nodes: [], overridden: [], notRunning: [] }, 0, { by: "a", at: 0 }),
    nodes: [{ node: "n2", step: { _tag: "Done", revision: 40 } }, { node: "gone", step: { _tag: "Failed", revision: 41, reason: "x" } }],
    phase: { _tag: "Aborted", at: 1, by: "b" },
  }
  const again = planOf({ live, overrides: new Map([["n2", 40], ["gone", 41]]), previous, order: [] })
  expect(again.overridden).toEqual([])
  expect(again.nodes.map((n) => [n.node, n.adopted])).toEqual([["gone", 41], ["n1", undefined], ["n2", 40], ["n10", undefined], ["x", undefined]])
  expect(["b10", "b9", "a", "b"].sort(byNodeName)).toEqual(["a", "b", "b9", "b10"])
})
