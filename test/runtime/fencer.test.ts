/**
 * The fencer (`isinitd --fencer`, src/runtime/fencer.ts) as a real process, fed by this test as a
 * daemon would feed it: at a group's deadline it SIGTERMs, then SIGKILLs, every process carrying
 * the group's marker, and nothing else; a renewal moves the deadline; a disarm cancels it; when its
 * daemon is gone it still fires what is armed, then exits; with nothing armed it exits at once.
 */
import type { ChildProcess } from "node:child_process"
import { spawn } from "node:child_process"
import type { Socket } from "node:net"
import { join, resolve } from "node:path"
import { afterEach, describe, expect, it } from "vitest"
import { kernelClock } from "../../src/clocks.ts"
import { procStat, until } from "./helpers.ts"

const repoRoot = resolve(import.meta.dirname, "../..")
const started: ChildProcess[] = []
afterEach(() => {
  for (const child of started.splice(0)) child.kill("SIGKILL")
})

const { clock } = kernelClock()

interface Fencer {
  readonly child: ChildProcess
  readonly send: (message: object) => void
  readonly log: () => string
  readonly exited: Promise<number | null>
}

const startFencer = async (instance: string, stderr: "read" | "reader gone" = "read"): Promise<Fencer> => {
  const child = spawn(process.execPath, ["--import", "tsx", join(repoRoot, "src/cli/isinitd.ts"), "--fencer"], { cwd: repoRoot, stdio: ["ignore", "ignore", "pipe", "pipe"] })
  started.push(child)
  let log = ""
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => (log += chunk))
  const channel = child.stdio[3] as Socket
  let ready = false
  channel.setEncoding("utf8").on("data", (chunk: string) => (ready ||= chunk.includes('"ready"')))
  const exited = new Promise<number | null>((done) => child.once("exit", (code) => done(code)))
  const send = (message: object): void => void channel.write(`${JSON.stringify(message)}\n`)
  send({ op: "hello", daemon: process.pid, instance, clock: clock.kind })
  await until("the fencer ready", () => ready, 20_000)
  // Like a `| logger` that exited: the next line the fencer writes meets a broken pipe.
  if (stderr === "reader gone") child.stderr?.destroy()
  return { child, send, log: () => log, exited }
}

/** A process carrying `marker` (ISINIT_FENCE), optionally deaf to SIGTERM. */
const marked = (marker: string | undefined, deaf: "deaf" | "hears"): ChildProcess => {
  const script = deaf === "deaf" ? "trap '' TERM; while :; do sleep 0.05; done" : "exec sleep 30"
  const env = marker === undefined ? { ...process.env } : { ...process.env, ISINIT_FENCE: marker }
  const child = spawn("/bin/sh", ["-c", script], { env, stdio: "ignore", detached: true })
  started.push(child)
  return child
}

const exitOf = (child: ChildProcess): Promise<NodeJS.Signals | null> =>
  new Promise((done) => (child.exitCode !== null || child.signalCode !== null ? done(child.signalCode) : child.once("exit", (_, signal) => done(signal))))

describe("the fencer", () => {
  it("SIGTERMs the group's processes at termAt and SIGKILLs them at killAt; leaves everything else alone", async () => {
    const fencer = await startFencer("t1")
    const hears = marked("t1:mail", "hears")
    const deaf = marked("t1:mail", "deaf")
    const other = marked("t1:web", "hears")
    const stranger = marked(undefined, "hears")
    await until("the test processes started", () => [hears, deaf, other, stranger].every((c) => c.pid !== undefined && procStat(c.pid) !== undefined))
    const armedAt = clock.nowMs()
    fencer.send({ op: "arm", group: "mail", epoch: 7, termAt: armedAt + 400, killAt: armedAt + 1_200 })
    expect(await exitOf(hears)).toBe("SIGTERM")
    expect(clock.nowMs() - armedAt).toBeGreaterThanOrEqual(400)
    expect(await exitOf(deaf)).toBe("SIGKILL")
    expect(clock.nowMs() - armedAt).toBeGreaterThanOrEqual(1_200)
    expect(other.exitCode === null && other.signalCode === null).toBe(true)
    expect(stranger.exitCode === null && stranger.signalCode === null).toBe(true)
    // Its log comes through a pipe: a little after the signals.
    await until("both lines logged", () => /epoch 7 passed without a renewal: SIGKILL/.test(fencer.log()))
    expect(fencer.log()).toMatch(/mail - fencer deadline of epoch 7 passed without a renewal: SIGTERM to pid \d+/)
    expect(fencer.log()).toMatch(/mail - fencer deadline of epoch 7 passed without a renewal: SIGKILL to pid \d+/)
  })

  it("keeps fencing when nobody reads its log any more: the SIGTERM-deaf process still gets SIGKILL at killAt", async () => {
    const fencer = await startFencer("t9", "reader gone")
    const deaf = marked("t9:mail", "deaf")
    await until("the test process started", () => deaf.pid !== undefined && procStat(deaf.pid) !== undefined)
    const armedAt = clock.nowMs()
    fencer.send({ op: "arm", group: "mail", epoch: 3, termAt: armedAt + 300, killAt: armedAt + 900 })
    expect(await exitOf(deaf)).toBe("SIGKILL")
    expect(clock.nowMs() - armedAt).toBeGreaterThanOrEqual(900)
    expect(fencer.child.exitCode).toBeNull()
  })

  it("a renewal moves the deadline; a disarm cancels it; after killAt a newcomer of the group is killed too", async () => {
    const fencer = await startFencer("t2")
    const renewed = marked("t2:mail", "hears")
    const disarmed = marked("t2:web", "hears")
    const t0 = clock.nowMs()
    fencer.send({ op: "arm", group: "mail", epoch: 1, termAt: t0 + 500, killAt: t0 + 600 })
    fencer.send({ op: "arm", group: "web", epoch: 1, termAt: t0 + 500, killAt: t0 + 600 })
    fencer.send({ op: "arm", group: "mail", epoch: 1, termAt: t0 + 1_500, killAt: t0 + 1_600 })
    fencer.send({ op: "disarm", group: "web" })
    await new Promise((done) => setTimeout(done, 1_000))
    expect(renewed.signalCode).toBeNull()
    expect(await exitOf(renewed)).toBe("SIGTERM")
    expect(clock.nowMs() - t0).toBeGreaterThanOrEqual(1_500)
    expect(disarmed.signalCode).toBeNull()
    // The daemon (this test process) starts one after the deadline, as a stalled daemon resuming mid-fork would.
    await until("the SIGKILL deadline passed", () => /mail - fencer deadline of epoch 1 passed without a renewal: SIGKILL/.test(fencer.log()))
    const late = marked("t2:mail", "deaf")
    expect(await exitOf(late)).toBe("SIGKILL")
    await until("the newcomer's kill logged", () => /SIGKILL to pid \d+: started after the deadline/.test(fencer.log()))
  })

  it("outlives its daemon until what is armed has fired, then exits; with nothing armed it exits at once", async () => {
    const fencer = await startFencer("t3")
    const orphan = marked("t3:mail", "hears")
    const t0 = clock.nowMs()
    fencer.send({ op: "arm", group: "mail", epoch: 3, termAt: t0 + 800, killAt: t0 + 900 })
    ;(fencer.child.stdio[3] as Socket).end()
    expect(await exitOf(orphan)).toBe("SIGTERM")
    expect(await fencer.exited).toBe(0)
    expect(clock.nowMs() - t0).toBeGreaterThanOrEqual(900)

    const idle = await startFencer("t4")
    ;(idle.child.stdio[3] as Socket).end()
    expect(await idle.exited).toBe(0)
  })
})
