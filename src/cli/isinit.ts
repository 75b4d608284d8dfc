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
import { dirname, extname, join, resolve } from "node:path"
import { fileURLToPath } from "node:url"
import { parseArgs } from "node:util"
import * as Effect from "effect/Effect"
import type { ClusterInfo, Request, Response } from "../codec/protocol.ts"
import type { Parsed } from "../core/config.ts"
import { emptyConfig, hasErrors } from "../core/config.ts"
import { checkSummary, formatProblem, parseInittab } from "../core/inittab.ts"
import { plan } from "../core/plan.ts"
import type { StatusReport } from "../core/report.ts"
import { initialStateWith } from "../core/state.ts"
import { parseStatusFile } from "../core/status.ts"
import type { ClientError } from "../runtime/client.ts"
import { request } from "../runtime/client.ts"
import { configPathFrom, defaultSocketPath, resolvePaths, version } from "../runtime/daemon.ts"
import { UsageError, expectCount, waitTimeoutMs } from "./args.ts"
import { endsAtBarrier, groupsTable, planRejection, renderPlanSteps, renderStatus } from "./format.ts"

export const usage = `Usage:
  isinit [-c FILE] [-s SOCKET] GROUP LEVEL [--wait [--timeout S]]   (also: isinit tell GROUP LEVEL)
  isinit [-c FILE] [-s SOCKET] stopall                              (also: isinit -k)
  isinit [-c FILE] [-s SOCKET] status [GROUP] [--level L] [--json]
  isinit [-c FILE] check
  isinit [-c FILE] [-s SOCKET] plan GROUP LEVEL [--json]
  isinit simulate SCENARIO [--json]
  isinit --etcd URLS [--cluster NAME] tell|clear|status|config|forget ...   (cluster mode, see
                                                  isinit --etcd URLS --help and docs/cluster.md;
                                                  --etcd-config FILE can give the URLs instead)
  isinit --help | --version

Commands:
  GROUP LEVEL   switch GROUP to runlevel LEVEL. If no daemon listens, isinitd is started first
                in the background with the same -c and -s, logging to isinitd.log beside the
                socket. --wait blocks until the transition is over: exit 0 when the group runs,
                1 when a test entry failed, a later tell replaced it, or --timeout S passed
                (default 600 s). A group named like a command needs the tell form.
  stopall       stop every process of every group; the daemon then exits.
  status        groups (state, level) and their entries (mode, state, pid, restarts, jail);
                --json prints the daemon's status report. With the daemon down, the groups
                from the status file.
  check         print every error and warning of the isinittab with its line; exit 1 on errors.
  plan          what GROUP LEVEL would do now, in order, without doing it (against the running
                daemon's state, or everything stopped when no daemon runs).
  simulate      run a scenario file in the simulator (virtual time) and print its timeline.

Options:
  -c, --config FILE   the isinittab (default: $ISINITTAB, else /etc/isinittab)
  -s, --socket PATH   the daemon's socket (default: the isinittab's :::socket:, else ${defaultSocketPath})
  -k                  same as stopall
      --wait          (tell) wait for the transition to end
      --timeout S     (tell --wait) give up after S seconds
      --level L       (status) only groups at level L
      --json          (status, plan, simulate) machine-readable output
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



type Command =
  | { readonly _tag: "Tell"; readonly group: string; readonly level: string; readonly wait: boolean; readonly timeoutMs: number }
  | { readonly _tag: "StopAll" }
  | { readonly _tag: "Status"; readonly group: string | undefined; readonly level: string | undefined; readonly json: boolean }
  | { readonly _tag: "Check" }
  | { readonly _tag: "Plan"; readonly group: string; readonly level: string; readonly json: boolean }
  | { readonly _tag: "Simulate"; readonly file: string; readonly json: boolean }
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
  help: { type: "boolean", short: "h" },
  version: { type: "boolean", short: "V" },
} as const

type Values = ReturnType<typeof parseArgs<{ options: typeof options; allowPositionals: true }>>["values"]

const onlyFor = (values: Values, allowed: readonly (keyof Values)[], command: string): void => {
  for (const flag of ["wait", "timeout", "level", "json"] as const) {
    if (values[flag] !== undefined && !allowed.includes(flag)) throw new UsageError(`--${flag} does not apply to ${command}`)
  }
}

const tellCommand = (values: Values, group: string, level: string): Command => {
  onlyFor(values, ["wait", "timeout"], "a tell")
  return { _tag: "Tell", group, level, wait: values.wait === true, timeoutMs: waitTimeoutMs(values) }
}

const commandOf = (values: Values, positionals: readonly string[]): Command => {
  if (values.help === true) return { _tag: "Help" }
  if (values.version === true) return { _tag: "Version" }
  if (values.k === true) {
    if (positionals.length > 0) throw new UsageError(`-k (stopall) takes no arguments, got ${positionals.join(" ")}`)
    onlyFor(values, [], "stopall")
    return { _tag: "StopAll" }
  }
  const [first, ...rest] = positionals
  if (first === undefined) throw new UsageError("missing command: give GROUP LEVEL, or one of stopall, status, check, plan, simulate")
  switch (first) {
    case "help":
      return { _tag: "Help" }
    case "tell": {
      const [group = "", level = ""] = expectCount("tell", rest, 2, "GROUP LEVEL")
      return tellCommand(values, group, level)
    }
    case "stopall":
      expectCount("stopall", rest, 0, "no arguments")
      onlyFor(values, [], "stopall")
      return { _tag: "StopAll" }
    case "status":
      if (rest.length > 1) throw new UsageError(`status takes at most one GROUP, got ${rest.join(" ")}`)
      onlyFor(values, ["level", "json"], "status")
      return { _tag: "Status", group: rest[0], level: values.level, json: values.json === true }
    case "check":
      expectCount("check", rest, 0, "no arguments (the isinittab comes from -c or $ISINITTAB)")
      onlyFor(values, [], "check")
      return { _tag: "Check" }
    case "plan": {
      const [group = "", level = ""] = expectCount("plan", rest, 2, "GROUP LEVEL")
      onlyFor(values, ["json"], "plan")
      return { _tag: "Plan", group, level, json: values.json === true }
    }
    case "simulate": {
      const [file = ""] = expectCount("simulate", rest, 1, "one SCENARIO file")
      onlyFor(values, ["json"], "simulate")
      return { _tag: "Simulate", file, json: values.json === true }
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

/** Prints a client failure that is not "no daemon" and returns the exit code. */
const talkFailure = (ctx: Context, error: ClientError): number => {
  switch (error._tag) {
    case "NoDaemon":
      ctx.io.err(`isinit: no daemon on ${ctx.socket}: ${noDaemonHint(ctx)}\n`)
      return 1
    case "ClientTimeout":
      ctx.io.err(`isinit: ${error.message}; is the daemon stuck? see its log (${logPathOf(ctx)} when isinit started it)\n`)
      return 1
    case "BadAnswer":
    case "ConnectionFailed":
      ctx.io.err(`isinit: ${error.message}\n`)
      return 1
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

/** Starts isinitd detached, as IS::Init's first tell does, and waits (bounded) until it answers. */
const startDaemon = async (ctx: Context): Promise<boolean> => {
  const log = logPathOf(ctx)
  mkdirSync(dirname(ctx.socket), { recursive: true, mode: 0o700 })
  const fd = openSync(log, "a", 0o600)
  let exited: string | undefined
  try {
    const child = spawn(process.execPath, [...process.execArgv, daemonEntry(), "-c", ctx.configPath, "-s", ctx.socket], {
      detached: true,
      stdio: ["ignore", fd, fd],
      env: ctx.io.env,
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
  const req: Request = { op: "tell", group: command.group, level: command.level, wait: command.wait, ...(command.wait ? { timeoutMs: command.timeoutMs } : {}) }
  const send = () => ask(ctx, req, command.wait ? command.timeoutMs + 10_000 : undefined)
  let answer = await send()
  if (isClientError(answer) && answer._tag === "NoDaemon") {
    if (ctx.parsed === undefined) {
      ctx.io.err(`isinit: no daemon on ${ctx.socket}, and cannot start one: cannot read the isinittab ${ctx.configPath} (${ctx.readError ?? "?"}); give it with -c FILE or $ISINITTAB\n`)
      return 1
    }
    if (!(await startDaemon(ctx))) return 1
    answer = await send()
  }
  if (isClientError(answer)) return talkFailure(ctx, answer)
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

const stopAll = async (ctx: Context): Promise<number> => {
  const answer = await ask(ctx, { op: "stopall" })
  if (isClientError(answer)) {
    if (answer._tag === "NoDaemon") {
      ctx.io.err(`isinit: no daemon on ${ctx.socket}: nothing to stop\n`)
      return 0
    }
    return talkFailure(ctx, answer)
  }
  if (!answer.ok) {
    ctx.io.err(`isinit: stopall rejected: ${answer.error}\n`)
    return 1
  }
  return 0
}

const filterReport = (report: StatusReport, group: string | undefined, level: string | undefined): StatusReport => ({
  ...report,
  groups: report.groups.filter((g) => (group === undefined || g.group === group) && (level === undefined || g.level === level)),
})

const statusFromFile = (ctx: Context, command: Extract<Command, { readonly _tag: "Status" }>): number => {
  let text: string
  try {
    text = readFileSync(ctx.initstat, "utf8")
  } catch (error) {
    ctx.io.err(`isinit: no daemon on ${ctx.socket}, and no status file at ${ctx.initstat} (${readError(error)}): nothing has run; ${noDaemonHint(ctx)}\n`)
    return 1
  }
  const read = parseStatusFile(text)
  if (!read.complete) {
    ctx.io.err(`isinit: the status file ${ctx.initstat} is incomplete (no matching !startid/!endid)\n`)
    return 1
  }
  const rows = read.rows.filter((r) => (command.group === undefined || r.group === command.group) && (command.level === undefined || r.level === command.level))
  if (command.json) {
    ctx.io.out(`${JSON.stringify({ daemon: "down", socket: ctx.socket, statusFile: ctx.initstat, groups: rows }, null, 2)}\n`)
    return 0
  }
  ctx.io.err(`isinit: no daemon on ${ctx.socket}; the last status it wrote (${ctx.initstat}):\n`)
  ctx.io.out(groupsTable(rows))
  return 0
}

const status = async (ctx: Context, command: Extract<Command, { readonly _tag: "Status" }>): Promise<number> => {
  const answer = await ask(ctx, { op: "status" })
  if (isClientError(answer)) return answer._tag === "NoDaemon" ? statusFromFile(ctx, command) : talkFailure(ctx, answer)
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

const check = (ctx: Context): number => {
  if (ctx.parsed === undefined) {
    ctx.io.err(`isinit: cannot read the isinittab ${ctx.configPath}: ${ctx.readError ?? "?"}; give it with -c FILE or $ISINITTAB\n`)
    return 1
  }
  for (const problem of ctx.parsed.problems) ctx.io.out(`${formatProblem(ctx.configPath, problem)}\n`)
  if (hasErrors(ctx.parsed)) {
    ctx.io.out(`${checkSummary(ctx.configPath, ctx.parsed)}\n`)
    return 1
  }
  const { entries, byGroup } = ctx.parsed.config
  ctx.io.out(`ok: ${entries.length} ${entries.length === 1 ? "entry" : "entries"} in ${byGroup.size} ${byGroup.size === 1 ? "group" : "groups"}\n`)
  return 0
}

const printPlan = (ctx: Context, command: Extract<Command, { readonly _tag: "Plan" }>, accepted: boolean, effects: Parameters<typeof renderPlanSteps>[0]): number => {
  if (command.json) {
    ctx.io.out(`${JSON.stringify({ group: command.group, level: command.level, accepted, effects }, null, 2)}\n`)
    return accepted ? 0 : 1
  }
  if (!accepted) {
    ctx.io.err(`isinit: plan: ${planRejection(effects) ?? `tell ${command.group} ${command.level} would be rejected`}\n`)
    return 1
  }
  const steps = renderPlanSteps(effects)
  if (steps.length === 0) {
    ctx.io.out(`tell ${command.group} ${command.level}: nothing to start or stop\n`)
    return 0
  }
  ctx.io.out(`tell ${command.group} ${command.level} would, in this order:\n${steps.map((s) => `  ${s}`).join("\n")}\n`)
  if (endsAtBarrier(effects)) {
    ctx.io.out("Assuming every wait and test exits 0; later entries start only when they do (isinit simulate shows timing).\n")
  }
  return 0
}

const planCommand = async (ctx: Context, command: Extract<Command, { readonly _tag: "Plan" }>): Promise<number> => {
  const answer = await ask(ctx, { op: "plan", group: command.group, level: command.level })
  if (!isClientError(answer)) {
    if (!answer.ok) {
      ctx.io.err(`isinit: plan ${command.group} ${command.level} rejected: ${answer.error}\n`)
      return 1
    }
    if (answer.op !== "plan") {
      ctx.io.err(`isinit: unexpected answer to plan: ${answer.op}\n`)
      return 1
    }
    return printPlan(ctx, command, answer.accepted, answer.effects)
  }
  if (answer._tag !== "NoDaemon") return talkFailure(ctx, answer)
  if (ctx.parsed === undefined) {
    ctx.io.err(`isinit: no daemon on ${ctx.socket}, and cannot read the isinittab ${ctx.configPath} (${ctx.readError ?? "?"}) to plan against\n`)
    return 1
  }
  ctx.io.err(`isinit: no daemon on ${ctx.socket}: planning against an initial state (everything stopped)\n`)
  const result = plan(initialStateWith(ctx.parsed.config), command.group, command.level, ctx.parsed, 0)
  return printPlan(ctx, command, result.accepted, result.effects)
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
  const result = runScenario(parsed.scenario)
  if (command.json) {
    const { timeline, violations, report, endMs, idle } = result
    ctx.io.out(`${JSON.stringify({ timeline, violations, report, endMs, idle }, null, 2)}\n`)
  } else {
    ctx.io.out(renderTimeline(result.timeline))
    ctx.io.out(`\nat the end (${(result.endMs / 1000).toFixed(3)}s${result.idle ? ", idle" : ""}):\n`)
    ctx.io.out(renderStatus(result.report, result.endMs))
    for (const v of result.violations) ctx.io.err(`isinit: invariant ${v.invariant} broken at ${v.at} ms: ${v.message}\n`)
  }
  return result.violations.length > 0 ? 1 : 0
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
      return stopAll(ctx)
    case "Status":
      return status(ctx, command)
    case "Check":
      return check(ctx)
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
