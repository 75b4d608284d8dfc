/**
 * isinitd with per-entry options (issue 11) on real processes: the stop signal a child catches,
 * the entry's own grace, a start that cannot be met logged as a spawn failure (respawn rules
 * apply), and a daemon that is not root saying why it cannot switch users.
 */
import { chmodSync, mkdirSync } from "node:fs"
import { describe, expect, it } from "vitest"
import { logged } from "../faults/faultHarness.ts"
import { skipUnlessNobodyCanRun, groupAlive, until } from "../runtime/helpers.ts"
import { ask, entryOf, labPerTest, lines, runningPid } from "../runtime/daemonHarness.ts"

const fresh = labPerTest()
const isRoot = process.getuid?.() === 0

describe("isinitd options (issue 11)", () => {
  it("stop-signal=INT: the child catches SIGINT (not SIGTERM) when its level is left", async () => {
    const l = fresh()
    const caught = l.path("caught")
    const server = `trap 'echo INT >> ${caught}; exit 0' INT; trap 'echo TERM >> ${caught}; exit 0' TERM; while :; do sleep 0.1; done`
    l.writeTab(`g:srv:1:respawn:${server}\n:::option:srv:stop-signal=INT\n`)
    const d = await l.start()
    expect(await ask(d.socket, "g 1\n")).toBe("ok\n")
    const pid = await runningPid(d.socket, "srv")
    expect(await ask(d.socket, "g 2\n")).toBe("ok\n")
    await until("the child caught its stop signal", () => lines(caught).length > 0)
    await until("the run is gone", () => !groupAlive(pid))
    expect(lines(caught)).toEqual(["INT"])
  })

  it("kill-grace=1s: a child that ignores its stop signal gets SIGKILL after its own grace, not the 30 s default", async () => {
    const l = fresh()
    l.writeTab(`g:stubborn:1:respawn:trap '' TERM; while :; do sleep 0.1; done\n:::option:stubborn:kill-grace=1s\n`)
    const d = await l.start()
    expect(await ask(d.socket, "g 1\n")).toBe("ok\n")
    const pid = await runningPid(d.socket, "stubborn")
    const asked = Date.now()
    expect(await ask(d.socket, "g 2\n")).toBe("ok\n")
    await until("the stubborn run is killed", () => !groupAlive(pid), 25_000)
    expect(Date.now() - asked).toBeLessThan(25_000)
    await logged(d, / g stubborn killed .*SIGKILL/)
  })

  it("a missing directory is a logged spawn failure of that entry; respawn rules apply (jailed), the daemon runs on", async () => {
    const l = fresh()
    l.writeTab(`g:lost:1:respawn:sleep 300\n:::option:lost:cwd=/nonexistent/isinit\n:::option:lost:respawn-limit=2/1m\ng:fine:1:respawn:sleep 300\n`)
    const d = await l.start()
    expect(await ask(d.socket, "g 1\n")).toBe("ok\n")
    await logged(d, / g lost exited .*cwd \/nonexistent\/isinit: no such file or directory/)
    await until("lost is jailed", async () => (await entryOf(d.socket, "lost"))?.state === "jailed")
    expect(await runningPid(d.socket, "fine")).toBeGreaterThan(0)
  })

  it("a missing env file and a missing user are logged spawn failures with the reason", async () => {
    const l = fresh()
    const user = isRoot ? `\n:::option:nouser:user=no-such-user-isinit\ng:nouser:1:once:sleep 300` : ""
    l.writeTab(`g:noenv:1:once:sleep 300\n:::option:noenv:env-file=/nonexistent/isinit.env${user}\n`)
    const d = await l.start()
    expect(await ask(d.socket, "g 1\n")).toBe("ok\n")
    await logged(d, / g noenv exited .*env-file: cannot read \/nonexistent\/isinit.env: no such file or directory/)
    if (isRoot) await logged(d, / g nouser exited .*user "no-such-user-isinit" does not exist/)
  })

  it.skipIf(!isRoot)("isinit check run by a user other than root warns that user and group need a root isinitd; as root it does not", async (ctx) => {
    skipUnlessNobodyCanRun(ctx)
    const l = fresh()
    const tab = l.writeTab(`g:a:1:respawn:sleep 1\n:::option:a:user=www-data\n`)
    chmodSync(l.dir, 0o755)
    const asNobody = await l.isinit(["check"], { prefix: ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"] })
    expect(asNobody.code).toBe(0)
    expect(asNobody.out).toMatch(new RegExp(`^${tab}:1: warning: entry "a": option user needs a root isinitd \\(this check runs as uid 65534\\)`, "m"))
    const asRoot = await l.isinit(["check"])
    expect(asRoot).toMatchObject({ code: 0, out: "ok: 1 entry in 1 group\n" })
  })

  it.skipIf(!isRoot)("a daemon that is not root fails an entry with user=, saying why; its other entries run", async (ctx) => {
    skipUnlessNobodyCanRun(ctx)
    const l = fresh()
    const tab = l.writeTab(`g:as:1:once:sleep 300\n:::option:as:user=root\ng:plain:1:respawn:sleep 300\n`)
    // nobody reads the isinittab and writes its socket, status and state in a directory of its own.
    const run = l.path("nobody")
    mkdirSync(run, { mode: 0o777 })
    chmodSync(run, 0o777)
    chmodSync(l.dir, 0o755)
    const socket = `${run}/init.s`
    const args = ["-c", tab, "-s", socket, "--initstat", `${run}/initstat`, "--state", `${run}/state`]
    const d = await l.start({ prefix: ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"], args })
    expect(await ask(socket, "g 1\n")).toBe("ok\n")
    await logged(d, / g as exited .*user needs isinitd to run as root \(it runs as uid 65534\)/)
    expect(await runningPid(socket, "plain")).toBeGreaterThan(0)
  })
})
