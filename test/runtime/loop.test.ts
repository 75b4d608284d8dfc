/**
 * The loop with a fake process adapter and a fake status writer swapped in through their
 * services: batching, one status request per batch, the single timer, submit and waitFor.
 */
import * as Effect from "effect/Effect"
import * as Queue from "effect/Queue"
import * as Ref from "effect/Ref"
import { describe, expect, it } from "vitest"
import type { Outcome } from "../../src/core/events.ts"
import { tell } from "../../src/core/events.ts"
import { parseInittab } from "../../src/core/inittab.ts"
import { initialStateWith } from "../../src/core/state.ts"
import { groupOf } from "../../src/core/state.ts"
import type { Event } from "../../src/core/events.ts"
import { Log, memoryLog } from "../../src/runtime/log.ts"
import type { LoopService } from "../../src/runtime/loop.ts"
import { Inbox, makeLoop, monotonicNow } from "../../src/runtime/loop.ts"
import { Processes } from "../../src/runtime/processes.ts"
import { StatusFile } from "../../src/runtime/statusFile.ts"
import { until } from "./helpers.ts"

interface Fake {
  readonly spawns: Array<{ readonly tag: string; readonly run: number }>
  readonly kills: Array<{ readonly tag: string; readonly run: number; readonly signal: string }>
  readonly live: Map<string, number>
  statusRequests: number
  readonly exit: (tag: string, outcome: Outcome) => void
}

const withLoop = (tab: string, body: (loop: LoopService, fake: Fake) => Promise<void>): Promise<void> =>
  Effect.runPromise(
    Effect.scoped(
      Effect.gen(function* () {
        const parsed = parseInittab(tab)
        const stateRef = yield* Ref.make(initialStateWith(parsed.config))
        const queue = yield* Queue.unbounded<Event>()
        const inbox = Inbox.of({ queue, now: monotonicNow, offer: (e) => void Queue.offerUnsafe(queue, e) })
        const fake: Fake = {
          spawns: [],
          kills: [],
          live: new Map(),
          statusRequests: 0,
          exit: (tag, outcome) => {
            const run = fake.live.get(tag)
            if (run === undefined) throw new Error(`${tag} is not running`)
            fake.live.delete(tag)
            inbox.offer({ _tag: "ChildExit", tag, run, outcome, now: inbox.now() })
          },
        }
        const processes = Processes.of({
          spawn: (spec) =>
            Effect.sync(() => {
              fake.spawns.push({ tag: spec.tag, run: spec.run })
              fake.live.set(spec.tag, spec.run)
              inbox.offer({ _tag: "Started", tag: spec.tag, run: spec.run, pid: 10_000 + spec.run, now: inbox.now() })
              return 10_000 + spec.run
            }),
          kill: (tag, run, signal) =>
            Effect.sync(() => {
              fake.kills.push({ tag, run, signal })
              if (fake.live.get(tag) === run) fake.exit(tag, { _tag: "Signaled", signal })
            }),
          liveRuns: Effect.sync(() => fake.live.size),
        })
        const status = StatusFile.of({
          request: () => void fake.statusRequests++,
          flush: () => Promise.resolve(),
          stats: () => ({ writes: 0, failures: 0 }),
          close: () => undefined,
        })
        const loop = yield* makeLoop(stateRef).pipe(
          Effect.provideService(Inbox, inbox),
          Effect.provideService(Processes, processes),
          Effect.provideService(StatusFile, status),
          Effect.provideService(Log, memoryLog()),
        )
        yield* Effect.promise(() => body(loop, fake))
      }),
    ),
  )

const parsedOf = (tab: string) => parseInittab(tab)

describe("event loop", () => {
  it("applies a tell, spawns in file order, asks for at most one status write per batch", async () => {
    const tab = "g:a:1:respawn:a\ng:b:1:respawn:b\ng:c:1:respawn:c\n"
    await withLoop(tab, async (loop, fake) => {
      const applied = await Effect.runPromise(loop.submit(tell("g", "1", parsedOf(tab), loop.now())))
      expect(groupOf(applied.before, "g").seq).toBe(0)
      expect(groupOf(applied.after, "g").seq).toBe(1)
      expect(fake.spawns.map((s) => s.tag)).toEqual(["a", "b", "c"])
      await until("pids known", () => Ref.getUnsafe(loop.state) !== applied.after && loop.batches() >= 2)
      expect(fake.statusRequests).toBeGreaterThanOrEqual(1)
      expect(fake.statusRequests).toBeLessThanOrEqual(loop.batches())
      // Nothing pending: no timer.
      expect(loop.deadline()).toBeUndefined()
    })
  })

  it("respawns an exited entry with a new run", async () => {
    const tab = "g:a:1:respawn:a\n"
    await withLoop(tab, async (loop, fake) => {
      await Effect.runPromise(loop.submit(tell("g", "1", parsedOf(tab), loop.now())))
      fake.exit("a", { _tag: "Exited", code: 1 })
      await until("respawned", () => fake.spawns.length === 2)
      expect(fake.spawns[1]?.run).toBeGreaterThan(fake.spawns[0]?.run ?? Infinity)
    })
  })

  it("arms one timer for the jail's end and restarts the entry when it fires", async () => {
    const tab = ":::respawn-limit:1/500ms\n:::jail:300ms\ng:a:1:respawn:a\n"
    await withLoop(tab, async (loop, fake) => {
      await Effect.runPromise(loop.submit(tell("g", "1", parsedOf(tab), loop.now())))
      fake.exit("a", { _tag: "Exited", code: 1 })
      const deadline = await until("a timer for the jail", () => loop.deadline())
      expect(fake.spawns).toHaveLength(1)
      await until("released and restarted", () => fake.spawns.length === 2, 20_000)
      expect(loop.now()).toBeGreaterThanOrEqual(deadline)
    })
  })

  it("waitFor resolves on a later state, or with undefined after its timeout", async () => {
    const tab = "g:a:1:respawn:a\n"
    await withLoop(tab, async (loop) => {
      const waiting = Effect.runPromise(loop.waitFor((s) => groupOf(s, "g").seq === 1, 10_000))
      loop.offer(tell("g", "1", parsedOf(tab), loop.now()))
      expect(groupOf((await waiting) ?? Ref.getUnsafe(loop.state), "g").level).toBe("1")
      expect(await Effect.runPromise(loop.waitFor((s) => groupOf(s, "g").seq === 5, 50))).toBeUndefined()
    })
  })

  it("kills go to the adapter; a stop that needs no grace leaves no timer", async () => {
    const tab = "g:a:1:respawn:a\ng:b:2:respawn:b\n"
    await withLoop(tab, async (loop, fake) => {
      await Effect.runPromise(loop.submit(tell("g", "1", parsedOf(tab), loop.now())))
      await Effect.runPromise(loop.submit(tell("g", "2", parsedOf(tab), loop.now())))
      expect(fake.kills).toContainEqual({ tag: "a", run: fake.spawns[0]?.run, signal: "SIGTERM" })
      await until("b started", () => fake.spawns.some((s) => s.tag === "b"))
      await until("no timer once a is gone", () => loop.deadline() === undefined)
    })
  })
})
