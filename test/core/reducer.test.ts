import { describe, expect, it } from "vitest"
import type { Parsed } from "../../src/core/config.ts"
import { noOptions } from "../../src/core/options.ts"
import { makeConfig } from "../../src/core/config.ts"
import type { Entry, Limits, Mode } from "../../src/core/config.ts"
import { defaultLimits } from "../../src/core/config.ts"
import type { Effect } from "../../src/core/effects.ts"
import type { Event } from "../../src/core/events.ts"
import { childExit, leaderExited, restore, started, stopAll, tell, tick } from "../../src/core/events.ts"
import { snapshot } from "../../src/core/snapshot.ts"
import { checkInvariants } from "../../src/core/invariants.ts"
import { nextDeadline, reduce } from "../../src/core/reducer.ts"
import type { State } from "../../src/core/state.ts"
import { groupOf, entryOf, initialState } from "../../src/core/state.ts"

// Example-based checks of the reducer's main paths; the full specification is in properties/.

const entry = (group: string, tag: string, levels: string, mode: Mode, line: number): Entry => ({
  group, tag, levels: levels.split(","), mode, command: `cmd-${tag}`, line, options: noOptions,
})
const parsedOf = (entries: readonly Entry[], limits: Limits = defaultLimits): Parsed => ({ config: makeConfig(entries, { limits }), problems: [] })

const run = (state: State, events: readonly Event[]): [State, Effect[]] => {
  let current = state
  const all: Effect[] = []
  for (const event of events) {
    const [next, effects] = reduce(current, event)
    // Every state the reducer returns satisfies the core's invariants (a bug throws here).
    checkInvariants(next)
    current = next
    all.push(...effects)
  }
  return [current, all]
}
const actions = (effects: readonly Effect[]) => effects.filter((e) => e._tag !== "Log" && e._tag !== "WriteStatus")

const config = parsedOf([
  entry("web", "setup", "2", "wait", 1),
  entry("web", "db", "2,3", "respawn", 2),
  entry("web", "app", "2", "respawn", 3),
  entry("web", "check", "2", "test", 4),
  entry("mail", "smtp", "1", "respawn", 5),
])

describe("reducer examples", () => {
  it("takes entries in file order and waits at a barrier", () => {
    const [s1, fx1] = run(initialState, [tell("web", "2", config, 0)])
    expect(actions(fx1)).toEqual([{ _tag: "RunSync", tag: "setup", run: 1, group: "web", command: "cmd-setup" }])
    expect(groupOf(s1, "web").phase).toBe("start")
    const [s2, fx2] = run(s1, [childExit("setup", 1, { _tag: "Exited", code: 0 }, 5)])
    expect(actions(fx2).map((e) => e._tag === "Spawn" || e._tag === "RunSync" ? `${e._tag}:${e.tag}` : e._tag)).toEqual([
      "Spawn:db", "Spawn:app", "RunSync:check",
    ])
    const [s3] = run(s2, [childExit("check", 4, { _tag: "Exited", code: 1 }, 6)])
    expect(groupOf(s3, "web").phase).toBe("fail")
  })

  it("keeps a shared respawn entry running and stops the rest on a level switch", () => {
    const [s1] = run(initialState, [tell("web", "2", config, 0), childExit("setup", 1, { _tag: "Exited", code: 0 }, 1), childExit("check", 4, { _tag: "Exited", code: 0 }, 2)])
    expect(groupOf(s1, "web").phase).toBe("run")
    const [s2, fx] = run(s1, [tell("web", "3", config, 10)])
    expect(actions(fx)).toEqual([{ _tag: "Kill", tag: "app", run: 3, signal: "SIGTERM" }])
    expect(groupOf(s2, "web").phase).toBe("start")
    const [s3] = run(s2, [childExit("app", 3, { _tag: "Signaled", signal: "SIGTERM" }, 11)])
    expect(groupOf(s3, "web").phase).toBe("run")
    expect(entryOf(s3, "db").proc._tag).toBe("Running")
  })

  it("jails the 6th start within the window and releases it with a tick", () => {
    const limits = { ...defaultLimits, respawnMax: 5, respawnWindowMs: 10_000, jailMs: 60_000 }
    const cfg = parsedOf([entry("mail", "smtp", "1", "respawn", 1)], limits)
    let [s] = run(initialState, [tell("mail", "1", cfg, 0)])
    for (let i = 1; i <= 5; i++) [s] = run(s, [childExit("smtp", i, { _tag: "Exited", code: 1 }, i * 100)])
    expect(entryOf(s, "smtp").jail).toEqual({ _tag: "Jailed", until: 500 + 60_000 })
    expect(nextDeadline(s)).toBe(60_500)
    const [s2, fx] = run(s, [tick(60_499)])
    expect(actions(fx)).toEqual([])
    const [s3, fx3] = run(s2, [tick(60_500)])
    expect(actions(fx3)).toEqual([{ _tag: "Spawn", tag: "smtp", run: 6, group: "mail", command: "cmd-smtp" }])
    expect(entryOf(s3, "smtp").jail._tag).toBe("Free")
  })

  it("escalates to SIGKILL after the grace and never signals a reaped run", () => {
    const cfg = parsedOf([entry("mail", "smtp", "1", "respawn", 1)])
    const [s1] = run(initialState, [tell("mail", "1", cfg, 0), started("smtp", 1, 4242, 0)])
    const [s2, fx2] = run(s1, [stopAll(100)])
    expect(actions(fx2)).toEqual([{ _tag: "Kill", tag: "smtp", run: 1, signal: "SIGTERM" }])
    expect(nextDeadline(s2)).toBe(100 + defaultLimits.killGraceMs)
    const [s3, fx3] = run(s2, [tick(100 + defaultLimits.killGraceMs)])
    expect(actions(fx3)).toEqual([{ _tag: "Kill", tag: "smtp", run: 1, signal: "SIGKILL" }])
    expect(nextDeadline(s3)).toBeUndefined()
    const [s4, fx4] = run(s3, [childExit("smtp", 1, { _tag: "Signaled", signal: "SIGKILL" }, 30_200), tick(99_999)])
    expect(actions(fx4)).toEqual([])
    expect(s4.lifecycle).toBe("halted")
    expect(groupOf(s4, "mail").phase).toBe("stopped")
  })

  it("rejects a tell for an unknown group and changes nothing", () => {
    const [s1] = run(initialState, [tell("web", "2", config, 0)])
    const [s2, fx] = reduce(s1, tell("nope", "2", config, 5))
    expect(s2).toBe(s1)
    expect(fx).toHaveLength(1)
    expect(fx[0]).toMatchObject({ _tag: "Rejected", event: "Tell", subject: "tell nope 2", group: "nope" })
    expect(fx[0]?._tag === "Rejected" && fx[0].reason).toMatch(/^unknown group "nope"/)
  })

  it("a restarted daemon adopts live runs, does not rerun finished ones, and restarts the vanished", () => {
    const [before] = run(initialState, [
      tell("web", "2", config, 0),
      started("setup", 1, 101, 0, "t1"),
      childExit("setup", 1, { _tag: "Exited", code: 0 }, 1),
      started("db", 2, 102, 1, "t2"),
      started("app", 3, 103, 1, "t3"),
      started("check", 4, 104, 1, "t4"),
    ])
    const saved = JSON.parse(JSON.stringify(snapshot(before))) as ReturnType<typeof snapshot>
    // db survived, app died while no daemon watched, check (a test) is still running.
    const [after, fx] = reduce(initialState, restore(saved, [2, 4], config, 5_000))
    expect(entryOf(after, "db").proc).toMatchObject({ _tag: "Running", run: 2, pid: 102, identity: "t2" })
    expect(entryOf(after, "setup").completion).toEqual({ _tag: "Ran", ok: true })
    expect(actions(fx)).toEqual([{ _tag: "Spawn", tag: "app", run: 5, group: "web", command: "cmd-app" }])
    expect(groupOf(after, "web").phase).toBe("start")
    const [done] = run(after, [childExit("check", 4, { _tag: "Vanished" }, 6_000)])
    expect(groupOf(done, "web").phase).toBe("fail")
  })

  it("rule 12 across groups: an entry changed from respawn to wait is rerun once when a tell elsewhere brings the change", () => {
    const before = parsedOf([entry("a", "a1", "1", "respawn", 1), entry("b", "x", "1", "respawn", 2)])
    const after = parsedOf([entry("a", "a1", "1", "respawn", 1), { ...entry("b", "x", "1", "wait", 2), command: "cmd-x2" }])
    const [s1] = run(initialState, [tell("a", "1", before, 0), tell("b", "1", before, 0)])
    const [s2, fx2] = run(s1, [tell("a", "1", after, 10)])
    expect(actions(fx2)).toEqual([{ _tag: "Kill", tag: "x", run: 2, signal: "SIGTERM" }])
    const [s3, fx3] = run(s2, [childExit("x", 2, { _tag: "Signaled", signal: "SIGTERM" }, 11)])
    expect(actions(fx3)).toEqual([{ _tag: "RunSync", tag: "x", run: 3, group: "b", command: "cmd-x2" }])
    const [s4, fx4] = run(s3, [childExit("x", 3, { _tag: "Exited", code: 0 }, 12)])
    expect(actions(fx4)).toEqual([])
    expect(entryOf(s4, "x").completion).toEqual({ _tag: "Ran", ok: true })
    expect(groupOf(s4, "b").phase).toBe("run")
  })

  it("rule 14 across a restart: leftovers of an exited leader are stopped, then the once entry counts as run", () => {
    const cfg = parsedOf([entry("g", "job", "1", "once", 1)])
    const [before] = run(initialState, [tell("g", "1", cfg, 0), started("job", 1, 101, 0, "t1"), leaderExited("job", 1, { _tag: "Exited", code: 0 }, 5)])
    const saved = JSON.parse(JSON.stringify(snapshot(before))) as ReturnType<typeof snapshot>
    const [after, fx] = reduce(initialState, restore(saved, [1], cfg, 1_000))
    expect(entryOf(after, "job").proc).toMatchObject({ _tag: "Stopping", cause: { _tag: "LeaderExited", outcome: { _tag: "Exited", code: 0 } } })
    expect(actions(fx)).toEqual([{ _tag: "Kill", tag: "job", run: 1, signal: "SIGTERM" }])
    const [done, fx2] = run(after, [childExit("job", 1, { _tag: "Vanished" }, 1_100)])
    expect(actions(fx2)).toEqual([])
    expect(entryOf(done, "job").completion).toEqual({ _tag: "Ran", ok: true })
    expect(groupOf(done, "g").phase).toBe("run")
  })
})
