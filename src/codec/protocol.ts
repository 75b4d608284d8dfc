/**
 * The socket protocol between `isinit` (and any other client) and `isinitd`.
 *
 * One request per connection, one line per request, at most `maxLineBytes` bytes:
 *
 * - The original IS::Init line protocol, kept unchanged: `GROUP LEVEL\n` (split on runs of
 *   whitespace like Perl's `split(' ')`) or a line starting with `stopall` (the original client
 *   sends it without a newline and closes at once; the server takes end-of-stream as the end of
 *   the line). Unlike the original, a `stopall` line is not also read as a tell, and a line that is
 *   not exactly two words is an error instead of a tell of whatever the words happen to be.
 *   These requests get a plain-text answer, `ok\n` or `error: REASON\n`, that old clients never read.
 * - JSON: one object on one line, e.g. `{"op":"tell","group":"web","level":"2","wait":true}`,
 *   answered by one JSON line: `{"ok":true,"op":"tell",...}` or `{"ok":false,"error":"REASON"}`.
 *   A line is JSON when its first non-blank character is `{`.
 *
 * Decoding never throws and says what is wrong in words a person can act on.
 */
import type { Assert, Same } from "./json.ts"
import { describeErrors, literals, parseJson } from "./json.ts"
import { checkedString, maxNameLength, nameProblem } from "./names.ts"
import type { Effect as CoreEffect, LogWhat } from "../core/effects.ts"
import { describeRejection, logWhats } from "../core/effects.ts"
import type { Signal } from "../core/enums.ts"
import { showProbe } from "../core/options.ts"
import { entryProcStates, groupPhases, lifecycles, modes, signals } from "../core/enums.ts"
import type { Plan } from "../core/plan.ts"
import type { StatusReport } from "../core/report.ts"
import { E, t } from "../lib/ioTs.ts"
import { maxLineBytes, maxTimeoutMs } from "./limits.ts"

export { maxLineBytes, maxNameLength, maxTimeoutMs, nameProblem }

export const ops = ["tell", "stopall", "status", "plan", "ping", "reload", "handover"] as const
export type Op = (typeof ops)[number]

export type Request =
  | {
      readonly op: "tell"
      readonly group: string
      readonly level: string
      /** Answer only when the transition has ended (or `timeoutMs` passed), with its outcome. */
      readonly wait: boolean
      readonly timeoutMs?: number
      /** Apply the re-read isinittab even if it stops a large share of what runs (core/reread.ts). */
      readonly force?: boolean
    }
  | { readonly op: "stopall" }
  | { readonly op: "status" }
  | { readonly op: "plan"; readonly group: string; readonly level: string }
  | { readonly op: "ping" }
  | { readonly op: "reload"; readonly force?: boolean }
  /** Write the state file and exit, leaving every process running for the next isinitd to adopt. */
  | { readonly op: "handover" }

/** How a line was framed; the answer goes back in the same framing. */
export type Framing = "json" | "line"

/** How a transition waited for by `tell` with `wait` ended. */
export const waitOutcomes = ["run", "fail", "superseded", "stopped", "timeout"] as const
export type WaitOutcome = (typeof waitOutcomes)[number]

/** A daemon in cluster mode (`isinitd --etcd`) adds this to its status answer. */
export interface ClusterInfo {
  readonly cluster: string
  readonly node: string
  /** The etcd URLs it was given. */
  readonly etcd: string
  /** Whether etcd answers the watch and the status publishes. */
  readonly connected: boolean
  /** When `connected` last changed (ISO 8601). */
  readonly since: string
  /** Why etcd is considered unreachable. */
  readonly error?: string
  /** Where the config that runs comes from: etcd, the local file (etcd has none yet), or nowhere. */
  readonly configSource: (typeof configSources)[number]
  readonly configSeq: number | null
  readonly configSha256: string | null
  /** Local tells not yet recorded in etcd as overrides, `group=level`. */
  readonly pendingOverrides: readonly string[]
  /** Per failover group, this node's part in its election (`Holding`, `Queued`, `Banned`...), its epoch and why. */
  readonly failover?: readonly FailoverPart[]
  /** `conflict`: another daemon runs under this node's name, so this one does not campaign. */
  readonly identity?: "ok" | "conflict"
}

export interface FailoverPart {
  readonly group: string
  readonly election: string
  readonly epoch: number | null
  readonly detail: string
}

/**
 * The daemon process that answers a stopall or a hand-over: pid and start time (clock ticks since
 * boot), so that a client can wait until this very process has exited, never a later one with its pid.
 */
export interface DaemonProcess {
  readonly pid: number
  readonly identity: string
}

/**
 * One step of a plan as the wire carries it: the protocol's own type, converted once from the
 * core's effects (`planAnswer`), so that a rename in core/effects.ts never changes what clients
 * receive. The shapes are those the answer has always carried; `WriteStatus` and the log lines are
 * kept so that clients of either version read each other's answers.
 */
export type PlanStep =
  | { readonly _tag: "Spawn"; readonly tag: string; readonly run: number; readonly group: string; readonly command: string }
  | { readonly _tag: "RunSync"; readonly tag: string; readonly run: number; readonly group: string; readonly command: string }
  | { readonly _tag: "Kill"; readonly tag: string; readonly run: number; readonly signal: Signal }
  | { readonly _tag: "WriteStatus" }
  | { readonly _tag: "Log"; readonly entry: PlanLogEntry }

export interface PlanLogEntry {
  readonly what: LogWhat
  readonly group?: string
  readonly tag?: string
  readonly run?: number
  readonly message: string
}

/** The payload of a successful answer, by op. */
export type Answer =
  | {
      readonly op: "tell"
      readonly group: string
      readonly level: string
      /** The group's tell number this request got (see GroupReport.seq). */
      readonly seq: number
      /** Present when the request asked to wait. */
      readonly outcome?: WaitOutcome
      /** Why, for outcomes other than `run` (e.g. which test failed). */
      readonly message?: string
      /** Cluster mode: where the tell was recorded in etcd as this node's override, or why not yet. */
      readonly note?: string
    }
  | { readonly op: "stopall"; readonly daemon?: DaemonProcess }
  | {
      readonly op: "status"
      readonly report: StatusReport
      /** The daemon's clock (the reducer's `now`), so `jailedUntil` can be shown as a delay. */
      readonly now: number
      /** Only from a daemon in cluster mode. */
      readonly cluster?: ClusterInfo
    }
  | {
      readonly op: "plan"
      readonly group: string
      readonly level: string
      readonly accepted: boolean
      /** Why the tell would be rejected (absent when accepted; older daemons only logged it in `effects`). */
      readonly reason?: string
      readonly effects: readonly PlanStep[]
    }
  | { readonly op: "ping"; readonly pid: number; readonly version: string }
  | { readonly op: "reload" }
  | { readonly op: "handover"; readonly daemon?: DaemonProcess; readonly processes: number }

export type Failure = { readonly ok: false; readonly error: string }
export type Response = ({ readonly ok: true } & Answer) | Failure

export const failure = (error: string): Failure => ({ ok: false, error })
export const success = (answer: Answer): Response => ({ ok: true, ...answer })

const planStepOf = (effect: CoreEffect): PlanStep => {
  switch (effect._tag) {
    case "Spawn":
    case "RunSync":
      return { _tag: effect._tag, tag: effect.tag, run: effect.run, group: effect.group, command: effect.command }
    case "Kill":
      return { _tag: "Kill", tag: effect.tag, run: effect.run, signal: effect.signal }
    case "WriteStatus":
      return { _tag: "WriteStatus" }
    case "Log": {
      const { what, group, tag, run, message } = effect.entry
      return { _tag: "Log", entry: { what, ...(group === undefined ? {} : { group }), ...(tag === undefined ? {} : { tag }), ...(run === undefined ? {} : { run }), message } }
    }
    case "Rejected":
      return { _tag: "Log", entry: { what: "rejected", ...(effect.group === undefined ? {} : { group: effect.group }), message: describeRejection(effect) } }
    case "Probe":
      return { _tag: "Log", entry: { what: "probe", tag: effect.tag, run: effect.run, message: `${effect.purpose}${probeInfix}${showProbe(effect.probe)}` } }
  }
}

const probeInfix = " probe "

/** A plan step's ready probe as `planStepOf` wrote it (`tcp:HOST:PORT`...), or undefined for any other step. */
export const readyProbeOf = (entry: { readonly what: string; readonly message: string }): string | undefined => {
  const prefix = `ready${probeInfix}`
  return entry.what === "probe" && entry.message.startsWith(prefix) ? entry.message.slice(prefix.length) : undefined
}

/** The answer to `plan`: the core's plan, converted to the wire's steps here and nowhere else. */
export const planAnswer = (group: string, level: string, plan: Plan): Extract<Answer, { readonly op: "plan" }> =>
  plan._tag === "Accepted"
    ? { op: "plan", group, level, accepted: true, effects: plan.effects.map(planStepOf) }
    : { op: "plan", group, level, accepted: false, reason: plan.rejection.reason, effects: [planStepOf(plan.rejection)] }

// ---------------------------------------------------------------------------------------------
// Names

/** Control characters other than the blanks (tab, vertical tab, form feed, CR) a line may hold. */
const binaryChar = /(?![\t\v\f\r])\p{Cc}/u
const utf8 = new TextEncoder()

const nameCodec = (what: string): t.Type<string, string, unknown> => checkedString(what, nameProblem)

const timeoutCodec = new t.Type<number, number, unknown>(
  "timeoutMs",
  (u): u is number => typeof u === "number" && Number.isInteger(u) && u > 0 && u <= maxTimeoutMs,
  (u, c) =>
    typeof u === "number" && Number.isInteger(u) && u > 0 && u <= maxTimeoutMs
      ? t.success(u)
      : t.failure(u, c, `timeoutMs must be a whole number of milliseconds from 1 to ${maxTimeoutMs}`),
  t.identity,
)

// ---------------------------------------------------------------------------------------------
// Requests

const tellCodec = t.intersection([
  t.type({ group: nameCodec("group"), level: nameCodec("level") }),
  t.partial({ wait: t.boolean, timeoutMs: timeoutCodec, force: t.boolean }),
])
const reloadCodec = t.partial({ force: t.boolean })
const planCodec = t.type({ group: nameCodec("group"), level: nameCodec("level") })

const isOp = (value: unknown): value is Op => typeof value === "string" && (ops as readonly string[]).includes(value)

const decodeJsonRequest = (line: string): E.Either<string, Request> => {
  const parsed = parseJson(line)
  if (E.isLeft(parsed)) return parsed
  const value = parsed.right
  if (typeof value !== "object" || value === null || Array.isArray(value)) return E.left("a JSON request must be an object")
  const op: unknown = (value as { readonly op?: unknown }).op
  if (op === undefined) return E.left(`missing field "op": expected one of ${ops.join(", ")}`)
  if (!isOp(op)) return E.left(`unknown op ${JSON.stringify(op)}: expected one of ${ops.join(", ")}`)
  switch (op) {
    case "tell": {
      const decoded = tellCodec.decode(value)
      if (E.isLeft(decoded)) return E.left(`${op}: ${describeErrors(decoded.left)}`)
      const { group, level, wait, timeoutMs, force } = decoded.right
      const base = { op, group, level, wait: wait ?? false, ...(force === true ? { force } : {}) } as const
      return E.right(timeoutMs === undefined ? base : { ...base, timeoutMs })
    }
    case "plan": {
      const decoded = planCodec.decode(value)
      if (E.isLeft(decoded)) return E.left(`${op}: ${describeErrors(decoded.left)}`)
      return E.right({ op, group: decoded.right.group, level: decoded.right.level })
    }
    case "reload": {
      const decoded = reloadCodec.decode(value)
      if (E.isLeft(decoded)) return E.left(`${op}: ${describeErrors(decoded.left)}`)
      return E.right(decoded.right.force === true ? { op, force: true } : { op })
    }
    case "stopall":
    case "status":
    case "ping":
    case "handover":
      return E.right({ op })
  }
}

/** Perl's `split(' ')`: leading whitespace skipped, fields separated by runs of whitespace. */
const perlSplit = (line: string): readonly string[] => line.split(/\s+/).filter((word) => word.length > 0)

const lineUsage = `the line protocol takes "GROUP LEVEL" or "stopall"; other requests are JSON, e.g. {"op":"status"}`

const decodeOriginalLine = (line: string): E.Either<string, Request> => {
  if (line.startsWith("stopall")) return E.right({ op: "stopall" })
  const words = perlSplit(line)
  const [group, level] = words
  if (group === undefined) return E.left(`empty request: ${lineUsage}`)
  if (level === undefined) {
    const verb = group.length > 40 ? `${group.slice(0, 40)}...` : group
    return E.left(`unknown verb ${JSON.stringify(verb)} (or a group without a level): ${lineUsage}`)
  }
  if (words.length > 2) return E.left(`too many words (${words.length}): ${lineUsage}`)
  const problem = nameProblem("group", group) ?? nameProblem("level", level)
  if (problem !== undefined) return E.left(problem)
  return E.right({ op: "tell", group, level, wait: false })
}

/** Which protocol a line speaks: JSON if its first non-blank character is `{`. */
export const framingOf = (line: string): Framing => (/^\s*\{/.test(line) ? "json" : "line")

/** Strips one trailing newline (and a carriage return before it). */
const chomp = (line: string): string => line.replace(/\r?\n$/, "")

/**
 * Decodes one request line (with or without its newline) of either protocol.
 * Control characters (other than the whitespace between words) are refused.
 */
export const decodeRequestLine = (raw: string): E.Either<string, Request> => {
  const line = chomp(raw)
  if (utf8.encode(line).length > maxLineBytes) return E.left(`request longer than ${maxLineBytes} bytes`)
  if (binaryChar.test(line)) return E.left("binary data or control characters in the request: expected one line of text")
  return framingOf(line) === "json" ? decodeJsonRequest(line) : decodeOriginalLine(line)
}

/** A request as one JSON line, newline included. */
export const encodeRequest = (request: Request): string => `${JSON.stringify(request)}\n`

/** A request in the original line protocol, where it has one (tell without wait, stopall). */
export const encodeOriginalRequest = (request: Request): string | undefined => {
  if (request.op === "stopall") return "stopall\n"
  if (request.op === "tell" && !request.wait) return `${request.group} ${request.level}\n`
  return undefined
}

// ---------------------------------------------------------------------------------------------
// Responses

/** A response as one JSON line, newline included. */
export const encodeResponse = (response: Response): string => `${JSON.stringify(response)}\n`

/** The plain-text answer of the original line protocol: `ok` or `error: REASON`, one line. */
export const encodeOriginalResponse = (response: Response): string =>
  response.ok ? "ok\n" : `error: ${response.error.replace(/[\r\n]+/g, " ")}\n`

export const encodeResponseFor = (framing: Framing, response: Response): string =>
  framing === "json" ? encodeResponse(response) : encodeOriginalResponse(response)

const nullable = <C extends t.Mixed>(codec: C) => t.union([codec, t.null])

const configSources = ["etcd", "file", "none"] as const

const entryReportCodec = t.intersection([
  t.type({
    tag: t.string,
    mode: literals("mode", [...modes, "removed"] as const),
    levels: t.readonlyArray(t.string),
    state: literals("entry state", entryProcStates),
    pid: nullable(t.number),
    run: nullable(t.number),
    restarts: t.number,
    jailedUntil: nullable(t.number),
    lastExit: nullable(t.string),
  }),
  // Where the entry logs (issue 11): absent from older daemons' answers and the cluster's reports.
  t.partial({ log: t.string, healthFailures: t.number }),
])

export const statusReportCodec = t.type({
  lifecycle: literals("lifecycle", lifecycles),
  groups: t.readonlyArray(
    t.type({
      group: t.string,
      state: literals("group state", groupPhases),
      level: t.string,
      seq: t.number,
      entries: t.readonlyArray(entryReportCodec),
    }),
  ),
})

const clusterInfoCodec = t.intersection([
  t.type({
    cluster: t.string,
    node: t.string,
    etcd: t.string,
    connected: t.boolean,
    since: t.string,
    configSource: literals("config source", configSources),
    configSeq: nullable(t.number),
    configSha256: nullable(t.string),
    pendingOverrides: t.readonlyArray(t.string),
  }),
  t.partial({
    error: t.string,
    failover: t.readonlyArray(t.type({ group: t.string, election: t.string, epoch: nullable(t.number), detail: t.string })),
    identity: literals("identity", ["ok", "conflict"] as const),
  }),
])

const daemonProcessCodec = t.type({ pid: t.number, identity: t.string })

const planStepCodec = t.union([
  t.type({ _tag: t.literal("Spawn"), tag: t.string, run: t.number, group: t.string, command: t.string }),
  t.type({ _tag: t.literal("RunSync"), tag: t.string, run: t.number, group: t.string, command: t.string }),
  t.type({ _tag: t.literal("Kill"), tag: t.string, run: t.number, signal: literals("signal", signals) }),
  t.type({ _tag: t.literal("WriteStatus") }),
  t.type({
    _tag: t.literal("Log"),
    entry: t.intersection([
      t.type({ what: literals("log kind", logWhats), message: t.string }),
      t.partial({ group: t.string, tag: t.string, run: t.number }),
    ]),
  }),
])

const answerCodec = t.union([
  t.intersection([
    t.type({ op: t.literal("tell"), group: t.string, level: t.string, seq: t.number }),
    t.partial({ outcome: literals("outcome", waitOutcomes), message: t.string, note: t.string }),
  ]),
  t.intersection([t.type({ op: t.literal("stopall") }), t.partial({ daemon: daemonProcessCodec })]),
  t.intersection([t.type({ op: t.literal("status"), report: statusReportCodec, now: t.number }), t.partial({ cluster: clusterInfoCodec })]),
  t.intersection([
    t.type({ op: t.literal("plan"), group: t.string, level: t.string, accepted: t.boolean, effects: t.readonlyArray(planStepCodec) }),
    t.partial({ reason: t.string }),
  ]),
  t.type({ op: t.literal("ping"), pid: t.number, version: t.string }),
  t.type({ op: t.literal("reload") }),
  t.intersection([t.type({ op: t.literal("handover"), processes: t.number }), t.partial({ daemon: daemonProcessCodec })]),
])

// The codecs describe exactly the types they stand for, both ways: this stops compiling if they drift.
export type _CodecChecks = [
  Assert<Same<t.TypeOf<typeof statusReportCodec>, StatusReport>>,
  Assert<Same<t.TypeOf<typeof planStepCodec>, PlanStep>>,
  Assert<Same<t.TypeOf<typeof answerCodec>, Answer>>,
  Assert<Same<t.TypeOf<typeof clusterInfoCodec>, ClusterInfo>>,
]

/**
 * Decodes one answer line: JSON, or the plain text of the line protocol (`ok`, `error: REASON`),
 * which a busy or confused server may send to a JSON client too.
 */
export const decodeResponseLine = (raw: string): E.Either<string, Response> => {
  const line = chomp(raw)
  if (line === "ok") return E.left("the daemon answered in the line protocol (ok) where a JSON answer was expected")
  if (line.startsWith("error: ")) return E.right(failure(line.slice("error: ".length)))
  const parsed = parseJson(line)
  if (E.isLeft(parsed)) return E.left(`not a JSON answer: ${JSON.stringify(line.slice(0, 200))}`)
  const value = parsed.right
  if (typeof value !== "object" || value === null) return E.left("a JSON answer must be an object")
  const ok: unknown = (value as { readonly ok?: unknown }).ok
  if (ok === false) {
    const error: unknown = (value as { readonly error?: unknown }).error
    return E.right(failure(typeof error === "string" ? error : "the daemon reported an error without a reason"))
  }
  if (ok !== true) return E.left(`answer without "ok": ${JSON.stringify(line.slice(0, 200))}`)
  const decoded = answerCodec.decode(value)
  if (E.isLeft(decoded)) return E.left(`answer: ${describeErrors(decoded.left)}`)
  return E.right(success(decoded.right))
}
