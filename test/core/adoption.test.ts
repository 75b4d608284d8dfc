/**
 * The adoption plan (core/adoption.ts): what a successor takes back from the state file, the
 * spawn journal and the marked processes /proc shows. Pure: the runtime verifies the recorded
 * runs and scans /proc (test/runtime/adopt.test.ts).
 */
import { describe, expect, it } from "vitest"
import { planAdoption } from "../../src/core/adoption.ts"
import { byTag, marked, parsed, saved, snap } from "./snapshots.ts"

const nobody: ReadonlySet<number> = new Set()

describe("planAdoption", () => {
  it("adopts the recorded runs the runtime verified (pid and start time), and only those", () => {
    const s = snap([saved("srv", { run: 3, pid: 30, identity: "a" }), saved("one", { run: 4, pid: 40, identity: "b" })], 5)
    const plan = planAdoption(s, parsed, [], [], new Set([3]), 1000)
    expect(plan.alive).toEqual([3])
    expect(plan.adopt).toEqual([{ tag: "srv", run: 3, pid: 30, identity: "a" }])
    expect(plan.snapshot).toEqual(s)
    expect(plan.strays).toEqual([])
  })

  it("finds the pid of a recorded run the file had no pid for, by its environment (earliest start wins)", () => {
    const s = snap([saved("srv", { run: 3, pid: null, identity: null })], 4)
    const plan = planAdoption(s, parsed, [], [marked("srv", 3, 77, "900"), marked("srv", 3, 70, "500")], nobody, 1000)
    expect(plan.adopt).toEqual([{ tag: "srv", run: 3, pid: 70, identity: "500" }])
    expect(plan.snapshot.entries[0]?.proc).toMatchObject({ run: 3, pid: 70, identity: "500" })
  })

  it("takes back a run started after the last write, and counts its start in the window", () => {
    const s = snap([saved("srv", null, { starts: [10] })], 5)
    const plan = planAdoption(s, parsed, [{ tag: "srv", run: 5 }], [marked("srv", 5, 55)], nobody, 1000)
    expect(plan.alive).toEqual([5])
    expect(plan.snapshot.nextRun).toBe(6)
    expect(plan.snapshot.entries[0]).toMatchObject({ tag: "srv", starts: [10, 1000], proc: { run: 5, pid: 55, def: byTag.get("srv") } })
  })

  it("a once, wait or test started after the last write and already ended counts as run: never twice", () => {
    const s = snap([], 5)
    const journal = [{ tag: "one", run: 5 }, { tag: "w", run: 6 }, { tag: "t", run: 7 }]
    const plan = planAdoption(s, parsed, journal, [], nobody, 1000)
    expect(plan.alive).toEqual([])
    expect(plan.snapshot.nextRun).toBe(8)
    const completion = (tag: string) => plan.snapshot.entries.find((e) => e.tag === tag)?.completion
    expect(completion("one")).toEqual({ _tag: "Ran", ok: true })
    expect(completion("w")).toEqual({ _tag: "Ran", ok: true })
    expect(completion("t")).toEqual({ _tag: "Ran", ok: false })
  })

  it("of several runs of one entry after the last write, only the latest can be alive; all count as starts", () => {
    const s = snap([saved("srv", { run: 2, pid: 20, identity: "x" })], 5)
    const plan = planAdoption(s, parsed, [{ tag: "srv", run: 5 }, { tag: "srv", run: 6 }, { tag: "srv", run: 7 }], [marked("srv", 5, 50), marked("srv", 7, 70)], new Set([2]), 1000)
    expect(plan.adopt).toEqual([{ tag: "srv", run: 7, pid: 70, identity: "7000" }])
    expect(plan.snapshot.entries[0]).toMatchObject({ starts: [1000, 1000, 1000], proc: { run: 7 } })
  })

  it("stops a live run whose level was never recorded (its tell was lost), and ignores setsid descendants of old runs", () => {
    const s = snap([saved("srv", { run: 2, pid: 20, identity: "x" })], 5)
    // "other" is not in level 1; run 1 of srv is older than the file: a descendant that left the group.
    const plan = planAdoption(s, parsed, [{ tag: "other", run: 5 }], [marked("other", 5, 50), marked("srv", 1, 10)], new Set([2]), 1000)
    expect(plan.strays).toEqual([marked("other", 5, 50)])
    expect(plan.adopt).toEqual([{ tag: "srv", run: 2, pid: 20, identity: "x" }])
    expect(plan.snapshot.entries.map((e) => e.tag)).toEqual(["srv"])
    expect(plan.snapshot.nextRun).toBe(6)
    const untold = planAdoption(snap([], 1, null), parsed, [{ tag: "srv", run: 1 }], [marked("srv", 1, 11)], nobody, 1000)
    expect(untold.strays).toEqual([marked("srv", 1, 11)])
    expect(untold.alive).toEqual([])
  })

  it("counts the starts after the last write in the respawn window as the reducer would (rule 6): at most its size", () => {
    const s = snap([saved("srv", null, { starts: [1, 2, 3, 4] })], 5)
    const journal = [5, 6, 7, 8].map((run) => ({ tag: "srv", run }))
    const plan = planAdoption(s, parsed, journal, [], nobody, 20_000)
    // 1 to 4 are out of the 10 s window at 20 s; four starts at 20 s are counted.
    expect(plan.snapshot.entries[0]?.starts).toEqual([20_000, 20_000, 20_000, 20_000])
    const full = planAdoption(snap([saved("srv", null, { starts: [19_000, 19_500] })], 5), parsed, journal, [], nobody, 20_000)
    expect(full.snapshot.entries[0]?.starts).toEqual([19_500, 20_000, 20_000, 20_000, 20_000])
  })
})
