/**
 * A bug in the reducer, in the real isinitd: the daemon logs it (the event, the stack) and exits
 * 70 without touching its processes, and its successor adopts them, as after a crash. The
 * reducer is swapped for one that throws on a tell of group `boom` through a module loader hook
 * (test/faults/seams): the daemon's code is the production code.
 */
import { fileURLToPath } from "node:url"
import { afterEach, describe, expect, it } from "vitest"
import type { Lab } from "../runtime/daemonHarness.ts"
import { askJson, entryOf, makeLab } from "../runtime/daemonHarness.ts"
import { procStat, until } from "../runtime/helpers.ts"

let lab: Lab | undefined
afterEach(async () => {
  await lab?.cleanup()
  lab = undefined
})

const throwingReducer = fileURLToPath(new URL("./seams/throwingReducer.mjs", import.meta.url))

describe("a bug in the reducer", () => {
  it("stops isinitd with exit 70, its processes alive, and the next isinitd adopts them", async () => {
    const l = (lab = makeLab())
    l.writeTab("g:srv:1:respawn:exec sleep 300\ng:once:1:once:exec sleep 301\nboom:x:1:respawn:exec sleep 302\n")
    const first = await l.start({ nodeArgs: ["--import", throwingReducer] })
    expect(await askJson(first.socket, { op: "tell", group: "g", level: "1", wait: true })).toMatchObject({ ok: true, outcome: "run" })
    const srv = await until("srv's pid", async () => (await entryOf(first.socket, "srv"))?.pid ?? undefined)
    const once = await until("once's pid", async () => (await entryOf(first.socket, "once"))?.pid ?? undefined)

    // The answer, if any, says the daemon is going; what matters is how it goes.
    await askJson(first.socket, { op: "tell", group: "boom", level: "1" }).catch(() => undefined)
    await until("the first isinitd to exit", () => first.exitCode() !== undefined)
    expect(first.exitCode()).toBe(70)
    expect(first.log()).toMatch(/ bug bug: the reducer threw on \{"_tag":"Tell","group":"boom","level":"1".*a bug planted in the reducer.*throwingReducer\.ts/)
    expect(first.log()).toMatch(/stopped by a bug .*every process keeps running for the next isinitd/)
    // Nothing was stopped: no SIGTERM went out, and both processes still run.
    expect(first.log()).not.toMatch(/ stopping /)
    expect(procStat(srv)?.state).toMatch(/^[RSD]$/)
    expect(procStat(once)?.state).toMatch(/^[RSD]$/)

    const second = await l.start()
    expect(second.log()).toMatch(/2 of 2 recorded process\(es\) still alive and adopted/)
    expect(await entryOf(second.socket, "srv")).toMatchObject({ state: "running", pid: srv })
    expect(await entryOf(second.socket, "once")).toMatchObject({ state: "running", pid: once })
    expect(await askJson(second.socket, { op: "stopall" })).toMatchObject({ ok: true })
    expect(await second.exited()).toBe(0)
    await until("both gone", () => procStat(srv) === undefined && procStat(once) === undefined)
  })
})
