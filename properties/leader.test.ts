import { fc, test } from "@fast-check/vitest"
import { describe, expect, it } from "vitest"
import type { Outcome } from "../src/core/events.ts"
import type { Behaviour } from "../src/sim/behaviour.ts"
import { ignoresSigterm, leaderExitsAfter, runsForever, stopsAfter } from "../src/sim/behaviour.ts"
import { World } from "../src/sim/world.ts"
import { configText, entriesArb, kills, nearArb, phaseOf } from "./helpers.ts"

const graceMs = 30_000
/** Roomy respawn limits: this file is about leaders and their groups, not about jails. */
const header = ":::respawn-limit:1000/1s\n"

/** A shell-wrapped entry: its leader exits after a while with a code; the rest of its group takes SIGTERM so. */
const leaderLifeArb = fc.record({
  leaderMs: fc.integer({ min: 500, max: 20_000 }), // a restart loop no faster than that: 100 s stay cheap
  code: fc.constantFrom(0, 0, 1),
  stopMs: fc.oneof(fc.constant<"ignores">("ignores"), nearArb([graceMs, 0], 40_000)),
})
type LeaderLife = typeof leaderLifeArb extends fc.Arbitrary<infer A> ? A : never

const behaviourOf = (life: LeaderLife): Behaviour => {
  const base = leaderExitsAfter(life.leaderMs, life.code)
  return life.stopMs === "ignores" ? ignoresSigterm(base) : stopsAfter(life.stopMs, base)
}

/** When the leftovers of a group whose leader exited at `at` are gone: at SIGTERM's end, or at SIGKILL. */
const goneAt = (life: LeaderLife, at: number): number =>
  at + (life.stopMs === "ignores" ? graceMs : Math.min(life.stopMs, graceMs))

const entriesWithLivesArb = fc.record({
  entries: entriesArb({ modes: ["respawn", "once", "wait", "test"], max: 6 }),
  lives: fc.array(leaderLifeArb, { minLength: 6, maxLength: 6 }),
})

const leaderExits = (w: World) =>
  w.history.flatMap((s) => {
    const e = s.event
    return e._tag === "LeaderExited" ? [{ step: s.index, at: s.at, tag: e.tag, run: e.run, outcome: e.outcome }] : []
  })

const runEnd = (w: World, tag: string, run: number) =>
  w.history.find((s) => s.event._tag === "ChildExit" && s.event.tag === tag && s.event.run === run)

const failedOutcome = (outcome: Outcome): boolean => !(outcome._tag === "Exited" && outcome.code === 0)

test.prop([entriesWithLivesArb])(
  "rule 14: the leader's exit ends the run at once: the rest of its process group is stopped (SIGTERM, " +
    "SIGKILL after the grace), then the entry is handled as exited with the leader's outcome",
  ({ entries, lives }) => {
    const lifeOf = (tag: string): LeaderLife => lives[Number(tag.slice(1)) - 1] ?? { leaderMs: 0, code: 0, stopMs: 0 }
    const behaviours = entries.map((e): [string, Behaviour] => [e.tag, behaviourOf(lifeOf(e.tag))])
    const w = new World({ config: header + configText(entries), behaviours })
    w.tell("g", "1")
    w.advance(100_000)
    for (const exit of leaderExits(w)) {
      const mode = entries.find((e) => e.tag === exit.tag)?.mode
      // Logged and stopped at once: SIGTERM to the group in the same step.
      const first = kills(w, exit.tag).find((k) => k.run === exit.run)
      expect([first?.step, first?.signal]).toEqual([exit.step, "SIGTERM"])
      const end = runEnd(w, exit.tag, exit.run)
      const gone = goneAt(lifeOf(exit.tag), exit.at)
      expect(end?.at).toBe(gone <= w.now ? gone : undefined)
      if (end === undefined) continue
      // Handled as exited once the group is gone: a respawn entry starts again then, and only then.
      const next = w.startsOf(exit.tag).find((s) => s.run > exit.run)
      if (mode === "respawn") expect(next?.step).toBe(end.index)
      else expect(next).toBeUndefined()
    }
    // A barrier's transition goes on when its group is gone, with the leader's outcome.
    const inLevel = entries.filter((e) => e.levels.includes("1"))
    for (const [i, barrier] of inLevel.entries()) {
      if (barrier.mode !== "wait" && barrier.mode !== "test") continue
      const end = w.history.find((s) => s.event._tag === "ChildExit" && s.event.tag === barrier.tag)
      for (const later of inLevel.slice(i + 1)) {
        const start = w.startsOf(later.tag)[0]
        if (start !== undefined) expect(end !== undefined && start.step >= end.index).toBe(true)
      }
    }
    const modeOf = (tag: string) => entries.find((e) => e.tag === tag)?.mode
    const testFailed = leaderExits(w).some((x) => modeOf(x.tag) === "test" && failedOutcome(x.outcome))
    if (phaseOf(w, "g") !== "start") expect(phaseOf(w, "g")).toBe(testFailed ? "fail" : "run")
    expect(w.violations).toEqual([])
  },
)

describe("rule 14 by example", () => {
  it("a shell whose child ignores SIGTERM: logged at once, leader-exited in the status, SIGKILL after the " +
    "grace, then restarted", () => {
    const behaviours: [string, Behaviour][] = [["web", ignoresSigterm(leaderExitsAfter(1_000, 0))]]
    const w = new World({ config: "g:web:1:respawn:sh -c 'httpd &'\n", behaviours })
    w.tell("g", "1")
    w.advanceTo(1_000)
    expect(w.timeline.filter((e) => e.kind === "leader-exited").map((e) => e.at)).toEqual([1_000])
    const entry = () => w.report().groups[0]?.entries[0]
    expect(entry()).toMatchObject({ state: "leader-exited", lastExit: "exit 0", run: 1 })
    expect(kills(w, "web").map((k) => [k.at, k.signal])).toEqual([[1_000, "SIGTERM"]])
    w.advanceTo(30_999)
    expect(w.startsOf("web")).toHaveLength(1)
    w.advanceTo(31_000)
    expect(kills(w, "web").map((k) => [k.at, k.signal])).toEqual([[1_000, "SIGTERM"], [31_000, "SIGKILL"]])
    expect(w.startsOf("web").map((s) => s.at)).toEqual([0, 31_000])
    expect(entry()).toMatchObject({ state: "running", restarts: 1, lastExit: "exit 0", run: 2 })
  })

  it("a once entry whose leader exits is done when its group is gone; a wait holds its transition until then", () => {
    const config = "g:setup:1:wait:sh -c 'mount &'\ng:banner:1:once:sh -c 'banner &'\ng:srv:1:respawn:srv\n"
    const w = new World({
      config,
      behaviours: [
        ["setup", stopsAfter(500, leaderExitsAfter(100, 0))],
        ["banner", leaderExitsAfter(200, 3)],
        ["srv", runsForever()],
      ],
    })
    w.tell("g", "1")
    w.advanceTo(599)
    expect(w.startsOf("banner")).toEqual([])
    expect(phaseOf(w, "g")).toBe("start")
    w.advanceTo(600)
    expect(w.startsOf("banner").map((s) => s.at)).toEqual([600])
    w.advanceTo(10_000)
    const banner = w.report().groups[0]?.entries.find((e) => e.tag === "banner")
    expect(banner).toMatchObject({ state: "failed", lastExit: "exit 3" })
    expect(w.startsOf("banner")).toHaveLength(1)
    expect(phaseOf(w, "g")).toBe("run")
  })

  it("leftovers of an entry that leaves its level are only stopped: not restarted, not marked done", () => {
    const behaviours: [string, Behaviour][] = [["one", stopsAfter(1_000, leaderExitsAfter(100, 0))]]
    const w = new World({ config: "g:one:1:once:sh -c 'job &'\n", behaviours })
    w.tell("g", "1")
    w.advanceTo(500)
    w.tell("g", "2")
    w.advanceTo(5_000)
    expect(w.report().groups[0]?.entries[0]?.state).toBe("idle")
    w.tell("g", "1")
    expect(w.startsOf("one").map((s) => s.at)).toEqual([0, 5_000])
    expect(w.violations).toEqual([])
  })

  it("an operator kills the leader of a plain service: the rest of its group goes, and it is restarted", () => {
    const w = new World({ config: "g:srv:1:respawn:sh -c 'a | b'\n", sigtermDelayMs: 20 })
    w.tell("g", "1")
    w.advanceTo(1_000)
    w.crashLeader("srv", "SIGKILL")
    expect(w.report().groups[0]?.entries[0]?.state).toBe("leader-exited")
    w.advanceTo(1_020)
    expect(w.startsOf("srv").map((s) => s.at)).toEqual([0, 1_020])
    expect(w.report().groups[0]?.entries[0]).toMatchObject({ state: "running", lastExit: "signal SIGKILL" })
  })
})
