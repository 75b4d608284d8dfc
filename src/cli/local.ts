/**
 * `isinit`'s commands against the local daemon (and `check`, `plan` without one): each reads the
 * isinittab for the socket's path, asks the daemon over its socket, and prints the answer. A tell
 * starts the daemon first when none listens, as IS::Init's did. Loaded by isinit.ts once the
 * arguments name one of these commands.
 */
import { readFileSync } from "node:fs"
import { dirname, join, resolve } from "node:path"
import type { Answer, ClusterInfo, Request, Response } from "../codec/protocol.ts"
import type { Parsed, Problem } from "../core/config.ts"
import { emptyConfig, hasErrors } from "../core/config.ts"
import { checkSummary, formatProblem, parseInittab } from "../core/inittab.ts"
import { rootProblems } from "../core/optionLines.ts"
import type { StatusReport } from "../core/report.ts"
import { configPathFrom, resolvePaths } from "../paths.ts"
import type { ClientError } from "../runtime/client.ts"
import { awaitDaemonGone, formatSeconds, isClientError, request } from "../runtime/client.ts"
import { endsAtBarrier, groupsTable, renderPlanSteps, renderStatus } from "./format.ts"
import type { Command, CommandOf, Invocation } from "./invocation.ts"
import { defaultAnswerMs } from "./invocation.ts"
import type { Io } from "./io.ts"
import { readError } from "./io.ts"

interface Context {
  readonly io: Io
  readonly configPath: string
  /** The isinittab as read now; undefined when it cannot be read. */
  readonly parsed: Parsed | undefined
  readonly readError: string | undefined
  readonly socket: string
  readonly initstat: string
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
  const paths = resolvePaths({ configPath, socketPath: invocation.socket }, parsed?.config ?? emptyConfig)
  return { io, configPath, parsed, readError: failure, socket: paths.socket, initstat: paths.initstat }
}

const ask = (ctx: Context, req: Request, timeoutMs?: number): Promise<Response | ClientError> =>
  request(ctx.socket, req, timeoutMs === undefined ? {} : { timeoutMs })

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

const logPathOf = (ctx: Pick<Context, "socket">): string => join(dirname(ctx.socket), "isinitd.log")

// ---------------------------------------------------------------------------------------------
// Commands

const tell = async (ctx: Context, command: CommandOf<"Tell">): Promise<number> => {
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
    // Loaded on demand: only a tell that finds no daemon starts one.
    if ((await (await import("./autostart.ts")).startDaemon(ctx, logPathOf(ctx))) === "Failed") return 1
    answer = await send()
  }
  if (isClientError(answer)) return talkFailure(ctx, answer, "tell")
  if (!answer.ok) {
    ctx.io.err(`isinit: tell ${command.group} ${command.level} rejected: ${answer.error}\n`)
    return 1
  }
  // Cluster mode: where the tell was recorded in etcd (`note`; an older daemon sends it as `message`, without --wait only).
  const note = answer.op === "tell" ? (answer.note ?? (command.wait ? undefined : answer.message)) : undefined
  if (note !== undefined) ctx.io.err(`isinit: ${command.group} ${command.level}: ${note}\n`)
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
const exitTimeoutMs = (ctx: Context, command: CommandOf<"StopAll" | "Handover">): number =>
  command.timeoutMs ?? (command._tag === "Handover" ? 30_000 : (ctx.parsed?.config.limits.killGraceMs ?? 30_000) + 30_000)

/**
 * Waits until the daemon that answered has exited, so that the next command (a tell that starts a
 * new daemon, a successor's start) never finds it still there; says so when it takes too long.
 */
const awaitExit = async (ctx: Context, command: CommandOf<"StopAll" | "Handover">, answer: Response): Promise<number> => {
  const daemon = answer.ok && (answer.op === "stopall" || answer.op === "handover") ? answer.daemon : undefined
  const timeoutMs = exitTimeoutMs(ctx, command)
  if ((await awaitDaemonGone(ctx.socket, daemon, timeoutMs)) === "gone") return 0
  const what = command._tag === "StopAll" ? "stopall" : "handover"
  ctx.io.err(
    `isinit: ${what}: the daemon on ${ctx.socket} still runs ${formatSeconds(timeoutMs)} after it was asked${command._tag === "StopAll" ? " (a process still stopping? see isinit status)" : ""}; it goes on; see its log (${logPathOf(ctx)} when isinit started it)\n`,
  )
  return 1
}

const stopAll = async (ctx: Context, command: CommandOf<"StopAll">): Promise<number> => {
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

const handover = async (ctx: Context, command: CommandOf<"Handover">): Promise<number> => {
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

const reload = async (ctx: Context, command: CommandOf<"Reload">): Promise<number> => {
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
const statusFromFile = async (ctx: Context, command: CommandOf<"Status">, why: ClientError): Promise<number> => {
  const reason = unaskable(ctx, why)
  let text: string
  try {
    text = readFileSync(ctx.initstat, "utf8")
  } catch (error) {
    const hint = why._tag === "NoDaemon" ? `nothing has run; ${noDaemonHint(ctx)}` : "nothing to show"
    ctx.io.err(`isinit: ${reason}, and no status file at ${ctx.initstat} (${readError(error)}): ${hint}\n`)
    return 1
  }
  // Loaded on demand: the status file's reader brings the core's state, which a daemon's answer does not need.
  const { parseStatusFile } = await import("../core/status.ts")
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

const status = async (ctx: Context, command: CommandOf<"Status">): Promise<number> => {
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
  const failover = c.failover ?? []
  const keeps = failover.length === 0 ? "everything keeps running" : "everything but failover groups keeps running"
  const etcd = c.connected ? `etcd connected since ${c.since}` : `etcd UNREACHABLE since ${c.since}: ${c.error ?? "?"} (${keeps}; retrying)`
  const pending = c.pendingOverrides.length === 0 ? "" : `; not yet recorded in etcd: ${c.pendingOverrides.join(", ")}`
  const twin = c.identity === "conflict" ? `\nANOTHER isinitd runs as node ${c.node}: this one does not campaign for failover groups until it is gone` : ""
  const groups = failover.map((f) => `\nfailover ${f.group}: ${f.election}${f.epoch === null ? "" : ` (epoch ${f.epoch})`}${f.detail === "" ? "" : `, ${f.detail}`}`)
  return `cluster ${c.cluster}, node ${c.node}: ${config}; ${etcd}${pending}${twin}${groups.join("")}\n\n`
}

/** StrictModes, as a root daemon applies it at every read (runtime/strictModes.ts): a problem of the whole file. */
const strictProblems = async (path: string): Promise<Problem[]> => {
  try {
    const { insecureConfigReason } = await import("../runtime/strictModes.ts")
    const reason = await insecureConfigReason(path, 0)
    return reason === undefined ? [] : [{ severity: "error", line: 0, message: `${reason} (a root isinitd refuses it)` }]
  } catch (error) {
    return [{ severity: "error", line: 0, message: `cannot check its ownership and modes: ${readError(error)}` }]
  }
}

const check = async (ctx: Context, command: CommandOf<"Check">): Promise<number> => {
  if (ctx.parsed === undefined) {
    ctx.io.err(`isinit: cannot read the isinittab ${ctx.configPath}: ${ctx.readError ?? "?"}; give it with -c FILE or $ISINITTAB\n`)
    return 1
  }
  const strict = command.strict || process.getuid?.() === 0 ? await strictProblems(ctx.configPath) : []
  const root = rootProblems(ctx.parsed.config, process.getuid?.() ?? 0)
  const parsed: Parsed = { ...ctx.parsed, problems: [...ctx.parsed.problems, ...root, ...strict] }
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

const printPlan = (ctx: Context, command: CommandOf<"Plan">, answer: PlanAnswer): number => {
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

const planCommand = async (ctx: Context, command: CommandOf<"Plan">): Promise<number> => {
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
  // Loaded on demand: only a plan without a daemon runs the reducer here.
  const [{ plan }, { initialStateWith }, { planAnswer }] = await Promise.all([import("../core/plan.ts"), import("../core/state.ts"), import("../codec/protocol.ts")])
  const result = plan(initialStateWith(ctx.parsed.config), command.group, command.level, ctx.parsed, 0)
  return printPlan(ctx, command, planAnswer(command.group, command.level, result))
}

/** Runs one of the commands above; resolves to the exit code. */
export const runLocal = (invocation: Invocation, command: Exclude<Command, { readonly _tag: "Help" | "Version" | "Simulate" | "Logs" }>, io: Io): Promise<number> => {
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
