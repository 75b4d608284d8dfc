/**
 * isinitd on real processes: every rule of the core shown once for real, through the socket
 * (raw original line protocol and JSON requests), the status file, signals and /proc.
 * Assertions are about outcomes, with generous bounded waits; never about how fast.
 */
import { existsSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs"
import { afterEach, describe, expect, it } from "vitest"
import { groupAlive, procStat, sleep, until } from "../runtime/helpers.ts"
import type { Daemon, Lab } from "../runtime/daemonHarness.ts"
import { ask, askJson, entryOf, fireAndForget, lines, makeLab, markedPids, runningPid, statusOf } from "../runtime/daemonHarness.ts"

let lab: Lab
afterEach(async () => {
  await lab.cleanup()
})

const fresh = (): Lab => {
  lab = makeLab()
  return lab
}

/** The daemon's stderr arrives through a pipe, maybe after the socket answer: wait for the line. */
const logged = (d: Daemon, pattern: RegExp): Promise<true> => until(`a log line matching ${pattern}`, () => pattern.test(d.log()))

const statusFileRow = (initstat: string, group: string): string | undefined => {
  const text = existsSync(initstat) ? readFileSync(initstat, "utf8") : ""
  return text.split("\n").find((l) => l.split(/\s+/)[0] === group)
}

describe("isinitd", () => {
  it("answers the original line protocol, respawns after kill -9, does not restart once", async () => {
    const l = fresh()
    l.writeTab(`web:srv:2:respawn:sleep 300\nweb:one:2:once:sh -c "echo ran >> ${l.path("once.out")}; exec sleep 300"\n`)
    const d = await l.start()
    expect(statSync(d.socket).mode & 0o777).toBe(0o600)
    expect(statSync(l.path("run")).mode & 0o777).toBe(0o700)
    await fireAndForget(d.socket, "web 2\n")
    const first = await runningPid(d.socket, "srv")
    const once = await runningPid(d.socket, "one")
    expect(procStat(first)?.pgrp).toBe(first)
    process.kill(first, "SIGKILL")
    const second = await runningPid(d.socket, "srv", first)
    expect(second).not.toBe(first)
    // Kill the once entry only after it has done its work: a loaded machine may report its pid
    // before its shell has run `echo`.
    await until("once ran", () => lines(l.path("once.out")).includes("ran"))
    process.kill(-once, "SIGKILL")
    await until("once reported done", async () => (await entryOf(d.socket, "one"))?.state !== "running")
    await sleep(1_000)
    const oneAfter = await entryOf(d.socket, "one")
    expect(oneAfter?.state).not.toBe("running")
    expect(lines(l.path("once.out"))).toEqual(["ran"])
    expect(statusFileRow(d.initstat, "web")).toMatch(/^web\s+run\s+2\s*$/)
    await logged(d, / web srv started pid=\d+/)
    await logged(d, / web srv exited pid=\d+ signal=SIGKILL/)
  })

  it("runs wait and test entries as barriers in file order, answers --wait after the transition", async () => {
    const l = fresh()
    const order = l.path("order")
    l.writeTab(
      [
        `g:a:1:wait:sh -c "sleep 0.5; echo a >> ${order}"`,
        `g:b:1:once:sh -c "echo b >> ${order}"`,
        `g:c:1:test:sh -c "sleep 0.3; echo c >> ${order}"`,
        `g:d:1:once:sh -c "echo d >> ${order}"`,
        `g:e:1:respawn:sleep 300`,
        "",
      ].join("\n"),
    )
    const d = await l.start()
    const answer = await askJson(d.socket, { op: "tell", group: "g", level: "1", wait: true, timeoutMs: 30_000 })
    expect(answer).toMatchObject({ ok: true, op: "tell", group: "g", level: "1", seq: 1, outcome: "run" })
    expect(lines(order)).toContain("a")
    expect(lines(order)).toContain("c")
    await until("d ran", () => lines(order).includes("d"))
    const got = lines(order)
    expect(got.indexOf("a")).toBeLessThan(got.indexOf("b"))
    expect(got.indexOf("a")).toBeLessThan(got.indexOf("c"))
    expect(got.indexOf("c")).toBeLessThan(got.indexOf("d"))
    await runningPid(d.socket, "e")
  })

  it("a failing test makes the group fail, in the status file and in the --wait answer", async () => {
    const l = fresh()
    l.writeTab(`g:check:1:test:sh -c "exit 3"\ng:after:1:respawn:sleep 300\n`)
    const d = await l.start()
    const answer = await askJson(d.socket, { op: "tell", group: "g", level: "1", wait: true })
    expect(answer).toMatchObject({ ok: true, outcome: "fail" })
    expect(String(answer["message"])).toContain("check")
    await until("fail in the status file", () => /^g\s+fail\s+1\s*$/.test(statusFileRow(d.initstat, "g") ?? ""))
    // The rest of the transition still proceeds.
    await runningPid(d.socket, "after")
  })

  it("a level switch keeps shared entries and stops the rest; off and removed entries are stopped", async () => {
    const l = fresh()
    const tab = (extra: string) =>
      `g:shared:12:respawn:sleep 301\ng:only1:1:respawn:sleep 302\ng:only2:2:respawn:sleep 303\nh:gone:1:respawn:sleep 304\nh:offed:1:respawn:sleep 305\n${extra}`
    l.writeTab(tab(""))
    const d = await l.start()
    expect(await ask(d.socket, "g 1\n")).toBe("ok\n")
    expect(await ask(d.socket, "h 1\n")).toBe("ok\n")
    const shared = await runningPid(d.socket, "shared")
    const only1 = await runningPid(d.socket, "only1")
    const gone = await runningPid(d.socket, "gone")
    const offed = await runningPid(d.socket, "offed")
    expect(await ask(d.socket, "g 2\n")).toBe("ok\n")
    await runningPid(d.socket, "only2")
    await until("only1 stopped", () => !groupAlive(only1))
    expect((await entryOf(d.socket, "shared"))?.pid).toBe(shared)
    expect(groupAlive(shared)).toBe(true)
    // Remove one entry of h, set another off; the next tell (of another group) stops both.
    l.writeTab(`g:shared:12:respawn:sleep 301\ng:only1:1:respawn:sleep 302\ng:only2:2:respawn:sleep 303\nh:offed:1:off:sleep 305\n`)
    expect(await ask(d.socket, "g 2\n")).toBe("ok\n")
    await until("removed and off entries stopped", () => !groupAlive(gone) && !groupAlive(offed))
    expect(groupAlive(shared)).toBe(true)
  })

  it("jails an entry that respawns too fast and starts it again when the jail ends", async () => {
    const l = fresh()
    l.writeTab(`:::respawn-limit:3/3s\n:::jail:2s\ng:crash:1:respawn:false\n`)
    const d = await l.start()
    expect(await ask(d.socket, "g 1\n")).toBe("ok\n")
    const jailed = await until("crash jailed", async () => {
      const e = await entryOf(d.socket, "crash")
      return e?.state === "jailed" ? e : undefined
    })
    expect(jailed.jailedUntil).not.toBeNull()
    await logged(d, / g crash jailed/)
    const restartsInJail = jailed.restarts
    await until("released and restarted", async () => ((await entryOf(d.socket, "crash"))?.restarts ?? 0) > restartsInJail)
    await logged(d, / g crash released/)
  })

  it("SIGKILLs a SIGTERM-ignoring group after the grace while other stops do not wait for it", async () => {
    const l = fresh()
    l.writeTab(`:::kill-grace:3s\ng:stubborn:1:respawn:trap '' TERM; touch ${l.path("trapped")}; while :; do sleep 0.1; done\ng:meek:1:respawn:sleep 300\ng:idle:2:respawn:sleep 301\n`)
    const d = await l.start()
    expect(await ask(d.socket, "g 1\n")).toBe("ok\n")
    const stubborn = await runningPid(d.socket, "stubborn")
    const meek = await runningPid(d.socket, "meek")
    // A SIGTERM that comes before the shell has run `trap` would still kill it.
    await until("the trap is set", () => existsSync(l.path("trapped")))
    expect(await ask(d.socket, "g 2\n")).toBe("ok\n")
    await until("meek gone", () => !groupAlive(meek))
    await until("stubborn gone", () => !groupAlive(stubborn))
    await until("the daemon logged stubborn's exit", () => / g stubborn exited /.test(d.log()))
    // The log is the daemon's own timeline (the test process may be starved on a busy machine):
    // meek exited on SIGTERM before the grace ended; stubborn needed the SIGKILL.
    const log = d.log().split("\n")
    const meekExit = log.findIndex((line) => / g meek exited .*signal=SIGTERM/.test(line))
    const stubbornKilled = log.findIndex((line) => / g stubborn killed/.test(line))
    const stubbornExit = log.findIndex((line) => / g stubborn exited .*signal=SIGKILL/.test(line))
    expect(meekExit).toBeGreaterThanOrEqual(0)
    expect(stubbornKilled).toBeGreaterThan(meekExit)
    expect(stubbornExit).toBeGreaterThan(stubbornKilled)
    await until("group g run at level 2", async () => (await statusOf(d.socket)).groups.find((g) => g.group === "g")?.state === "run")
  })

  it("stopall (original client, no newline) stops every process group, grandchildren included, and exits 0", async () => {
    const l = fresh()
    l.writeTab(`g:tree:1:respawn:sh -c "sleep 300 & sleep 300"\ng:plain:1:respawn:sleep 300\nh:other:x:respawn:sleep 300\n`)
    const d = await l.start()
    await fireAndForget(d.socket, "g 1\n")
    await fireAndForget(d.socket, "h x\n")
    const pgids = [await runningPid(d.socket, "tree"), await runningPid(d.socket, "plain"), await runningPid(d.socket, "other")]
    await until("the tree has its grandchildren", () => markedPids(d.marker).length >= 5)
    await fireAndForget(d.socket, "stopall")
    expect(await d.exited()).toBe(0)
    for (const pgid of pgids) expect(groupAlive(pgid)).toBe(false)
    expect(markedPids(d.marker)).toEqual([])
    expect(existsSync(d.socket)).toBe(false)
    expect(statusFileRow(d.initstat, "g")).toMatch(/^g\s+stopped\s+1\s*$/)
  })

  it("SIGTERM stops everything and exits 0, leaving no process behind", async () => {
    const l = fresh()
    l.writeTab(`g:tree:1:respawn:sh -c "sleep 300 & sleep 300"\ng:w:1:wait:sleep 300\n`)
    const d = await l.start()
    await fireAndForget(d.socket, "g 1\n")
    await runningPid(d.socket, "tree")
    await runningPid(d.socket, "w")
    d.child.kill("SIGTERM")
    expect(await d.exited()).toBe(0)
    expect(markedPids(d.marker)).toEqual([])
    expect(existsSync(d.socket)).toBe(false)
    await logged(d, /SIGTERM/)
  })

  it("SIGHUP re-reads the isinittab and re-applies the current levels", async () => {
    const l = fresh()
    l.writeTab(`g:keep:1:respawn:sleep 300\ng:change:1:respawn:sleep 301\n`)
    const d = await l.start()
    await fireAndForget(d.socket, "g 1\n")
    const keep = await runningPid(d.socket, "keep")
    const change = await runningPid(d.socket, "change")
    l.writeTab(`g:keep:1:respawn:sleep 300\ng:change:1:respawn:sleep 302\ng:added:1:respawn:sleep 303\n`)
    d.child.kill("SIGHUP")
    await runningPid(d.socket, "added")
    const changed = await runningPid(d.socket, "change", change)
    expect(readFileSync(`/proc/${changed}/cmdline`, "latin1")).toContain("302")
    expect((await entryOf(d.socket, "keep"))?.pid).toBe(keep)
  })

  it("rejects tells for unknown groups, bad configs and a missing config; nothing stops", async () => {
    const l = fresh()
    l.writeTab(`g:srv:1:respawn:sleep 300\n`)
    const d = await l.start()
    await fireAndForget(d.socket, "g 1\n")
    const srv = await runningPid(d.socket, "srv")
    expect(await ask(d.socket, "nosuch 1\n")).toMatch(/^error: unknown group "nosuch"/)
    l.writeTab(`g:srv:1:respawn:sleep 300\ng:bad:1:sometimes:true\n`)
    expect(await askJson(d.socket, { op: "tell", group: "g", level: "1" })).toMatchObject({ ok: false })
    renameSync(l.path("isinittab"), l.path("moved"))
    const missing = await askJson(d.socket, { op: "tell", group: "g", level: "2" })
    expect(missing["ok"]).toBe(false)
    expect(String(missing["error"])).toMatch(/cannot read the isinittab .*ENOENT/)
    expect((await entryOf(d.socket, "srv"))?.pid).toBe(srv)
    expect(groupAlive(srv)).toBe(true)
    await logged(d, /rejected/)
  })

  it("survives commands that cannot be spawned and a status file it cannot write", async () => {
    const l = fresh()
    l.writeTab(`:::respawn-limit:2/10s\n:::jail:60s\ng:ghost:1:respawn:/nonexistent/program --flag\ng:srv:1:respawn:sleep 300\n`)
    writeFileSync(l.path("blocker"), "")
    const d = await l.start({ args: ["-c", l.path("isinittab"), "-s", l.path("run/init.s"), "--initstat", l.path("blocker/initstat")] })
    await fireAndForget(d.socket, "g 1\n")
    const ghost = await until("ghost jailed", async () => {
      const e = await entryOf(d.socket, "ghost")
      return e?.state === "jailed" ? e : undefined
    })
    expect(ghost).toMatchObject({ lastExit: "spawn failed: ENOENT" })
    await runningPid(d.socket, "srv")
    await logged(d, / g ghost exited spawn failed: ENOENT/)
    await logged(d, /cannot write status file/)
    // No log directory beside that status file either: the default log falls back to isinitd's output (issue 11).
    await logged(d, /log \S*blocker\/log\/srv\.log: .*; this run writes to isinitd's own output instead/)
    expect(await askJson(d.socket, { op: "ping" })).toMatchObject({ ok: true })
  })

  it("answers ping, status, plan and reload", async () => {
    const l = fresh()
    l.writeTab(`g:srv:1:respawn:sleep 300\ng:two:2:respawn:sleep 301\n`)
    const d = await l.start()
    expect(await askJson(d.socket, { op: "ping" })).toMatchObject({ ok: true, op: "ping", pid: d.child.pid })
    await fireAndForget(d.socket, "g 1\n")
    await runningPid(d.socket, "srv")
    const planned = await askJson(d.socket, { op: "plan", group: "g", level: "2" })
    expect(planned).toMatchObject({ ok: true, op: "plan", accepted: true })
    const effects = planned["effects"] as ReadonlyArray<{ readonly _tag: string; readonly tag?: string }>
    expect(effects.some((e) => e._tag === "Spawn" && e.tag === "two")).toBe(true)
    expect(effects.some((e) => e._tag === "Kill" && e.tag === "srv")).toBe(true)
    // A plan changes nothing.
    await sleep(300)
    expect((await entryOf(d.socket, "two"))?.state).not.toBe("running")
    expect(await askJson(d.socket, { op: "reload" })).toMatchObject({ ok: true, op: "reload" })
  })

  it("refuses a second daemon on a live socket and replaces a stale one", async () => {
    const l = fresh()
    l.writeTab(`g:srv:1:respawn:sleep 300\n`)
    const first = await l.start()
    const second = await l.start({ waitReady: false })
    expect(await second.exited()).toBe(1)
    await logged(second, /already answers/)
    expect(await askJson(first.socket, { op: "ping" })).toMatchObject({ ok: true, pid: first.child.pid })
    // A daemon killed with SIGKILL leaves its socket file behind: the next one replaces it.
    first.child.kill("SIGKILL")
    await first.exited()
    expect(existsSync(first.socket)).toBe(true)
    const third = await l.start()
    expect(await askJson(third.socket, { op: "ping" })).toMatchObject({ ok: true, pid: third.child.pid })
  })

  it("prints help and version, refuses bad usage and an unreadable config", async () => {
    const l = fresh()
    const help = await l.start({ args: ["--help"], waitReady: false })
    expect(await help.exited()).toBe(0)
    const bad = await l.start({ args: ["--bogus"], waitReady: false })
    expect(await bad.exited()).toBe(2)
    const noConfig = await l.start({ args: ["-c", l.path("absent"), "-s", l.path("s")], waitReady: false })
    expect(await noConfig.exited()).toBe(1)
    await logged(noConfig, /cannot read the isinittab/)
    const noDir = await l.start({ args: ["-c", l.path("absent"), "--chdir", l.path("nowhere")], waitReady: false })
    expect(await noDir.exited()).toBe(1)
    await logged(noDir, /--chdir .*nowhere: ENOENT/)
  })
})
