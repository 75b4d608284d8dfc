/**
 * The event loop: the only place where the daemon's state changes.
 *
 * One queue of events (tells from the socket, exits from the process adapter, ticks from the one
 * timer). A fiber takes every event that is waiting (a batch), folds them through the pure
 * reducer one at a time, in order, and interprets the effects as they come: spawns and kills go
 * to the process adapter at once, log lines go out at once, status writes are merged into one
 * request per batch. Then it arms a single timer for `nextDeadline(state)`, or none: an idle
 * daemon does no work at all.
 *
 * Time is the kernel's monotonic clock anchored at the boot's wall time (see boot.ts), so its
 * values read like epoch milliseconds (jail ends in the status stay meaningful), never jump when
 * the wall clock is set, and are the same in a daemon restarted on the same boot.
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Queue from "effect/Queue"
import * as Ref from "effect/Ref"
import type * as Scope from "effect/Scope"
import type { Effect as CoreEffect } from "../core/effects.ts"
import { describeRejection } from "../core/effects.ts"
import type { Event } from "../core/events.ts"
import { describeOutcome } from "../core/events.ts"
import { nextDeadline, reduce } from "../core/reducer.ts"
import type { State } from "../core/state.ts"
import { entryOf } from "../core/state.ts"
import { makeBootClock } from "./boot.ts"
import { Log } from "./log.ts"
import type { ProcessReport } from "./processes.ts"
import { ProcessReports, Processes } from "./processes.ts"
import { StatusFile } from "./statusFile.ts"

export type Clock = () => number

export const monotonicNow: Clock = makeBootClock()

/** The loop's queue of events; anything may offer to it, only the loop takes. */
export class Inbox extends Context.Service<
  Inbox,
  { readonly queue: Queue.Queue<Event>; readonly now: Clock; readonly offer: (event: Event) => void }
>()("isinit/runtime/Inbox") {}

export const inboxLayer = (now: Clock = monotonicNow): Layer.Layer<Inbox> =>
  Layer.effect(
    Inbox,
    Effect.map(Queue.unbounded<Event>(), (queue) =>
      Inbox.of({ queue, now, offer: (event) => void Queue.offerUnsafe(queue, event) }),
    ),
  )

/** Process reports enter the inbox stamped with the time they arrived. */
export const reportsLayer: Layer.Layer<ProcessReports, never, Inbox> = Layer.effect(
  ProcessReports,
  Effect.gen(function* () {
    const inbox = yield* Inbox
    return ProcessReports.of({
      report: (r: ProcessReport) => inbox.offer({ ...r, now: inbox.now() }),
    })
  }),
)

/** What one event did: the states around it and the effects the reducer asked for. */
export interface Applied {
  readonly before: State
  readonly after: State
  readonly effects: readonly CoreEffect[]
}

export interface LoopService {
  readonly state: Ref.Ref<State>
  /** Enqueue an event stamped by the caller. */
  readonly offer: (event: Event) => void
  /** Enqueue an event and resume once the loop has applied it (its effects already under way). */
  readonly submit: (event: Event) => Effect.Effect<Applied>
  readonly now: Clock
  /**
   * Resolves with the first state (the current one included) that satisfies `done`, or with
   * `undefined` after `timeoutMs`. Checked after every batch; costs nothing while nothing changes.
   */
  readonly waitFor: (done: (state: State) => boolean, timeoutMs?: number) => Effect.Effect<State | undefined>
  /** Batches processed so far (tests and benchmarks). */
  readonly batches: () => number
  /** When the one timer fires, or `undefined` when none is armed (an idle daemon). */
  readonly deadline: () => number | undefined
}

export class Loop extends Context.Service<Loop, LoopService>()("isinit/runtime/Loop") {}

const pidOf = (state: State, tag: string | undefined): number | undefined => {
  if (tag === undefined) return undefined
  const proc = entryOf(state, tag).proc
  return proc._tag === "Idle" ? undefined : proc.pid
}

const isRunning = (state: State, tag: string, run: number): boolean => {
  const proc = entryOf(state, tag).proc
  return proc._tag === "Running" && proc.run === run
}

const groupOf = (state: State, tag: string): string | undefined => {
  const proc = entryOf(state, tag).proc
  return proc._tag === "Idle" ? state.config.byTag.get(tag)?.group : proc.def.group
}

export interface LoopOptions {
  /** Told the state after every batch, once it is visible (the state file writer listens here). */
  readonly onBatch?: (state: State) => void
}

/** Start the loop in the current scope; closing the scope stops it (children are left alone). */
export const makeLoop = (
  stateRef: Ref.Ref<State>,
  options: LoopOptions = {},
): Effect.Effect<LoopService, never, Scope.Scope | Inbox | Processes | StatusFile | Log> =>
  Effect.gen(function* () {
    const inbox = yield* Inbox
    const processes = yield* Processes
    const status = yield* StatusFile
    const log = yield* Log
    const listeners = new Set<(state: State) => void>()
    const submitted = new Map<Event, (applied: Applied) => void>()
    let batches = 0
    let timer: NodeJS.Timeout | undefined
    let timerAt: number | undefined

    const armTimer = (deadline: number | undefined): void => {
      if (deadline === timerAt) return
      if (timer !== undefined) clearTimeout(timer)
      timer = undefined
      timerAt = deadline
      if (deadline === undefined) return
      timer = setTimeout(
        () => {
          timer = undefined
          timerAt = undefined
          // The timer fired for `deadline`: never report a time before it (clock rounding).
          inbox.offer({ _tag: "Tick", now: Math.max(inbox.now(), deadline) })
        },
        Math.max(0, Math.ceil(deadline - inbox.now())),
      )
    }
    yield* Effect.addFinalizer(() => Effect.sync(() => armTimer(undefined)))

    /** What only the runtime saw: outcomes, logged before the reducer forgets them. */
    const logEvent = (state: State, event: Event): void => {
      if (event._tag === "ChildExit") {
        log.line({ what: "exited", group: groupOf(state, event.tag), tag: event.tag, pid: pidOf(state, event.tag), outcome: describeOutcome(event.outcome) })
      } else if (event._tag === "LeaderExited" && isRunning(state, event.tag, event.run)) {
        // A stopped run's leader often goes first: news only while the run was running (rule 14).
        const where = { group: groupOf(state, event.tag), tag: event.tag, pid: pidOf(state, event.tag) }
        log.line({ what: "leader-exited", ...where, outcome: describeOutcome(event.outcome), message: "the rest of its process group lives on" })
      }
    }

    const interpret = (state: State, effect: CoreEffect): Effect.Effect<boolean> => {
      switch (effect._tag) {
        case "Spawn":
        case "RunSync":
          // Logged as the spawn is performed, so the log's order is the order things happened in.
          return Effect.map(processes.spawn({ tag: effect.tag, run: effect.run, command: effect.command }), (pid) => {
            if (pid !== undefined) log.line({ what: "started", group: effect.group, tag: effect.tag, pid })
            return false
          })
        case "Kill":
          return Effect.as(processes.kill(effect.tag, effect.run, effect.signal), false)
        case "WriteStatus":
          return Effect.succeed(true)
        case "Log":
          return Effect.sync(() => {
            const e = effect.entry
            log.line({ what: e.what, group: e.group, tag: e.tag, pid: pidOf(state, e.tag), message: e.message })
            return false
          })
        case "Rejected":
          return Effect.sync(() => {
            log.line({ what: "rejected", group: effect.group, message: describeRejection(effect) })
            return false
          })
      }
    }

    /** Submitters to resume once the batch's state is visible to them. */
    let applied: Array<() => void> = []

    const step = (state: State, event: Event): Effect.Effect<readonly [State, boolean]> =>
      Effect.gen(function* () {
        logEvent(state, event)
        let next: State = state
        let effects: readonly CoreEffect[] = []
        try {
          ;[next, effects] = reduce(state, event)
        } catch (e) {
          // The reducer is total; if it ever is not, one bad event must not take the daemon down.
          log.line({ what: "bug", message: `reducer threw on ${event._tag}: ${String(e)}` })
        }
        let writeStatus = false
        for (const effect of effects) writeStatus = (yield* interpret(next, effect)) || writeStatus
        const waiter = submitted.get(event)
        if (waiter !== undefined) {
          submitted.delete(event)
          const result = { before: state, after: next, effects }
          applied.push(() => waiter(result))
        }
        return [next, writeStatus] as const
      })

    const runBatch = Effect.gen(function* () {
      const events = yield* Queue.takeAll(inbox.queue)
      let state = yield* Ref.get(stateRef)
      let writeStatus = false
      for (const event of events) {
        const [next, write] = yield* step(state, event)
        state = next
        writeStatus = writeStatus || write
      }
      yield* Ref.set(stateRef, state)
      batches++
      if (writeStatus) status.request()
      options.onBatch?.(state)
      armTimer(nextDeadline(state))
      const resumes = applied
      applied = []
      for (const resume of resumes) resume()
      for (const listener of listeners) listener(state)
    })

    yield* Effect.forkScoped(Effect.forever(runBatch))

    const waitFor = (done: (state: State) => boolean, timeoutMs?: number): Effect.Effect<State | undefined> =>
      Effect.callback<State | undefined>((resume) => {
        const current = Ref.getUnsafe(stateRef)
        if (done(current)) return resume(Effect.succeed(current))
        let timeout: NodeJS.Timeout | undefined
        const listener = (state: State): void => {
          if (!done(state)) return
          listeners.delete(listener)
          if (timeout !== undefined) clearTimeout(timeout)
          resume(Effect.succeed(state))
        }
        listeners.add(listener)
        if (timeoutMs !== undefined) {
          timeout = setTimeout(() => {
            listeners.delete(listener)
            resume(Effect.succeed(undefined))
          }, timeoutMs)
        }
        return Effect.sync(() => {
          listeners.delete(listener)
          if (timeout !== undefined) clearTimeout(timeout)
        })
      })

    const submit = (event: Event): Effect.Effect<Applied> =>
      Effect.callback<Applied>((resume) => {
        submitted.set(event, (applied) => resume(Effect.succeed(applied)))
        inbox.offer(event)
        // An interrupted caller no longer listens; the event itself is applied all the same.
        return Effect.sync(() => void submitted.delete(event))
      })

    return Loop.of({ state: stateRef, offer: inbox.offer, submit, now: inbox.now, waitFor, batches: () => batches, deadline: () => timerAt })
  })

export const layer = (stateRef: Ref.Ref<State>): Layer.Layer<Loop, never, Inbox | Processes | StatusFile | Log> =>
  Layer.effect(Loop, makeLoop(stateRef))
