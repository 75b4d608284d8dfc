/**
 * The etcd connection every part of the store shares: one `etcd3` client for the store's life,
 * and `call`, the one way a one-shot operation reaches etcd (bounded by a deadline, failing with a
 * typed `EtcdUnavailable`).
 */
import type { IOptions } from "etcd3"
import { Etcd3 } from "etcd3"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { EtcdUnavailable } from "./errors.ts"

export interface ClientOptions {
  /** etcd client URLs, e.g. `http://127.0.0.1:2379` (a comma-separated string is split). */
  readonly hosts: string | readonly string[]
  /** Deadline of every one-shot call. */
  readonly callTimeoutMs: number
}

export interface EtcdClient {
  readonly etcd: Etcd3
  /** Runs one etcd operation; `operation` names it in the error. */
  readonly call: <A>(operation: string, run: () => Promise<A>) => Effect.Effect<A, EtcdUnavailable>
}

export const describe = (error: unknown): string => (error instanceof Error ? `${error.name}: ${error.message}` : String(error))

/** etcd's revisions and counts arrive as decimal strings. */
export const revisionOf = (value: string | number | undefined | null): number => (value === undefined || value === null ? 0 : Number(value))

const splitHosts = (hosts: string | readonly string[]): string[] =>
  (typeof hosts === "string" ? hosts.split(",") : [...hosts]).map((h) => h.trim()).filter((h) => h !== "")

type HostPolicy = ReturnType<NonNullable<NonNullable<IOptions["faultHandling"]>["host"]>>

/**
 * etcd3 guards each host with a circuit breaker that refuses calls for 5 s after three failures,
 * which would delay every resync after an outage; our own backoff already paces retries.
 */
const passThrough: HostPolicy = {
  _altReturn: undefined as never,
  onSuccess: () => ({ dispose: () => undefined }),
  onFailure: () => ({ dispose: () => undefined }),
  execute: async (fn, signal) => fn({ signal: signal ?? new AbortController().signal }),
}

/** The client, closed with the scope. */
export const openEtcdClient = (options: ClientOptions): Effect.Effect<EtcdClient, never, Scope.Scope> =>
  Effect.gen(function* () {
    const { callTimeoutMs } = options
    const etcd = yield* Effect.acquireRelease(
      Effect.sync(
        () =>
          new Etcd3({
            hosts: splitHosts(options.hosts),
            dialTimeout: callTimeoutMs,
            // Streams (watch, lease keep-alive) live long; only one-shot calls get a deadline.
            defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + callTimeoutMs }),
            faultHandling: { host: () => passThrough },
            // Notice a silently vanished etcd (no RST) instead of waiting on a dead stream forever.
            grpcOptions: { "grpc.keepalive_time_ms": 10_000, "grpc.keepalive_timeout_ms": 5_000 },
          }),
      ),
      (c) => Effect.sync(() => c.close()),
    )
    const call = <A>(operation: string, run: () => Promise<A>): Effect.Effect<A, EtcdUnavailable> =>
      Effect.tryPromise({ try: run, catch: (error) => new EtcdUnavailable({ operation, reason: describe(error) }) }).pipe(
        Effect.timeoutOrElse({
          duration: callTimeoutMs + 1_000,
          orElse: () => Effect.fail(new EtcdUnavailable({ operation, reason: `no answer within ${callTimeoutMs} ms` })),
        }),
      )
    return { etcd, call }
  })
