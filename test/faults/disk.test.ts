/**
 * The status and state directory becomes full or read-only (a small tmpfs): the daemon logs it,
 * keeps supervising (respawn still works), and writes both files again once it can.
 * Needs root (mount); without it the test says so and is skipped.
 */
import { execFileSync } from "node:child_process"
import { appendFileSync, existsSync, mkdirSync, readFileSync, rmSync } from "node:fs"
import { afterEach, describe, expect, it } from "vitest"
import { decodeStateFile } from "../../src/codec/stateFile.ts"
import type { Lab } from "../runtime/daemonHarness.ts"
import { askJson, entryOf, makeLab, runningPid } from "../runtime/daemonHarness.ts"
import { until } from "../runtime/helpers.ts"
import { logged } from "./faultHarness.ts"

let lab: Lab | undefined
let mounted: string | undefined
afterEach(async () => {
  if (mounted !== undefined) {
    try {
      execFileSync("umount", ["-l", mounted], { stdio: "ignore" })
    } catch {
      // already unmounted
    }
  }
  mounted = undefined
  await lab?.cleanup()
  lab = undefined
})

/** Mount a 64 KiB tmpfs at `dir`, or say why not. */
const mountSmallTmpfs = (dir: string): string | undefined => {
  mkdirSync(dir, { recursive: true })
  try {
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", dir], { stdio: "pipe" })
    mounted = dir
    return undefined
  } catch (e) {
    return `cannot mount a tmpfs here (${(e as Error).message.split("\n")[0] ?? ""}): needs root`
  }
}

/** Appends until the file system refuses: ENOSPC. */
const fill = (file: string): void => {
  const chunk = Buffer.alloc(4096, 120)
  for (let i = 0; i < 10_000; i++) {
    try {
      appendFileSync(file, chunk)
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOSPC") return
      throw e
    }
  }
  throw new Error("the tmpfs never filled up")
}

const stateSnapshot = (path: string) => {
  if (!existsSync(path)) return undefined
  const decoded = decodeStateFile(readFileSync(path, "utf8"))
  return decoded._tag === "Decoded" ? decoded.snapshot : undefined
}

describe("status and state directory full or read-only", () => {
  it("logs the failures, keeps respawning, and writes again once space is freed or the mount is writable", async (ctx) => {
    const l = (lab = makeLab())
    const dir = l.path("state")
    const why = mountSmallTmpfs(dir)
    if (why !== undefined) {
      console.log(`skipped: ${why}`)
      ctx.skip()
      return
    }
    // The services' logs go elsewhere: an open log file in the mount would keep it from being remounted read-only.
    l.writeTab(`:::respawn-limit:100/10s\ng:srv:1:respawn:sleep 300\nh:x:1,2:respawn:sleep 300\n:::option:*:log=${l.path("logs")}/\n`)
    const initstat = `${dir}/initstat`
    const statePath = `${dir}/isinitd.state`
    const d = await l.start({ args: ["-c", l.path("isinittab"), "-s", l.path("run/init.s"), "--initstat", initstat] })
    expect(await askJson(d.socket, { op: "tell", group: "g", level: "1" })).toMatchObject({ ok: true })
    let pid = await runningPid(d.socket, "srv")
    await until("the state file records srv", () => stateSnapshot(statePath)?.entries.find((e) => e.tag === "srv")?.proc?.pid === pid)

    // Full: every write fails, supervision goes on.
    fill(`${dir}/filler`)
    for (let i = 0; i < 2; i++) {
      process.kill(pid, "SIGKILL")
      pid = await runningPid(d.socket, "srv", pid)
    }
    // A group change: the status file must be written too.
    expect(await askJson(d.socket, { op: "tell", group: "h", level: "1" })).toMatchObject({ ok: true })
    await logged(d, /cannot write state file .*isinitd\.state.*ENOSPC/)
    await logged(d, /cannot write status file .*initstat.*ENOSPC/)
    await logged(d, /cannot append to the spawn journal .*ENOSPC/)
    expect((await askJson(d.socket, { op: "ping" }))["ok"]).toBe(true)

    // Space again: both files catch up with the latest state (retried, or at the next change).
    rmSync(`${dir}/filler`)
    await logged(d, /state file .*isinitd\.state written again/)
    await logged(d, /status file .*initstat written again/)
    await until("the state file records the latest srv", () => stateSnapshot(statePath)?.entries.find((e) => e.tag === "srv")?.proc?.pid === pid)
    await until("the status file shows h", () => /^h\s+run\s+1\s*$/m.test(readFileSync(initstat, "utf8")))
    expect(readFileSync(initstat, "utf8")).toMatch(/^g\s+run\s+1\s*$/m)

    // Read-only: the same, with EROFS.
    execFileSync("mount", ["-o", "remount,ro", dir])
    process.kill(pid, "SIGKILL")
    pid = await runningPid(d.socket, "srv", pid)
    expect(await askJson(d.socket, { op: "tell", group: "h", level: "2" })).toMatchObject({ ok: true })
    await logged(d, /cannot write state file .*EROFS/)
    await logged(d, /cannot write status file .*EROFS/)
    execFileSync("mount", ["-o", "remount,rw", dir])
    await until("the state file records srv after the remount", () => stateSnapshot(statePath)?.entries.find((e) => e.tag === "srv")?.proc?.pid === pid, 60_000)
    await until("the status file shows h at level 2", () => /^h\s+run\s+2\s*$/m.test(readFileSync(initstat, "utf8")), 60_000)
    expect((await entryOf(d.socket, "srv"))?.restarts).toBe(3)
    const failures = (d.log().match(/cannot write (state|status) file/g) ?? []).length
    console.log(`disk faults: 2 outages (ENOSPC, EROFS), ${failures} failure lines logged (one per file per outage), 3 respawns during them`)
    expect(failures).toBe(4)
  }, 120_000)
})
