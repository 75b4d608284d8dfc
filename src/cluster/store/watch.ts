/**
 * The watch of everything daemons obey (config and desired levels): every change after a
 * revision, in order, none twice. It survives outages by itself: a lost watch is reported as an
 * `Outage`, then everything is read afresh at the current revision (a `Resynced` view, retried
 * with backoff until etcd answers) and watched from there.
 */
import type { IWatchResponse, Watcher } from "etcd3"
import * as Effect from "effect/Effect"
import * as Queue from "effect/Queue"
import type * as Schedule from "effect/Schedule"
import type { LogService } from "../../log.ts"
import type { EtcdView, WatchEvent } from "../desired.ts"
import { obeyedRange } from "../keys.ts"
import type { EtcdClient } from "./client.ts"
import { describe, revisionOf } from "./client.ts"
import type { EtcdUnavailable } from "./errors.ts"
import type { KeyValues } from "./kv.ts"

export interface Watching {
  /**
   * Reports every change after `fromRevision`, in order, to `onChange` (one at a time), until
   * interrupted. Outages are reported, retried with backoff and followed by a `Resynced` view.
   */
  readonly watchDesired: (fromRevision: number, onChange: (event: WatchEvent) => Effect.Effect<void>) => Effect.Effect<never>
}

export interface WatchOptions {
  readonly cluster: string
  readonly retrySchedule: Schedule.Schedule<unknown>
  readonly log: LogService | undefined
}

/** What the etcd3 watcher of one session said; signals of an older session are stale. */
type Signal =
  | { readonly _tag: "Response"; readonly session: number; readonly response: IWatchResponse }
  | { readonly _tag: "Lost"; readonly session: number; readonly reason: string }

/** One `watchDesired`: its current etcd3 watcher and session, and how far it has delivered. */
interface Run {
  readonly signals: Queue.Queue<Signal>
  readonly onChange: (event: WatchEvent) => Effect.Effect<void>
  session: number
  watcher: Watcher | undefined
  revision: number
}

interface Deps {
  readonly client: EtcdClient
  readonly kv: KeyValues
  readonly readDesired: () => Effect.Effect<EtcdView, EtcdUnavailable>
  readonly options: WatchOptions
}

/** A new session watching from `run.revision` on. */
const open = (deps: Deps, run: Run): void => {
  run.session += 1
  const session = run.session
  const w = deps.client.etcd.watch().inRange(obeyedRange(deps.options.cluster)).startRevision(String(run.revision + 1)).watcher()
  const lose = (error: unknown): void => void Queue.offerUnsafe(run.signals, { _tag: "Lost", session, reason: describe(error) })
  w.on("data", (response) => void Queue.offerUnsafe(run.signals, { _tag: "Response", session, response }))
  w.on("disconnected", lose)
  // Also a compacted start revision: the resync that follows covers it.
  w.on("error", lose)
  run.watcher = w
}

const close = (deps: Deps, run: Run): Effect.Effect<void> =>
  Effect.suspend(() => {
    const w = run.watcher
    run.watcher = undefined
    run.session += 1
    return w === undefined ? Effect.void : Effect.ignore(deps.client.call("cancel watch", () => w.cancel()))
  })

const deliver = (deps: Deps, run: Run, response: IWatchResponse): Effect.Effect<void> =>
  Effect.gen(function* () {
    // Events of one revision arrive together; anything at or below what was delivered is a replay.
    const before = run.revision
    for (const event of response.events) {
      const at = revisionOf(event.kv.mod_revision)
      if (at <= before) continue
      const change = deps.kv.classify(event.kv, event.type === "Delete" ? "Delete" : "Put")
      if (change !== undefined) yield* run.onChange(change)
      if (at > run.revision) run.revision = at
    }
  })

const resync = (deps: Deps, run: Run, reason: string): Effect.Effect<void> =>
  Effect.gen(function* () {
    const { log, retrySchedule } = deps.options
    yield* close(deps, run)
    log?.line({ what: "etcd-outage", message: `watch lost: ${reason}; retrying` })
    yield* run.onChange({ _tag: "Outage", reason })
    const view = yield* Effect.retry(deps.readDesired(), retrySchedule).pipe(
      Effect.catch(() => Effect.never), // unreachable: the schedule never gives up
    )
    run.revision = view.obeyed.revision
    log?.line({ what: "etcd-resync", message: `resynchronised at revision ${run.revision}` })
    yield* run.onChange({ _tag: "Resynced", view })
    open(deps, run)
  })

export const makeWatching = (
  client: EtcdClient,
  kv: KeyValues,
  readDesired: () => Effect.Effect<EtcdView, EtcdUnavailable>,
  options: WatchOptions,
): Watching => {
  const deps: Deps = { client, kv, readDesired, options }
  const watchDesired: Watching["watchDesired"] = (fromRevision, onChange) =>
    Effect.gen(function* () {
      const run: Run = { signals: yield* Queue.unbounded<Signal>(), onChange, session: 0, watcher: undefined, revision: fromRevision }
      open(deps, run)
      return yield* Effect.forever(
        Effect.gen(function* () {
          const signal = yield* Queue.take(run.signals)
          if (signal.session !== run.session) return
          if (signal._tag === "Response") yield* deliver(deps, run, signal.response)
          else yield* resync(deps, run, signal.reason)
        }),
      ).pipe(Effect.ensuring(close(deps, run)))
    })
  return { watchDesired }
}
