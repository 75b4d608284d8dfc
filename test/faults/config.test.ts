/**
 * The isinittab disappears or cannot be read between tells (renamed away, deleted, replaced by a
 * directory; chmod 000 does not stop root): the tell and SIGHUP are rejected with the reason and
 * nothing that runs is touched. A daemon that crashes meanwhile cannot start (no config), leaves the
 * processes alone, and its successor adopts them once the file is back.
 */
import { mkdirSync, renameSync, rmSync, rmdirSync, writeFileSync } from "node:fs"
import { afterEach, describe, expect, it } from "vitest"
import type { Daemon, Lab } from "../runtime/daemonHarness.ts"
import { askJson, entryOf, fireAndForget, makeLab, runningPid, statusOf } from "../runtime/daemonHarness.ts"
import { sleep, until } from "../runtime/helpers.ts"
import { crash, groupsOfTag, logged } from "./faultHarness.ts"

let lab: Lab | undefined
afterEach(async () => {
  await lab?.cleanup()
  lab = undefined
})

const tab = "g:srv:1,2:respawn:sleep 300\ng:two:2:respawn:sleep 300\n"

const unchanged = async (d: Daemon, pid: number): Promise<void> => {
  const g = (await statusOf(d.socket)).groups.find((x) => x.group === "g")
  expect(g).toMatchObject({ state: "run", level: "1" })
  expect((await entryOf(d.socket, "srv"))?.pid).toBe(pid)
  expect((await entryOf(d.socket, "two"))?.state).toBe("idle")
}

describe("the isinittab disappears between tells", () => {
  it("rejects tells and SIGHUP while it is renamed away, deleted or a directory; nothing stops", async () => {
    const l = (lab = makeLab())
    const path = l.writeTab(tab)
    const d = await l.start()
    expect(await askJson(d.socket, { op: "tell", group: "g", level: "1", wait: true })).toMatchObject({ ok: true, outcome: "run" })
    const pid = await runningPid(d.socket, "srv")
    const faults: ReadonlyArray<readonly [string, () => void, () => void, RegExp]> = [
      ["renamed away", () => renameSync(path, `${path}.moved`), () => renameSync(`${path}.moved`, path), /ENOENT/],
      ["deleted", () => rmSync(path), () => writeFileSync(path, tab), /ENOENT/],
      ["a directory", () => (rmSync(path), mkdirSync(path)), () => (rmdirSync(path), writeFileSync(path, tab)), /EISDIR/],
    ]
    for (const [what, breakIt, repair, code] of faults) {
      breakIt()
      const answer = await askJson(d.socket, { op: "tell", group: "g", level: "2" })
      expect(answer["ok"], what).toBe(false)
      expect(String(answer["error"]), what).toMatch(code)
      expect(String(answer["error"]), what).toMatch(/nothing was changed/)
      await fireAndForget(d.socket, "g 2\n") // the original client: no answer, same refusal
      process.kill(d.child.pid ?? 0, "SIGHUP")
      await logged(d, new RegExp(`reload: cannot read the isinittab .*${code.source}`))
      await sleep(300)
      await unchanged(d, pid)
      repair()
    }
    // Back: the next tell works.
    expect(await askJson(d.socket, { op: "tell", group: "g", level: "2", wait: true })).toMatchObject({ ok: true, outcome: "run" })
    expect((await entryOf(d.socket, "srv"))?.pid).toBe(pid)
    await runningPid(d.socket, "two")
  }, 60_000)

  it("a successor cannot start without it and touches nothing; once it is back, the successor adopts", async () => {
    const l = (lab = makeLab())
    const path = l.writeTab(tab)
    const first = await l.start()
    expect(await askJson(first.socket, { op: "tell", group: "g", level: "1", wait: true })).toMatchObject({ ok: true, outcome: "run" })
    const pid = await runningPid(first.socket, "srv")
    renameSync(path, `${path}.moved`)
    await crash(first)
    const refused = await l.start({ waitReady: false })
    expect(await refused.exited()).toBe(1)
    expect(refused.log()).toMatch(/cannot read the isinittab .*ENOENT/)
    expect(groupsOfTag(first, "srv")).toEqual([pid])
    renameSync(`${path}.moved`, path)
    const second = await l.start()
    await logged(second, /adopted pid=\d+ from the previous daemon/)
    await until("g back at run", async () => (await statusOf(second.socket)).groups.find((x) => x.group === "g")?.state === "run")
    await unchanged(second, pid)
  }, 60_000)
})
