/**
 * kill -9 of isinitd itself: its successor re-adopts what still runs, restarts what died while
 * nobody watched, never runs a finished once/wait/test entry again, and never starts a duplicate.
 * Every command appends its tag to a runs file when it starts, so "exactly once" is counted, and
 * /proc is checked for duplicates. Real processes, temporary directories, bounded waits.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs"
import { afterEach, describe, expect, it } from "vitest"
import { decodeStateFile } from "../../src/codec/stateFile.ts"
import type { Daemon, Lab } from "../runtime/daemonHarness.ts"
import { askJson, entryOf, fireAndForget, lines, makeLab, statusOf } from "../runtime/daemonHarness.ts"
import { procStat, sleep, until } from "../runtime/helpers.ts"
import { countTags, crash, groupsOfTag, logged, pidsOfTag, restart } from "./faultHarness.ts"

let lab: Lab | undefined
afterEach(async () => {
  await lab?.cleanup()
  lab = undefined
})

const fresh = (): Lab => (lab = makeLab())

const groupState = async (d: Daemon, group: string): Promise<string | undefined> => (await statusOf(d.socket)).groups.find((g) => g.group === group)?.state

/** The state file as the daemon last wrote it (undefined while it is missing or being replaced). */
const stateOnDisk = (l: Lab) => {
  const path = l.path("run/isinitd.state")
  if (!existsSync(path)) return undefined
  const decoded = decodeStateFile(readFileSync(path, "utf8"))
  return decoded._tag === "Decoded" ? decoded.snapshot : undefined
}

describe("kill -9 of isinitd", () => {
  it("mid-transition: the successor adopts live runs, restarts vanished respawns, never reruns finished entries", async () => {
    const l = fresh()
    const runs = l.path("runs")
    const mark = (tag: string): string => `echo ${tag} >> ${runs}`
    l.writeTab(
      [
        `g:srv:1:respawn:${mark("srv")}; exec sleep 300`,
        `g:dies:1:respawn:${mark("dies")}; exec sleep 300`,
        `g:one:1:once:${mark("one")}; exec sleep 300`,
        `g:quick:1:once:${mark("quick")}`,
        `g:w1:1:wait:${mark("w1")}; sleep 0.2`,
        `g:t1:1:test:${mark("t1")}`,
        `g:w2:1:wait:${mark("w2")}; sleep 3`,
        `g:after:1:respawn:${mark("after")}; exec sleep 300`,
        "",
      ].join("\n"),
    )
    const first = await l.start()
    await fireAndForget(first.socket, "g 1\n")
    // In flight: the w2 barrier sleeps, "after" has not started; the rest is done or running.
    await until("w2 running", async () => (await entryOf(first.socket, "w2"))?.state === "running")
    await until("the state file to record w2 and the finished entries", () => {
      const snap = stateOnDisk(l)
      const entry = (tag: string) => snap?.entries.find((e) => e.tag === tag)
      return typeof entry("w2")?.proc?.pid === "number" && entry("quick")?.completion._tag === "Ran" && entry("t1")?.completion._tag === "Ran"
    })
    const srvPid = (await entryOf(first.socket, "srv"))?.pid
    const onePid = (await entryOf(first.socket, "one"))?.pid
    const diesPid = (await entryOf(first.socket, "dies"))?.pid
    expect(lines(runs)).not.toContain("after")

    await crash(first)
    // While no daemon watches: one respawn entry dies.
    if (typeof diesPid !== "number") throw new Error("dies has no pid")
    process.kill(-diesPid, "SIGKILL")
    await until("dies gone", () => pidsOfTag(first, "dies").length === 0)

    const second = await restart(l)
    await logged(second, /adopted pid \d+ from the previous daemon/)
    await until("g reaches its level", async () => (await groupState(second, "g")) === "run", 30_000)
    await until("after running", async () => (await entryOf(second.socket, "after"))?.state === "running")
    await until("dies running again", async () => (await entryOf(second.socket, "dies"))?.state === "running")

    const counts = countTags(runs)
    expect(Object.fromEntries(counts)).toEqual({ srv: 1, dies: 2, one: 1, quick: 1, w1: 1, t1: 1, w2: 1, after: 1 })
    // The same processes, adopted, not duplicates.
    expect((await entryOf(second.socket, "srv"))?.pid).toBe(srvPid)
    expect((await entryOf(second.socket, "one"))?.pid).toBe(onePid)
    for (const tag of ["srv", "dies", "one", "after"]) expect(pidsOfTag(second, tag), tag).toHaveLength(1)
    expect(await groupState(second, "g")).toBe("run")
    await logged(second, /dies .*ended while no daemon was watching/)

    // The adopted process is supervised: killed from outside, it is respawned by the successor.
    if (typeof srvPid !== "number") throw new Error("srv has no pid")
    process.kill(srvPid, "SIGKILL")
    await until("srv respawned", async () => {
      const e = await entryOf(second.socket, "srv")
      return e?.state === "running" && e.pid !== srvPid
    })
    await until("the new srv's marker", () => countTags(runs).get("srv") === 2)
    expect(pidsOfTag(second, "srv")).toHaveLength(1)

    // A clean stopall stops adopted processes too, and removes the state file: the next start is fresh.
    await askJson(second.socket, { op: "stopall" })
    expect(await second.exited()).toBe(0)
    expect(existsSync(l.path("run/isinitd.state"))).toBe(false)
    for (const tag of ["srv", "dies", "one", "after"]) expect(pidsOfTag(second, tag), tag).toHaveLength(0)
    const third = await restart(l)
    expect(third.log()).not.toMatch(/adopted|restore/)
    expect((await statusOf(third.socket)).groups.find((g) => g.group === "g")?.state).toBe("stopped")
  }, 120_000)

  it("a successor restores a stopall in progress and finishes it", async () => {
    const l = fresh()
    l.writeTab(`:::kill-grace:60s\ng:stubborn:1:respawn:trap "" TERM; touch ${l.path("trapped")}; exec sleep 300\n`)
    const first = await l.start()
    await fireAndForget(first.socket, "g 1\n")
    const pid = (await until("stubborn running", async () => (await entryOf(first.socket, "stubborn"))?.pid ?? undefined)) as number
    // A SIGTERM that comes before the shell has run `trap` would still kill it.
    await until("the trap is set", () => existsSync(l.path("trapped")))
    await askJson(first.socket, { op: "stopall" })
    await until("the state file to record the stop", () => stateOnDisk(l)?.lifecycle === "stopping")
    await crash(first)
    expect(procStat(pid)?.state).not.toBe("Z")
    const second = await restart(l)
    // Still stopping: the successor refuses tells and exits once the process is gone.
    const answer = await askJson(second.socket, { op: "tell", group: "g", level: "1" })
    expect(answer["ok"]).toBe(false)
    process.kill(-pid, "SIGKILL")
    expect(await second.exited()).toBe(0)
    expect(existsSync(l.path("run/isinitd.state"))).toBe(false)
  }, 60_000)

  it("sets a corrupt or foreign state file aside and starts fresh", async () => {
    const l = fresh()
    l.writeTab("g:srv:1:respawn:sleep 300\n")
    const first = await l.start()
    await askJson(first.socket, { op: "stopall" })
    await first.exited()
    const { writeFileSync } = await import("node:fs")
    for (const [content, reason] of [
      ["{ not json", /corrupt or foreign/],
      [`{"format":"isinitd-state","version":1,"bootId":"another-boot","clockAnchorMs":0,"daemon":{"pid":1,"identity":null}}\n{"version":1,"nextRun":1,"lifecycle":"running","entries":[],"groups":[]}\n`, /written before a reboot/],
    ] as const) {
      writeFileSync(l.path("run/isinitd.state"), content)
      const d = await restart(l)
      await logged(d, reason)
      await logged(d, /set aside as .*isinitd\.state\.bad-/)
      expect(existsSync(l.path("run/isinitd.state"))).toBe(false)
      await fireAndForget(d.socket, "g 1\n")
      await until("srv running", async () => (await entryOf(d.socket, "srv"))?.state === "running")
      await askJson(d.socket, { op: "stopall" })
      expect(await d.exited()).toBe(0)
    }
    expect(readdirSync(l.path("run")).filter((n) => n.startsWith("isinitd.state.bad-"))).toHaveLength(2)
  }, 60_000)
})

describe("20 crash-restart cycles under a crash-looping entry", () => {
  it("never duplicates a process, and the jail holds across restarts", async () => {
    const l = fresh()
    const runs = l.path("runs")
    l.writeTab(
      [
        ":::respawn-limit:4/10m",
        ":::jail:10m",
        `g:loop:1:respawn:echo loop >> ${runs}; sleep 0.4; exit 1`,
        `g:srv:1:respawn:echo srv >> ${runs}; exec sleep 300`,
        "",
      ].join("\n"),
    )
    let d = await l.start()
    // Acknowledged: the answer comes once the state file holds the tell, so a crash cannot lose it.
    expect(await askJson(d.socket, { op: "tell", group: "g", level: "1" })).toMatchObject({ ok: true })
    let jailedUntil: number | null = null
    const cycles = 20
    for (let cycle = 0; cycle < cycles; cycle++) {
      // Crash at varied moments: at once, or after the loop had time to crash again.
      await sleep((cycle * 137) % 700)
      // Never two live processes of one entry, before or after the crash.
      expect(groupsOfTag(d, "loop").length, `cycle ${cycle}: loop processes`).toBeLessThanOrEqual(1)
      expect(groupsOfTag(d, "srv").length, `cycle ${cycle}: srv processes`).toBeLessThanOrEqual(1)
      await crash(d)
      d = await restart(l)
      const loop = await until(`cycle ${cycle}: loop known`, async () => await entryOf(d.socket, "loop"))
      if (jailedUntil !== null) {
        // Once jailed, it stays jailed until the same moment: no restart resets or skips the jail.
        expect(loop.state, `cycle ${cycle}`).toBe("jailed")
        expect(loop.jailedUntil, `cycle ${cycle}`).toBe(jailedUntil)
      } else if (loop.state === "jailed") {
        jailedUntil = loop.jailedUntil
      }
    }
    await until("loop jailed", async () => (await entryOf(d.socket, "loop"))?.state === "jailed", 30_000).catch(async (e: unknown) => {
      throw new Error(`${String(e)}\nloop: ${JSON.stringify(await entryOf(d.socket, "loop"))}\nruns: ${JSON.stringify(Object.fromEntries(countTags(runs)))}\n${d.log()}`)
    })
    await until("srv running", async () => (await entryOf(d.socket, "srv"))?.state === "running")
    const counts = countTags(runs)
    // srv never died: it ran exactly once through all the crashes. loop started only within its limit.
    expect(counts.get("srv")).toBe(1)
    expect(counts.get("loop")).toBe(4)
    expect(pidsOfTag(d, "srv")).toHaveLength(1)
    expect(groupsOfTag(d, "loop")).toHaveLength(0)
    // And the jail still holds a while later.
    await sleep(1_500)
    expect(countTags(runs).get("loop")).toBe(4)
    console.log(`crash-restart: ${cycles} daemon kill -9 cycles survived; loop started ${counts.get("loop")} times (limit 4), srv once`)
  }, 240_000)
})
