/**
 * The daemon's two ports, as types: what its event loop offers to whatever drives it
 * (`LoopService`: the socket handler, the signals, cluster mode's agent), and what the daemon asks
 * of cluster mode (`ClusterPort`).
 *
 * The layers meet here and nowhere else. The cluster layer imports this module (and src/log.ts),
 * never the runtime's implementation; the runtime never imports the cluster. The composition root,
 * cli/isinitd.ts, alone imports both: it builds the agent and hands the daemon a `ClusterPort`
 * filled from it. .oxlintrc.json enforces the fence.
 */
import * as Data from "effect/Data"
import type * as Effect from "effect/Effect"
import type * as Ref from "effect/Ref"
import type * as Scope from "effect/Scope"
import type { ClusterInfo } from "../codec/protocol.ts"
import type { Parsed } from "../core/config.ts"
import type { Effect as CoreEffect } from "../core/effects.ts"
import type { Event } from "../core/events.ts"
import type { State } from "../core/state.ts"
import { stackOf } from "./errors.ts"

/** What one event did, once the loop applied it: the states around it and the effects the reducer asked for. */
export interface AppliedEvent {
  readonly before: State
  readonly after: State
  readonly effects: readonly CoreEffect[]
}

/** The daemon's event loop, the only place its state changes (loop.ts). */
export interface LoopService {
  readonly state: Ref.Ref<State>
  /** Enqueue an event stamped by the caller. */
  readonly offer: (event: Event) => void
  /** Enqueue an event and resume once the loop has applied it (its effects already under way). */
  readonly submit: (event: Event) => Effect.Effect<AppliedEvent>
  readonly now: () => number
  /**
   * Resolves with the first state (the current one included) that satisfies `done`, or with
   * `undefined` after `timeoutMs`. Checked after every batch; costs nothing while nothing changes.
   */
  readonly waitFor: (done: (state: State) => boolean, timeoutMs?: number) => Effect.Effect<State | undefined>
  /** Batches processed so far (tests and benchmarks). */
  readonly batches: () => number
  /** Events waiting for the next batch (the metrics' queue length). */
  readonly queued: () => number
  /** When the one timer fires, or `undefined` when none is armed (an idle daemon). */
  readonly deadline: () => number | undefined
}

/** Cluster mode could not give the config a tell, plan or reload needs (etcd's, or the local file's). */
export class ClusterConfigUnavailable extends Data.TaggedError("ClusterConfigUnavailable")<{ readonly reason: string }> {
  override get message(): string {
    return this.reason
  }
}

/**
 * A bug in cluster mode (its node reducer threw, or its shell failed on an event): like a bug of
 * the loop, it stops the daemon with exit 70, leaving every process to the next isinitd. Going on
 * would leave the node's view of etcd out of step with etcd for good.
 */
export class ClusterBug extends Data.TaggedError("ClusterBug")<{ readonly what: string; readonly error: unknown }> {
  override get message(): string {
    return `bug: ${this.what}: ${stackOf(this.error)}`
  }
}

/** What the daemon needs of cluster mode (`isinitd --etcd`): where its config comes from, and what it reports. */
export interface ClusterPort {
  /** The config the daemon starts with (etcd's, else the local file's, else an empty one). */
  readonly initialConfig: Parsed
  /** The config a tell, plan, reload or SIGHUP uses now. */
  readonly currentConfig: () => Effect.Effect<Parsed, ClusterConfigUnavailable>
  /**
   * Converges and publishes against the daemon's loop for the life of the scope, once the daemon
   * serves; gives back what fails when cluster mode meets a bug (the daemon then exits 70).
   */
  readonly start: (loop: LoopService) => Effect.Effect<Effect.Effect<never, ClusterBug>, never, Scope.Scope>
  /** A local tell the loop accepted: record it in etcd; resolves with a note for the client. */
  readonly recordLocalTell: (group: string, level: string) => Effect.Effect<string>
  /** For the local status answer. */
  readonly info: () => ClusterInfo
  /** What a failover group's child gets in its environment: its epoch and the fencer's marker. */
  readonly failoverEnvironment: (group: string, epoch: number) => Readonly<Record<string, string>>
  /** After the core halted (stopall, SIGTERM; not after a hand-over): held groups handed over cleanly, leases given back. */
  readonly stop: () => Effect.Effect<void>
}
