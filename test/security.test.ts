/**
 * Security, shown on the real daemon:
 * - the socket is 0600 and its directory 0700 (nobody else can connect or replace it);
 * - run as root, isinitd refuses an isinittab that someone else could write (group/other
 *   writable, not owned by root, or in such a directory), like sshd's StrictModes: at startup
 *   (exit 1, clear message) and at every re-read (the tell is rejected, nothing stops);
 * - group and level strings never reach a shell, through the JSON protocol or the original one.
 */
import { chmodSync, chownSync, existsSync, statSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { afterEach, describe, expect, it } from "vitest"
import { insecureConfigReason } from "../src/runtime/strictModes.ts"
import type { Lab } from "./runtime/daemonHarness.ts"
import { ask, askJson, entryOf, fireAndForget, makeLab, runningPid, statusOf } from "./runtime/daemonHarness.ts"
import { sleep, until } from "./runtime/helpers.ts"

let lab: Lab | undefined
afterEach(async () => {
  await lab?.cleanup()
  lab = undefined
})

const isRoot = process.getuid?.() === 0

describe("socket permissions", () => {
  it("the socket is 0600, its directory 0700 and not writable by others; --socket-mode widens only the socket", async () => {
    const l = (lab = makeLab())
    l.writeTab("g:srv:1:respawn:sleep 300\n")
    const d = await l.start()
    expect(statSync(d.socket).mode & 0o777).toBe(0o600)
    const dirMode = statSync(l.path("run")).mode & 0o777
    expect(dirMode).toBe(0o700)
    expect(dirMode & 0o022).toBe(0)
    await askJson(d.socket, { op: "stopall" })
    await d.exited()
    const wide = await l.start({ args: ["-c", l.path("isinittab"), "-s", l.path("run/init.s"), "--socket-mode", "0660"] })
    expect(statSync(wide.socket).mode & 0o777).toBe(0o660)
    expect(statSync(l.path("run")).mode & 0o022).toBe(0)
  })
})

describe.skipIf(!isRoot)("StrictModes for the isinittab (as root)", () => {
  it("refuses to start with a group- or world-writable isinittab, one not owned by root, or one in a writable directory", async () => {
    const l = (lab = makeLab())
    const tab = l.writeTab("g:srv:1:respawn:sleep 300\n")
    const cases: ReadonlyArray<readonly [string, () => void, RegExp]> = [
      ["group-writable", () => chmodSync(tab, 0o664), /writable by group \(mode 0664\)/],
      ["world-writable", () => chmodSync(tab, 0o646), /writable by others \(mode 0646\)/],
      ["both", () => chmodSync(tab, 0o666), /writable by group and others \(mode 0666\)/],
      ["owned by nobody", () => (chmodSync(tab, 0o644), chownSync(tab, 65534, 65534)), /owned by uid 65534, not root/],
      ["in a world-writable directory", () => (chownSync(tab, 0, 0), chmodSync(l.dir, 0o777)), /its directory .* is writable by group or others \(mode 0777\)/],
    ]
    for (const [what, setUp, message] of cases) {
      setUp()
      const d = await l.start({ waitReady: false })
      expect(await d.exited(), what).toBe(1)
      expect(d.log(), what).toMatch(/isinitd: refusing the isinittab/)
      expect(d.log(), what).toMatch(message)
      expect(d.log(), what).toMatch(/fix it with: chown root .* && chmod go-w/)
      expect(existsSync(l.path("run/init.s")), what).toBe(false)
    }
    // A sticky world-writable directory (like /tmp) is fine, as is 0644 owned by root.
    chmodSync(l.dir, 0o1777)
    chmodSync(tab, 0o644)
    const ok = await l.start()
    expect(statSync(ok.socket).isSocket()).toBe(true)
  }, 60_000)

  it("re-checks at every tell and SIGHUP: a file made writable is refused, nothing stops, fixed it works again", async () => {
    const l = (lab = makeLab())
    const tab = l.writeTab("g:srv:1,2:respawn:sleep 300\ng:two:2:respawn:sleep 300\n")
    const d = await l.start()
    expect(await askJson(d.socket, { op: "tell", group: "g", level: "1" })).toMatchObject({ ok: true })
    const pid = await runningPid(d.socket, "srv")
    chmodSync(tab, 0o666)
    const answer = await askJson(d.socket, { op: "tell", group: "g", level: "2" })
    expect(answer["ok"]).toBe(false)
    expect(String(answer["error"])).toMatch(/refusing the isinittab .* writable by group and others/)
    process.kill(d.child.pid ?? 0, "SIGHUP")
    await until("the reload refused", () => /reload: refusing the isinittab/.test(d.log()))
    await sleep(300)
    expect((await entryOf(d.socket, "srv"))?.pid).toBe(pid)
    expect((await entryOf(d.socket, "two"))?.state).toBe("idle")
    chmodSync(tab, 0o644)
    expect(await askJson(d.socket, { op: "tell", group: "g", level: "2" })).toMatchObject({ ok: true })
    await runningPid(d.socket, "two")
  }, 60_000)

  it("is not applied when not root (the checks are about root running the commands)", async () => {
    const dir = (lab = makeLab()).dir
    const file = join(dir, "tab")
    writeFileSync(file, "")
    chmodSync(file, 0o666)
    expect(await insecureConfigReason(file, 0)).toMatch(/writable/)
    expect(await insecureConfigReason(file, 1000)).toBeUndefined()
  })
})

describe("group and level strings never reach a shell", () => {
  it("rejects or harmlessly carries shell syntax through both protocols; no file is ever created", async () => {
    const l = (lab = makeLab())
    const marker = l.path("pwned")
    l.writeTab(`g:srv:1:respawn:sleep 300\n`)
    const d = await l.start()
    const payloads = [`$(touch ${marker})`, `\`touch ${marker}\``, `;touch ${marker}`, `|touch ${marker}`, `&& touch ${marker}`, `'$(touch ${marker})'`, `\n touch ${marker}`]
    for (const p of payloads) {
      // As a group (unknown: rejected) and as the level of a known group (a level no entry lists).
      const asGroup = await askJson(d.socket, { op: "tell", group: p, level: "1" })
      expect(asGroup["ok"]).toBe(false)
      await askJson(d.socket, { op: "tell", group: "g", level: p })
      await askJson(d.socket, { op: "plan", group: "g", level: p })
      await fireAndForget(d.socket, `${p} 1\n`)
      await fireAndForget(d.socket, `g ${p}\n`)
      await ask(d.socket, `status ${p}\n`).catch(() => "")
    }
    await sleep(1_000)
    expect(existsSync(marker)).toBe(false)
    expect((await askJson(d.socket, { op: "ping" }))["ok"]).toBe(true)
    // A weird level is only a name no entry lists: g left level 1, so srv was stopped; nothing ran.
    const g = (await statusOf(d.socket)).groups.find((x) => x.group === "g")
    expect(g?.level).not.toBe("1")
    await until("srv stopped", async () => (await entryOf(d.socket, "srv"))?.state === "idle")
    expect(d.log()).toMatch(/rejected/)
  }, 60_000)
})
