/**
 * The three supervisors driven the same way: set up a workload (untimed), then `start` (bring
 * every program up), `stop` (take every program down), and `close` (kill whatever is left).
 * `start` and `stop` only issue the request, the way an operator would (a tell on isinitd's
 * socket; starting runsvdir or `sv down`; `supervisorctl start all` / `stop all`); the caller
 * times the programs themselves through /proc.
 *
 * Every process a session starts carries the session's environment marker, which every
 * descendant inherits, so `close` (and the benchmark's exit handler) can find and kill them all.
 */
import type { ChildProcess } from "node:child_process"
import { spawn, spawnSync } from "node:child_process"
import { randomUUID } from "node:crypto"
import { chmodSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, statSync, writeFileSync } from "node:fs"
import * as net from "node:net"
import { join, resolve } from "node:path"
import { childrenOf, killAllWithEnv, pidsWithEnv } from "./proc.ts"

/** The environment variable that marks every process of this benchmark run. */
export const runMarkerName = "ISINIT_BENCH_RUN"
export const runMarker = `${runMarkerName}=${randomUUID()}`
const sessionMarkerName = "ISINIT_BENCH_SESSION"

export interface Program {
  /** A number unique to this program in this run; it appears in the program's argv. */
  readonly marker: string
  /** `sleep MARKER` (executed directly by every peer) or a /bin/sh script that names MARKER. */
  readonly command: string
  readonly shell: boolean
}

export interface Workload {
  readonly programs: readonly Program[]
  /** SIGTERM-to-SIGKILL grace, when the workload needs one; otherwise each peer's default. */
  readonly graceSeconds?: number
  /**
   * Capture each program's output in its own file, rotated past `maxBytes`, `keep` old files
   * (bench/logs.ts; `peerLogDir` says where). Without it: isinitd's default (a file per entry),
   * runit and supervisord discard it.
   */
  readonly logs?: { readonly maxBytes: number; readonly keep: number }
}

/** Where a peer's session writes its programs' logs (with `Workload.logs`). */
export const peerLogDir = (peer: string, dir: string): string => (peer.startsWith("isinitd") ? join(dir, "run/log") : join(dir, "logs"))

export interface Session {
  /** Issue the request that brings every program up. */
  readonly start: () => Promise<void>
  /** Issue the request that takes every program down. */
  readonly stop: () => Promise<void>
  /** Resolves once the clients this session ran (supervisorctl, sv) have exited. */
  readonly settle: () => Promise<void>
  /** The supervisor's own processes, for CPU time and memory (not the programs). */
  readonly supervisorPids: () => number[]
  /** Stop and kill everything this session started; idempotent. */
  readonly close: () => Promise<void>
}

export interface Peer {
  readonly name: string
  /** Why the peer cannot run here, or undefined. */
  readonly missing: () => string | undefined
  readonly open: (dir: string, work: Workload) => Promise<Session>
}

export const repoRoot = resolve(import.meta.dirname, "../..")
export const isinitdBin = join(repoRoot, "dist/cli/isinitd.js")

const sleepMs = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

const onPath = (command: string): boolean => spawnSync("sh", ["-c", `command -v ${command}`], { stdio: "ignore" }).status === 0

const waitUntil = async (what: string, check: () => boolean | Promise<boolean>, timeoutMs = 30_000): Promise<void> => {
  const deadline = performance.now() + timeoutMs
  for (;;) {
    if (await check()) return
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await sleepMs(20)
  }
}

const exited = (child: ChildProcess): Promise<void> =>
  child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : new Promise((r) => child.once("exit", () => r()))

/** Spawns with both markers; output goes to `logFd` (or nowhere). */
const spawnMarked = (sessionMarker: string, file: string, args: readonly string[], logFd?: number): ChildProcess => {
  const [key, value] = sessionMarker.split("=") as [string, string]
  const [runKey, runValue] = runMarker.split("=") as [string, string]
  const out = logFd ?? "ignore"
  return spawn(file, args, { stdio: ["ignore", out, out], env: { ...process.env, [runKey]: runValue, [key]: value } })
}

/** Clients (supervisorctl, sv) run during a session, so that it can wait for them and kill them. */
const makeClients = () => {
  const running = new Set<ChildProcess>()
  const run = (child: ChildProcess): void => {
    running.add(child)
    child.once("exit", () => running.delete(child))
  }
  const settle = async (): Promise<void> => {
    await Promise.all([...running].map(exited))
  }
  return { run, settle }
}

const closeSession = async (sessionMarker: string, graceful: () => Promise<void>, timeoutMs: number): Promise<void> => {
  try {
    await Promise.race([graceful(), sleepMs(timeoutMs)])
  } catch {
    // the kill below is the fallback
  }
  killAllWithEnv(sessionMarker)
}

// ---------------------------------------------------------------------------------------------
// isinitd

/** Node flags the bin asks for in its shebang (`#!/usr/bin/env -S node FLAGS`), so the bench runs it as installed. */
export const shebangFlags = (bin: string = isinitdBin): string[] => {
  const first = readFileSync(bin, "utf8").split("\n", 1)[0] ?? ""
  const m = /^#!\S*env\s+-S\s+node\s+(.*)$/.exec(first) ?? /^#!\S*node\s+(.*)$/.exec(first)
  return m?.[1] === undefined ? [] : m[1].trim().split(/\s+/)
}

/** Sends one JSON request on the daemon's socket and reads the one-line answer. */
export const askDaemon = (socket: string, request: object, timeoutMs = 30_000): Promise<Record<string, unknown>> =>
  new Promise((resolveAnswer, reject) => {
    const s = net.createConnection({ path: socket, allowHalfOpen: true })
    let answer = ""
    const timer = setTimeout(() => {
      s.destroy()
      reject(new Error(`no answer from ${socket} within ${timeoutMs} ms`))
    }, timeoutMs)
    s.setEncoding("utf8")
    s.on("connect", () => s.end(`${JSON.stringify(request)}\n`))
    s.on("data", (chunk: string) => {
      answer += chunk
    })
    s.on("end", () => {
      clearTimeout(timer)
      try {
        resolveAnswer(JSON.parse(answer) as Record<string, unknown>)
      } catch {
        reject(new Error(`unreadable answer from ${socket}: ${JSON.stringify(answer.slice(0, 200))}`))
      }
    })
    s.on("error", (e) => {
      clearTimeout(timer)
      reject(e)
    })
  })

const expectOk = (answer: Record<string, unknown>, what: string): void => {
  if (answer["ok"] !== true) throw new Error(`isinitd refused ${what}: ${JSON.stringify(answer)}`)
}

export const isinitdTab = (work: Workload): string => {
  const lines = ["# isinit benchmark"]
  if (work.graceSeconds !== undefined) lines.push(`:::kill-grace:${work.graceSeconds}s`)
  if (work.logs !== undefined) lines.push(`:::option:*:log-max=${work.logs.maxBytes}`, `:::option:*:log-keep=${work.logs.keep}`)
  work.programs.forEach((p, i) => lines.push(`b:p${i}:run,:respawn:${p.command}`))
  return `${lines.join("\n")}\n`
}

/** Where an isinitd session keeps its files (the isinittab, the socket, the status file). */
export const isinitdFiles = (dir: string) => ({ tab: join(dir, "isinittab"), socket: join(dir, "run/init.s"), initstat: join(dir, "run/initstat") })

/** isinitd as built (`node [shebang flags] [extra flags] dist/cli/isinitd.js [daemon args]`). */
export const isinitdPeer = (name: string, extraFlags: readonly string[] = [], daemonArgs: readonly string[] = []): Peer => ({
  name,
  missing: () => (existsSync(isinitdBin) ? undefined : `${isinitdBin} is missing: run npm run build`),
  open: async (dir, work) => {
    const sessionMarker = `${sessionMarkerName}=${randomUUID()}`
    const { tab, socket, initstat } = isinitdFiles(dir)
    const logPath = join(dir, "isinitd.log")
    writeFileSync(tab, isinitdTab(work))
    const logFd = openSync(logPath, "a")
    const flags = [...shebangFlags(), ...extraFlags]
    const daemon = spawnMarked(sessionMarker, process.execPath, [...flags, isinitdBin, "-c", tab, "-s", socket, "--initstat", initstat, ...daemonArgs], logFd)
    closeSync(logFd)
    const logTail = (): string => {
      try {
        return readFileSync(logPath, "utf8").split("\n").slice(-15).join("\n")
      } catch {
        return ""
      }
    }
    const tell = async (level: string): Promise<void> => expectOk(await askDaemon(socket, { op: "tell", group: "b", level, wait: false }), `tell b ${level}`)
    let closed = false
    const close = async (): Promise<void> => {
      if (closed) return
      closed = true
      await closeSession(
        sessionMarker,
        async () => {
          if (daemon.exitCode === null && daemon.signalCode === null) {
            await askDaemon(socket, { op: "stopall" }, 5_000).catch(() => daemon.kill("SIGTERM"))
            await exited(daemon)
          }
        },
        (work.graceSeconds ?? 30) * 1000 + 5_000,
      )
    }
    try {
      await waitUntil("isinitd to answer", async () => {
        if (daemon.exitCode !== null) throw new Error(`isinitd exited with ${daemon.exitCode}:\n${logTail()}`)
        if (!existsSync(socket)) return false
        return (await askDaemon(socket, { op: "ping" }, 5_000).catch(() => ({ ok: false })))["ok"] === true
      })
    } catch (e) {
      await close()
      throw e
    }
    return {
      start: () => tell("run"),
      stop: () => tell("stop"),
      settle: () => Promise.resolve(),
      supervisorPids: () => (daemon.pid === undefined ? [] : [daemon.pid]),
      close,
    }
  },
})

// ---------------------------------------------------------------------------------------------
// runit

/** The service directory of a runit session's program `i`. */
export const runitServiceDir = (dir: string, i: number): string => join(dir, "sv", `p${i}`)

/** runit's way to log: `./log/run` is svlogd on its own directory, whose `config` sets the rotation (size, old files). */
const runitLogService = (service: string, logDir: string, logs: NonNullable<Workload["logs"]>): void => {
  mkdirSync(join(service, "log"), { recursive: true })
  mkdirSync(logDir, { recursive: true })
  writeFileSync(join(logDir, "config"), `s${logs.maxBytes}\nn${logs.keep + 1}\n`)
  writeFileSync(join(service, "log", "run"), `#!/bin/sh\nexec svlogd ${logDir}\n`)
  chmodSync(join(service, "log", "run"), 0o755)
}

/** runsvdir over one service directory per program; `sv down` (or `sv -w GRACE force-stop`) stops them. */
export const runitPeer: Peer = {
  name: "runit",
  missing: () => (onPath("runsvdir") && onPath("sv") ? undefined : "runsvdir/sv not installed (apt-get install runit)"),
  open: async (dir, work) => {
    const sessionMarker = `${sessionMarkerName}=${randomUUID()}`
    const svdir = join(dir, "sv")
    const services = work.programs.map((p, i) => {
      const service = runitServiceDir(dir, i)
      mkdirSync(service, { recursive: true })
      const exec = p.shell ? `/bin/sh -c '${p.command}'` : p.command
      writeFileSync(join(service, "run"), `#!/bin/sh\nexec ${exec}\n`)
      chmodSync(join(service, "run"), 0o755)
      if (work.logs !== undefined) runitLogService(service, join(peerLogDir("runit", dir), `p${i}`), work.logs)
      return service
    })
    // runsvdir does not scan a directory modified within the current second until the next one;
    // a real service directory is older than that, so let this one age (untimed).
    await waitUntil("the service directory to age", () => Date.now() / 1000 >= Math.floor(statSync(svdir).mtimeMs / 1000) + 1.05, 5_000)
    const clients = makeClients()
    let runsvdir: ChildProcess | undefined
    let closed = false
    return {
      start: () => {
        runsvdir = spawnMarked(sessionMarker, "runsvdir", [svdir])
        return Promise.resolve()
      },
      stop: () => {
        const args = work.graceSeconds === undefined ? ["down", ...services] : ["-w", String(work.graceSeconds), "force-stop", ...services]
        clients.run(spawnMarked(sessionMarker, "sv", args))
        return Promise.resolve()
      },
      settle: clients.settle,
      supervisorPids: () => {
        const pid = runsvdir?.pid
        return pid === undefined ? [] : [pid, ...childrenOf(pid)]
      },
      close: async () => {
        if (closed) return
        closed = true
        // runsvdir's children are runsv processes; killing the session's processes takes down all three levels.
        await closeSession(sessionMarker, clients.settle, 10_000)
      },
    }
  },
}

// ---------------------------------------------------------------------------------------------
// supervisord

export const supervisordConf = (dir: string, work: Workload): string => {
  const lines = [
    "[unix_http_server]",
    `file=${join(dir, "supervisor.sock")}`,
    "[supervisord]",
    `logfile=${join(dir, "supervisord.log")}`,
    `pidfile=${join(dir, "supervisord.pid")}`,
    `childlogdir=${dir}`,
    "nodaemon=true",
    // Three pipes per child stay open in supervisord.
    `minfds=${Math.max(1024, work.programs.length * 4 + 100)}`,
    `minprocs=${Math.max(200, work.programs.length * 2 + 100)}`,
    "[rpcinterface:supervisor]",
    "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
    "[supervisorctl]",
    `serverurl=unix://${join(dir, "supervisor.sock")}`,
  ]
  work.programs.forEach((p, i) => {
    lines.push(
      `[program:p${i}]`,
      `command=${p.shell ? `/bin/sh -c '${p.command}'` : p.command}`,
      "autostart=false",
      "autorestart=true",
      "startsecs=1",
      // Signal the whole process group, as isinitd does.
      "stopasgroup=true",
      "killasgroup=true",
      `stopwaitsecs=${work.graceSeconds ?? 10}`,
      ...(work.logs === undefined
        ? // runit discards output without a log service; do not make supervisord write log files either.
          ["stdout_logfile=NONE", "stderr_logfile=NONE"]
        : [`stdout_logfile=${join(peerLogDir("supervisord", dir), `p${i}.log`)}`, "redirect_stderr=true", `stdout_logfile_maxbytes=${work.logs.maxBytes}`, `stdout_logfile_backups=${work.logs.keep}`]),
    )
  })
  return `${lines.join("\n")}\n`
}

/** A supervisord session's configuration file (supervisorctl -c reads it too). */
export const supervisordConfPath = (dir: string): string => join(dir, "supervisord.conf")

export const supervisordPeer: Peer = {
  name: "supervisord",
  missing: () => (onPath("supervisord") && onPath("supervisorctl") ? undefined : "supervisord not installed (apt-get install supervisor)"),
  open: async (dir, work) => {
    const sessionMarker = `${sessionMarkerName}=${randomUUID()}`
    const conf = supervisordConfPath(dir)
    if (work.logs !== undefined) mkdirSync(peerLogDir("supervisord", dir), { recursive: true })
    writeFileSync(conf, supervisordConf(dir, work))
    const daemon = spawnMarked(sessionMarker, "supervisord", ["-n", "-c", conf])
    const clients = makeClients()
    const ctl = (...args: string[]): ChildProcess => {
      const child = spawnMarked(sessionMarker, "supervisorctl", ["-c", conf, ...args])
      clients.run(child)
      return child
    }
    let closed = false
    const close = async (): Promise<void> => {
      if (closed) return
      closed = true
      await closeSession(
        sessionMarker,
        async () => {
          await clients.settle()
          if (daemon.exitCode === null && daemon.signalCode === null) {
            daemon.kill("SIGTERM")
            await exited(daemon)
          }
        },
        (work.graceSeconds ?? 10) * 1000 + 5_000,
      )
    }
    try {
      await waitUntil("supervisord to answer", async () => {
        if (daemon.exitCode !== null) throw new Error(`supervisord exited with ${daemon.exitCode} (see ${join(dir, "supervisord.log")})`)
        if (!existsSync(join(dir, "supervisor.sock"))) return false
        const pid = ctl("pid")
        return new Promise<boolean>((r) => pid.once("exit", (code) => r(code === 0)))
      })
    } catch (e) {
      await close()
      throw e
    }
    return {
      start: () => {
        ctl("start", "all")
        return Promise.resolve()
      },
      stop: () => {
        ctl("stop", "all")
        return Promise.resolve()
      },
      settle: clients.settle,
      supervisorPids: () => (daemon.pid === undefined ? [] : [daemon.pid]),
      close,
    }
  },
}

/** Everything this benchmark run started that is still alive (for the final check). */
export const leftovers = (): number[] => pidsWithEnv(runMarker)
