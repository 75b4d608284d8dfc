/**
 * What an operator does around the daemon, on real processes: stopall that can be waited for,
 * a hand-over to a successor without bouncing services, a client facing a stopped daemon or one
 * it may not talk to, and a socket path the kernel cannot take.
 */
import { chmodSync, existsSync, mkdirSync, readdirSync } from "node:fs"
import { join } from "node:path"
import { afterEach, describe, expect, it } from "vitest"
import type { Daemon, Lab } from "../runtime/daemonHarness.ts"
import { askJson, entryOf, lines, makeLab, markedPids, runIsinit, runningPid, statusOf } from "../runtime/daemonHarness.ts"
import { skipUnlessNobodyCanRun, groupAlive, procStat, until } from "../runtime/helpers.ts"
import { groupsOfTag } from "../faults/faultHarness.ts"

let lab: Lab | undefined
afterEach(async () => {
  await lab?.cleanup()
  lab = undefined
})

const fresh = (): Lab => (lab = makeLab())

/** Whether the process has exited (gone, or a zombie its parent has not reaped yet). */
const exited = (pid: number | undefined): boolean => {
  const state = pid === undefined ? undefined : procStat(pid)?.state
  return state === undefined || state === "Z" || state === "X"
}

const logged = (d: Daemon, pattern: RegExp): Promise<true> => until(`a log line matching ${pattern}`, () => pattern.test(d.log()))

const stubborn = (l: Lab): string => `g:stubborn:1:respawn:trap '' TERM; touch ${l.path("trapped")}; while :; do sleep 0.1; done`

/** A daemon running `extra` and an entry that ignores SIGTERM, so that a stop lasts the whole kill grace. */
const startStubborn = async (l: Lab, grace: string, extra = ""): Promise<Daemon> => {
  l.writeTab(`:::kill-grace:${grace}\n${stubborn(l)}\n${extra}`)
  const d = await l.start()
  expect(await askJson(d.socket, { op: "tell", group: "g", level: "1" })).toMatchObject({ ok: true })
  await runningPid(d.socket, "stubborn")
  // A SIGTERM that comes before the shell has run `trap` would still kill it.
  await until("the trap is set", () => existsSync(l.path("trapped")))
  return d
}

describe("stopall can be waited for", () => {
  it("isinit stopall returns once every process is gone and the daemon has exited, so a tell right after starts afresh", async () => {
    const l = fresh()
    // The SIGTERM-ignoring entry makes the stop last the whole grace: the client must wait it out.
    const d = await startStubborn(l, "2s", "g:srv:1:respawn:sleep 300\n")
    const pids = [await runningPid(d.socket, "stubborn"), await runningPid(d.socket, "srv")]

    const stopped = await l.isinit(["stopall"])
    // No wait here: when stopall returns, everything must already be over.
    expect(stopped).toMatchObject({ code: 0, err: "" })
    expect(existsSync(d.socket)).toBe(false)
    expect(exited(d.child.pid)).toBe(true)
    for (const pid of pids) expect(groupAlive(pid)).toBe(false)
    expect(markedPids(d.marker).filter((pid) => pid !== d.child.pid)).toEqual([])

    const told = await l.isinit(["g", "1"])
    expect(told.code).toBe(0)
    expect(told.err).toMatch(/started isinitd/)
    const again = await runningPid(d.socket, "srv")
    expect(pids).not.toContain(again)
    expect((await askJson(d.socket, { op: "ping" }))["pid"]).not.toBe(d.child.pid)
    expect(await l.isinit(["stopall"])).toMatchObject({ code: 0 })
  })

  it("gives up after --timeout with a clear message while the daemon is still stopping", async () => {
    const l = fresh()
    const d = await startStubborn(l, "30s")
    const stopping = await l.isinit(["stopall", "--timeout", "1"])
    expect(stopping.code).toBe(1)
    expect(stopping.err).toMatch(/stopall: the daemon on .* still runs 1 s after it was asked \(a process still stopping\? see isinit status\); it goes on/)
    expect((await statusOf(d.socket)).lifecycle).toBe("stopping")
  })
})

describe("hand-over", () => {
  const tab = (l: Lab): string =>
    [
      "g:srv:1:respawn:sleep 300",
      `g:one:1:once:sh -c "echo ran >> ${l.path("once.out")}; exec sleep 301"`,
      "g:tree:1:respawn:sh -c 'sleep 302 & sleep 303'",
      "h:other:x:respawn:sleep 304",
      "",
    ].join("\n")
  const tags = ["srv", "one", "tree", "other"]

  const pidsOf = async (d: Daemon): Promise<Map<string, number>> => new Map(await Promise.all(tags.map(async (t) => [t, await runningPid(d.socket, t)] as const)))

  /** Every entry runs once, with the pids it had, none restarted. */
  const expectAdopted = async (d: Daemon, before: ReadonlyMap<string, number>, l: Lab): Promise<void> => {
    for (const [tag, pid] of before) {
      expect(await entryOf(d.socket, tag), tag).toMatchObject({ state: "running", pid, restarts: 0 })
      expect(groupsOfTag(d, tag), tag).toEqual([pid])
    }
    expect(lines(l.path("once.out"))).toEqual(["ran"])
  }

  it("isinit handover: the daemon writes its state and exits 3 leaving every process; the next daemon adopts them all, restarting nothing", async () => {
    const l = fresh()
    l.writeTab(tab(l))
    const first = await l.start()
    expect(await askJson(first.socket, { op: "tell", group: "g", level: "1", wait: true })).toMatchObject({ ok: true, outcome: "run" })
    expect(await askJson(first.socket, { op: "tell", group: "h", level: "x" })).toMatchObject({ ok: true })
    const before = await pidsOf(first)

    const handed = await l.isinit(["handover"])
    expect(handed.code).toBe(0)
    expect(handed.out).toMatch(new RegExp(`^isinitd \\(pid ${first.child.pid}\\) handed over 4 process\\(es\\) and exited`))
    expect(exited(first.child.pid)).toBe(true)
    expect(await first.exited()).toBe(3)
    expect(existsSync(first.socket)).toBe(false)
    await logged(first, /handed over: 4 process\(es\) keep running/)
    for (const pid of before.values()) expect(groupAlive(pid)).toBe(true)

    const second = await l.start()
    await logged(second, /4 of 4 recorded process\(es\) still alive and adopted, 0 gone/)
    await expectAdopted(second, before, l)
    expect((await statusOf(second.socket)).groups.map((g) => [g.group, g.state, g.level])).toEqual([
      ["g", "run", "1"],
      ["h", "run", "x"],
    ])

    // SIGUSR2 does the same, without a client.
    second.child.kill("SIGUSR2")
    expect(await second.exited()).toBe(3)
    await logged(second, /SIGUSR2: handing over/)
    const third = await l.start()
    await logged(third, /4 of 4 recorded process\(es\) still alive and adopted/)
    await expectAdopted(third, before, l)
    // The adopted processes are still supervised: a killed one is restarted.
    process.kill(before.get("srv") ?? 0, "SIGKILL")
    await runningPid(third.socket, "srv", before.get("srv"))
  })

  it("is refused during a stopall, which finishes first", async () => {
    const l = fresh()
    const d = await startStubborn(l, "30s")
    expect(await askJson(d.socket, { op: "stopall" })).toMatchObject({ ok: true })
    const refused = await l.isinit(["handover"])
    expect(refused.code).toBe(1)
    expect(refused.err).toMatch(/handover refused: a stopall is under way and finishes first/)
    d.child.kill("SIGUSR2")
    await logged(d, /SIGUSR2: no hand-over: a stopall is under way/)
    expect((await askJson(d.socket, { op: "ping" }))["ok"]).toBe(true)
  })
})

describe("a client facing a daemon it cannot ask", () => {
  it("a stopped daemon: status shows the status file and says why; a tell says it may still be applied, and it is once the daemon resumes", async () => {
    const l = fresh()
    l.writeTab("g:srv:1:respawn:sleep 300\ng:two:2:respawn:sleep 301\n")
    const d = await l.start()
    expect(await askJson(d.socket, { op: "tell", group: "g", level: "1", wait: true })).toMatchObject({ ok: true, outcome: "run" })
    await until("the status file shows g run", () => lines(l.path("run/initstat")).some((line) => /^g\s+run\s+1/.test(line)))
    process.kill(d.child.pid ?? 0, "SIGSTOP")
    try {
      const status = await l.isinit(["status", "--timeout", "1"])
      expect(status.code).toBe(0)
      expect(status.err).toMatch(/the daemon on .* did not answer within 1 s \(stopped or stuck\?\); the last status it wrote/)
      expect(status.out).toMatch(/^g +run +1$/m)
      const json = await l.isinit(["status", "--json", "--timeout", "1"])
      expect(JSON.parse(json.out)).toMatchObject({ daemon: "unreachable", reason: expect.stringMatching(/did not answer/) })

      const tell = await l.isinit(["g", "2", "--timeout", "1"])
      expect(tell.code).toBe(1)
      expect(tell.err).toMatch(/no answer from the daemon on .* within 1 s: the daemon got the request and may still apply it when it resumes/)
    } finally {
      process.kill(d.child.pid ?? 0, "SIGCONT")
    }
    await runningPid(d.socket, "two")
  })

  it("a daemon it may not talk to (EACCES): status falls back to the status file and says why", async (ctx) => {
    const l = fresh()
    skipUnlessNobodyCanRun(ctx)
    chmodSync(l.dir, 0o755)
    mkdirSync(l.path("pub"), { mode: 0o755 })
    l.writeTab(`:::initstat:${l.path("pub/initstat")}\ng:srv:1:respawn:sleep 300\n`)
    const d = await l.start({ args: ["-c", l.path("isinittab"), "-s", l.socket] })
    expect(await askJson(d.socket, { op: "tell", group: "g", level: "1", wait: true })).toMatchObject({ ok: true, outcome: "run" })
    await until("the status file shows g run", () => lines(l.path("pub/initstat")).some((line) => /^g\s+run\s+1/.test(line)))
    const status = await l.isinit(["status"], { prefix: ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] })
    expect(status.code).toBe(0)
    expect(status.err).toMatch(/cannot ask the daemon on .*EACCES.*; the last status it wrote \(.*pub\/initstat\)/)
    expect(status.out).toMatch(/^g +run +1$/m)
  })
})

describe("a socket path longer than the kernel takes", () => {
  const longSocket = (l: Lab): string => join(l.dir, "x".repeat(60), "y".repeat(40), "init.s")

  it("isinitd refuses it before creating anything", async () => {
    const l = fresh()
    l.writeTab("g:srv:1:respawn:sleep 300\n")
    const socket = longSocket(l)
    expect(Buffer.byteLength(socket)).toBeGreaterThan(107)
    const d = await l.start({ args: ["-c", l.path("isinittab"), "-s", socket], waitReady: false })
    expect(await d.exited()).toBe(1)
    expect(d.log()).toMatch(/the socket path .* is \d+ bytes long; a UNIX socket path may have at most 107 \(the kernel's sun_path\): choose a shorter one with -s or :::socket:/)
    expect(readdirSync(l.dir)).toEqual(["isinittab"])
  })

  it("isinit refuses it too, and starts no daemon", async () => {
    const l = fresh()
    l.writeTab("g:srv:1:respawn:sleep 300\n")
    for (const args of [["g", "1"], ["stopall"], ["handover"], ["plan", "g", "1"]]) {
      const run = await runIsinit(["-c", l.path("isinittab"), "-s", longSocket(l), ...args])
      expect(run.code, args.join(" ")).toBe(1)
      expect(run.err, args.join(" ")).toMatch(/the socket path .* is \d+ bytes long; a UNIX socket path may have at most 107/)
    }
    expect(readdirSync(l.dir)).toEqual(["isinittab"])
  })
})
