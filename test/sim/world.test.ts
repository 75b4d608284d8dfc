import { describe, expect, it } from "vitest"
import type { Effect } from "../../src/core/effects.ts"
import type { Event } from "../../src/core/events.ts"
import { childExit, started, tick } from "../../src/core/events.ts"
import { lookup } from "../../src/core/state.ts"
import { crashesEvery, exitsAfter, failsToSpawn, ignoresSigterm, runsForever, stopsAfter } from "../../src/sim/behaviour.ts"
import { World } from "../../src/sim/world.ts"

const webConfig = `web:db:2:respawn:db-server --port 5432
web:check:2:test:check
web:proxy:23:respawn:proxy
`

const procOf = (w: World, tag: string) => lookup(w.state.entries, tag)?.proc
const phaseOf = (w: World, group: string) => lookup(w.state.groups, group)?.phase
const effectsOf = (w: World, tag: Effect["_tag"]) => w.history.flatMap((s) => s.effects.filter((e) => e._tag === tag).map((e) => ({ at: s.at, e })))
const exitsOf = (w: World, tag: string) =>
  w.history.flatMap((s) => (s.event._tag === "ChildExit" && s.event.tag === tag ? [{ at: s.at, outcome: s.event.outcome }] : []))

describe("World: spawning and feedback", () => {
  it("interprets a tell's spawns, feeds back Started, and lets a wait/test barrier finish after 100 ms by default", () => {
    const w = new World({ config: webConfig })
    w.tell("web", "2")
    const db = w.liveRuns("db")[0]
    expect(db?.pid).toBe(1000)
    const proc = procOf(w, "db")
    expect(proc?._tag === "Running" ? proc.pid : undefined).toBe(1000)
    expect(w.liveRuns("check")).toHaveLength(1)
    expect(w.liveRuns("proxy")).toHaveLength(0) // behind the test barrier
    expect(phaseOf(w, "web")).toBe("start")
    w.advance(99)
    expect(w.liveRuns("proxy")).toHaveLength(0)
    w.advance(1)
    expect(exitsOf(w, "check")).toEqual([{ at: 100, outcome: { _tag: "Exited", code: 0 } }])
    expect(w.liveRuns("proxy")).toHaveLength(1)
    expect(phaseOf(w, "web")).toBe("run")
    expect(w.history.some((s) => s.event._tag === "Started" && s.event.tag === "proxy" && s.at === 100)).toBe(true)
    expect(w.violations).toEqual([])
  })

  it("looks behaviours up by tag, then by whole command, then by the command's first word", () => {
    const w = new World({
      config: "g:a:1:test:job-a --flag\ng:b:1:test:job-b --flag\ng:c:1:test:job-c\n",
      behaviours: [
        ["a", exitsAfter(10, 3)],
        ["job-a --flag", exitsAfter(20, 4)],
        ["job-b --flag", exitsAfter(30, 5)],
        ["job-c", exitsAfter(40, 6)],
      ],
    })
    w.tell("g", "1")
    w.runUntilIdle(1000)
    expect(exitsOf(w, "a")).toEqual([{ at: 10, outcome: { _tag: "Exited", code: 3 } }])
    expect(exitsOf(w, "b")).toEqual([{ at: 40, outcome: { _tag: "Exited", code: 5 } }])
    expect(exitsOf(w, "c")).toEqual([{ at: 80, outcome: { _tag: "Exited", code: 6 } }])
    expect(phaseOf(w, "g")).toBe("fail")
  })

  it("reports a failed spawn as SpawnFailed, with no Started and no pid", () => {
    const w = new World({ config: "g:once:1:once:nothere\n", behaviours: [["once", failsToSpawn("ENOENT")]] })
    w.tell("g", "1")
    expect(w.history.some((s) => s.event._tag === "Started")).toBe(false)
    expect(exitsOf(w, "once")).toEqual([{ at: 0, outcome: { _tag: "SpawnFailed", reason: "ENOENT" } }])
    expect(w.processes.size).toBe(0)
    expect(w.violations).toEqual([])
  })
})

describe("World: signals", () => {
  it("ends an obedient process the configured delay after SIGTERM", () => {
    const w = new World({ config: webConfig, sigtermDelayMs: 250 })
    w.tell("web", "2")
    w.advance(1000)
    w.tell("web", "3") // db does not list 3
    expect(effectsOf(w, "Kill").map((k) => k.e)).toEqual([{ _tag: "Kill", tag: "db", run: 1, signal: "SIGTERM" }])
    w.advance(249)
    expect(w.liveRuns("db")).toHaveLength(1)
    w.advance(1)
    expect(w.liveRuns("db")).toHaveLength(0)
    expect(exitsOf(w, "db")).toEqual([{ at: 1250, outcome: { _tag: "Signaled", signal: "SIGTERM" } }])
    expect(phaseOf(w, "web")).toBe("run")
    expect(w.violations).toEqual([])
  })

  it("uses a behaviour's own stop time over the world's", () => {
    const w = new World({ config: webConfig, behaviours: [["db", stopsAfter(5_000)]] })
    w.tell("web", "2")
    w.tell("web", "3")
    w.advance(4_999)
    expect(w.liveRuns("db")).toHaveLength(1)
    expect(phaseOf(w, "web")).toBe("start") // outgoing processes hold the transition
    w.advance(1)
    expect(w.liveRuns("db")).toHaveLength(0)
    expect(phaseOf(w, "web")).toBe("run")
  })

  it("SIGKILLs a process that ignores SIGTERM exactly at the end of the grace", () => {
    const w = new World({ config: webConfig, behaviours: [["db", ignoresSigterm()]] })
    w.tell("web", "2")
    w.advance(500)
    w.tell("web", "3")
    expect(w.deadline).toBe(30_500)
    w.advance(29_999)
    expect(w.liveRuns("db")).toHaveLength(1)
    w.advance(1)
    expect(w.liveRuns("db")).toHaveLength(0)
    expect(effectsOf(w, "Kill").map((k) => [k.at, k.e._tag === "Kill" ? k.e.signal : ""])).toEqual([
      [500, "SIGTERM"],
      [30_500, "SIGKILL"],
    ])
    expect(exitsOf(w, "db")).toEqual([{ at: 30_500, outcome: { _tag: "Signaled", signal: "SIGKILL" } }])
    expect(w.timeline.some((e) => e.kind === "ignored" && e.tag === "db")).toBe(true)
    expect(w.violations).toEqual([])
  })

  it("on a tie, delivers the process's own exit before the deadline's tick, so no SIGKILL follows it", () => {
    const w = new World({ config: webConfig, behaviours: [["db", ignoresSigterm(exitsAfter(40_000, 0))]] })
    w.tell("web", "2")
    w.advance(10_000)
    w.tell("web", "3") // grace ends at 40 000, when db exits on its own
    w.advance(40_000)
    expect(exitsOf(w, "db")).toEqual([{ at: 40_000, outcome: { _tag: "Exited", code: 0 } }])
    expect(effectsOf(w, "Kill").filter((k) => k.e._tag === "Kill" && k.e.signal === "SIGKILL")).toEqual([])
    expect(w.violations).toEqual([])
  })
})

describe("World: crashes and the respawn jail", () => {
  it("crash() ends the live run from outside; the respawn entry is restarted at the same instant", () => {
    const w = new World({ config: webConfig })
    w.tell("web", "2")
    w.advance(5_000)
    w.crash("db", 1)
    expect(exitsOf(w, "db")).toEqual([{ at: 5_000, outcome: { _tag: "Exited", code: 1 } }])
    const runs = w.liveRuns("db")
    expect(runs.map((p) => [p.run, p.startedAt])).toEqual([[4, 5_000]])
    w.crash("nosuch")
    expect(w.timeline.at(-1)?.detail).toContain("no live run")
  })

  it("crashesEvery drives the jail: five starts, jailed at the sixth, restarted by the tick at jail end", () => {
    const w = new World({ config: webConfig, behaviours: [["db", crashesEvery(1_000)]] })
    w.tell("web", "2")
    w.advance(5_000)
    expect(w.startsOf("db").map((s) => s.at)).toEqual([0, 1_000, 2_000, 3_000, 4_000])
    const jail = lookup(w.state.entries, "db")?.jail
    expect(jail).toEqual({ _tag: "Jailed", until: 65_000 })
    expect(w.deadline).toBe(65_000)
    expect(w.timeline.some((e) => e.kind === "jailed" && e.at === 5_000 && e.detail.startsWith("jailed until 65.000s"))).toBe(true)
    w.advance(59_999)
    expect(w.startsOf("db")).toHaveLength(5)
    w.advance(1)
    expect(w.startsOf("db").map((s) => s.at).slice(5)).toEqual([65_000])
    expect(w.history.some((s) => s.at === 65_000 && s.event._tag === "Tick")).toBe(true)
    expect(w.violations).toEqual([])
  })

  it("counts failed spawns as starts: a respawn entry that cannot spawn is jailed at once", () => {
    const w = new World({ config: "g:r:1:respawn:nothere\n", behaviours: [["nothere", failsToSpawn("ENOENT")]] })
    w.tell("g", "1")
    expect(w.startsOf("r").map((s) => s.at)).toEqual([0, 0, 0, 0, 0])
    expect(lookup(w.state.entries, "r")?.jail).toEqual({ _tag: "Jailed", until: 60_000 })
    expect(w.violations).toEqual([])
  })
})

describe("World: config, stopall, idleness, determinism", () => {
  it("editConfig takes effect at the next tell: a changed command is stopped, then started anew", () => {
    const w = new World({ config: webConfig })
    w.tell("web", "2")
    w.advance(1_000)
    w.editConfig(webConfig.replace("db-server --port 5432", "db-server --port 6543"))
    w.advance(1_000)
    expect(w.liveRuns("db")[0]?.command).toBe("db-server --port 5432")
    w.tell("web", "2")
    w.advance(10)
    expect(w.liveRuns("db").map((p) => [p.command, p.startedAt])).toEqual([["db-server --port 6543", 2_010]])
    expect(w.violations).toEqual([])
  })

  it("stopAll halts with every process gone and every group stopped", () => {
    const w = new World({ config: webConfig, behaviours: [["proxy", ignoresSigterm()]] })
    w.tell("web", "2")
    w.advance(1_000)
    w.stopAll()
    expect(w.state.lifecycle).toBe("stopping")
    expect(phaseOf(w, "web")).toBe("stopping")
    expect(w.runUntilIdle(60_000)).toBe(true)
    expect(w.now).toBe(31_000)
    expect(w.state.lifecycle).toBe("halted")
    expect(w.processes.size).toBe(0)
    expect(phaseOf(w, "web")).toBe("stopped")
    expect(w.violations).toEqual([])
  })

  it("runUntilIdle reports false when its limit comes before idleness, and moves time to the limit", () => {
    const w = new World({ config: webConfig, behaviours: [["db", crashesEvery(1_000)]] })
    w.tell("web", "2")
    expect(w.runUntilIdle(2_500)).toBe(false)
    expect(w.now).toBe(2_500)
    const idle = new World({ config: webConfig, behaviours: [["db", runsForever()]] })
    idle.tell("web", "2")
    expect(idle.runUntilIdle(10_000)).toBe(true)
    expect(idle.now).toBe(100) // the check's exit was the last thing pending
  })

  it("takes raw events: unknown runs, duplicate exits and past ticks change nothing and break no invariant", () => {
    const w = new World({ config: webConfig })
    w.tell("web", "2")
    w.advance(1_000)
    const before = w.state
    const raw: Event[] = [childExit("db", 999, { _tag: "Exited", code: 0 }, 1_000), started("zzz", 1, 1, 1_000), tick(5)]
    for (const e of raw) w.inject(e)
    expect(w.state.entries).toBe(before.entries)
    expect(w.violations).toEqual([])
  })

  it("is deterministic: the same calls give the same timeline, events and effects", () => {
    const play = (): World => {
      const w = new World({ config: webConfig, behaviours: [["db", crashesEvery(700)], ["proxy", ignoresSigterm()]] })
      w.tell("web", "2")
      w.advance(12_345)
      w.crash("proxy", "SIGSEGV")
      w.tell("web", "3")
      w.advance(70_000)
      w.stopAll()
      w.runUntilIdle(100_000)
      return w
    }
    const a = play()
    const b = play()
    expect(a.timeline).toEqual(b.timeline)
    expect(a.history).toEqual(b.history)
    expect(a.history.length).toBeGreaterThan(15)
  })
})
