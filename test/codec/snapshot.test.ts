import { describe, expect, it } from "vitest"
import { decodeSnapshot, encodeSnapshot } from "../../src/codec/snapshot.ts"
import { makeConfig } from "../../src/core/config.ts"
import { leaderExited, started, tell } from "../../src/core/events.ts"
import { reduce } from "../../src/core/reducer.ts"
import { snapshot } from "../../src/core/snapshot.ts"
import { initialState } from "../../src/core/state.ts"

describe("state file codec", () => {
  const parsed = {
    config: makeConfig([{ group: "g", tag: "a", levels: ["1"], mode: "respawn", command: "sleep 9", line: 1 }]),
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
    expect(snap.entries[0]?.proc).toMatchObject({ stopping: true, leaderExit: { _tag: "Exited", code: 3 } })
    expect(decodeSnapshot(encodeSnapshot(snap))).toEqual({ _tag: "Right", right: snap })
    const older = snapshot(state)
    expect(decodeSnapshot(JSON.stringify(older))).toEqual({ _tag: "Right", right: older })
  })

  it("rejects a corrupt or foreign file with a reason", () => {
    for (const text of ["", "{", "null", '{"version":2}', JSON.stringify({ ...snapshot(state), nextRun: "x" })]) {
      const decoded = decodeSnapshot(text)
      expect(decoded._tag).toBe("Left")
      if (decoded._tag === "Left") expect(decoded.left.length).toBeGreaterThan(0)
    }
  })
})
