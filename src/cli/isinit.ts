#!/usr/bin/env node
/**
 * isinit: the client. Tells the daemon to switch a group's runlevel (starting the daemon first
 * if none listens, as IS::Init does), stops everything, shows status, checks an isinittab, plans
 * a tell without doing it, and runs scenarios in the simulator.
 *
 * Exit codes: 0 ok, 1 rejected or failed, 2 usage.
 */
import { spawn } from "node:child_process"
import { closeSync, mkdirSync, openSync, readFileSync, realpathSync } from "node:fs"
import { userInfo } from "node:os"
import { dirname, extname, join, resolve } from "node:path"
import { fileURLToPath } from "node:url"
import { parseArgs } from "node:util"
import * as Effect from "effect/Effect"
import type { Answer, ClusterInfo, Request, Response } from "../codec/protocol.ts"
import { planAnswer } from "../codec/protocol.ts"
import type { Parsed, Problem } from "../core/config.ts"
import { emptyConfig, hasErrors } from "../core/config.ts"
import { checkSummary, formatProblem, parseInittab } from "../core/inittab.ts"
import { plan } from "../core/plan.ts"
import type { StatusReport } from "../core/report.ts"
import { initialStateWith } from "../core/state.ts"
import { parseStatusFile } from "../core/status.ts"
import type { ClientError } from "../runtime/client.ts"
import { awaitDaemonGone, formatSeconds, request } from "../runtime/client.ts"
import { configPathFrom, defaultSocketPath, resolvePaths, version } from "../runtime/daemon.ts"
import { insecureConfigReason } from "../runtime/strictModes.ts"
import { UsageError, expectCount, timeoutOptionMs, waitTimeoutMs } from "./args.ts"
import { endsAtBarrier, groupsTable, renderPlanSteps, renderStatus } from "./format.ts"

export const usage = `Usage:
  isinit [-c FILE] [-s SOCKET] GROUP LEVEL [--wait] [--timeout S] [--force]   (also: isinit tell ...)
  isinit [-c FILE] [-s SOCKET] stopall [--timeout S]                (also: isinit -k)
  isinit [-c FILE] [-s SOCKET] reload [--force] [--timeout S]
  isinit [-c FILE] [-s SOCKET] handover [--timeout S]
  isinit [-c FILE] [-s SOCKET] status [GROUP] [--level L] [--json] [--timeout S]
  isinit [-c FILE] check [--strict]
  isinit [-c FILE] [-s SOCKET] plan GROUP LEVEL [--json] [--timeout S]
  isinit simulate SCENARIO [--json] [--max-events N]
  isinit --etcd URLS [--cluster NAME] tell|clear|status|config|forget ...   (cluster mode, see
                                                  isinit --etcd URLS --help and docs/cluster.md;
                                                  --etcd-config FILE can give the URLs instead)
  isinit --help | --version

Commands:
  GROUP LEVEL   switch GROUP to runlevel LEVEL. If no daemon listens, isinitd is started first
                in the background with the same -c and -s, in /, with a clean environment
                (PATH, HOME, USER, LOGNAME, locale and TZ; see README), logging to isinitd.log
                beside the socket. --wait blocks until the transition is over: exit 0 when the
                group runs, 1 when a test entry failed, a later tell of another level replaced
                it, or --timeout S passed (default 600 s). Telling the level a group is at in
                fail reruns its failed tests. A group named like a command needs the tell form.
                A tell re-reads the isinittab; one that would stop more than half of the
                running entries (their lines gone, as in a file cut by a rewrite) is refused:
                --force applies it anyway (the share: :::removal-guard:).
  stopall       stop every process of every group; returns once every process is gone and the
                daemon has exited (so "isinit stopall && isinit GROUP LEVEL" starts afresh).
  reload        re-read the isinittab and re-apply every group's level (as SIGHUP does);
                --force as for a tell.
  handover      the daemon writes its state file and exits, leaving every process running;
                the next isinitd (started by hand, by systemd, or by the next tell) adopts them
                all. Returns once the daemon has exited. For upgrades and restarts of isinitd.
  status        groups (state, level) and their entries (mode, state, pid, restarts, jail);
                --json prints the daemon's status report. When the daemon cannot be asked (none
                runs, it does not answer, permission denied), the groups from the status file,
                saying why.
  check         print every error and warning of the isinittab with its line; exit 1 on errors.
                Warns of what the daemon or old clients trip over (group names the original
                protocol cannot carry, commands in daemon mode or too long to execute). As
                root, or with --strict, also the StrictModes refusal a root daemon would make
                (the file or its directory writable by others, or not owned by root).
  plan          what GROUP LEVEL would do now, in order (stops before starts), without doing it
                (against the running daemon's state, or everything stopped when no daemon runs).
  simulate      run a scenario file in the simulator (virtual time) and print its timeline.
                A scenario that runs away (a respawn loop without end, a long run) is
                stopped after --max-events N events (default 100000): exit 1, saying so.

Options:
  -c, --config FILE   the isinittab (default: $ISINITTAB, else /etc/isinittab)
  -s, --socket PATH   the daemon's socket (default: the isinittab's :::socket:, else ${defaultSocketPath})
  -k                  same as stopall
      --wait          (tell) wait for the transition to end
      --timeout S     give up after S seconds: waiting for the daemon's answer (default 10), for
                      a --wait transition (default 600), for the daemon to exit after stopall
                      (default: the kill grace + 30) or handover (default 30). A tell that timed
                      out may still be applied: the daemon got it and may be stuck or stopped
      --force         (tell, reload) apply the isinittab even if it stops most of what runs
      --level L       (status) only groups at level L
      --json          (status, plan, simulate) machine-readable output
      --strict        (check) check ownership and modes as a root daemon would
      --max-events N  (simulate) stop the simulation after N events
  -h, --help          this text
  -V, --version       print the version
`

const synopsis = usage.slice(0, usage.indexOf("\nCommands:") + 1)

/** Where the command's output goes; tests pass their own. */
export interface Io {
  readonly out: (text: string) => void
  readonly err: (text: string) => void
  readonly env: NodeJS.ProcessEnv
}

const processIo: Io = {
  out: (text) => void process.stdout.write(text),
  err: (text) => void process.stderr.write(text),
  env: process.env,
}



/** How long to wait for the daemon's answer without --timeout. */
const defaultAnswerMs = 10_000

type Command =
  /** `timeoutMs` bounds the transition with `wait`, else the answer. */
  | { readonly _tag: "Tell"; readonly group: string; readonly level: string; readonly wait: boolean; readonly timeoutMs: number; readonly force: boolean }
  /** `timeoutMs` bounds the wait for the daemon's exit; `undefined`: the default (see `exitTimeoutMs`). */
  | { readonly _tag: "StopAll"; readonly timeoutMs: number | undefined }
  | { readonly _tag: "Reload"; readonly force: boolean; readonly timeoutMs: number }
  | { readonly _tag: "Handover"; readonly timeoutMs: number | undefined }
  | { readonly _tag: "Status"; readonly group: string | undefined; readonly level: string | undefined; readonly json: boolean; readonly timeoutMs: number }
  | { readonly _tag: "Check"; readonly strict: boolean }
  | { readonly _tag: "Plan"; readonly group: string; readonly level: string; readonly json: boolean; readonly timeoutMs: number }
  | { readonly _tag: "Simulate"; readonly file: string; readonly json: boolean; readonly maxEvents: number | undefined }
  | { readonly _tag: "Help" }
  | { readonly _tag: "Version" }

interface Invocation {
  readonly command: Command
  readonly config: string | undefined
  readonly socket: string | undefined
}

const options = {
  config: { type: "string", short: "c" },
  socket: { type: "string", short: "s" },
  k: { type: "boolean", short: "k" },
  wait: { type: "boolean" },
  timeout: { type: "string" },
  level: { type: "string" },
  json: { type: "boolean" },
  force: { type: "boolean" },
  strict: { type: "boolean" },
  "max-events": { type: "string" },
  help: { type: "boolean", short: "h" },
  version: { type: "boolean", short: "V" },
} as const

type Values = ReturnType<typeof parseArgs<{ options: typeof options; allowPositionals: true }>>["values"]

const onlyFor = (values: Values, allowed: readonly (keyof Values)[], command: string): void => {
  for (const flag of ["wait", "timeout", "level", "json", "force", "strict", "max-events"] as const) {
    if (values[flag] !== undefined && !allowed.includes(flag)) throw new UsageError(`--${flag} does not apply to ${command}`)
  }
}

const answerTimeoutMs = (values: Values): number => (values.timeout === undefined ? defaultAnswerMs : timeoutOptionMs(values.timeout))

const tellCommand = (values: Values, group: string, level: string): Command => {
  onlyFor(values, ["wait", "timeout", "force"], "a tell")
  const wait = values.wait === true
  return { _tag: "Tell", group, level, wait, timeoutMs: wait ? waitTimeoutMs(values) : answerTimeoutMs(values), force: values.force === true }
}

const stopAllCommand = (values: Values): Command => {
  onlyFor(values, ["timeout"], "stopall")
  return { _tag: "StopAll", timeoutMs: values.timeout === undefined ? undefined : timeoutOptionMs(values.timeout) }
}

const maxEventsOf = (text: string | undefined): number | undefined => {
  if (text === undefined) return undefined
  const n = Number(text)
  if (!/^\d+$/.test(text) || n < 1 || !Number.isSafeInteger(n)) throw new UsageError(`--max-events takes a whole number of events, at least 1, not "${text}"`)
  return n
}

const commandOf = (values: Values, positionals: readonly string[]): Command => {
  if (values.help === true) return { _tag: "Help" }
  if (values.version === true) return { _tag: "Version" }
  if (values.k === true) {
    if (positionals.length > 0) throw new UsageError(`-k (stopall) takes no arguments, got ${positionals.join(" ")}`)
    return stopAllCommand(values)
  }
  const [first, ...rest] = positionals
  if (first === undefined) throw new UsageError("missing command: give GROUP LEVEL, or one of stopall, reload, handover, status, check, plan, simulate")
  switch (first) {
    case "help":
      return { _tag: "Help" }
    case "tell": {
      const [group = "", level = ""] = expectCount("tell", rest, 2, "GROUP LEVEL")
      return tellCommand(values, group, level)
    }
    case "stopall":
      expectCount("stopall", rest, 0, "no arguments")
      return stopAllCommand(values)
    case "reload":
      expectCount("reload", rest, 0, "no arguments (a group named reload needs the tell form)")
      onlyFor(values, ["force", "timeout"], "reload")
      return { _tag: "Reload", force: values.force === true, timeoutMs: answerTimeoutMs(values) }
    case "handover":
      expectCount("handover", rest, 0, "no arguments")
      onlyFor(values, ["timeout"], "handover")
      return { _tag: "Handover", timeoutMs: values.timeout === undefined ? undefined : timeoutOptionMs(values.timeout) }
    case "status":
      if (rest.length > 1) throw new UsageError(`status takes at most one GROUP, got ${rest.join(" ")}`)
      onlyFor(values, ["level", "json", "timeout"], "status")
      return { _tag: "Status", group: rest[0], level: values.level, json: values.json === true, timeoutMs: answerTimeoutMs(values) }
    case "check":
      expectCount("check", rest, 0, "no arguments (the isinittab comes from -c or $ISINITTAB)")
      onlyFor(values, ["strict"], "check")
      return { _tag: "Check", strict: values.strict === true }
    case "plan": {
      const [group = "", level = ""] = expectCount("plan", rest, 2, "GROUP LEVEL")
      onlyFor(values, ["json", "timeout"], "plan")
      return { _tag: "Plan", group, level, json: values.json === true, timeoutMs: answerTimeoutMs(values) }
    }
    case "simulate": {
      const [file = ""] = expectCount("simulate", rest, 1, "one SCENARIO file")
      onlyFor(values, ["json", "max-events"], "simulate")
      return { _tag: "Simulate", file, json: values.json === true, maxEvents: maxEventsOf(values["max-events"]) }
    }
    default:
      if (positionals.length === 2) {
        const [group = "", level = ""] = positionals
        return tellCommand(values, group, level)
      }
      throw new UsageError(
        positionals.length === 1
          ? `unknown command "${first}": to tell a group, give GROUP LEVEL`
          : `unknown command "${first}" (a tell is GROUP LEVEL: two words, not ${positionals.length})`,
      )
  }
}

export const parseInvocation = (argv: readonly string[]): Invocation => {
  let parsed: { values: Values; positionals: string[] }
  try {
    parsed = parseArgs({ args: [...argv], options, allowPositionals: true, strict: true })
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error))
  }
  const { values, positionals } = parsed
  return { command: commandOf(values, positionals), config: values.config, socket: values.socket }
}

// ---------------------------------------------------------------------------------------------
// Paths and config

interface Context {
  readonly io: Io
  readonly configPath: string
  /** The isinittab as read now; undefined when it cannot be read. */
  readonly parsed: Parsed | undefined
  readonly readError: string | undefined
  readonly socket: string
  readonly initstat: string
}

const emptyParsed: Parsed = { config: emptyConfig, problems: [] }

const readError = (error: unknown): string => {
  const code = typeof error === "object" && error !== null && "code" in error ? String(error.code) : undefined
  return code === "ENOENT" ? "no such file" : code === "EACCES" ? "permission denied" : error instanceof Error ? error.message : String(error)
}

const contextOf = (invocation: Invocation, io: Io): Context => {
  const configPath = resolve(configPathFrom(invocation.config, io.env))
  let parsed: Parsed | undefined
  let failure: string | undefined
  try {
    parsed = parseInittab(readFileSync(configPath, "utf8"))
  } catch (error) {
    failure = readError(error)
  }
  const paths = resolvePaths({ configPath, socketPath: invocation.socket, initstatPath: undefined }, parsed ?? emptyParsed)
  return { io, configPath, parsed, readError: failure, socket: paths.socket, initstat: paths.initstat }
}

const ask = (ctx: Context, req: Request, timeoutMs?: number): Promise<Response | ClientError> =>
  Effect.runPromise(Effect.catch(request(ctx.socket, req, timeoutMs === undefined ? {} : { timeoutMs }), (e: ClientError) => Effect.succeed(e)))

const isClientError = (value: Response | ClientError): value is ClientError => "_tag" in value

const noDaemonHint = (ctx: Context): string =>
  `start one with: isinitd -c ${ctx.configPath} -s ${ctx.socket} (or run isinit GROUP LEVEL, which starts it)`

/** Requests that change something: one that timed out after reaching the daemon may still be applied. */
const changes: ReadonlySet<Request["op"]> = new Set(["tell", "stopall", "reload", "handover"])

/** What a timeout means for the request: a stopped or stuck daemon still holds it. */
const timeoutConsequence = (error: Extract<ClientError, { readonly _tag: "ClientTimeout" }>, op: Request["op"]): string =>
  error.stage === "connecting"
    ? "the request was not delivered"
    : changes.has(op)
      ? "the daemon got the request and may still apply it when it resumes (see isinit status)"
      : "the daemon got the request but did not answer"

/** Prints a failure to talk to the daemon and returns the exit code. */
const talkFailure = (ctx: Context, error: ClientError, op: Request["op"]): number => {
  switch (error._tag) {
    case "NoDaemon":
      ctx.io.err(`isinit: no daemon on ${ctx.socket}: ${noDaemonHint(ctx)}\n`)
      return 1
    case "ClientTimeout":
      ctx.io.err(`isinit: ${error.message}: ${timeoutConsequence(error, op)}; is the daemon stopped or stuck? see its log (${logPathOf(ctx)} when isinit started it)\n`)
      return 1
    case "BadAnswer":
    case "ConnectionFailed":
    case "SocketPathTooLong":
      ctx.io.err(`isinit: ${error.message}\n`)
      return 1
  }
}

/** Why the daemon could not be asked, in a few words (for the status fallback). */
const unaskable = (ctx: Context, error: ClientError): string => {
  switch (error._tag) {
    case "NoDaemon":
      return `no daemon on ${ctx.socket}`
    case "ClientTimeout":
      return `the daemon on ${ctx.socket} did not answer within ${formatSeconds(error.timeoutMs)} (stopped or stuck?)`
    case "ConnectionFailed":
    case "BadAnswer":
      return `cannot ask the daemon on ${ctx.socket}: ${error.reason}`
    case "SocketPathTooLong":
      return `cannot ask the daemon: ${error.message}`
  }
}

// ---------------------------------------------------------------------------------------------
// Starting the daemon

export const logPathOf = (ctx: Pick<Context, "socket">): string => join(dirname(ctx.socket), "isinitd.log")

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
export const daemonEnvironment = (client: NodeJS.ProcessEnv): NodeJS.ProcessEnv => {
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
const startDaemon = async (ctx: Context): Promise<boolean> => {
  const log = logPathOf(ctx)
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
    const answer = await ask(ctx, { op: "ping" }, 2000)
    if (!isClientError(answer)) return true
    // A daemon that died may have lost a race to another one: only a failed ping after its exit counts.
    if (exited !== undefined && answer._tag === "NoDaemon") {
      const recent = tail(log, 5)
      ctx.io.err(`isinit: isinitd stopped (${exited}) before answering${recent === "" ? "" : `; the end of ${log}:\n${recent}`}\n`)
      return false
    }
    await sleep(50)
  }
  ctx.io.err(`isinit: isinitd did not answer on ${ctx.socket} within 20 s; see ${log}\n`)
  return false
}

// ---------------------------------------------------------------------------------------------
// Commands

const tell = async (ctx: Context, command: Extract<Command, { readonly _tag: "Tell" }>): Promise<number> => {
  const req: Request = {
    op: "tell",
    group: command.group,
    level: command.level,
    wait: command.wait,
    ...(command.wait ? { timeoutMs: command.timeoutMs } : {}),
    ...(command.force ? { force: true } : {}),
  }
  const send = () => ask(ctx, req, command.wait ? command.timeoutMs + defaultAnswerMs : command.timeoutMs)
  let answer = await send()
  if (isClientError(answer) && answer._tag === "NoDaemon") {
    if (ctx.parsed === undefined) {
      ctx.io.err(`isinit: no daemon on ${ctx.socket}, and cannot start one: cannot read the isinittab ${ctx.configPath} (${ctx.readError ?? "?"}); give it with -c FILE or $ISINITTAB\n`)
      return 1
    }
    if (!(await startDaemon(ctx))) return 1
    answer = await send()
  }
  if (isClientError(answer)) return talkFailure(ctx, answer, "tell")
  if (!answer.ok) {
    ctx.io.err(`isinit: tell ${command.group} ${command.level} rejected: ${answer.error}\n`)
    return 1
  }
  if (answer.op === "tell" && !command.wait && answer.message !== undefined) ctx.io.err(`isinit: ${command.group} ${command.level}: ${answer.message}\n`)
  if (answer.op !== "tell" || !command.wait) return 0
  const what = `${command.group}: level ${command.level}`
  switch (answer.outcome) {
    case "run":
      ctx.io.out(`${what} reached (run)\n`)
      return 0
    case "fail":
      ctx.io.err(`isinit: ${what} ended in fail (${answer.message ?? "a test entry exited non-zero"}); see isinit status ${command.group}\n`)
      return 1
    default:
      // superseded, stopped, timeout
      ctx.io.err(`isinit: ${what} not reached (${answer.outcome ?? "no outcome"})${answer.message === undefined ? "" : `: ${answer.message}`}\n`)
      return 1
  }
}

/**
 * How long stopall and handover wait for the daemon to exit: stopping ends at the latest one kill
 * grace after the stopall (then SIGKILL), so the grace of the isinittab plus a margin.
 */
const exitTimeoutMs = (ctx: Context, command: Extract<Command, { readonly _tag: "StopAll" | "Handover" }>): number =>
  command.timeoutMs ?? (command._tag === "Handover" ? 30_000 : (ctx.parsed?.config.limits.killGraceMs ?? 30_000) + 30_000)

/**
 * Waits until the daemon that answered has exited, so that the next command (a tell that starts a
 * new daemon, a successor's start) never finds it still there; says so when it takes too long.
 */
const awaitExit = async (ctx: Context, command: Extract<Command, { readonly _tag: "StopAll" | "Handover" }>, answer: Response): Promise<number> => {
  const daemon = answer.ok && (answer.op === "stopall" || answer.op === "handover") ? answer.daemon : undefined
  const timeoutMs = exitTimeoutMs(ctx, command)
  if ((await awaitDaemonGone(ctx.socket, daemon, timeoutMs)) === "gone") return 0
  const what = command._tag === "StopAll" ? "stopall" : "handover"
  ctx.io.err(
    `isinit: ${what}: the daemon on ${ctx.socket} still runs ${formatSeconds(timeoutMs)} after it was asked${command._tag === "StopAll" ? " (a process still stopping? see isinit status)" : ""}; it goes on; see its log (${logPathOf(ctx)} when isinit started it)\n`,
  )
  return 1
}

const stopAll = async (ctx: Context, command: Extract<Command, { readonly _tag: "StopAll" }>): Promise<number> => {
  const answer = await ask(ctx, { op: "stopall" })
  if (isClientError(answer)) {
    if (answer._tag === "NoDaemon") {
      ctx.io.err(`isinit: no daemon on ${ctx.socket}: nothing to stop\n`)
      return 0
    }
    return talkFailure(ctx, answer, "stopall")
  }
  if (!answer.ok) {
    ctx.io.err(`isinit: stopall rejected: ${answer.error}\n`)
    return 1
  }
  return awaitExit(ctx, command, answer)
}

const handover = async (ctx: Context, command: Extract<Command, { readonly _tag: "Handover" }>): Promise<number> => {
  const answer = await ask(ctx, { op: "handover" })
  if (isClientError(answer)) {
    if (answer._tag === "NoDaemon") {
      ctx.io.err(`isinit: no daemon on ${ctx.socket}: nothing to hand over\n`)
      return 0
    }
    return talkFailure(ctx, answer, "handover")
  }
  if (!answer.ok || answer.op !== "handover") {
    ctx.io.err(`isinit: handover refused: ${answer.ok ? `unexpected answer ${answer.op}` : answer.error}\n`)
    return 1
  }
  const code = await awaitExit(ctx, command, answer)
  if (code === 0) {
    const pid = answer.daemon === undefined ? "" : ` (pid ${answer.daemon.pid})`
    ctx.io.out(`isinitd${pid} handed over ${answer.processes} process(es) and exited; the next isinitd on ${ctx.socket} adopts them\n`)
  }
  return code
}

const reload = async (ctx: Context, command: Extract<Command, { readonly _tag: "Reload" }>): Promise<number> => {
  const answer = await ask(ctx, command.force ? { op: "reload", force: true } : { op: "reload" }, command.timeoutMs)
  if (isClientError(answer)) {
    if (answer._tag === "NoDaemon") {
      ctx.io.err(`isinit: no daemon on ${ctx.socket}: nothing to reload (a daemon reads the isinittab when it starts)\n`)
      return 0
    }
    return talkFailure(ctx, answer, "reload")
  }
  if (!answer.ok) {
    ctx.io.err(`isinit: ${answer.error}\n`)
    return 1
  }
  return 0
}

const filterReport = (report: StatusReport, group: string | undefined, level: string | undefined): StatusReport => ({
  ...report,
  groups: report.groups.filter((g) => (group === undefined || g.group === group) && (level === undefined || g.level === level)),
})

/** The status file's groups, when the daemon cannot be asked (`why`): none runs, it is stuck, or it refuses us. */
const statusFromFile = (ctx: Context, command: Extract<Command, { readonly _tag: "Status" }>, why: ClientError): number => {
  const reason = unaskable(ctx, why)
  let text: string
  try {
    text = readFileSync(ctx.initstat, "utf8")
  } catch (error) {
    const hint = why._tag === "NoDaemon" ? `nothing has run; ${noDaemonHint(ctx)}` : "nothing to show"
    ctx.io.err(`isinit: ${reason}, and no status file at ${ctx.initstat} (${readError(error)}): ${hint}\n`)
    return 1
  }
  const read = parseStatusFile(text)
  if (!read.complete) {
    ctx.io.err(`isinit: the status file ${ctx.initstat} is incomplete (no matching !startid/!endid)\n`)
    return 1
  }
  const rows = read.rows.filter((r) => (command.group === undefined || r.group === command.group) && (command.level === undefined || r.level === command.level))
  if (command.json) {
    const daemon = why._tag === "NoDaemon" ? { daemon: "down" } : { daemon: "unreachable", reason }
    ctx.io.out(`${JSON.stringify({ ...daemon, socket: ctx.socket, statusFile: ctx.initstat, groups: rows }, null, 2)}\n`)
    return 0
  }
  ctx.io.err(`isinit: ${reason}; the last status it wrote (${ctx.initstat}):\n`)
  ctx.io.out(groupsTable(rows))
  return 0
}

const status = async (ctx: Context, command: Extract<Command, { readonly _tag: "Status" }>): Promise<number> => {
  const answer = await ask(ctx, { op: "status" }, command.timeoutMs)
  if (isClientError(answer)) return statusFromFile(ctx, command, answer)
  if (!answer.ok || answer.op !== "status") {
    ctx.io.err(`isinit: status failed: ${answer.ok ? `unexpected answer ${answer.op}` : answer.error}\n`)
    return 1
  }
  const shown = filterReport(answer.report, command.group, command.level)
  if (command.group !== undefined && shown.groups.length === 0 && !answer.report.groups.some((g) => g.group === command.group)) {
    ctx.io.err(`isinit: no group "${command.group}" (groups: ${answer.report.groups.map((g) => g.group).join(", ") || "none"})\n`)
    return 1
  }
  const cluster = answer.cluster
  if (command.json) {
    ctx.io.out(`${JSON.stringify(cluster === undefined ? shown : { ...shown, cluster }, null, 2)}\n`)
    return 0
  }
  if (cluster !== undefined) ctx.io.out(clusterLine(cluster))
  ctx.io.out(renderStatus(shown, answer.now))
  return 0
}

/** The first line of a cluster-mode daemon's status: where it belongs and whether etcd answers. */
const clusterLine = (c: ClusterInfo): string => {
  const config = c.configSource === "etcd" ? `config #${c.configSeq ?? "?"} from etcd` : c.configSource === "file" ? "local config (etcd has none)" : "no config"
  const etcd = c.connected ? `etcd connected since ${c.since}` : `etcd UNREACHABLE since ${c.since}: ${c.error ?? "?"} (everything keeps running; retrying)`
  const pending = c.pendingOverrides.length === 0 ? "" : `; not yet recorded in etcd: ${c.pendingOverrides.join(", ")}`
  return `cluster ${c.cluster}, node ${c.node}: ${config}; ${etcd}${pending}\n\n`
}

/** StrictModes, as a root daemon applies it at every read (runtime/strictModes.ts): a problem of the whole file. */
const strictProblems = async (path: string): Promise<Problem[]> => {
  try {
    const reason = await insecureConfigReason(path, 0)
    return reason === undefined ? [] : [{ severity: "error", line: 0, message: `${reason} (a root isinitd refuses it)` }]
  } catch (error) {
    return [{ severity: "error", line: 0, message: `cannot check its ownership and modes: ${readError(error)}` }]
  }
}

const check = async (ctx: Context, command: Extract<Command, { readonly _tag: "Check" }>): Promise<number> => {
  if (ctx.parsed === undefined) {
    ctx.io.err(`isinit: cannot read the isinittab ${ctx.configPath}: ${ctx.readError ?? "?"}; give it with -c FILE or $ISINITTAB\n`)
    return 1
  }
  const strict = command.strict || process.getuid?.() === 0 ? await strictProblems(ctx.configPath) : []
  const parsed: Parsed = { ...ctx.parsed, problems: [...ctx.parsed.problems, ...strict] }
  for (const problem of parsed.problems) ctx.io.out(`${formatProblem(ctx.configPath, problem)}\n`)
  if (hasErrors(parsed)) {
    ctx.io.out(`${checkSummary(ctx.configPath, parsed)}\n`)
    return 1
  }
  const { entries, byGroup } = parsed.config
  ctx.io.out(`ok: ${entries.length} ${entries.length === 1 ? "entry" : "entries"} in ${byGroup.size} ${byGroup.size === 1 ? "group" : "groups"}\n`)
  return 0
}

type PlanAnswer = Extract<Answer, { readonly op: "plan" }>

const printPlan = (ctx: Context, command: Extract<Command, { readonly _tag: "Plan" }>, answer: PlanAnswer): number => {
  const { accepted, reason, effects } = answer
  if (command.json) {
    ctx.io.out(`${JSON.stringify({ group: command.group, level: command.level, accepted, ...(reason === undefined ? {} : { reason }), effects }, null, 2)}\n`)
    return accepted ? 0 : 1
  }
  if (!accepted) {
    ctx.io.err(`isinit: plan: tell ${command.group} ${command.level} would be rejected${reason === undefined ? "" : `: ${reason}`}\n`)
    return 1
  }
  const steps = renderPlanSteps(effects)
  if (steps.length === 0) {
    ctx.io.out(`tell ${command.group} ${command.level}: nothing to start or stop\n`)
    return 0
  }
  ctx.io.out(`tell ${command.group} ${command.level} would, in this order:\n${steps.map((s) => `  ${s}`).join("\n")}\n`)
  if (effects.some((effect) => effect._tag === "Kill")) {
    ctx.io.out("A group's entries start only once its stopped processes are gone (at most the kill grace).\n")
  }
  if (endsAtBarrier(effects)) {
    ctx.io.out("Assuming every wait and test exits 0; later entries start only when they do (isinit simulate shows timing).\n")
  }
  return 0
}

const planCommand = async (ctx: Context, command: Extract<Command, { readonly _tag: "Plan" }>): Promise<number> => {
  const answer = await ask(ctx, { op: "plan", group: command.group, level: command.level }, command.timeoutMs)
  if (!isClientError(answer)) {
    if (!answer.ok) {
      ctx.io.err(`isinit: plan ${command.group} ${command.level} rejected: ${answer.error}\n`)
      return 1
    }
    if (answer.op !== "plan") {
      ctx.io.err(`isinit: unexpected answer to plan: ${answer.op}\n`)
      return 1
    }
    return printPlan(ctx, command, answer)
  }
  if (answer._tag !== "NoDaemon") return talkFailure(ctx, answer, "plan")
  if (ctx.parsed === undefined) {
    ctx.io.err(`isinit: no daemon on ${ctx.socket}, and cannot read the isinittab ${ctx.configPath} (${ctx.readError ?? "?"}) to plan against\n`)
    return 1
  }
  ctx.io.err(`isinit: no daemon on ${ctx.socket}: planning against an initial state (everything stopped)\n`)
  const result = plan(initialStateWith(ctx.parsed.config), command.group, command.level, ctx.parsed, 0)
  return printPlan(ctx, command, planAnswer(command.group, command.level, result))
}

const simulate = async (ctx: Pick<Context, "io">, command: Extract<Command, { readonly _tag: "Simulate" }>): Promise<number> => {
  let text: string
  try {
    text = readFileSync(command.file, "utf8")
  } catch (error) {
    ctx.io.err(`isinit: cannot read the scenario ${command.file}: ${readError(error)}\n`)
    return 1
  }
  // Loaded on demand: the other commands do not pay for the simulator.
  const { parseScenario, renderTimeline, runScenario } = await import("../sim/scenario.ts")
  const parsed = parseScenario(text)
  if (parsed.errors.length > 0) {
    for (const e of parsed.errors) ctx.io.err(`${command.file}:${e.line}: error: ${e.message}\n`)
    return 1
  }
  const result = runScenario(parsed.scenario, command.maxEvents === undefined ? {} : { maxEvents: command.maxEvents })
  const { timeline, violations, report, endMs, idle, outOfEvents } = result
  if (command.json) {
    ctx.io.out(`${JSON.stringify({ timeline, violations, report, endMs, idle, outOfEvents: outOfEvents ?? null }, null, 2)}\n`)
  } else {
    ctx.io.out(renderTimeline(timeline))
    ctx.io.out(`\n${outOfEvents === undefined ? "at the end" : "where it stopped"} (${(endMs / 1000).toFixed(3)}s${idle ? ", idle" : ""}):\n`)
    ctx.io.out(renderStatus(report, endMs))
    for (const v of violations) ctx.io.err(`isinit: invariant ${v.invariant} broken at ${v.at} ms: ${v.message}\n`)
  }
  if (outOfEvents !== undefined) {
    ctx.io.err(
      `isinit: simulate stopped after ${outOfEvents.maxEvents} events, at ${(outOfEvents.at / 1000).toFixed(3)}s of virtual time, before the scenario's end: ` +
        `a respawn loop without end, or a long run? What happened until then is shown; --max-events N raises the bound\n`,
    )
  }
  return violations.length > 0 || outOfEvents !== undefined ? 1 : 0
}

/** Runs `isinit` with these arguments; resolves to the exit code. */
export const main = async (argv: readonly string[], io: Io = processIo): Promise<number> => {
  // Cluster commands talk to etcd; loaded on demand so local commands do not pay for the client.
  if (argv.some((a) => /^--etcd(-config)?(=|$)/.test(a))) return (await import("./cluster.ts")).clusterMain(argv, io)
  let invocation: Invocation
  try {
    invocation = parseInvocation(argv)
  } catch (error) {
    if (!(error instanceof UsageError)) throw error
    io.err(`isinit: ${error.message}\n${synopsis}Run isinit --help for more.\n`)
    return 2
  }
  const { command } = invocation
  if (command._tag === "Help") {
    io.out(usage)
    return 0
  }
  if (command._tag === "Version") {
    io.out(`isinit ${version}\n`)
    return 0
  }
  if (command._tag === "Simulate") return simulate({ io }, command)
  const ctx = contextOf(invocation, io)
  switch (command._tag) {
    case "Tell":
      return tell(ctx, command)
    case "StopAll":
      return stopAll(ctx, command)
    case "Reload":
      return reload(ctx, command)
    case "Handover":
      return handover(ctx, command)
    case "Status":
      return status(ctx, command)
    case "Check":
      return check(ctx, command)
    case "Plan":
      return planCommand(ctx, command)
  }
}

const invokedDirectly = (): boolean => {
  const script = process.argv[1]
  if (script === undefined) return false
  try {
    return realpathSync(script) === realpathSync(fileURLToPath(import.meta.url))
  } catch {
    return false
  }
}

if (invokedDirectly()) {
  // `isinit status | head`: a reader that went away is not an error of ours.
  process.stdout.on("error", (error: NodeJS.ErrnoException) => {
    if (error.code === "EPIPE") process.exit(process.exitCode ?? 0)
    throw error
  })
  // Nobody reads our messages any more (`isinit ... 2>&1 | head`): nothing left to tell them.
  process.stderr.on("error", () => undefined)
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code
    },
    (error: unknown) => {
      process.stderr.write(`isinit: unexpected failure: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`)
      process.exitCode = 1
    },
  )
}
