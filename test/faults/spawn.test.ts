/**
 * Spawning fails: a command that does not exist, and the process limit (RLIMIT_NPROC, what
 * `ulimit -u` sets). The entry is reported failed with the reason, the respawn rules apply (it is
 * jailed, then retried), the daemon survives and its other entries are untouched.
 */
import { execFileSync, spawn } from "node:child_process"
import { chmodSync, chownSync, mkdirSync, readdirSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { afterEach, describe, expect, it } from "vitest"
import type { Lab } from "../runtime/daemonHarness.ts"
import { askJson, entryOf, makeLab, repoRoot, runningPid, statusOf } from "../runtime/daemonHarness.ts"
import { until } from "../runtime/helpers.ts"
import { logged } from "./faultHarness.ts"

let lab: Lab | undefined
const hogPids: number[] = []
afterEach(async () => {
  for (const pid of hogPids.splice(0)) {
    try {
      process.kill(pid, "SIGKILL")
    } catch {
      // gone
    }
  }
  await lab?.cleanup()
  lab = undefined
})

/**
 * The unprivileged uid the daemon runs as: one no account and no other test uses. RLIMIT_NPROC
 * counts every task of the uid machine-wide, so a shared uid such as nobody (65534), which other
 * tests run clients as at the same time, would make the limit below race with them.
 */
const nobody = 64_999

/** Tasks (threads included: RLIMIT_NPROC counts them) of `uid`, system-wide. */
const tasksOf = (uid: number): number => {
  let count = 0
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue
    try {
      if (!new RegExp(`^Uid:\\s+${uid}\\s`, "m").test(readFileSync(`/proc/${name}/status`, "latin1"))) continue
      count += readdirSync(`/proc/${name}/task`).length
    } catch {
      // gone
    }
  }
  return count
}

describe("spawn failures", () => {
  it("a command that does not exist: reported with ENOENT, jailed by the respawn rules, the daemon and the rest survive", async () => {
    const l = (lab = makeLab())
    l.writeTab(":::respawn-limit:3/10m\n:::jail:10m\ng:bad:1:respawn:/nonexistent/program --flag\ng:ok:1:respawn:sleep 300\ng:once:1:once:/nonexistent/once\n")
    const d = await l.start()
    expect(await askJson(d.socket, { op: "tell", group: "g", level: "1", wait: true, timeoutMs: 30_000 })).toMatchObject({ ok: true, outcome: "run" })
    const bad = await until("bad jailed", async () => {
      const e = await entryOf(d.socket, "bad")
      return e?.state === "jailed" ? e : undefined
    })
    expect(bad.lastExit).toBe("spawn failed: ENOENT")
    expect(bad.restarts).toBe(3) // the third restart is the start that would exceed the limit: jailed instead
    expect(await entryOf(d.socket, "once")).toMatchObject({ state: "failed", lastExit: "spawn failed: ENOENT" })
    await runningPid(d.socket, "ok")
    await logged(d, / g bad exited .*spawn_failed|spawn failed: ENOENT/)
    await logged(d, / g bad jailed .*respawning too rapidly/)
    expect((await askJson(d.socket, { op: "ping" }))["ok"]).toBe(true)
  }, 60_000)

  it("the process limit (ulimit -u) reached: EAGAIN, jailed, started once the limit allows", async (ctx) => {
    const l = (lab = makeLab())
    // Root ignores RLIMIT_NPROC, so the daemon runs as nobody; skip where that is impossible.
    if (process.getuid?.() !== 0) {
      console.log("skipped: needs root to run the daemon as nobody with a process limit")
      ctx.skip()
      return
    }
    try {
      execFileSync("setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", "true"])
    } catch {
      console.log("skipped: setpriv cannot switch to nobody here")
      ctx.skip()
      return
    }
    try {
      // A checkout under a private directory (mktemp -d is 0700) is out of nobody's reach.
      execFileSync("setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", "test", "-r", join(repoRoot, "node_modules", "tsx", "package.json")])
    } catch {
      console.log(`skipped: nobody cannot read the checkout at ${repoRoot} (a parent directory is private)`)
      ctx.skip()
      return
    }
    chmodSync(l.dir, 0o755)
    mkdirSync(l.path("run"), { mode: 0o700 })
    chownSync(l.path("run"), nobody, nobody)
    const entries = ["a", "b", "c", "d"].map((tag) => `g:${tag}:1:respawn:sleep 300`)
    l.writeTab([":::respawn-limit:2/2s", ":::jail:3s", ...entries, ""].join("\n"))
    const asNobody = ["setpriv", `--reuid=${nobody}`, `--regid=${nobody}`, "--clear-groups"]
    // Root may not change another process's limits here (no CAP_SYS_RESOURCE), so the limit is set
    // at start, sized from a first run: the daemon's own tasks (threads count), two "hog"
    // processes of nobody, and room for two entries. Killing the hogs later makes room again.
    const probe = await l.start({ prefix: asNobody })
    const daemonTasks = readdirSync(`/proc/${probe.child.pid}/task`).length
    await askJson(probe.socket, { op: "stopall" })
    await probe.exited()
    const hogs = [0, 1].map(() => spawn(asNobody[0] ?? "setpriv", [...asNobody.slice(1), "sleep", "300"], { stdio: "ignore" }))
    hogPids.push(...hogs.flatMap((h) => h.pid ?? []))
    await until("the hogs run as nobody", () => tasksOf(nobody) >= 2)
    const limit = tasksOf(nobody) + daemonTasks + 2
    const d = await l.start({ prefix: ["prlimit", `--nproc=${limit}:${limit}`, ...asNobody] })
    expect(await askJson(d.socket, { op: "tell", group: "g", level: "1" })).toMatchObject({ ok: true })
    // About two start and two are jailed; the exact split moves with the daemon's own thread count
    // (libuv starts threads on demand), so what is asserted is: every entry either runs or is
    // jailed, some are jailed, each with EAGAIN.
    await until("every entry running or jailed, some jailed", async () => {
      const states = (await statusOf(d.socket)).groups.find((x) => x.group === "g")?.entries.map((e) => e.state) ?? []
      return states.length === 4 && states.includes("jailed") && states.every((s) => s === "running" || s === "jailed")
    }, 40_000)
    const failed = (await statusOf(d.socket)).groups[0]?.entries.filter((e) => e.state === "jailed") ?? []
    for (const e of failed) expect(e.lastExit).toBe("spawn failed: EAGAIN")
    expect((await askJson(d.socket, { op: "ping" }))["ok"]).toBe(true)
    // Room again: the jails end and the entries start.
    for (const pid of hogPids) process.kill(pid, "SIGKILL")
    for (const e of failed) await runningPid(d.socket, e.tag)
    await logged(d, /spawn failed: EAGAIN/)
    console.log(`process limit: ${failed.length} spawns failed with EAGAIN under RLIMIT_NPROC=${limit}, jailed, then started`)
  }, 90_000)
})
