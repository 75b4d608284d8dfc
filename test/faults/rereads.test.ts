/**
 * What the daemon reads when the isinittab is not what the operator meant: a byte-order mark an
 * editor put in front of it, a file truncated to nothing or cut in the middle by a non-atomic
 * rewrite. Real daemon, real processes: nothing that runs is stopped by a broken re-read.
 */
import { writeFileSync } from "node:fs"
import { afterEach, describe, expect, it } from "vitest"
import type { Daemon, Lab } from "../runtime/daemonHarness.ts"
import { ask, askJson, makeLab, runningPid, statusOf } from "../runtime/daemonHarness.ts"
import { sleep, until } from "../runtime/helpers.ts"
import { main } from "../../src/cli/isinit.ts"
import { crash, groupsOfTag, logged } from "./faultHarness.ts"

let lab: Lab | undefined
afterEach(async () => {
  await lab?.cleanup()
  lab = undefined
})

describe("a UTF-8 byte-order mark", () => {
  it("does not become part of the first group's name: the group can be told, and the log names the mark", async () => {
    const l = (lab = makeLab())
    writeFileSync(l.path("isinittab"), Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from("web:w:1:respawn:sleep 300\n")]))
    const d = await l.start()
    expect(await askJson(d.socket, { op: "tell", group: "web", level: "1", wait: true })).toMatchObject({ ok: true, outcome: "run" })
    await logged(d, /isinittab:1: warning: a UTF-8 byte-order mark/)
  }, 60_000)
})

const fourServices = ["g:a:1:respawn:sleep 301", "g:b:1:respawn:sleep 302", "h:c:1:respawn:sleep 303", "h:d:1:respawn:sleep 304"]

/** Starts a daemon on `lines` and brings g and h to level 1; the pids of a, b, c and d. */
const running = async (l: Lab, lines: readonly string[] = fourServices): Promise<{ readonly d: Daemon; readonly pids: readonly number[] }> => {
  l.writeTab(lines.map((line) => `${line}\n`).join(""))
  const d = await l.start()
  for (const group of ["g", "h"]) expect(await askJson(d.socket, { op: "tell", group, level: "1", wait: true })).toMatchObject({ ok: true, outcome: "run" })
  const pids = await Promise.all(["a", "b", "c", "d"].map((tag) => runningPid(d.socket, tag)))
  return { d, pids }
}

/** Every service still runs with the pid it had, and every group is still at run 1. */
const untouched = async (d: Daemon, pids: readonly number[]): Promise<void> => {
  await sleep(300) // a stop, had one been sent, shows well within this
  expect(await Promise.all(["a", "b", "c", "d"].map((tag) => runningPid(d.socket, tag)))).toEqual(pids)
  for (const g of (await statusOf(d.socket)).groups) expect([g.group, g.state, g.level]).toEqual([g.group, "run", "1"])
}

describe("an isinittab truncated to nothing", () => {
  it("is refused by SIGHUP, a tell, a reload and the original protocol, with the reason; nothing stops", async () => {
    const l = (lab = makeLab())
    const { d, pids } = await running(l)
    writeFileSync(d.tab, "")
    process.kill(d.child.pid ?? 0, "SIGHUP")
    await logged(d, /rejected reload: the isinittab has 1 error\(s\), first: no entries: .*truncated/)
    const told = await askJson(d.socket, { op: "tell", group: "g", level: "1" })
    expect(told).toMatchObject({ ok: false })
    expect(String(told["error"])).toMatch(/no entries: .*refused so that nothing stops.*isinit stopall/)
    expect(await askJson(d.socket, { op: "reload" })).toMatchObject({ ok: false, error: expect.stringMatching(/no entries/) })
    expect(await ask(d.socket, "h 1\n")).toMatch(/^error: .*no entries/)
    await untouched(d, pids)
  }, 60_000)

  it("a successor that finds it after a crash adopts every process and stops none", async () => {
    const l = (lab = makeLab())
    const { d, pids } = await running(l)
    await crash(d)
    writeFileSync(d.tab, "# the config tool was killed here\n")
    const second = await l.start()
    await logged(second, /no entries/)
    await logged(second, /adopted processes keep running/)
    expect(await Promise.all(["a", "b", "c", "d"].map((tag) => runningPid(second.socket, tag)))).toEqual(pids)
    await sleep(300)
    for (const tag of ["a", "b", "c", "d"]) expect(groupsOfTag(second, tag)).toHaveLength(1)
  }, 60_000)
})

/** `isinit ARGS` in-process against the lab's daemon, output captured. */
const isinit = async (d: Daemon, ...args: string[]): Promise<{ readonly code: number; readonly err: string }> => {
  let err = ""
  const code = await main(["-c", d.tab, "-s", d.socket, ...args], { out: () => undefined, err: (t) => void (err += t), env: {} })
  return { code, err }
}

describe("an isinittab cut in the middle", () => {
  it("a SIGHUP, tell or reload that would stop most of what runs is refused with the reason and the override; --force applies it", async () => {
    const l = (lab = makeLab())
    const { d, pids } = await running(l)
    writeFileSync(d.tab, `${fourServices[0]}\n`) // the rewrite got this far
    const reason = /would stop 3 of the 4 running entries \(b, c, d\): their lines are gone, more than the 50% .*isinit reload --force/
    process.kill(d.child.pid ?? 0, "SIGHUP")
    await logged(d, new RegExp(`rejected reload: .*${reason.source}`))
    const told = await askJson(d.socket, { op: "tell", group: "g", level: "1" })
    expect(told).toMatchObject({ ok: false })
    expect(String(told["error"])).toMatch(reason)
    expect(await ask(d.socket, "g 1\n")).toMatch(/^error: .*would stop 3 of the 4 running entries/)
    const refused = await isinit(d, "reload")
    expect(refused.code).toBe(1)
    expect(refused.err).toMatch(reason)
    expect((await isinit(d, "g", "1")).err).toMatch(reason)
    await untouched(d, pids)

    // The operator meant it: confirmed, the removed entries stop and the one left keeps running.
    expect(await isinit(d, "reload", "--force")).toEqual({ code: 0, err: "" })
    await until("b, c and d gone", () => ["b", "c", "d"].every((tag) => groupsOfTag(d, tag).length === 0))
    expect(await runningPid(d.socket, "a")).toBe(pids[0])
  }, 60_000)

  it("a tell --force applies it too, and :::removal-guard:off turns the guard off", async () => {
    const l = (lab = makeLab())
    const { d, pids } = await running(l)
    writeFileSync(d.tab, `${fourServices[0]}\n${fourServices[2]}\n`) // b and d gone: 2 of 4, not more than half
    expect(await isinit(d, "g", "1")).toEqual({ code: 0, err: "" })
    await until("b and d gone", () => ["b", "d"].every((tag) => groupsOfTag(d, tag).length === 0))
    writeFileSync(d.tab, `${fourServices[0]}\n`) // c gone: 1 of the 2 left, not more than half either
    expect(await isinit(d, "g", "1")).toEqual({ code: 0, err: "" })
    await until("c gone", () => groupsOfTag(d, "c").length === 0)
    writeFileSync(d.tab, "g:other:1:respawn:sleep 305\n") // a gone: 1 of 1
    expect((await isinit(d, "g", "1")).code).toBe(1)
    expect(await runningPid(d.socket, "a")).toBe(pids[0])
    expect(await isinit(d, "g", "1", "--force")).toEqual({ code: 0, err: "" })
    await runningPid(d.socket, "other")
    writeFileSync(d.tab, ":::removal-guard:off\ng:last:1:respawn:sleep 306\n")
    expect(await isinit(d, "g", "1")).toEqual({ code: 0, err: "" })
    await runningPid(d.socket, "last")
    await until("a and other gone", () => ["a", "other"].every((tag) => groupsOfTag(d, tag).length === 0))
  }, 60_000)
})
