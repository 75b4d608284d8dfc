/**
 * The runtime's probes (runtime/probes.ts) against real sockets, files and commands: each form
 * passes and fails as documented, and every probe answers once within its timeout, even one whose
 * command hangs (its process group is killed).
 */
import { createServer as createHttpServer } from "node:http"
import type { AddressInfo } from "node:net"
import { createServer } from "node:net"
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import type { ProbeOutcome } from "../../src/core/events.ts"
import type { Probe } from "../../src/core/options.ts"
import { makeProber, performProbe } from "../../src/runtime/probes.ts"
import { isSpawned } from "../../src/spawned.ts"
import { groupAlive, until } from "./helpers.ts"

const run = (probe: Probe, timeoutMs = 5_000): Promise<{ readonly outcome: ProbeOutcome; readonly ms: number; readonly answers: number }> =>
  new Promise((resolve) => {
    const started = Date.now()
    let answers = 0
    performProbe(probe, timeoutMs, (outcome) => {
      answers++
      // A second answer would arrive later: wait a little to count it.
      setTimeout(() => resolve({ outcome, ms: Date.now() - started, answers }), 300)
    })
  })

const closedPort = async (): Promise<number> => {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const port = (server.address() as AddressInfo).port
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}

const dir = mkdtempSync(join(tmpdir(), "isinit-probes-"))
const servers: { close: () => void }[] = []
afterAll(() => {
  for (const server of servers) server.close()
})

describe("probes (rules 20-22, the runtime's side)", () => {
  it("tcp: passes when the port accepts, fails when it refuses", async () => {
    const server = createServer((socket) => socket.destroy())
    servers.push(server)
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
    const port = (server.address() as AddressInfo).port
    expect((await run({ _tag: "Tcp", host: "127.0.0.1", port })).outcome).toEqual({ _tag: "Passed" })
    expect((await run({ _tag: "Tcp", host: "127.0.0.1", port: await closedPort() })).outcome).toEqual({ _tag: "Failed", reason: "ECONNREFUSED" })
  })

  it("http: passes on 2xx, fails on another status, and on a server that never answers, at the timeout", async () => {
    const server = createHttpServer((req, res) => {
      if (req.url === "/hang") return
      res.statusCode = req.url === "/ok" ? 204 : 503
      res.end()
    })
    servers.push({ close: () => server.closeAllConnections() })
    servers.push(server)
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
    expect((await run({ _tag: "Http", url: `${base}/ok` })).outcome).toEqual({ _tag: "Passed" })
    expect((await run({ _tag: "Http", url: `${base}/down` })).outcome).toEqual({ _tag: "Failed", reason: "HTTP 503" })
    const hung = await run({ _tag: "Http", url: `${base}/hang` }, 500)
    expect(hung.outcome).toEqual({ _tag: "Failed", reason: "timed out after 500ms" })
    expect(hung.answers).toBe(1)
  })

  it("file: passes when the path exists", async () => {
    const path = join(dir, "ready")
    expect((await run({ _tag: "File", path })).outcome).toEqual({ _tag: "Failed", reason: "ENOENT" })
    writeFileSync(path, "")
    expect((await run({ _tag: "File", path })).outcome).toEqual({ _tag: "Passed" })
  })

  it("exec: passes on exit 0, fails otherwise; a command that hangs is killed with its group at the timeout", async () => {
    expect((await run({ _tag: "Exec", command: "true" })).outcome).toEqual({ _tag: "Passed" })
    expect((await run({ _tag: "Exec", command: "sh -c 'exit 3'" })).outcome).toEqual({ _tag: "Failed", reason: "exit 3" })
    expect((await run({ _tag: "Exec", command: "/nonexistent/probe" })).outcome).toEqual({ _tag: "Failed", reason: "ENOENT" })
    const pidFile = join(dir, "hung.pid")
    const hung = await run({ _tag: "Exec", command: `echo $$ > ${pidFile}; sleep 300 & wait` }, 500)
    expect(hung.outcome).toEqual({ _tag: "Failed", reason: "timed out after 500ms" })
    expect(hung.answers).toBe(1)
    expect(hung.ms).toBeLessThan(5_000)
    const pgid = Number(readFileSync(pidFile, "utf8").trim())
    await until("the hung probe's process group is gone", () => !groupAlive(pgid))
  })

  it("an exec probe is registered as libuv's while it runs, so the orphan reaper leaves its exit status to libuv", async () => {
    const pidFile = join(dir, "probe.pid")
    const release = join(dir, "release")
    const outcomes: ProbeOutcome[] = []
    const prober = makeProber((_, outcome) => outcomes.push(outcome))
    // The probe runs until the test lets it end: the check below cannot come after its exit.
    const command = `echo $$ > ${pidFile}; while [ ! -e ${release} ]; do sleep 0.05; done`
    prober({ _tag: "Probe", tag: "t", run: 1, attempt: 1, purpose: "ready", probe: { _tag: "Exec", command }, timeoutMs: 60_000 })
    const pid = await until("the probe wrote its pid", () => {
      try {
        return Number(readFileSync(pidFile, "utf8").trim()) || undefined
      } catch {
        return undefined
      }
    })
    expect(isSpawned(pid)).toBe(true)
    writeFileSync(release, "")
    await until("the probe answered", () => outcomes.length > 0, 30_000)
    expect(outcomes).toEqual([{ _tag: "Passed" }])
    expect(isSpawned(pid)).toBe(false)
  })
})

