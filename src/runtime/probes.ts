/**
 * Performs the reducer's `Probe` effects (rules 20-22) against the real world, without ever
 * blocking the event loop: `exec` spawns the command in its own process group (SIGKILLed at the
 * timeout), `tcp` is `net.connect`, `http` a GET through `node:http`, `file` an `fs.stat`. Every
 * probe ends within its `timeoutMs` and answers exactly once, through the loop's inbox, as a
 * `ProbeResult` of its run and attempt. Nothing here runs unless an entry has a probe: no timer,
 * no socket, no child. An `exec` probe's process is registered in spawned.ts while it runs: the
 * orphan reaper must leave it to libuv, or its exit status would be lost and the probe time out.
 */
import { spawn } from "node:child_process"
import { stat } from "node:fs"
import { request } from "node:http"
import { connect } from "node:net"
import { argvOf } from "../core/command.ts"
import type { Effect as CoreEffect } from "../core/effects.ts"
import type { ProbeOutcome } from "../core/events.ts"
import type { Probe } from "../core/options.ts"
import { trackSpawned } from "../spawned.ts"

export type ProbeRequest = Extract<CoreEffect, { readonly _tag: "Probe" }>

const passed: ProbeOutcome = { _tag: "Passed" }
const failed = (reason: string): ProbeOutcome => ({ _tag: "Failed", reason })
const errorText = (e: unknown): string => (e as NodeJS.ErrnoException).code ?? (e instanceof Error ? e.message : String(e))

/** A probe started: it calls `done` once; `cancel` ends it early (the timeout). */
type Started = { readonly cancel: () => void }
type Prober = (done: (outcome: ProbeOutcome) => void) => Started

const execProbe = (command: string): Prober => (done) => {
  const argv = argvOf(command)
  const child = argv._tag === "Direct"
    ? spawn(argv.file, argv.args, { detached: true, stdio: "ignore", cwd: "/" })
    : spawn("/bin/sh", ["-c", argv.script], { detached: true, stdio: "ignore", cwd: "/" })
  // libuv reaps it and reports its exit: the orphan reaper leaves it alone (spawned.ts).
  trackSpawned(child)
  child.once("error", (e) => done(failed(errorText(e))))
  child.once("exit", (code, signal) => {
    done(code === 0 ? passed : failed(signal === null ? `exit ${code ?? "?"}` : `signal ${signal}`))
  })
  child.unref()
  return {
    cancel: () => {
      // The whole process group: a shell's children go with it.
      if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
        try {
          process.kill(-child.pid, "SIGKILL")
        } catch {
          // Already gone.
        }
      }
    },
  }
}

const tcpProbe = (host: string, port: number): Prober => (done) => {
  const socket = connect({ host, port })
  socket.once("connect", () => {
    socket.destroy()
    done(passed)
  })
  socket.once("error", (e) => done(failed(errorText(e))))
  socket.unref()
  return { cancel: () => socket.destroy() }
}

const httpProbe = (url: string): Prober => (done) => {
  const req = request(url, { method: "GET", headers: { "user-agent": "isinit-probe" } }, (res) => {
    const code = res.statusCode ?? 0
    res.resume()
    done(code >= 200 && code < 300 ? passed : failed(`HTTP ${code}`))
  })
  req.once("error", (e) => done(failed(errorText(e))))
  req.once("socket", (socket) => socket.unref())
  req.end()
  return { cancel: () => req.destroy() }
}

const fileProbe = (path: string): Prober => (done) => {
  stat(path, (e) => done(e === null ? passed : failed(errorText(e))))
  return { cancel: () => undefined }
}

const proberOf = (probe: Probe): Prober => {
  switch (probe._tag) {
    case "Exec":
      return execProbe(probe.command)
    case "Tcp":
      return tcpProbe(probe.host, probe.port)
    case "Http":
      return httpProbe(probe.url)
    case "File":
      return fileProbe(probe.path)
  }
}

/** Runs one probe; `answer` is called exactly once, at the latest `timeoutMs` after the start. */
export const performProbe = (probe: Probe, timeoutMs: number, answer: (outcome: ProbeOutcome) => void): void => {
  let answered = false
  const once = (outcome: ProbeOutcome): void => {
    if (answered) return
    answered = true
    clearTimeout(timer)
    answer(outcome)
  }
  let started: Started = { cancel: () => undefined }
  const timer = setTimeout(() => {
    started.cancel()
    once(failed(`timed out after ${timeoutMs}ms`))
  }, timeoutMs)
  try {
    started = proberOf(probe)(once)
  } catch (e) {
    once(failed(errorText(e)))
  }
}

/** Performs a reducer's `Probe` effect. */
export type ProbeRunner = (request: ProbeRequest) => void

/** The loop's prober: each result goes back through `offer` (the loop stamps it with its clock). */
export const makeProber =
  (offer: (result: ProbeRequest, outcome: ProbeOutcome) => void): ProbeRunner =>
  (request) =>
    performProbe(request.probe, request.timeoutMs, (outcome) => offer(request, outcome))
