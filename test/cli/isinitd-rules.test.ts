/**
 * isinitd on real processes, for the rules operators trip over (issue 8): each test shows one
 * rule through the socket, the log and /proc. Outcomes only, with generous bounded waits.
 */
import { writeFileSync } from "node:fs"
import { describe, expect, it } from "vitest"
import { crash, logged, restart } from "../faults/faultHarness.ts"
import { groupAlive, until } from "../runtime/helpers.ts"
import { ask, askJson, entryOf, labPerTest, lines, runningPid, statusOf } from "../runtime/daemonHarness.ts"

const fresh = labPerTest()

describe("isinitd rules (issue 8)", () => {
  it("rule 15: a group's outgoing process is gone before its incoming entries start", async () => {
    const l = fresh()
    const owner = l.path("port-owner")
    const events = l.path("events")
    // The server holds "the port" (a file) until a second after SIGTERM; the page checks it is free.
    const server = `echo up > ${owner}; trap 'sleep 1; rm -f ${owner}; exit 0' TERM; while :; do sleep 0.1; done`
    const page = `if [ -e ${owner} ]; then echo collision >> ${events}; fi; echo page >> ${events}; exec sleep 300`
    l.writeTab(`web:server:run,:respawn:${server}\nweb:page:maint,:respawn:${page}\n`)
    const d = await l.start()
    expect(await ask(d.socket, "web run\n")).toBe("ok\n")
    await runningPid(d.socket, "server")
    await until("the server holds the port", () => lines(owner).length > 0)
    expect(await ask(d.socket, "web maint\n")).toBe("ok\n")
    await runningPid(d.socket, "page")
    expect(lines(events)).toEqual(["page"])
    await logged(d, / web page started pid=\d+/)
    const log = d.log()
    expect(log.indexOf(" web server exited")).toBeGreaterThan(-1)
    expect(log.indexOf(" web server exited")).toBeLessThan(log.indexOf(" web page started"))
  })
  it("rule 16: re-telling the level a group is heading to joins its transition: both waiters get run", async () => {
    const l = fresh()
    l.writeTab(`g:slow:1:wait:sleep 2\ng:srv:1:respawn:sleep 300\n`)
    const d = await l.start()
    const first = askJson(d.socket, { op: "tell", group: "g", level: "1", wait: true, timeoutMs: 60_000 })
    await logged(d, / g slow started/)
    const second = await askJson(d.socket, { op: "tell", group: "g", level: "1", wait: true, timeoutMs: 60_000 })
    expect(second).toMatchObject({ ok: true, seq: 1, outcome: "run" })
    expect(await first).toMatchObject({ ok: true, seq: 1, outcome: "run" })
    expect(d.log().match(/ g slow started/g)).toHaveLength(1)
  })

  it("rule 17: a tell of the level a group is at in fail reruns its failed test only, and the group runs", async () => {
    const l = fresh()
    const ready = l.path("ready")
    const ran = l.path("ran")
    l.writeTab(
      `g:check:1:test:sh -c "echo check >> ${ran}; test -e ${ready}"\ng:srv:1:respawn:sleep 300\n` +
        `g:banner:1:once:sh -c "echo banner >> ${ran}"\n`,
    )
    const d = await l.start()
    expect(await askJson(d.socket, { op: "tell", group: "g", level: "1", wait: true })).toMatchObject({ ok: true, outcome: "fail" })
    const srv = await runningPid(d.socket, "srv")
    await until("the banner ran", () => lines(ran).includes("banner"))
    writeFileSync(ready, "")
    expect(await askJson(d.socket, { op: "tell", group: "g", level: "1", wait: true })).toMatchObject({ ok: true, outcome: "run" })
    expect(lines(ran).sort()).toEqual(["banner", "check", "check"])
    expect(await runningPid(d.socket, "srv")).toBe(srv)
  })

  it("rule 14: the leader exits, the group lives on: logged at once, shown, the rest stopped, then restarted", async () => {
    const l = fresh()
    // The shell (the leader) leaves a SIGTERM-ignoring child behind and exits after a second.
    l.writeTab(`:::kill-grace:2s\ng:web:1:respawn:(trap '' TERM; exec sleep 300) & sleep 1; exit 0\n`)
    const d = await l.start()
    expect(await ask(d.socket, "g 1\n")).toBe("ok\n")
    const first = await runningPid(d.socket, "web")
    await logged(d, new RegExp(` g web leader-exited pid=${first} exit=0 `))
    const between = await until("the state in between", async () => {
      const e = await entryOf(d.socket, "web")
      return e?.state === "leader-exited" ? e : undefined
    })
    expect(between).toMatchObject({ pid: first, lastExit: "exit 0" })
    expect(groupAlive(first)).toBe(true)
    const second = await runningPid(d.socket, "web", first)
    expect(groupAlive(first)).toBe(false) // the leftover got SIGKILL after the grace
    expect(second).not.toBe(first)
    await logged(d, / g web killed /)
  })

  it("rule 18: a group removed from the isinittab is stopped while its processes go, then gone from the status", async () => {
    const l = fresh()
    const slow = "trap 'sleep 3; exit 0' TERM; while :; do sleep 0.1; done"
    l.writeTab(`web:a:1:respawn:sleep 300\ndb:b:1:respawn:${slow}\n`)
    const d = await l.start()
    expect(await ask(d.socket, "web 1\n")).toBe("ok\n")
    expect(await ask(d.socket, "db 1\n")).toBe("ok\n")
    const b = await runningPid(d.socket, "b")
    await until("db run in the status file", () => /^db\s+run\s+1\s*$/m.test(lines(d.initstat).join("\n")))
    l.writeTab("web:a:1:respawn:sleep 300\n")
    expect(await ask(d.socket, "web 1\n")).toBe("ok\n")
    const row = (await statusOf(d.socket)).groups.find((g) => g.group === "db")
    expect(row).toMatchObject({ state: "stopped", level: "" })
    await until("db gone from the status", async () => !(await statusOf(d.socket)).groups.some((g) => g.group === "db"))
    expect(groupAlive(b)).toBe(false)
    await until("db gone from the status file", () => !lines(d.initstat).some((line) => line.startsWith("db ")))
  })

  it("log lines say their verb once, and a level is reached after its started lines", async () => {
    const l = fresh()
    l.writeTab(`g:a:1:respawn:sleep 300\ng:b:1:respawn:sleep 301\ng:c:2:respawn:sleep 302\n`)
    const d = await l.start()
    expect(await ask(d.socket, "g 1\n")).toBe("ok\n")
    await logged(d, / g - group level 1 reached: run/)
    const log = d.log()
    expect(log.indexOf(" g a started pid=")).toBeGreaterThan(-1)
    expect(log.indexOf(" g b started pid=")).toBeLessThan(log.indexOf(" level 1 reached"))
    process.kill(await runningPid(d.socket, "a"), "SIGKILL")
    await logged(d, / g a restarting after signal SIGKILL/)
    expect(await ask(d.socket, "g 2\n")).toBe("ok\n")
    await logged(d, / g b stopping pid=\d+ not in the new level/)
    expect(await ask(d.socket, "nosuch 1\n")).toMatch(/^error: /)
    await logged(d, / nosuch - rejected tell nosuch 1: unknown group/)
    for (const line of d.log().split("\n").filter((l) => l !== "")) {
      const [, , , what, ...rest] = line.split(" ")
      expect(rest.find((word) => !word.startsWith("pid=")), line).not.toBe(what)
    }
  })

  it("a once entry that ended normally while adopted is done, not failed; a test's unknown result counts as failed", async () => {
    const l = fresh()
    l.writeTab(`g:job:1:once:sleep 2\ng:check:1:test:sleep 2\ng:srv:1:respawn:sleep 300\n`)
    const d = await l.start()
    expect(await ask(d.socket, "g 1\n")).toBe("ok\n")
    await runningPid(d.socket, "job")
    await runningPid(d.socket, "check")
    await crash(d)
    const second = await restart(l)
    await until("job and check ended", async () => (await entryOf(second.socket, "check"))?.state === "failed")
    expect(await entryOf(second.socket, "job")).toMatchObject({ state: "done", lastExit: "ended while adopted (exit status unknown)" })
  })

  it("the last exit survives any number of daemon restarts", async () => {
    const l = fresh()
    l.writeTab(`g:quick:1:once:sh -c "exit 3"\ng:srv:1:respawn:sleep 300\n`)
    let d = await l.start()
    expect(await ask(d.socket, "g 1\n")).toBe("ok\n")
    await until("quick exited 3", async () => (await entryOf(d.socket, "quick"))?.lastExit === "exit 3")
    for (let i = 0; i < 2; i++) {
      await until("the exit on disk", () => lines(l.path("run/isinitd.state")).join("\n").includes('"lastExit"'))
      await crash(d)
      d = await restart(l)
      expect(await entryOf(d.socket, "quick")).toMatchObject({ state: "failed", lastExit: "exit 3" })
    }
  })
})
