import { readFileSync, readdirSync, readlinkSync } from "node:fs"
import { afterEach, describe, expect, it, vi } from "vitest"
import { argvOf } from "../../src/core/command.ts"
import { cmdline, groupAlive, procStat, processTableLab, sleep, until } from "./helpers.ts"

const lab = processTableLab()
afterEach(lab.cleanup)
const harness = lab.make

describe("argvOf: Perl exec's choice between direct exec and /bin/sh -c", () => {
  it("splits plain commands on whitespace", () => {
    expect(argvOf("  sleep   30 ")).toEqual({ _tag: "Direct", file: "sleep", args: ["30"] })
    expect(argvOf("/usr/bin/env -i a.b/c:d,e")).toEqual({ _tag: "Direct", file: "/usr/bin/env", args: ["-i", "a.b/c:d,e"] })
  })
  it.each(["a; b", "a && b", "a | b", "a > f", "a < f", "(a)", "echo $HOME", "echo `x`", "a\\ b", `echo "x"`, "echo 'x'", "ls *", "ls ?", "ls [a]", "a # c", "ls ~", "A=1 b", "a %1", "a\nb", "a {b}"])(
    "hands %j to the shell",
    (command) => {
      expect(argvOf(command)).toEqual({ _tag: "Shell", script: command })
    },
  )
})

describe("process adapter (real processes)", () => {
  it("executes a command without metacharacters directly, in its own session and group, stdin /dev/null", async () => {
    const h = harness()
    h.table.spawn({ tag: "d", run: 1, command: "sleep 30" })
    const pid = await h.started("d")
    expect(cmdline(pid)).toEqual(["sleep", "30"])
    const stat = procStat(pid)
    expect(stat?.pgrp).toBe(pid)
    expect(stat?.session).toBe(pid)
    expect(readlinkSync(`/proc/${pid}/fd/0`)).toBe("/dev/null")
    const started = h.reports.find((r) => r._tag === "Started")
    const startTime = readFileSync(`/proc/${pid}/stat`, "latin1").split(") ")[1]?.split(" ")[19]
    expect(started).toEqual({ _tag: "Started", tag: "d", run: 1, pid, identity: startTime })
  })

  it("runs a command with metacharacters through /bin/sh -c, the program in the same group", async () => {
    const h = harness()
    h.table.spawn({ tag: "s", run: 1, command: "sleep 31; true" })
    const pid = await h.started("s")
    expect(cmdline(pid)).toEqual(["/bin/sh", "-c", "sleep 31; true"])
    const child = await until("the shell's child", () => {
      for (const p of livePgidMembers(pid)) if (p !== pid && cmdline(p)?.[0] === "sleep") return p
      return undefined
    })
    expect(procStat(child)?.pgrp).toBe(pid)
  })

  it("a failover child gets its epoch and the fencer's marker, and is not forked once its hold ran out", async () => {
    let now = 1_000
    const h = harness({ failover: { now: () => now, environment: (group, epoch) => ({ ISINIT_EPOCH: String(epoch), ISINIT_FENCE: `i1:${group}` }) } })
    h.table.spawn({ tag: "held", run: 1, command: "sleep 32", failover: { group: "mail", hold: { epoch: 42, until: 1_500 } } })
    const pid = await h.started("held")
    const environ = readFileSync(`/proc/${pid}/environ`, "latin1").split("\0")
    expect(environ).toEqual(expect.arrayContaining(["ISINIT_EPOCH=42", "ISINIT_FENCE=i1:mail"]))
    now = 1_500
    h.table.spawn({ tag: "late", run: 1, command: "sleep 33", failover: { group: "mail", hold: { epoch: 42, until: 1_500 } } })
    expect(await h.exited("late")).toEqual({ _tag: "ChildExit", tag: "late", run: 1, outcome: { _tag: "SpawnFailed", reason: "failover hold ran out before the fork" } })
    expect(h.reports.some((r) => r._tag === "Started" && r.tag === "late")).toBe(false)
    // An ordinary entry gets neither.
    h.table.spawn({ tag: "plain", run: 1, command: "sleep 34" })
    expect(readFileSync(`/proc/${await h.started("plain")}/environ`, "latin1")).not.toMatch(/ISINIT_EPOCH|ISINIT_FENCE/)
  })

  it("reports exit codes and signals of the leader", async () => {
    const h = harness()
    h.table.spawn({ tag: "three", run: 1, command: "exit 3; true" })
    h.table.spawn({ tag: "false", run: 2, command: "false" })
    h.table.spawn({ tag: "sig", run: 3, command: "sleep 30" })
    await h.started("sig")
    h.table.kill("sig", 3, "SIGUSR1")
    expect(await h.exited("three")).toEqual({ _tag: "ChildExit", tag: "three", run: 1, outcome: { _tag: "Exited", code: 3 } })
    expect(await h.exited("false")).toEqual({ _tag: "ChildExit", tag: "false", run: 2, outcome: { _tag: "Exited", code: 1 } })
    expect(await h.exited("sig")).toEqual({ _tag: "ChildExit", tag: "sig", run: 3, outcome: { _tag: "Signaled", signal: "SIGUSR1" } })
    expect(h.table.liveRuns()).toBe(0)
  })

  it("reports a spawn failure with its reason and no Started", async () => {
    const h = harness()
    h.table.spawn({ tag: "nope", run: 1, command: "/nonexistent/program --flag" })
    expect(await h.exited("nope")).toEqual({ _tag: "ChildExit", tag: "nope", run: 1, outcome: { _tag: "SpawnFailed", reason: "ENOENT" } })
    expect(h.reports.some((r) => r._tag === "Started")).toBe(false)
    expect(h.table.liveRuns()).toBe(0)
  })

  it("a group kill reaches a grandchild", async () => {
    const h = harness()
    h.table.spawn({ tag: "g", run: 1, command: "sleep 300 & sleep 300; true" })
    const pid = await h.started("g")
    await until("two members", () => livePgidMembers(pid).length >= 3)
    h.table.kill("g", 1, "SIGTERM")
    const exit = await h.exited("g")
    expect(exit).toEqual({ _tag: "ChildExit", tag: "g", run: 1, outcome: { _tag: "Signaled", signal: "SIGTERM" } })
    expect(groupAlive(pid)).toBe(false)
  })

  it("a run is not over while a child of its exited shell lives; SIGTERM-ignoring members need SIGKILL", async () => {
    const h = harness()
    h.table.spawn({ tag: "orphan", run: 7, command: "(trap '' TERM; exec sleep 300) & exit 0" })
    const pid = await h.started("orphan")
    await until("the shell exits, the grandchild stays", () => procStat(pid) === undefined && groupAlive(pid))
    await sleep(300)
    expect(h.reports.some((r) => r._tag === "ChildExit")).toBe(false)
    expect(h.reports.filter((r) => r._tag === "LeaderExited")).toEqual([{ _tag: "LeaderExited", tag: "orphan", run: 7, outcome: { _tag: "Exited", code: 0 } }])
    h.table.kill("orphan", 7, "SIGTERM")
    await sleep(500)
    expect(groupAlive(pid)).toBe(true)
    expect(h.reports.some((r) => r._tag === "ChildExit")).toBe(false)
    h.table.kill("orphan", 7, "SIGKILL")
    expect(await h.exited("orphan")).toEqual({ _tag: "ChildExit", tag: "orphan", run: 7, outcome: { _tag: "Exited", code: 0 } })
    expect(groupAlive(pid)).toBe(false)
    expect(h.table.liveRuns()).toBe(0)
  })

  it("rule 14: reports the leader's exit at once while its group lives on, then the run's end with the leader's outcome", async () => {
    const h = harness()
    h.table.spawn({ tag: "sh", run: 4, command: "sleep 300 & exit 4" })
    const pid = await h.started("sh")
    const leader = await until("the leader's exit", () => h.reports.find((r) => r._tag === "LeaderExited"))
    expect(leader).toEqual({ _tag: "LeaderExited", tag: "sh", run: 4, outcome: { _tag: "Exited", code: 4 } })
    expect(groupAlive(pid)).toBe(true)
    expect(h.reports.some((r) => r._tag === "ChildExit")).toBe(false)
    h.table.kill("sh", 4, "SIGTERM")
    expect(await h.exited("sh")).toEqual({ _tag: "ChildExit", tag: "sh", run: 4, outcome: { _tag: "Exited", code: 4 } })
    expect(groupAlive(pid)).toBe(false)
  })

  it("a leader that exits with its group reports only the run's end", async () => {
    const h = harness()
    h.table.spawn({ tag: "plain", run: 5, command: "sleep 0.2; exit 2" })
    expect(await h.exited("plain")).toEqual({ _tag: "ChildExit", tag: "plain", run: 5, outcome: { _tag: "Exited", code: 2 } })
    expect(h.reports.some((r) => r._tag === "LeaderExited")).toBe(false)
  })

  it("a kill right after spawn, before the 'spawn' event, still reaches the group", async () => {
    const h = harness()
    h.table.spawn({ tag: "early", run: 1, command: "sleep 30" })
    h.table.kill("early", 1, "SIGKILL")
    expect(await h.exited("early")).toEqual({ _tag: "ChildExit", tag: "early", run: 1, outcome: { _tag: "Signaled", signal: "SIGKILL" } })
  })

  it("never signals a run that was reported gone", async () => {
    const h = harness()
    h.table.spawn({ tag: "quick", run: 1, command: "true" })
    await h.exited("quick")
    const spy = vi.spyOn(process, "kill").mockImplementation(() => true)
    try {
      h.table.kill("quick", 1, "SIGKILL")
      h.table.kill("never-started", 9, "SIGKILL")
      expect(spy).not.toHaveBeenCalled()
    } finally {
      spy.mockRestore()
    }
  })
})

/** Pids whose process group is `pgid` (zombies excluded). */
const livePgidMembers = (pgid: number): number[] =>
  readdirSync("/proc")
    .filter((name) => /^\d+$/.test(name))
    .map(Number)
    .filter((pid) => {
      const s = procStat(pid)
      return s !== undefined && s.pgrp === pgid && s.state !== "Z"
    })
