/**
 * What the daemon lets others watch: the notices of its steps (core/notices.ts), fed to the event
 * hooks and to whoever subscribes (the status page), and the view the metrics and the page read
 * (`DaemonView`), handed to the `OperationsPort` that `isinitd --metrics/--http` fills.
 *
 * Nothing is computed while nobody listens: a step's notices are worked out only while the config
 * in force has a hook or a subscriber is there, so a daemon without either pays one check per event.
 */
import type * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type { ClusterInfo } from "../codec/protocol.ts"
import type { Event } from "../core/events.ts"
import type { Notice } from "../core/notices.ts"
import { noticesOf } from "../core/notices.ts"
import type { LogService } from "../log.ts"
import { stackOf } from "./errors.ts"
import type { HookRunner, HookStats } from "./hooks.ts"
import type { AppliedEvent, LoopService } from "./ports.ts"

export type NoticeListener = (notice: Notice) => void

export interface NoticeFeed {
  /** The loop's step observer (loop.ts `onStep`). */
  readonly onStep: (event: Event, applied: AppliedEvent) => void
  /** Told every notice from now on, until the returned function is called. */
  readonly subscribe: (listener: NoticeListener) => () => void
}

/**
 * The feed. A throw here is a bug in the notices, not in supervision: it is logged and the step
 * goes on (the hooks and the page miss it), where a bug in the reducer stops the daemon.
 */
export const makeNoticeFeed = (hooks: Pick<HookRunner, "notify">, log: LogService): NoticeFeed => {
  const listeners = new Set<NoticeListener>()
  return {
    onStep: (event, applied) => {
      const config = applied.after.config.hooks
      if (config.hooks.length === 0 && listeners.size === 0) return
      try {
        for (const notice of noticesOf({ event, ...applied })) {
          if (config.hooks.length > 0) hooks.notify(notice, config)
          for (const listener of listeners) listener(notice)
        }
      } catch (error) {
        log.line({ what: "bug", message: `notices of ${event._tag}: ${stackOf(error)}; hooks and the status page miss this event` })
      }
    },
    subscribe: (listener) => {
      listeners.add(listener)
      return () => void listeners.delete(listener)
    },
  }
}

/** What the metrics and the status page read of a running daemon. */
export interface DaemonView {
  readonly loop: LoopService
  readonly notices: Pick<NoticeFeed, "subscribe">
  readonly hookStats: () => readonly HookStats[]
  /** Cluster mode only: how the node stands with etcd. */
  readonly cluster: (() => ClusterInfo) | undefined
  readonly version: string
  readonly pid: number
  /** When the daemon started (wall-clock ms). */
  readonly startedAt: number
}

/** `isinitd --metrics ADDR` and `--http ADDR` (runtime/ops.ts), started once the daemon serves, for the life of its scope. */
export interface OperationsPort {
  readonly start: (view: DaemonView) => Effect.Effect<void, never, Scope.Scope>
}
