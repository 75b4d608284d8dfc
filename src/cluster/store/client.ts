/**
 * The etcd connection every part of the store shares: one `etcd3` client for the store's life,
 * and `call`, the one way a one-shot operation reaches etcd.
 *
 * A call tries each member once per round (a member that is down costs one refused connection,
 * not the call). While members answer that they have no leader (an election under way, or quorum
 * lost), it tries again with a short backoff until its deadline: `callTimeoutMs` from its start,
 * or the `Deadline` its caller set, whichever comes first. When no member can be reached at all it
 * fails at once: the caller's own backoff (the node reducer's, a daemon starting on its local file)
 * deals with an outage. `isinit --etcd` sets one Deadline per
 * command, so a command that makes several calls still ends within its one deadline. On failure
 * the error says what etcd answered: "no quorum / no leader" when a member that answered has no
 * leader, rather than the refused connection of a dead member.
 *
 * Every call, and the watch, carries etcd's `hasleader` metadata (Go's `WithRequireLeader`): a
 * member without a leader answers "no leader" at once instead of holding the call until its
 * deadline, and cancels the watch streams it serves once it has been without a leader for a few
 * election timeouts, so a quorum loss is seen rather than waited out. The daemon's own lease
 * keep-alive streams (leases.ts) carry it too; the etcd3 `Lease`'s own keep-alives (used only by
 * presence.ts's library API) go without it.
 */
import type { Interceptor } from "@grpc/grpc-js"
import { InterceptingCall } from "@grpc/grpc-js"
import type { IOptions } from "etcd3"
import { Etcd3, EtcdAuthenticationFailedError, EtcdPermissionDeniedError, GRPCDeadlineExceededError, GRPCUnavailableError, isRecoverableError } from "etcd3"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type { EtcdSecurity } from "../connection.ts"
import { tlsProblem } from "../connection.ts"
import type { EtcdFailure } from "./errors.ts"
import { EtcdRefused, EtcdUnavailable } from "./errors.ts"

interface ClientOptions {
  /** etcd client URLs, e.g. `http://127.0.0.1:2379` (a comma-separated string is split). */
  readonly hosts: string | readonly string[]
  /** Deadline of every one-shot call, from its start. */
  readonly callTimeoutMs: number
  /** TLS and credentials (connection.ts); none: plain http without authentication. */
  readonly security?: EtcdSecurity | undefined
}

export interface EtcdClient {
  readonly etcd: Etcd3
  /** Runs one etcd operation; `operation` names it in the error. */
  readonly call: <A>(operation: string, run: () => Promise<A>) => Effect.Effect<A, EtcdFailure>
  /** Who etcd sees this client as (user name or certificate CN), if anyone: for audit records. */
  readonly identity: string | undefined
}

/** An overall deadline (epoch ms) for every call made inside; none by default. */
export const Deadline = Context.Reference<number | undefined>("isinit/cluster/Deadline", { defaultValue: () => undefined })

export const describe = (error: unknown): string => (error instanceof Error ? `${error.name}: ${error.message}` : String(error))

/** etcd's revisions and counts arrive as decimal strings. */
export const revisionOf = (value: string | number | undefined | null): number => (value === undefined || value === null ? 0 : Number(value))

const splitHosts = (hosts: string | readonly string[]): string[] =>
  (typeof hosts === "string" ? hosts.split(",") : [...hosts]).map((h) => h.trim()).filter((h) => h !== "")

// ---------------------------------------------------------------------------------------------
// How etcd3 reaches members

type Policy = ReturnType<NonNullable<NonNullable<IOptions["faultHandling"]>["host"]>>

const noEvents = { onSuccess: () => ({ dispose: () => undefined }), onFailure: () => ({ dispose: () => undefined }) }

/**
 * Per member: always call through. etcd3's default circuit breaker refuses a member for 5 s after
 * three failures, which would delay every resync after an outage; `call` paces retries itself.
 */
const passThrough: Policy = {
  _altReturn: undefined as never,
  ...noEvents,
  execute: async (fn, signal) => fn({ signal: signal ?? new AbortController().signal }),
}

/** Every member failed one round of a call, each for the reason listed. */
class MembersFailed extends Error {
  readonly errors: readonly unknown[]
  constructor(errors: readonly unknown[]) {
    super(errors.map(describe).join("; "))
    this.errors = errors
  }
}

/**
 * Per call: each member once, in etcd3's shuffled order, while they fail in a way another member
 * might not (etcd3's default retries three times, each up to the whole deadline).
 */
const oneRound = (members: number): Policy => ({
  _altReturn: undefined as never,
  ...noEvents,
  execute: async (fn, signal) => {
    const errors: unknown[] = []
    for (let i = 0; i < members; i++) {
      try {
        return await fn({ signal: signal ?? new AbortController().signal })
      } catch (error) {
        if (!(error instanceof Error) || !isRecoverableError(error)) throw error
        errors.push(error)
      }
    }
    throw new MembersFailed(errors)
  },
})

/** Adds etcd's `hasleader` metadata to a call (see the header). */
export const requireLeader: Interceptor = (options, nextCall) =>
  new InterceptingCall(nextCall(options), {
    start: (metadata, listener, next) => {
      metadata.set("hasleader", "true")
      next(metadata, listener)
    },
  })

// ---------------------------------------------------------------------------------------------
// What a failed attempt means

/** Why an attempt failed, most telling first when several members answered differently. */
type Trouble =
  | { readonly _tag: "Denied"; readonly reason: EtcdRefused["reason"] }
  | { readonly _tag: "Refused"; readonly detail: string }
  | { readonly _tag: "NoLeader"; readonly answered: number; readonly silent: number }
  | { readonly _tag: "TimedOut" }
  | { readonly _tag: "Unreachable"; readonly detail: string }

const troubleOf = (error: unknown): Trouble => {
  const errors = error instanceof MembersFailed ? error.errors : [error]
  if (errors.some((e) => e instanceof EtcdPermissionDeniedError)) return { _tag: "Denied", reason: "PermissionDenied" }
  if (errors.some((e) => e instanceof EtcdAuthenticationFailedError)) return { _tag: "Denied", reason: "AuthenticationFailed" }
  const noLeader = errors.filter((e) => /no leader|leader changed/.test(describe(e))).length
  const refused = errors.find((e) => !(e instanceof Error) || !isRecoverableError(e))
  if (refused !== undefined) return { _tag: "Refused", detail: describe(refused) }
  if (noLeader > 0) return { _tag: "NoLeader", answered: noLeader, silent: errors.length - noLeader }
  if (errors.some((e) => e instanceof GRPCDeadlineExceededError || /deadline exceeded|timed out/i.test(describe(e)))) return { _tag: "TimedOut" }
  const unreachable = errors.find((e) => e instanceof GRPCUnavailableError) ?? errors[errors.length - 1]
  return { _tag: "Unreachable", detail: describe(unreachable) }
}

const rank: Record<Trouble["_tag"], number> = { Denied: 4, Refused: 3, NoLeader: 2, TimedOut: 1, Unreachable: 0 }

/** Of what the attempts of one call ran into, the one to report. */
const worse = (a: Trouble | undefined, b: Trouble): Trouble => (a === undefined || rank[b._tag] >= rank[a._tag] ? b : a)

const reasonOf = (trouble: Exclude<Trouble, { readonly _tag: "Denied" }>, waitedMs: number, security: EtcdSecurity | undefined): string => {
  switch (trouble._tag) {
    case "Refused":
      return trouble.detail
    case "NoLeader": {
      const silent = trouble.silent === 0 ? "" : `, ${trouble.silent} did not answer`
      return `etcd has no quorum / no leader (${trouble.answered} member${trouble.answered === 1 ? "" : "s"} answered "no leader"${silent}; gave up after ${waitedMs} ms)`
    }
    case "TimedOut":
      return `no answer within ${waitedMs} ms`
    case "Unreachable": {
      // A TLS handshake that fails fails the same way every time: say what to fix, not "unreachable".
      const tls = tlsProblem(trouble.detail, security)
      return tls ?? `no etcd member reachable (gave up after ${waitedMs} ms): ${trouble.detail}`
    }
  }
}

/** Pause before the next attempt: 50 ms, doubling, at most 1 s. */
const pauseMs = (attempt: number): number => Math.min(1_000, 50 * 2 ** Math.min(attempt, 10))

/**
 * Runs `run` until it succeeds, fails for good, or `until` (epoch ms) passes; the failure names
 * the most telling trouble met on the way.
 */
const attempt = <A>(operation: string, run: () => Promise<A>, until: number, security: EtcdSecurity | undefined): Effect.Effect<A, EtcdFailure> =>
  Effect.gen(function* () {
    const started = Date.now()
    let trouble: Trouble | undefined
    for (let tries = 0; ; tries++) {
      const left = until - Date.now()
      const outcome = yield* Effect.tryPromise({ try: run, catch: troubleOf }).pipe(
        Effect.timeoutOrElse({ duration: Math.max(1, left), orElse: () => Effect.fail<Trouble>({ _tag: "TimedOut" }) }),
        Effect.result,
      )
      if (outcome._tag === "Success") return outcome.success
      trouble = worse(trouble, outcome.failure)
      const pause = pauseMs(tries)
      if (outcome.failure._tag !== "NoLeader" || Date.now() + pause >= until) break
      yield* Effect.sleep(pause)
    }
    if (trouble._tag === "Denied") return yield* Effect.fail(new EtcdRefused({ operation, reason: trouble.reason, user: security?.identity }))
    return yield* Effect.fail(new EtcdUnavailable({ operation, reason: reasonOf(trouble, Date.now() - started, security) }))
  })

/** etcd3's TLS and password options for `security`; none without it. */
const etcd3Credentials = (security: EtcdSecurity | undefined): Pick<IOptions, "credentials" | "auth"> => {
  const tls = security?.tls
  return {
    ...(tls === undefined
      ? {}
      : { credentials: { rootCertificate: tls.ca, ...(tls.client === undefined ? {} : { certChain: tls.client.cert, privateKey: tls.client.key }) } }),
    ...(security?.auth === undefined ? {} : { auth: { username: security.auth.user, password: security.auth.password } }),
  }
}

/** The client, closed with the scope. */
export const openEtcdClient = (options: ClientOptions): Effect.Effect<EtcdClient, never, Scope.Scope> =>
  Effect.gen(function* () {
    const { callTimeoutMs, security } = options
    const hosts = splitHosts(options.hosts)
    const etcd = yield* Effect.acquireRelease(
      Effect.sync(
        () =>
          new Etcd3({
            hosts,
            dialTimeout: callTimeoutMs,
            // Streams (watch, lease keep-alive) live long; only one-shot calls get a deadline.
            defaultCallOptions: (context) =>
              context.isStream
                ? context.service === "Watch" ? { interceptors: [requireLeader] } : {}
                : { deadline: Date.now() + callTimeoutMs, interceptors: [requireLeader] },
            faultHandling: { host: () => passThrough, global: oneRound(hosts.length) },
            // Notice a silently vanished etcd (no RST) instead of waiting on a dead stream forever.
            // No cap on what etcd answers (as etcd's Go client, 2 GiB): gRPC's default of 4 MiB
            // refuses the read of every node's status from about a thousand nodes on.
            grpcOptions: { "grpc.keepalive_time_ms": 10_000, "grpc.keepalive_timeout_ms": 5_000, "grpc.max_receive_message_length": -1 },
            ...etcd3Credentials(security),
          }),
      ),
      (c) => Effect.sync(() => c.close()),
    )
    const call = <A>(operation: string, run: () => Promise<A>): Effect.Effect<A, EtcdFailure> =>
      Effect.gen(function* () {
        const deadline = (yield* Deadline) ?? Number.POSITIVE_INFINITY
        return yield* attempt(operation, run, Math.min(Date.now() + callTimeoutMs, deadline), security)
      })
    return { etcd, call, identity: security?.identity }
  })
