import { describe, expect, it } from "vitest"
import { decodeSnapshot, encodeSnapshot } from "../../src/codec/snapshot.ts"
import { makeConfig } from "../../src/core/config.ts"
import { noOptions } from "../../src/core/options.ts"
import { leaderExited, started, tell } from "../../src/core/events.ts"
import { parseInittab } from "../../src/core/inittab.ts"
import { reduce } from "../../src/core/reducer.ts"
import { snapshot } from "../../src/core/snapshot.ts"
import { initialState } from "../../src/core/state.ts"

describe("state file codec", () => {
  const parsed = {
    config: makeConfig([{ group: "g", tag: "a", levels: ["1"], mode: "respawn", command: "sleep 9", line: 1, options: noOptions }]),
    problems: [],
  }
  const [told] = reduce(initialState, tell("g", "1", parsed, 10))
  const [state] = reduce(told, started("a", 1, 4242, 11, "boot:123"))

  it("round-trips a snapshot", () => {
    const snap = snapshot(state)
    const decoded = decodeSnapshot(encodeSnapshot(snap))
    expect(decoded).toEqual({ _tag: "Right", right: snap })
  })

  it("round-trips a run whose leader exited (rule 14), and still reads a file written without that field", () => {
    const [leaderGone] = reduce(state, leaderExited("a", 1, { _tag: "Exited", code: 3 }, 12))
    const snap = snapshot(leaderGone)
    expect(snap.entries[0]?.proc).toMatchObject({ _tag: "Stopping", cause: { _tag: "LeaderExited", outcome: { _tag: "Exited", code: 3 } } })
    expect(decodeSnapshot(encodeSnapshot(snap))).toEqual({ _tag: "Right", right: snap })
    // On disk a live run keeps the shape every version writes and reads: `stopping`, and `leaderExit`.
    const stored = (JSON.parse(encodeSnapshot(snap)) as { entries: { proc: unknown }[] }).entries[0]?.proc
    expect(stored).toEqual({ run: 1, pid: 4242, identity: "boot:123", since: 10, stopping: true, def: { group: "g", tag: "a", levels: ["1"], mode: "respawn", command: "sleep 9", line: 1 }, leaderExit: { _tag: "Exited", code: 3 } })
    const older = JSON.parse(encodeSnapshot(snapshot(state))) as { entries: { proc: Record<string, unknown> }[] }
    expect(older.entries[0]?.proc["stopping"]).toBe(false)
    expect(decodeSnapshot(JSON.stringify(older))).toEqual({ _tag: "Right", right: snapshot(state) })
  })

  it("keeps a run's options as KEY=VALUE text, read back to the same typed options (issue 11)", () => {
    const withOptions = parseInittab("g:a:1:respawn:sleep 9\n:::option:a:env=A=b:c=d\n:::option:a:env=B=\n:::option:a:nofile=1024:4096\n:::option:*:stop-signal=INT\n")
    expect(withOptions.problems).toEqual([])
    const [runs] = reduce(initialState, tell("g", "1", withOptions, 10))
    const snap = snapshot(runs)
    const stored = (JSON.parse(encodeSnapshot(snap)) as { entries: { proc: { def: unknown } }[] }).entries[0]?.proc.def
    expect(stored).toMatchObject({ options: [["env", "A=b:c=d"], ["env", "B="], ["nofile", "1024:4096"], ["stop-signal", "SIGINT"]] })
    expect(decodeSnapshot(encodeSnapshot(snap))).toEqual({ _tag: "Right", right: snap })
  })

  it("refuses a snapshot that decodes but breaks what every snapshot satisfies, and never takes one that does", () => {
    const taken = snapshot(state)
    const twice = { ...taken, entries: [...taken.entries, ...taken.entries] }
    expect(decodeSnapshot(encodeSnapshot(twice))).toEqual({ _tag: "Left", left: expect.stringMatching(/inconsistent snapshot: entry a is recorded twice; run 1 is recorded twice/) })
    expect(decodeSnapshot(encodeSnapshot({ ...taken, nextRun: 1 }))).toMatchObject({ _tag: "Left", left: expect.stringMatching(/a run 1 is not below the next run 1/) })
    expect(decodeSnapshot(encodeSnapshot({ ...taken, lifecycle: "halted" }))).toMatchObject({ _tag: "Left", left: expect.stringMatching(/halted with a run 1/) })
    expect(() => snapshot({ ...state, nextRun: 1 })).toThrow(/a run 1 is not below the next run 1/)
  })

  it("rejects a corrupt or foreign file with a reason", () => {
    for (const text of ["", "{", "null", '{"version":2}', JSON.stringify({ ...snapshot(state), nextRun: "x" })]) {
      const decoded = decodeSnapshot(text)
      expect(decoded._tag).toBe("Left")
      if (decoded._tag === "Left") expect(decoded.left.length).toBeGreaterThan(0)
    }
  })
})
