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
 * A bug stops the loop (TigerBeetle's "crash on corrupt code"): a reducer that throws, or a state
 * that breaks an invariant after a batch, is logged (the event, the stack) and fails the loop with
 * a `LoopBug`; the daemon then exits non-zero leaving every process running, and its successor
 * (systemd's restart, or the next `isinit` tell) adopts them from the state file, as after a
 * crash. Dropping the event instead would be worse: a lost child exit leaves a phantom running
 * process forever.
 *
 * Time is the kernel's monotonic clock anchored at the boot's wall time (see boot.ts), so its
 * values read like epoch milliseconds (jail ends in the status stay meaningful), never jump when
 * the wall clock is set, and are the same in a daemon restarted on the same boot.
 */
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Queue from "effect/Queue"
import * as Ref from "effect/Ref"
import type * as Scope from "effect/Scope"
import type { Effect as CoreEffect } from "../core/effects.ts"
import { describeRejection } from "../core/effects.ts"
import type { Event } from "../core/events.ts"
import { describeOutcome, probeResult } from "../core/events.ts"
import { nextDeadline, reduce } from "../core/reducer.ts"
import type { State } from "../core/state.ts"
import { entryOf } from "../core/state.ts"
import type { LogService } from "../log.ts"
import type { AppliedEvent, LoopService } from "./ports.ts"
import type { ProcessesService } from "./processes.ts"
import { stackOf } from "./errors.ts"
import type { ProbeRequest, ProbeRunner } from "./probes.ts"
import { makeProber } from "./probes.ts"

export type Clock = () => number

/** The loop's queue of events; anything may offer to it, only the loop takes. */
export interface Inbox {
  readonly queue: Queue.Queue<Event>
  readonly now: Clock
  readonly offer: (event: Event) => void
}

export const makeInbox = (now: Clock): Effect.Effect<Inbox> =>
  Effect.map(Queue.unbounded<Event>(), (queue) => ({ queue, now, offer: (event) => void Queue.offerUnsafe(queue, event) }))

/** What the event is, for a bug report: its fields, without the config a tell or reload carries. */
const describeEvent = (event: Event): string => JSON.stringify(event, (key, value: unknown) => (key === "parsed" ? "(config)" : value))


/** The reducer threw: it is total, so this is a bug. */
export class ReducerThrew extends Data.TaggedError("ReducerThrew")<{ readonly event: Event; readonly error: unknown }> {
  override get message(): string {
    return `bug: the reducer threw on ${describeEvent(this.event)}: ${stackOf(this.error)}`
  }
}

/** A batch left a state that breaks one of the core's invariants: a bug. */
export class StateInvalid extends Data.TaggedError("StateInvalid")<{ readonly events: readonly Event[]; readonly problem: string }> {
  override get message(): string {
    return `bug: the state broke an invariant (${this.problem}) after ${this.events.map(describeEvent).join(", ")}`
  }
}

export type LoopBug = ReducerThrew | StateInvalid

export type Reducer = (state: State, event: Event) => readonly [State, readonly CoreEffect[]]

export interface LoopDeps {
  readonly inbox: Inbox
  readonly processes: Pick<ProcessesService, "spawn" | "kill">
  /** Asked for a write after each batch whose effects include `WriteStatus` (coalesced by the writer). */
  readonly status: { readonly request: () => void }
  readonly log: LogService
  /** Told the state after every batch, once it is visible (the state file writer listens here). */
  readonly onBatch?: (state: State) => void
  /** The reducer the loop folds events through: the core's; tests pass one that throws. */
  readonly reduce?: Reducer
  /**
   * The invariant check run on the state after every batch: why the state is impossible, or
   * `undefined`. The daemon passes the core's `batchProblem` (core/invariants.ts: O(groups)); the
   * reducer asserts the rest of what each step changes itself, and throws (`ReducerThrew`).
   */
  readonly stateProblem?: (state: State) => string | undefined
  /** Told every event the reducer applied, as it is applied (the notices of hooks and the status page: observe.ts). */
  readonly onStep?: (event: Event, applied: AppliedEvent) => void
  /** Performs a `Probe` effect (rules 20-22); the real probes (probes.ts) by default, answering through the inbox. */
  readonly probe?: (request: ProbeRequest) => void
}

/** The loop as its owner (the daemon) sees it: the port, and how it ends. */
export interface Loop extends LoopService {
  /** Fails with the bug that stopped the loop; never succeeds. */
  readonly crashed: Effect.Effect<never, LoopBug>
}

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

/** What only the runtime saw: outcomes, logged before the reducer forgets them. */
const logNews = (log: LogService, state: State, event: Event): void => {
  if (event._tag === "ChildExit") {
    log.line({ what: "exited", group: groupOf(state, event.tag), tag: event.tag, pid: pidOf(state, event.tag), outcome: describeOutcome(event.outcome) })
  } else if (event._tag === "LeaderExited" && isRunning(state, event.tag, event.run)) {
    // A stopped run's leader often goes first: news only while the run was running (rule 14).
    const where = { group: groupOf(state, event.tag), tag: event.tag, pid: pidOf(state, event.tag) }
    log.line({ what: "leader-exited", ...where, outcome: describeOutcome(event.outcome), message: "the rest of its process group lives on" })
  }
}

/** Performs one effect against the process table and the log; `WriteStatus` is the batch's business. */
const interpret = (deps: LoopDeps, state: State, effect: CoreEffect): Effect.Effect<void> => {
  switch (effect._tag) {
    case "Spawn":
    case "RunSync":
      // Logged as the spawn is performed, so the log's order is the order things happened in.
      return Effect.map(deps.processes.spawn({ tag: effect.tag, run: effect.run, command: effect.command, failover: effect.hold === undefined ? undefined : { group: effect.group, hold: effect.hold }, ...(effect.options === undefined ? {} : { options: effect.options }) }), (pid) => {
        if (pid !== undefined) deps.log.line({ what: "started", group: effect.group, tag: effect.tag, pid })
      })
    case "Kill":
      return deps.processes.kill(effect.tag, effect.run, effect.signal)
    case "WriteStatus":
      return Effect.void
    case "Log":
      return Effect.sync(() => {
        const e = effect.entry
        deps.log.line({ what: e.what, group: e.group, tag: e.tag, pid: pidOf(state, e.tag), message: e.message })
      })
    case "Rejected":
      return Effect.sync(() => deps.log.line({ what: "rejected", group: effect.group, message: describeRejection(effect) }))
    case "Probe":
      return Effect.sync(() => deps.probe?.(effect))
  }
}

/** The real probes, answering through the inbox as `ProbeResult` events. */
const inboxProber = (inbox: Inbox): ProbeRunner =>
  makeProber((req, outcome) => inbox.offer(probeResult(req.tag, req.run, req.attempt, outcome, inbox.now())))

/** The one OS timer, armed for the state's next deadline (or none). */
const makeDeadlineTimer = (inbox: Inbox): Effect.Effect<{ readonly arm: (deadline: number | undefined) => void; readonly at: () => number | undefined }, never, Scope.Scope> =>
  Effect.gen(function* () {
    let timer: NodeJS.Timeout | undefined
    let timerAt: number | undefined
    const arm = (deadline: number | undefined): void => {
      if (deadline === timerAt) return
      if (timer !== undefined) clearTimeout(timer)
      timer = undefined
      timerAt = deadline
      if (deadline === undefined) return
      const fire = (): void => {
        timer = undefined
        timerAt = undefined
        // The timer fired for `deadline`: never report a time before it (clock rounding).
        inbox.offer({ _tag: "Tick", now: Math.max(inbox.now(), deadline) })
      }
      timer = setTimeout(fire, Math.max(0, Math.ceil(deadline - inbox.now())))
    }
    yield* Effect.addFinalizer(() => Effect.sync(() => arm(undefined)))
    return { arm, at: () => timerAt }
  })

/** Callers waiting for a state: told after every batch, each removed once satisfied (or timed out). */
const makeWaiters = (stateRef: Ref.Ref<State>) => {
  const listeners = new Set<(state: State) => void>()
  const waitFor = (done: (state: State) => boolean, timeoutMs?: number): Effect.Effect<State | undefined> =>
    Effect.callback<State | undefined>((resume) => {
      const current = Ref.getUnsafe(stateRef)
      if (done(current)) return resume(Effect.succeed(current))
      let timeout: NodeJS.Timeout | undefined
      const stop = (): void => {
        listeners.delete(listener)
        if (timeout !== undefined) clearTimeout(timeout)
      }
      const listener = (state: State): void => {
        if (!done(state)) return
        stop()
        resume(Effect.succeed(state))
      }
      listeners.add(listener)
      if (timeoutMs !== undefined) {
        timeout = setTimeout(() => {
          stop()
          resume(Effect.succeed(undefined))
        }, timeoutMs)
      }
      return Effect.sync(stop)
    })
  const tell = (state: State): void => {
    for (const listener of listeners) listener(state)
  }
  return { waitFor, tell }
}

/** Events whose submitter waits for their outcome, and the resumptions due once the batch is visible. */
const makeSubmissions = (inbox: Inbox) => {
  const submitted = new Map<Event, (applied: AppliedEvent) => void>()
  let due: Array<() => void> = []
  const submit = (event: Event): Effect.Effect<AppliedEvent> =>
    Effect.callback<AppliedEvent>((resume) => {
      submitted.set(event, (applied) => resume(Effect.succeed(applied)))
      inbox.offer(event)
      // An interrupted caller no longer listens; the event itself is applied all the same.
      return Effect.sync(() => void submitted.delete(event))
    })
  const applied = (event: Event, result: AppliedEvent): void => {
    const waiter = submitted.get(event)
    if (waiter === undefined) return
    submitted.delete(event)
    due.push(() => waiter(result))
  }
  const resumeAll = (): void => {
    const resumes = due
    due = []
    for (const resume of resumes) resume()
  }
  return { submit, applied, resumeAll }
}

/** Start the loop in the current scope; closing the scope stops it (children are left alone). */
export const makeLoop = (stateRef: Ref.Ref<State>, given: LoopDeps): Effect.Effect<Loop, never, Scope.Scope> =>
  Effect.gen(function* () {
    const deps: LoopDeps = { ...given, probe: given.probe ?? inboxProber(given.inbox) }
    const { inbox, log } = deps
    const reducer = deps.reduce ?? reduce
    const timer = yield* makeDeadlineTimer(inbox)
    const waiters = makeWaiters(stateRef)
    const submissions = makeSubmissions(inbox)
    let batches = 0

    /** One event through the reducer; its effects performed as they come. */
    const step = (state: State, event: Event): Effect.Effect<readonly [State, readonly CoreEffect[]], ReducerThrew> =>
      Effect.gen(function* () {
        logNews(log, state, event)
        const [next, effects] = yield* Effect.try({ try: () => reducer(state, event), catch: (error) => new ReducerThrew({ event, error }) })
        for (const effect of effects) yield* interpret(deps, next, effect)
        const applied: AppliedEvent = { before: state, after: next, effects }
        submissions.applied(event, applied)
        deps.onStep?.(event, applied)
        return [next, effects] as const
      })

    const runBatch = Effect.gen(function* () {
      const events = yield* Queue.takeAll(inbox.queue)
      let state = yield* Ref.get(stateRef)
      let writeStatus = false
      for (const event of events) {
        const [next, effects] = yield* step(state, event)
        state = next
        writeStatus ||= effects.some((effect) => effect._tag === "WriteStatus")
      }
      const problem = deps.stateProblem?.(state)
      if (problem !== undefined) return yield* new StateInvalid({ events, problem })
      yield* Ref.set(stateRef, state)
      batches++
      if (writeStatus) deps.status.request()
      deps.onBatch?.(state)
      timer.arm(nextDeadline(state))
      submissions.resumeAll()
      waiters.tell(state)
    })

    // A bug is logged where it happened, then ends the loop (see the header).
    const logBug = (bug: LoopBug) => Effect.sync(() => log.line({ what: "bug", message: `${bug.message}; exiting, leaving every process to the next isinitd` }))
    const fiber = yield* Effect.forkScoped(Effect.forever(runBatch).pipe(Effect.tapError(logBug)))
    return {
      state: stateRef,
      offer: inbox.offer,
      submit: submissions.submit,
      now: inbox.now,
      waitFor: waiters.waitFor,
      batches: () => batches,
      queued: () => Queue.sizeUnsafe(inbox.queue),
      deadline: timer.at,
      crashed: Fiber.join(fiber),
    }
  })
