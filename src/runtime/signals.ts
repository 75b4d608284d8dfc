/**
 * The daemon's signals, as a queue. A signal handler only enqueues the signal; one fiber of the
 * daemon's scope takes them in order and acts (stops, re-reads, hands over), so that what a
 * signal does runs inside the daemon's scope (interrupted with it, its failures seen) and two
 * signals never act at once or out of order: two SIGHUPs apply two re-reads in turn.
 *
 * SIGTERM and SIGINT stop everything (as systemd's stop and Ctrl-C mean); SIGHUP re-reads the
 * isinittab; SIGUSR2 hands over. SIGUSR2, as nginx and unicorn use it for a binary upgrade: no
 * key sends it by accident (Ctrl-\ sends SIGQUIT), and Node keeps SIGUSR1 for its inspector.
 */
import * as Effect from "effect/Effect"
import * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"

const daemonSignals = ["SIGTERM", "SIGINT", "SIGHUP", "SIGUSR2"] as const
export type DaemonSignal = (typeof daemonSignals)[number]

/** Acts on each signal in turn, for the life of the scope; the handlers are removed when it closes. */
export const handleSignals = (act: (signal: DaemonSignal) => Effect.Effect<void>): Effect.Effect<void, never, Scope.Scope> =>
  Effect.gen(function* () {
    const received = yield* Queue.unbounded<DaemonSignal>()
    const handlers = daemonSignals.map((signal) => [signal, () => void Queue.offerUnsafe(received, signal)] as const)
    yield* Effect.acquireRelease(
      Effect.sync(() => {
        for (const [signal, handler] of handlers) process.on(signal, handler)
      }),
      () =>
        Effect.sync(() => {
          for (const [signal, handler] of handlers) process.off(signal, handler)
        }),
    )
    yield* Effect.forkScoped(Effect.forever(Effect.flatMap(Queue.take(received), act)))
  })
