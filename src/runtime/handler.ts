/**
 * The socket's requests, answered: each becomes an event for the loop (or a read of its state),
 * and nothing here changes state any other way. A tell, plan or reload first reads the config
 * (the isinittab as it is now, or cluster mode's); a config that cannot be had is refused with
 * the reason, logged, and nothing changes: that is the one place a `ConfigError` becomes an answer.
 */
import * as Effect from "effect/Effect"
import * as Ref from "effect/Ref"
import type { DaemonProcess, Request, Response, WaitOutcome } from "../codec/protocol.ts"
import { failure, planAnswer, success } from "../codec/protocol.ts"
import type { Parsed } from "../core/config.ts"
import { describeRejection, rejectionOf } from "../core/effects.ts"
import type { Guard } from "../core/events.ts"
import { reload, stopAll, tell } from "../core/events.ts"
import { plan } from "../core/plan.ts"
import { report } from "../core/report.ts"
import type { State } from "../core/state.ts"
import { groupOf } from "../core/state.ts"
import type { LogService } from "../log.ts"
import { version } from "../paths.ts"
import type { ConfigError, ConfigSource } from "./config.ts"
import type { Peer } from "./peer.ts"
import { describePeer } from "./peer.ts"
import type { ClusterPort, LoopService } from "./ports.ts"
import type { Handler } from "./server.ts"

/** How the transition of `group` numbered `seq` stands, or `undefined` while it runs. */
const transitionOutcome = (state: State, group: string, seq: number): WaitOutcome | undefined => {
  const g = groupOf(state, group)
  if (g.seq !== seq) return "superseded"
  if (state.lifecycle !== "running") return "stopped"
  if (g.phase === "run" || g.phase === "fail") return g.phase
  return undefined
}

const failedTests = (state: State, group: string): string => {
  const failed = report(state)
    .groups.find((g) => g.group === group)
    ?.entries.filter((e) => e.state === "failed")
    .map((e) => (e.lastExit === null ? e.tag : `${e.tag} (${e.lastExit})`))
  return failed === undefined || failed.length === 0 ? "a test failed" : `failed: ${failed.join(", ")}`
}

/** Why a waited-for transition ended where it did, for outcomes other than `run`. */
const outcomeMessage = (outcome: WaitOutcome, final: State | undefined, group: string, timeoutMs: number | undefined): string | undefined => {
  switch (outcome) {
    case "run":
      return undefined
    case "fail":
      return final === undefined ? undefined : failedTests(final, group)
    case "superseded":
      return "a later tell for the group replaced this one"
    case "stopped":
      return "the daemon is stopping every process"
    case "timeout":
      return `the transition was still running after ${timeoutMs ?? 0} ms`
  }
}

/**
 * A re-read file may be half-written: the guard holds back a change that would stop a large share
 * of what runs (core/reread.ts), unless the request confirms it (`force`). (In cluster mode a
 * tell's config may be etcd's: checked when it was pushed, and already applied by the agent.)
 */
const guardOf = (force: boolean | undefined): Guard | undefined => (force === true ? undefined : "removals")

export interface HandlerDeps {
  readonly loop: LoopService
  /** Where a tell, plan or reload takes its config (config.ts). */
  readonly config: ConfigSource
  readonly log: LogService
  /** This daemon process, named in the answers to stopall and handover so that clients can wait for its exit. */
  readonly self: DaemonProcess | undefined
  /** Answers a hand-over request (the daemon exits once the answer is out). */
  readonly handOver: () => Effect.Effect<Response>
  /** In cluster mode: local tells are recorded in etcd, and status says how the node stands. */
  readonly cluster: Pick<ClusterPort, "recordLocalTell" | "info"> | undefined
  /** The default log files' directory (core/logs.ts): status shows where each entry logs. */
  readonly logDir?: string | undefined
}

type TellRequest = Extract<Request, { readonly op: "tell" }>

/** A tell: applied by the loop; answered at once, or (`wait`) once its transition is over. */
const onTell = ({ loop, cluster }: HandlerDeps, request: TellRequest, parsed: Parsed): Effect.Effect<Response> =>
  Effect.gen(function* () {
    const { group, level } = request
    // The answer is the reducer's, from the event as it was applied (the loop logs a refusal).
    const applied = yield* loop.submit(tell(group, level, parsed, loop.now(), guardOf(request.force)))
    const rejection = rejectionOf(applied.effects)
    if (rejection !== undefined) return failure(rejection.reason)
    const seq = groupOf(applied.after, group).seq
    // In cluster mode the client is told where its tell was recorded, with --wait too.
    const note = cluster === undefined ? {} : { note: yield* cluster.recordLocalTell(group, level) }
    if (!request.wait) return success({ op: "tell", group, level, seq, ...note, ...("note" in note ? { message: note.note } : {}) })
    const final = yield* loop.waitFor((s) => transitionOutcome(s, group, seq) !== undefined, request.timeoutMs)
    const outcome = final === undefined ? "timeout" : (transitionOutcome(final, group, seq) ?? "timeout")
    const message = outcomeMessage(outcome, final, group, request.timeoutMs)
    return success(message === undefined ? { op: "tell", group, level, seq, outcome, ...note } : { op: "tell", group, level, seq, outcome, message, ...note })
  })

const onPlan = ({ loop }: HandlerDeps, group: string, level: string, parsed: Parsed): Effect.Effect<Response> =>
  Effect.map(Ref.get(loop.state), (state) => {
    return success(planAnswer(group, level, plan(state, group, level, parsed, loop.now())))
  })

const onReload = ({ loop }: HandlerDeps, force: boolean | undefined, parsed: Parsed): Effect.Effect<Response> =>
  Effect.map(loop.submit(reload(parsed, loop.now(), guardOf(force))), (applied) => {
    const rejection = rejectionOf(applied.effects)
    return rejection === undefined ? success({ op: "reload" }) : failure(describeRejection(rejection))
  })

/** Answers socket requests; nothing here changes state except through the loop's events. */
export const makeHandler = (deps: HandlerDeps): Handler => {
  const { loop, log, cluster, self, logDir } = deps
  const daemon = self === undefined ? {} : { daemon: self }
  /** The config as it is now, then the answer; a config that cannot be had is the answer instead. */
  const withConfig = (what: string, answer: (parsed: Parsed) => Effect.Effect<Response>): Effect.Effect<Response> =>
    Effect.matchEffect(deps.config(), {
      onFailure: (error: ConfigError) =>
        Effect.sync(() => {
          log.line({ what: "rejected", message: `${what}: ${error.message}; nothing was changed` })
          return failure(`${error.message}; nothing was changed`)
        }),
      onSuccess: answer,
    })
  return (request) => {
    switch (request.op) {
      case "tell":
        return withConfig(`tell ${request.group} ${request.level}`, (parsed) => onTell(deps, request, parsed))
      case "stopall":
        return Effect.as(loop.submit(stopAll(loop.now())), success({ op: "stopall", ...daemon }))
      case "status":
        return Effect.map(Ref.get(loop.state), (state) =>
          success({ op: "status", report: report(state, logDir), now: loop.now(), ...(cluster === undefined ? {} : { cluster: cluster.info() }) }),
        )
      case "plan":
        return withConfig(`plan ${request.group} ${request.level}`, (parsed) => onPlan(deps, request.group, request.level, parsed))
      case "ping":
        return Effect.succeed(success({ op: "ping", pid: process.pid, version }))
      case "reload":
        return withConfig("reload", (parsed) => onReload(deps, request.force, parsed))
      case "handover":
        return deps.handOver()
    }
  }
}

/** Requests that change something: logged with who sent them, and answered only once the state file holds them. */
export const changes: ReadonlySet<Request["op"]> = new Set(["tell", "stopall", "reload", "handover"])

/** Who asked for a change on the socket, so the log says who switched what (peer.ts). */
export const logChange = (log: LogService, request: Request, peer: Peer | undefined): void => {
  if (peer === undefined || !changes.has(request.op)) return
  const what = request.op === "tell" ? `tell ${request.group} ${request.level}` : request.op
  log.line({ what: "request", ...(request.op === "tell" ? { group: request.group } : {}), message: `${what} from ${describePeer(peer)}` })
}
