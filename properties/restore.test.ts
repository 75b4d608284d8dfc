import { fc, test } from "@fast-check/vitest"
import { expect } from "vitest"
import type { Config } from "../src/core/config.ts"
import { decodeSnapshot, encodeSnapshot } from "../src/codec/snapshot.ts"
import type { Completion, State } from "../src/core/state.ts"
import { entryOf, initialState } from "../src/core/state.ts"
import { childExit, restore } from "../src/core/events.ts"
import { reduce } from "../src/core/reducer.ts"
import type { DaemonSnapshot } from "../src/core/snapshot.ts"
import { recordedRuns, snapshot } from "../src/core/snapshot.ts"
import type { FoundRun, RunName } from "../src/core/adoption.ts"
import { planAdoption } from "../src/core/adoption.ts"
import { listsLevel } from "../src/core/config.ts"
import type { World } from "../src/sim/world.ts"

import { swarmStateArb, worldAt } from "./helpers.ts"

/** A daemon in any state, about to crash. */
const crashedDaemonArb = swarmStateArb
/** Which of the recorded runs the successor finds alive (one bit per run). */
const survivorsArb = fc.array(fc.boolean(), { minLength: 40, maxLength: 40 })


/** What the successor reads back from the state file. */
const onDisk = (state: State): DaemonSnapshot => {
  const decoded = decodeSnapshot(encodeSnapshot(snapshot(state)))
  if (decoded._tag === "Left") throw new Error(decoded.left)
  return decoded.right
}

const ranOk = (ok: boolean): Completion => ({ _tag: "Ran", ok })

/** What a restore from `saved` at `at` must leave: adopted runs as they were, unseen ends recorded. */
const expectTakenOver = (saved: DaemonSnapshot, after: State, alive: readonly number[], at: number, config: Config): void => {
  for (const entry of saved.entries) {
    const def = config.byTag.get(entry.tag)
    if (def === undefined || def.mode === "off") continue // forgotten with the config (rule 4)
    const now = entryOf(after, entry.tag)
    const proc = entry.proc
    const vanished = proc !== null && !alive.includes(proc.run)
    expect(now.lastExit).toEqual(vanished ? { outcome: { _tag: "Vanished" }, at } : entry.lastExit)
    if (proc === null) continue
    const pidNow = now.proc._tag !== "Idle" && now.proc.run === proc.run ? now.proc.pid : undefined
    if (!vanished && pidNow !== undefined) expect(pidNow).toBe(proc.pid ?? undefined)
    const done = vanished && proc.def.mode !== "respawn" && now.completion._tag === "Ran"
    if (done) expect(now.completion).toEqual(ranOk(proc.def.mode !== "test"))
  }
}

test.prop([crashedDaemonArb, survivorsArb], { numRuns: 100 })(
  "rule 19: a restarted daemon adopts the runs still alive; a once or wait run that ended unseen is done, " +
    "a test's is failed; the last exit of every entry survives any number of restarts",
  ({ seed, cut }, survivors) => {
    const w = worldAt(seed, cut)
    if (w.state.lifecycle !== "running") return
    const saved = onDisk(w.state)
    const runs = recordedRuns(saved)
    const alive = runs.filter((_, i) => survivors[i] ?? true).map((r) => r.run)
    const [first] = reduce(initialState, restore(saved, alive, w.parsed, w.now + 1))
    expectTakenOver(saved, first, alive, w.now + 1, w.parsed.config)
    const [second] = reduce(initialState, restore(onDisk(first), alive, w.parsed, w.now + 2))
    expectTakenOver(onDisk(first), second, alive, w.now + 2, w.parsed.config)
    // An adopted once, wait or test that ends while adopted (exit status unknown) is marked the same way.
    let state = second
    for (const run of runs.filter((r) => alive.includes(r.run))) {
      const proc = entryOf(state, run.tag).proc
      if (proc._tag !== "Running" || proc.run !== run.run || proc.def.mode === "respawn") continue
      ;[state] = reduce(state, childExit(run.tag, run.run, { _tag: "Vanished" }, w.now + 3))
      const completion = entryOf(state, run.tag).completion
      if (completion._tag === "Ran") expect(completion).toEqual(ranOk(proc.def.mode !== "test"))
    }
  },
)

/** What the successor's scan of /proc finds: every live run, with its pid and a start time. */
const markedLeaders = (w: World): FoundRun[] =>
  [...w.processes.values()].flatMap((p) => (p.pid === undefined ? [] : [{ tag: p.tag, run: p.run, pid: p.pid, identity: String(p.startedAt) }]))

/** The spawn journal since step `from`: every run started after the last state-file write. */
const journalSince = (w: World, from: number): RunName[] =>
  w.history.slice(from).flatMap((step) => step.effects.flatMap((e) => (e._tag === "Spawn" || e._tag === "RunSync" ? [{ tag: e.tag, run: e.run }] : [])))

/** After the last write: how long the daemon runs on, and maybe a tell whose level the file never recorded. */
const afterTheWriteArb = fc.record({
  runOnMs: fc.integer({ min: 0, max: 30_000 }),
  lateTell: fc.option(fc.record({ group: fc.nat(), level: fc.constantFrom("1", "2", "3") }), { nil: undefined }),
})

test.prop([crashedDaemonArb, afterTheWriteArb], { numRuns: 150 })(
  "rule 19: a successor adopts every live run its state file or its journal names and its group's recorded level lists, " +
    "stops every other live run it finds, adopts none twice, and its restore breaks no invariant",
  ({ seed, cut }, { runOnMs, lateTell }) => {
    const w = worldAt(seed, cut)
    if (w.state.lifecycle !== "running") return
    const saved = onDisk(w.state) // the last state-file write; the daemon runs on, then crashes
    const written = w.steps
    const groups = [...w.parsed.config.byGroup.keys()]
    const told = lateTell === undefined ? undefined : groups[lateTell.group % Math.max(1, groups.length)]
    if (told !== undefined && lateTell !== undefined) w.tell(told, lateTell.level)
    w.advance(runOnMs)
    const marked = markedLeaders(w)
    const verified = new Set(recordedRuns(saved).flatMap((r) => (r.pid !== null && w.processes.get(`${r.tag}#${r.run}`)?.pid === r.pid ? [r.run] : [])))
    const plan = planAdoption(saved, w.parsed, journalSince(w, written), marked, verified, w.now + 1)
    const adopted = plan.adopt.map((a) => a.run)
    expect(new Set(adopted).size).toBe(adopted.length)
    expect([...plan.alive].sort((a, b) => a - b)).toEqual([...adopted].sort((a, b) => a - b))
    expect([...adopted, ...plan.strays.map((s) => s.run)].sort((a, b) => a - b)).toEqual(marked.map((m) => m.run).sort((a, b) => a - b))
    // A run started after the write is taken back exactly when its group's recorded level lists it
    // (its definition: the config's, else, for an entry the config no longer has, the one its
    // recorded run ran; rule 18 then stops it in order); otherwise its tell was lost with the
    // daemon, and it is stopped as a stray.
    const recordedLevelLists = (tag: string): boolean => {
      const def = w.parsed.config.byTag.get(tag) ?? saved.entries.find((e) => e.tag === tag)?.proc?.def
      const level = saved.groups.find((g) => g.name === def?.group)?.level ?? null
      return def !== undefined && level !== null && listsLevel(def, level)
    }
    for (const stray of plan.strays) expect([stray.run >= saved.nextRun, recordedLevelLists(stray.tag)]).toEqual([true, false])
    for (const late of plan.adopt.filter((a) => a.run >= saved.nextRun)) expect(recordedLevelLists(late.tag)).toBe(true)
    // Restore checks every invariant (core/invariants.ts) and throws on a broken one.
    const [after] = reduce(initialState, restore(plan.snapshot, plan.alive, w.parsed, w.now + 1))
    for (const a of plan.adopt) expect(entryOf(after, a.tag).proc).toMatchObject({ run: a.run, pid: a.pid })
  },
)

