/**
 * The watch of everything daemons obey (config and desired levels): every change after a
 * revision, in order, none twice. It survives outages by itself: a lost watch is reported as an
 * `Outage`, then everything is read afresh at the current revision (a `Resynced` view, retried
 * with backoff until etcd answers) and watched from there. Losses in a row (a stream landing on a
 * member that is down, again and again) are paced and count as one outage, logged once: link.ts.
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
import type { EtcdFailure } from "./errors.ts"
import type { KeyValues } from "./kv.ts"
import type { Backoff, Link, Resync } from "./link.ts"
import { initialLink, nextLink } from "./link.ts"

export interface Watching {
  /**
   * Reports every change after `fromRevision`, in order, to `onChange` (one at a time), until
   * interrupted. Outages are reported, retried with backoff and followed by a `Resynced` view.
   */
  readonly watchDesired: (fromRevision: number, onChange: (event: WatchEvent) => Effect.Effect<void>) => Effect.Effect<never>
}

interface WatchOptions {
  readonly cluster: string
  /** Pacing of resyncs after losses in a row (link.ts). */
  readonly backoff: Backoff
  /** Retries of the read that resyncs. */
  readonly retrySchedule: Schedule.Schedule<unknown>
  readonly log: LogService | undefined
}

/** What the etcd3 watcher of one session said; signals of an older session are stale. */
type Signal =
  | { readonly _tag: "Response"; readonly session: number; readonly response: IWatchResponse }
  | { readonly _tag: "Confirmed"; readonly session: number; readonly now: number }
  | { readonly _tag: "Lost"; readonly session: number; readonly now: number; readonly reason: string }

/** One `watchDesired`: its current etcd3 watcher and session, its link, and how far it has delivered. */
interface Run {
  readonly signals: Queue.Queue<Signal>
  readonly onChange: (event: WatchEvent) => Effect.Effect<void>
  session: number
  watcher: Watcher | undefined
  link: Link
  revision: number
}

interface Deps {
  readonly client: EtcdClient
  readonly kv: KeyValues
  readonly readDesired: () => Effect.Effect<EtcdView, EtcdFailure>
  readonly options: WatchOptions
}

/** A new session watching from `run.revision` on. */
const open = (deps: Deps, run: Run): void => {
  run.session += 1
  const session = run.session
  const w = deps.client.etcd.watch().inRange(obeyedRange(deps.options.cluster)).startRevision(String(run.revision + 1)).watcher()
  const lose = (error: unknown): void => void Queue.offerUnsafe(run.signals, { _tag: "Lost", session, now: Date.now(), reason: describe(error) })
  w.on("connected", () => void Queue.offerUnsafe(run.signals, { _tag: "Confirmed", session, now: Date.now() }))
  w.on("data", (response) => void Queue.offerUnsafe(run.signals, { _tag: "Response", session, response }))
  w.on("disconnected", lose)
  // Also a compacted start revision: the resync that follows covers it.
  w.on("error", lose)
  run.watcher = w
  run.link = nextLink(run.link, { _tag: "Opened" }, deps.options.backoff)[0]
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

/** After a lost session: report a new outage, wait as the link says, read everything afresh, watch on. */
const resync = (deps: Deps, run: Run, reason: string, plan: Resync): Effect.Effect<void> =>
  Effect.gen(function* () {
    const { log, retrySchedule } = deps.options
    yield* close(deps, run)
    if (plan.outage === "New") {
      log?.line({ what: "etcd-outage", message: `watch lost: ${reason}; retrying` })
      yield* run.onChange({ _tag: "Outage", reason })
    }
    yield* Effect.sleep(plan.delayMs)
    const view = yield* Effect.retry(deps.readDesired(), retrySchedule).pipe(
      Effect.catch(() => Effect.never), // unreachable: the schedule never gives up
    )
    run.revision = view.obeyed.revision
    if (plan.outage === "New") log?.line({ what: "etcd-resync", message: `resynchronised at revision ${run.revision}` })
    yield* run.onChange({ _tag: "Resynced", view })
    open(deps, run)
  })

const onSignal = (deps: Deps, run: Run, signal: Signal): Effect.Effect<void> => {
  if (signal.session !== run.session) return Effect.void
  switch (signal._tag) {
    case "Response":
      return deliver(deps, run, signal.response)
    case "Confirmed":
      run.link = nextLink(run.link, signal, deps.options.backoff)[0]
      return Effect.void
    case "Lost": {
      const [link, plan] = nextLink(run.link, signal, deps.options.backoff)
      run.link = link
      return plan === undefined ? Effect.void : resync(deps, run, signal.reason, plan)
    }
  }
}

export const makeWatching = (
  client: EtcdClient,
  kv: KeyValues,
  readDesired: () => Effect.Effect<EtcdView, EtcdFailure>,
  options: WatchOptions,
): Watching => {
  const deps: Deps = { client, kv, readDesired, options }
  const watchDesired: Watching["watchDesired"] = (fromRevision, onChange) =>
    Effect.gen(function* () {
      const signals = yield* Queue.unbounded<Signal>()
      const run: Run = { signals, onChange, session: 0, watcher: undefined, link: initialLink, revision: fromRevision }
      open(deps, run)
      return yield* Effect.forever(Effect.flatMap(Queue.take(signals), (signal) => onSignal(deps, run, signal))).pipe(
        Effect.ensuring(close(deps, run)),
      )
    })
  return { watchDesired }
}
