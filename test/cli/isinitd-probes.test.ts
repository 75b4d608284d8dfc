/**
 * isinitd's readiness and health probes on real processes (issue 11, rules 20-22): a server that
 * opens its port late holds the next entry, a ready timeout fails the group, a failing health
 * check restarts an entry and jails it when it keeps failing, and `status` shows starting vs
 * running. Outcomes only, with generous bounded waits.
 */
import { rmSync, writeFileSync } from "node:fs"
import { createServer } from "node:net"
import type { AddressInfo } from "node:net"
import { describe, expect, it } from "vitest"
import { crash, logged, restart } from "../faults/faultHarness.ts"
import { until } from "../runtime/helpers.ts"
import { ask, askJson, entryOf, labPerTest, lines, runningPid, statusOf } from "../runtime/daemonHarness.ts"

const fresh = labPerTest()

const freePort = async (): Promise<number> => {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const port = (server.address() as AddressInfo).port
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}

describe("isinitd probes (issue 11)", () => {
  it("rule 20: a server that opens its port after a delay holds the next entry until it accepts; status shows starting, then running", async () => {
    const l = fresh()
    const events = l.path("events")
    const port = await freePort()
    // The server listens two seconds after its start, and says so just before.
    const server = `node -e "setTimeout(() => { require('fs').appendFileSync('${events}', 'open\\\\n'); require('net').createServer((s) => s.end()).listen(${port}, '127.0.0.1') }, 2000)"`
    l.writeTab(`g:srv:1:respawn:${server}\ng:next:1:once:sh -c "echo next >> ${events}; exec sleep 300"\n:::option:srv:ready=tcp:127.0.0.1:${port}\n:::option:srv:ready-timeout=60s\n`)
    const d = await l.start()
    const told = askJson(d.socket, { op: "tell", group: "g", level: "1", wait: true, timeoutMs: 60_000 })
    const starting = await until("srv shows starting", async () => ((await entryOf(d.socket, "srv"))?.state === "starting" ? true : undefined))
    expect(starting).toBe(true)
    expect(lines(events)).toEqual([])
    expect(await told).toMatchObject({ ok: true, outcome: "run" })
    await until("next ran", () => lines(events).includes("next"))
    expect(lines(events)).toEqual(["open", "next"])
    expect(await entryOf(d.socket, "srv")).toMatchObject({ state: "running" })
    await logged(d, / g srv probe .*ready \(tcp:127\.0\.0\.1:\d+\)/)
  })

  it("rule 21: an entry not ready within its ready-timeout makes the group fail, runs on as not-ready, and a tell retries", async () => {
    const l = fresh()
    const flag = l.path("ready-flag")
    l.writeTab(`g:srv:1:respawn:sleep 300\ng:next:1:once:sleep 300\n:::option:srv:ready=file:${flag}\n:::option:srv:ready-timeout=1s\n`)
    const d = await l.start()
    expect(await askJson(d.socket, { op: "tell", group: "g", level: "1", wait: true, timeoutMs: 60_000 })).toMatchObject({ ok: true, outcome: "fail" })
    const notReady = await entryOf(d.socket, "srv")
    expect(notReady).toMatchObject({ state: "not-ready", pid: expect.any(Number) })
    expect((await entryOf(d.socket, "next"))?.state).toBe("running")
    await logged(d, / g srv probe .*not ready within its ready-timeout/)
    writeFileSync(flag, "")
    expect(await askJson(d.socket, { op: "tell", group: "g", level: "1", wait: true, timeoutMs: 60_000 })).toMatchObject({ ok: true, outcome: "run" })
    expect(await entryOf(d.socket, "srv")).toMatchObject({ state: "running", pid: notReady?.pid })
  })

  it("rule 22: a failing health check restarts the entry (logged, counted) and jails it when it keeps failing", async () => {
    const l = fresh()
    const healthy = l.path("healthy")
    l.writeTab(
      `:::respawn-limit:2/1m\n:::jail:5m\ng:srv:1:respawn:sleep 300\n` +
        `:::option:srv:health=exec:test -e ${healthy}\n:::option:srv:health-every=300ms\n:::option:srv:health-fails=2\n`,
    )
    const d = await l.start()
    expect(await ask(d.socket, "g 1\n")).toBe("ok\n")
    const first = await runningPid(d.socket, "srv")
    await logged(d, / g srv probe .*health check failed 2 times in a row \(last: exit 1\): restarting/)
    const second = await runningPid(d.socket, "srv", first)
    expect(second).not.toBe(first)
    const jailed = await until("srv is jailed", async () => {
      const e = await entryOf(d.socket, "srv")
      return e?.state === "jailed" ? e : undefined
    }, 30_000)
    expect(jailed).toMatchObject({ restarts: 2 })
    await logged(d, / g srv jailed /)
  })

  it("rules 19 and 20: after a kill -9 of the daemon, an adopted ready-checked entry is probed again, not restarted; its group is run once it passes", async () => {
    const l = fresh()
    const flag = l.path("ready-flag")
    writeFileSync(flag, "")
    l.writeTab(`g:srv:1:respawn:sleep 300\ng:next:1:once:sleep 300\n:::option:srv:ready=file:${flag}\n:::option:srv:health=file:${flag}\n:::option:srv:health-every=300ms\n`)
    const d = await l.start()
    expect(await askJson(d.socket, { op: "tell", group: "g", level: "1", wait: true, timeoutMs: 60_000 })).toMatchObject({ ok: true, outcome: "run" })
    const pid = await runningPid(d.socket, "srv")
    await crash(d)
    const second = await restart(l)
    await logged(second, / g srv probe .*ready \(file:/)
    await until("srv running again", async () => ((await entryOf(second.socket, "srv"))?.state === "running" ? true : undefined)).catch(async (e: unknown) => {
      throw new Error(`${String(e)}\n${JSON.stringify(await entryOf(second.socket, "srv"))}\n${second.log()}`)
    })
    expect(await entryOf(second.socket, "srv")).toMatchObject({ pid, restarts: 0 })
    expect((await statusOf(second.socket)).groups[0]?.state).toBe("run")
    expect(second.log()).not.toMatch(/ g srv started/)
    // Its health check runs again under the new daemon: the flag removed, it is restarted.
    rmSync(flag)
    await logged(second, / g srv probe .*health check failed 3 times in a row/)
  })
})

