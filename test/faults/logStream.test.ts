/**
 * isinitd losing its log stream, for real: its stderr is a pipe into a reader (as with
 * `isinitd 2>&1 | logger`), and the reader is killed. The daemon must keep supervising, answer
 * the socket, log to the fallback file beside the status file, and start processes that write
 * there instead of into the dead pipe. Children log to files of their own (issue 11), so the loss
 * of the daemon's reader cannot reach them.
 */
import { spawn } from "node:child_process"
import { existsSync, readFileSync, statSync } from "node:fs"
import { afterEach, describe, expect, it } from "vitest"
import type { Lab } from "../runtime/daemonHarness.ts"
import { askJson, makeLab, runningPid } from "../runtime/daemonHarness.ts"
import { until } from "../runtime/helpers.ts"

let lab: Lab | undefined
const readers: number[] = []
afterEach(async () => {
  for (const pid of readers.splice(0)) {
    try {
      process.kill(pid, "SIGKILL")
    } catch {
      // gone
    }
  }
  await lab?.cleanup()
  lab = undefined
})

const text = (path: string): string => (existsSync(path) ? readFileSync(path, "utf8") : "")

/** A daemon whose stderr is a pipe into `cat > piped.log`, told to `g 1`; `loseReader` kills `cat`. */
const pipedDaemon = async (l: Lab) => {
  const piped = l.path("piped.log")
  const reader = spawn("sh", ["-c", `exec cat > '${piped}'`], { stdio: ["pipe", "ignore", "ignore"] })
  readers.push(reader.pid ?? 0)
  const d = await l.start({ stderr: reader.stdin ?? "ignore", waitReady: false })
  // The test keeps no reading end: once `cat` is gone, the pipe has no reader at all.
  reader.stdin?.destroy()
  await until("the daemon ready (in the piped log)", () => / ready isinitd /.test(text(piped)), 30_000)
  expect(await askJson(d.socket, { op: "tell", group: "g", level: "1", wait: true })).toMatchObject({ ok: true, outcome: "run" })
  const loseReader = async (): Promise<void> => {
    reader.kill("SIGKILL")
    await new Promise((resolveExit) => reader.once("exit", resolveExit))
  }
  return { d, piped, loseReader }
}

describe("isinitd losing its log stream", () => {
  it("survives the reader of its stderr going away: supervises, answers, respawns, and logs to isinitd.log beside the status file", async () => {
    const l = (lab = makeLab())
    // `talk` writes a line when it starts: into the dead pipe it would die of SIGPIPE. It shares
    // the daemon's output (log=inherit), which follows the daemon's log to its fallback file.
    l.writeTab("g:srv:1:respawn:sleep 300\ng:talk:1:respawn:sh -c 'echo talk-$$; exec sleep 300'\n:::option:talk:log=inherit\n")
    const { d, loseReader } = await pipedDaemon(l)
    const srv = await runningPid(d.socket, "srv")
    const talk = await runningPid(d.socket, "talk")

    await loseReader()
    // Log lines follow: the exit and the restart of srv.
    process.kill(srv, "SIGKILL")
    const srvAgain = await runningPid(d.socket, "srv", srv)
    const fallback = l.path("run/isinitd.log")
    await until("the fallback log says why", () => /log stderr lost \(EPIPE\): logging to .*run\/isinitd\.log from now on/.test(text(fallback)))
    await until("the restart logged there", () => new RegExp(` g srv started pid=${srvAgain}`).test(text(fallback)))
    expect(text(fallback)).toMatch(new RegExp(` g srv exited pid=${srv} signal=SIGKILL`))
    expect(d.exitCode()).toBeUndefined()
    expect(await askJson(d.socket, { op: "ping" })).toMatchObject({ ok: true, pid: d.child.pid })

    // A process started after the loss writes into the fallback file, and lives.
    process.kill(-talk, "SIGKILL")
    const talkAgain = await runningPid(d.socket, "talk", talk)
    await until("talk's output in the fallback log", () => /^talk-\d+$/m.test(text(fallback)))
    expect(await runningPid(d.socket, "talk")).toBe(talkAgain)
    expect(d.exitCode()).toBeUndefined()
  })

  it("leaves the children alone: one that writes all the time keeps its pid and its log file grows after the reader died", async () => {
    const l = (lab = makeLab())
    // Into the daemon's dead stderr (before issue 11, every child's), `chatty` would die of SIGPIPE at its next line.
    l.writeTab("g:chatty:1:respawn:sh -c 'while :; do echo chatty; sleep 0.05; done'\n")
    const { d, piped, loseReader } = await pipedDaemon(l)
    const chatty = await runningPid(d.socket, "chatty")
    const log = l.path("run/log/chatty.log")
    await until("chatty logging to its file", () => existsSync(log) && statSync(log).size > 0)

    await loseReader()
    const sizeAtLoss = statSync(log).size
    await until("chatty's file grown by 100 more lines", () => statSync(log).size >= sizeAtLoss + 100 * "chatty\n".length, 30_000)
    expect(await runningPid(d.socket, "chatty")).toBe(chatty)
    expect(text(piped)).not.toMatch(/^chatty$/m)
    expect(d.exitCode()).toBeUndefined()
  })
})
