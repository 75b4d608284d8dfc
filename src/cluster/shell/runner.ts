/**
 * The node reducer's runner: one queue of node events, folded one at a time through
 * `reduceNode`, the commands of each step performed in order, and one timer for `nextWakeup`.
 *
 * - Every event is stamped with `now` when it is *handled*, not when it was queued (an `Input` is
 *   a function of that time): a daemon that was stopped (SIGSTOP, a GC pause) never handles old
 *   answers with old times, so a keep-alive acknowledged long ago cannot renew a hold now.
 * - The commands of one step are performed in order. Core commands reach the core at once and
 *   their answers (`CoreAnswered`) are handled, in order, before the next event from outside; the
 *   other commands are started and answered later through the queue (commands.ts).
 * - After each step the one timer is re-armed at `nextWakeup(state)`; stale ticks are harmless.
 */
import * as Effect from "effect/Effect"
import * as Queue from "effect/Queue"
import { nextWakeup, reduceNode } from "../node/reduce.ts"
import type { NodeCommand, NodeEvent, NodeState } from "../node/types.ts"
import type { LogService } from "../../log.ts"
import { ClusterBug } from "../../runtime/ports.ts"

/** A node event, made at the moment it is handled. */
export type Input = (now: number) => NodeEvent

/** Performs one command; a core command gives its answer at once (handled before anything else). */
export type Perform = (command: NodeCommand) => Effect.Effect<Input | undefined>

export interface Runner {
  readonly state: () => NodeState
  /** Queues an event; it is stamped and handled in turn. */
  readonly offer: (input: Input) => void
  /** Told after every step (the agent starts the fencer when the config has failover groups, watches for `stopped`). */
  readonly onStep: (listener: (state: NodeState) => void) => void
  /** Handles events until interrupted, or until a bug (a throw in the reducer or the shell) ends it. */
  readonly run: (perform: Perform) => Effect.Effect<never, ClusterBug>
}

export interface RunnerOptions {
  readonly initial: NodeState
  /** Commands `startNode` returned, performed first. */
  readonly startCommands: readonly NodeCommand[]
  /** The daemon's clock: the core's and the node's `now`. */
  readonly now: () => number
  readonly log: LogService
  /** The node reducer (tests plant a faulty one). */
  readonly reduce?: typeof reduceNode
}

/** The one timer: a Tick at `due` (the daemon's clock); arming it again replaces it. */
const wakeTimer = (now: () => number, offer: (input: Input) => void) => {
  let timer: NodeJS.Timeout | undefined
  let timerAt: number | undefined
  const arm = (due: number | undefined): void => {
    if (due === timerAt) return
    if (timer !== undefined) clearTimeout(timer)
    timer = undefined
    timerAt = due
    if (due === undefined) return
    timer = setTimeout(() => {
      timer = undefined
      timerAt = undefined
      // Fired for `due`: never a time before it (clock rounding).
      offer((at) => ({ _tag: "Tick", now: Math.max(at, due) }))
    }, Math.max(0, Math.ceil(due - now())))
    timer.unref()
  }
  return { arm }
}

export const makeRunner = (options: RunnerOptions): Effect.Effect<Runner> =>
  Effect.gen(function* () {
    const queue = yield* Queue.unbounded<Input>()
    const listeners: Array<(state: NodeState) => void> = []
    let state = options.initial
    const offer = (input: Input): void => void Queue.offerUnsafe(queue, input)
    const timer = wakeTimer(options.now, offer)
    const armTimer = (): void => timer.arm(nextWakeup(state))

    const reduce = options.reduce ?? reduceNode
    /** One reduction. The reducer is total: a throw is a bug, and ends the runner (fail fast, as the loop does). */
    const reduceOne = (event: NodeEvent): Effect.Effect<readonly NodeCommand[], ClusterBug> =>
      Effect.try({
        try: () => {
          const [next, commands] = reduce(state, event)
          state = next
          return commands
        },
        catch: (error) => new ClusterBug({ what: `the cluster node reducer threw on ${event._tag}`, error }),
      })

    /** Performs `commands` in order; the answers of core commands, to handle next. */
    const performAll = (perform: Perform, commands: readonly NodeCommand[]): Effect.Effect<Input[]> =>
      Effect.gen(function* () {
        const answers: Input[] = []
        for (const command of commands) {
          const answer = yield* perform(command)
          if (answer !== undefined) answers.push(answer)
        }
        return answers
      })

    /** One event from outside, then the answers of its core commands, in order, before anything else. */
    const step = (perform: Perform, first: Input): Effect.Effect<void, ClusterBug> =>
      Effect.gen(function* () {
        const local: Input[] = [first]
        for (let input = local.shift(); input !== undefined; input = local.shift()) {
          const event = input(Math.max(options.now(), state.now))
          local.push(...(yield* performAll(perform, yield* reduceOne(event))))
        }
        armTimer()
        for (const listener of listeners) listener(state)
      })

    /** A step that dies of a defect (a throw in the shell) is a bug too; it is logged where the runner ends. */
    const guarded = (perform: Perform, input: Input): Effect.Effect<void, ClusterBug> =>
      Effect.catchDefect(step(perform, input), (defect) => Effect.fail(new ClusterBug({ what: "the cluster shell failed on an event", error: defect })))

    const run = (perform: Perform): Effect.Effect<never, ClusterBug> =>
      Effect.gen(function* () {
        const start = yield* Effect.catchDefect(performAll(perform, options.startCommands), (defect) =>
          Effect.fail(new ClusterBug({ what: "the cluster shell failed on its start commands", error: defect })),
        )
        yield* Effect.forEach(start, (input) => guarded(perform, input), { discard: true })
        armTimer()
        return yield* Effect.forever(Effect.flatMap(Queue.take(queue), (input) => guarded(perform, input)))
      }).pipe(
        Effect.tapError((bug) => Effect.sync(() => options.log.line({ what: "bug", message: `${bug.message}; exiting, leaving every process to the next isinitd` }))),
        Effect.ensuring(Effect.sync(() => timer.arm(undefined))),
      )

    return { state: () => state, offer, onStep: (listener) => void listeners.push(listener), run }
  })
