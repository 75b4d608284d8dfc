/**
 * Starting isinitd from a tell, as IS::Init's first tell did, when no daemon listens. Loaded only
 * then (isinit.ts's local commands otherwise never fork).
 */
import { spawn } from "node:child_process"
import { closeSync, mkdirSync, openSync, readFileSync } from "node:fs"
import { userInfo } from "node:os"
import { dirname, extname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { isClientError, request } from "../runtime/client.ts"
import type { Io } from "./io.ts"

/** The daemon to start: its files, and where to tell the user about it. */
interface Target {
  readonly io: Io
  readonly configPath: string
  readonly socket: string
  readonly initstat: string
}

/** The isinitd beside this file: `isinitd.js` when built, `isinitd.ts` under a TS loader. */
const daemonEntry = (): string => {
  const self = fileURLToPath(import.meta.url)
  return join(dirname(self), `isinitd${extname(self)}`)
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

const tail = (path: string, lines: number): string => {
  try {
    return readFileSync(path, "utf8").trimEnd().split("\n").slice(-lines).join("\n")
  } catch {
    return ""
  }
}

/** systemd's PATH for system services: the one services of an auto-started isinitd see. */
export const servicePath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/** The client's locale and time zone: how the operator reads dates and messages, no secret. */
const passedOn = (name: string): boolean => name === "LANG" || name === "LANGUAGE" || name === "TZ" || name.startsWith("LC_")

/**
 * The environment of an auto-started isinitd, and so of every service it starts. The daemon is
 * started by whoever ran the first tell, so the client's environment (tokens, a developer's PATH,
 * NODE_OPTIONS) would reach every service by accident. Instead, what systemd gives a system
 * service run as a user: its PATH, HOME, USER and LOGNAME; plus the client's locale and TZ.
 */
const daemonEnvironment = (client: NodeJS.ProcessEnv): NodeJS.ProcessEnv => {
  let user: { readonly username: string; readonly homedir: string }
  try {
    user = userInfo()
  } catch {
    // No passwd entry for this uid (a container's random user): the client's word for it.
    user = { username: client["USER"] ?? client["LOGNAME"] ?? "", homedir: client["HOME"] ?? "/" }
  }
  const env: NodeJS.ProcessEnv = { PATH: servicePath, HOME: user.homedir, USER: user.username, LOGNAME: user.username }
  for (const [name, value] of Object.entries(client)) if (value !== undefined && passedOn(name)) env[name] = value
  return env
}

/**
 * Starts isinitd detached, as IS::Init's first tell does, and waits (bounded) until it answers.
 * The daemon moves to / (`--chdir`, once its Node flags have been read where the client runs) and
 * gets a clean environment: it must not hold the client's directory nor pass on its environment.
 */
export const startDaemon = async (ctx: Target, log: string): Promise<"Answering" | "Failed"> => {
  mkdirSync(dirname(ctx.socket), { recursive: true, mode: 0o700 })
  const fd = openSync(log, "a", 0o600)
  let exited: string | undefined
  try {
    const args = [daemonEntry(), "-c", ctx.configPath, "-s", ctx.socket, "--initstat", ctx.initstat, "--chdir", "/"]
    const child = spawn(process.execPath, [...process.execArgv, ...args], {
      detached: true,
      stdio: ["ignore", fd, fd],
      env: daemonEnvironment(ctx.io.env),
    })
    child.once("exit", (code, signal) => (exited = signal === null ? `exit ${code}` : `signal ${signal}`))
    child.once("error", (error) => (exited = error.message))
    child.unref()
    ctx.io.err(`isinit: no daemon on ${ctx.socket}; started isinitd (pid ${child.pid ?? "?"}), its log: ${log}\n`)
  } finally {
    closeSync(fd)
  }
  const deadline = Date.now() + 20_000
  while (Date.now() < deadline) {
    const answer = await request(ctx.socket, { op: "ping" }, { timeoutMs: 2000 })
    if (!isClientError(answer)) return "Answering"
    // A daemon that died may have lost a race to another one: only a failed ping after its exit counts.
    if (exited !== undefined && answer._tag === "NoDaemon") {
      const recent = tail(log, 5)
      ctx.io.err(`isinit: isinitd stopped (${exited}) before answering${recent === "" ? "" : `; the end of ${log}:\n${recent}`}\n`)
      return "Failed"
    }
    await sleep(50)
  }
  ctx.io.err(`isinit: isinitd did not answer on ${ctx.socket} within 20 s; see ${log}\n`)
  return "Failed"
}
