import { fc, test } from "@fast-check/vitest"
import { expect } from "vitest"
import type { Config } from "../src/core/config.ts"
import { decodeSnapshot, encodeSnapshot } from "../src/codec/snapshot.ts"
import type { Completion, State } from "../src/core/state.ts"
import { entryOf, initialState } from "../src/core/state.ts"
import { childExit, restore } from "../src/core/events.ts"
import { reduce } from "../src/core/reducer.ts"
import type { Snapshot } from "../src/core/snapshot.ts"
import { recordedRuns, snapshot } from "../src/core/snapshot.ts"

import { swarmStateArb, worldAt } from "./helpers.ts"

/** A daemon in any state, about to crash. */
const crashedDaemonArb = swarmStateArb
/** Which of the recorded runs the successor finds alive (one bit per run). */
const survivorsArb = fc.array(fc.boolean(), { minLength: 40, maxLength: 40 })


/** What the successor reads back from the state file. */
const onDisk = (state: State): Snapshot => {
  const decoded = decodeSnapshot(encodeSnapshot(snapshot(state)))
  if (decoded._tag === "Left") throw new Error(decoded.left)
  return decoded.right
}

const ranOk = (ok: boolean): Completion => ({ _tag: "Ran", ok })

/** What a restore from `saved` at `at` must leave: adopted runs as they were, unseen ends recorded. */
const expectTakenOver = (saved: Snapshot, after: State, alive: readonly number[], at: number, config: Config): void => {
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
