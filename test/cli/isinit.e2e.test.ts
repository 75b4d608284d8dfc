/**
 * `isinit` as a program against the real `isinitd`, which the first tell starts in the
 * background. Every process started here carries a marker: the CLI in its environment, the
 * daemon (which gets a clean environment) in its command line, its children in ISINIT_INSTANCE
 * (the state file in the test's directory); cleanup kills whatever still has one, even when a
 * test failed.
 */
import { randomUUID } from "node:crypto"
import { existsSync, mkdtempSync, readFileSync, readlinkSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir, userInfo } from "node:os"
import { join } from "node:path"
import { afterEach, beforeEach, describe, expect, it } from "vitest"
import type { CliRun } from "../runtime/daemonHarness.ts"
import { servicePath } from "../../src/cli/autostart.ts"
import { askJson, killMarked, markedPids, runIsinit, runningPid } from "../runtime/daemonHarness.ts"
import { until } from "../runtime/helpers.ts"

let dir: string
let marker: string
let tab: string
let socket: string

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "isinit-e2e-"))
  marker = `ISINIT_CLI_MARK=${randomUUID()}`
  tab = join(dir, "isinittab")
  socket = join(dir, "run", "init.s")
})

afterEach(async () => {
  await killMarked(marker, dir)
  rmSync(dir, { recursive: true, force: true })
})

const isinit = (args: readonly string[], timeoutMs = 60_000, options: { readonly env?: NodeJS.ProcessEnv; readonly cwd?: string } = {}): Promise<CliRun> => {
  const [key, value] = marker.split("=") as [string, string]
  return runIsinit(["-c", tab, "-s", socket, ...args], { env: { ...(options.env ?? process.env), [key]: value }, timeoutMs, ...(options.cwd === undefined ? {} : { cwd: options.cwd }) })
}

const environOf = (pid: number): ReadonlyMap<string, string> =>
  new Map(
    readFileSync(`/proc/${pid}/environ`, "latin1")
      .split("\0")
      .filter((item) => item.includes("="))
      .map((item) => [item.slice(0, item.indexOf("=")), item.slice(item.indexOf("=") + 1)] as const),
  )

interface Report {
  readonly lifecycle: string
  readonly groups: readonly {
    readonly group: string
    readonly state: string
    readonly level: string
    readonly entries: readonly { readonly tag: string; readonly state: string; readonly pid: number | null }[]
  }[]
}

const statusJson = async (): Promise<Report> => {
  const run = await isinit(["status", "--json"])
  expect(run.code).toBe(0)
  return JSON.parse(run.out) as Report
}

describe("isinit against a real isinitd", () => {
  it("an auto-started daemon runs in / with a clean environment, and so do its services", async () => {
    writeFileSync(tab, "g:env:1:respawn:sleep 1000\n")
    const env = { ...process.env, SECRET_FROM_CLIENT: "hunter2", PATH: `/opt/client/bin:${process.env["PATH"] ?? ""}`, LANG: "C.UTF-8", TZ: "Europe/Paris" }
    const told = await isinit(["g", "1"], 60_000, { env, cwd: dir })
    expect(told.code).toBe(0)
    const daemonPid = Number((await askJson(socket, { op: "ping" }))["pid"])
    const child = await runningPid(socket, "env")
    for (const pid of [daemonPid, child]) {
      expect(readlinkSync(`/proc/${pid}/cwd`)).toBe("/")
      const environ = environOf(pid)
      expect(environ.has("SECRET_FROM_CLIENT")).toBe(false)
      expect(environ.get("PATH")).toBe(servicePath)
      expect(environ.get("LANG")).toBe("C.UTF-8")
      expect(environ.get("TZ")).toBe("Europe/Paris")
      expect(environ.get("HOME")).toBe(userInfo().homedir)
      expect(environ.get("USER")).toBe(userInfo().username)
    }
    // The service's own markers, and nothing else of the client's.
    expect(environOf(child).get("ISINIT_TAG")).toBe("env")
    expect([...environOf(child).keys()].sort()).toEqual(["HOME", "ISINIT_INSTANCE", "ISINIT_RUN", "ISINIT_TAG", "LANG", "LOGNAME", "PATH", "TZ", "USER"])
    expect((await isinit(["stopall"])).code).toBe(0)
  })

  it("a tell starts the daemon in the background, then status --json and the table show the group", async () => {
    writeFileSync(tab, ["web:db:2:respawn:sleep 1000", "web:app:23:respawn:sleep 1001", "web:extra:3:respawn:sleep 1002", ""].join("\n"))
    const told = await isinit(["web", "2"])
    expect(told.err).toMatch(new RegExp(`no daemon on ${socket}; started isinitd \\(pid \\d+\\), its log: ${join(dir, "run", "isinitd.log")}`))
    expect(told.code).toBe(0)
    expect(readFileSync(join(dir, "run", "isinitd.log"), "utf8")).toMatch(/ ready isinitd /)

    const report = await until("both entries running", async () => {
      const r = await statusJson()
      return r.groups[0]?.entries.every((e) => e.state === "running" || e.tag === "extra") === true ? r : undefined
    })
    expect(report.lifecycle).toBe("running")
    expect(report.groups).toHaveLength(1)
    expect(report.groups[0]).toMatchObject({ group: "web", state: "run", level: "2" })
    const pids = report.groups[0]?.entries.filter((e) => e.tag !== "extra").map((e) => e.pid) ?? []
    expect(pids.every((pid) => typeof pid === "number" && pid > 0)).toBe(true)

    const table = await isinit(["status"])
    expect(table.code).toBe(0)
    expect(table.out).toMatch(/^GROUP +STATE +LEVEL\nweb +run +2\n/)
    expect(table.out).toMatch(/ {2}db +respawn +running +\d+ +0 +- +-/)

    // A second tell reuses the daemon; plan asks the daemon about its current state.
    const planned = await isinit(["plan", "web", "3"])
    expect(planned.code).toBe(0)
    expect(planned.err).toBe("")
    expect(planned.out).toMatch(/start +web\/extra +sleep 1002/)
    expect(planned.out).toMatch(/stop +db +SIGTERM/)
    expect(planned.out).not.toMatch(/app/)

    const stopped = await isinit(["stopall"])
    expect(stopped.code).toBe(0)
    await until("the daemon to exit and remove its socket", () => !existsSync(socket))
    await until("no process left", () => markedPids(marker, dir).length === 0)
    const down = await isinit(["status"])
    expect(down.code).toBe(0)
    expect(down.err).toContain(`no daemon on ${socket}; the last status it wrote`)
    expect(down.out).toMatch(/web +stopped +2/)
  })

  it("--wait exits 0 when the group runs and 1 when a test fails, times out or is rejected", async () => {
    writeFileSync(
      tab,
      [
        "good:prep:1:wait:sleep 0.2",
        "good:svc:1:respawn:sleep 1000",
        "bad:chk:1:test:/bin/sh -c 'exit 3'",
        "bad:svc2:1:respawn:sleep 1001",
        "slow:long:1:wait:sleep 1000",
        "",
      ].join("\n"),
    )
    const good = await isinit(["good", "1", "--wait"])
    expect(good.err).toMatch(/started isinitd/)
    expect(good).toMatchObject({ code: 0, out: "good: level 1 reached (run)\n" })

    const bad = await isinit(["tell", "bad", "1", "--wait", "--timeout", "60"])
    expect(bad.code).toBe(1)
    expect(bad.err).toMatch(/bad: level 1 ended in fail \(.*chk.*exit 3.*\); see isinit status bad/)
    const badStatus = (await statusJson()).groups.find((g) => g.group === "bad")
    expect(badStatus).toMatchObject({ state: "fail", level: "1" })

    const slow = await isinit(["slow", "1", "--wait", "--timeout", "1"])
    expect(slow.code).toBe(1)
    expect(slow.err).toMatch(/slow: level 1 not reached \(timeout\)/)

    const unknown = await isinit(["nope", "1"])
    expect(unknown.code).toBe(1)
    expect(unknown.err).toMatch(/tell nope 1 rejected: .*nope/)
    // Nothing that was running was touched by the rejected tell.
    const after = await statusJson()
    expect(after.groups.find((g) => g.group === "good")).toMatchObject({ state: "run" })
  })
})
