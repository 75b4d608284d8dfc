/**
 * The loop with a fake process adapter and a fake status writer passed as its dependencies:
 * batching, one status request per batch, the single timer, submit and waitFor, and a bug (a
 * reducer that throws, a broken state invariant) stopping the loop.
 */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Ref from "effect/Ref"
import { describe, expect, it } from "vitest"
import type { Outcome } from "../../src/core/events.ts"
import { tell } from "../../src/core/events.ts"
import { parseInittab } from "../../src/core/inittab.ts"
import { reduce } from "../../src/core/reducer.ts"
import { initialStateWith } from "../../src/core/state.ts"
import { groupOf } from "../../src/core/state.ts"
import { makeBootClock } from "../../src/runtime/boot.ts"
import { memoryLog } from "../../src/runtime/log.ts"
import type { Loop, LoopDeps } from "../../src/runtime/loop.ts"
import { makeInbox, makeLoop } from "../../src/runtime/loop.ts"
import { until } from "./helpers.ts"

interface Fake {
  readonly spawns: Array<{ readonly tag: string; readonly run: number }>
  readonly kills: Array<{ readonly tag: string; readonly run: number; readonly signal: string }>
  readonly live: Map<string, number>
  statusRequests: number
  readonly exit: (tag: string, outcome: Outcome) => void
  readonly log: ReturnType<typeof memoryLog>
}

type Seams = Pick<LoopDeps, "reduce" | "stateProblem">

const withLoop = (tab: string, body: (loop: Loop, fake: Fake) => Promise<void>, seams: Seams = {}): Promise<void> =>
  Effect.runPromise(
    Effect.scoped(
      Effect.gen(function* () {
        const parsed = parseInittab(tab)
        const stateRef = yield* Ref.make(initialStateWith(parsed.config))
        const inbox = yield* makeInbox(makeBootClock())
        const fake: Fake = {
          spawns: [],
          kills: [],
          live: new Map(),
          statusRequests: 0,
          log: memoryLog(),
          exit: (tag, outcome) => {
            const run = fake.live.get(tag)
            if (run === undefined) throw new Error(`${tag} is not running`)
            fake.live.delete(tag)
            inbox.offer({ _tag: "ChildExit", tag, run, outcome, now: inbox.now() })
          },
        }
        const processes: LoopDeps["processes"] = {
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
        }
        const status = { request: () => void fake.statusRequests++ }
        const loop = yield* makeLoop(stateRef, { inbox, processes, status, log: fake.log, ...seams })
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

  it("stops on a reducer that throws: the bug is logged with the event and the stack, and the loop fails", async () => {
    const tab = "g:a:1:respawn:a\nboom:b:1:respawn:b\n"
    const throwing: LoopDeps["reduce"] = (state, event) => {
      if (event._tag === "Tell" && event.group === "boom") throw new Error("injected reducer bug")
      return reduce(state, event)
    }
    await withLoop(
      tab,
      async (loop, fake) => {
        await Effect.runPromise(loop.submit(tell("g", "1", parsedOf(tab), loop.now())))
        loop.offer(tell("boom", "1", parsedOf(tab), loop.now()))
        const crashed = await Effect.runPromise(Effect.exit(loop.crashed))
        expect(Exit.isFailure(crashed) && Exit.findErrorOption(crashed)).toMatchObject({ _tag: "Some", value: { _tag: "ReducerThrew" } })
        const bug = fake.log.lines.find((line) => line.includes(" bug "))
        expect(bug).toMatch(/reducer threw on \{"_tag":"Tell","group":"boom".*injected reducer bug.*loop\.test\.ts/)
        // The event was not dropped and the loop did not go on: nothing else happens.
        const batches = loop.batches()
        fake.exit("a", { _tag: "Exited", code: 1 })
        await new Promise((r) => setTimeout(r, 100))
        expect(loop.batches()).toBe(batches)
        expect(fake.spawns.map((s) => s.tag)).toEqual(["a"])
      },
      { reduce: throwing },
    )
  })

  it("stops when a batch leaves a state that breaks an invariant", async () => {
    const tab = "g:a:1:respawn:a\n"
    await withLoop(
      tab,
      async (loop, fake) => {
        loop.offer(tell("g", "1", parsedOf(tab), loop.now()))
        const crashed = await Effect.runPromise(Effect.exit(loop.crashed))
        expect(Exit.isFailure(crashed) && Exit.findErrorOption(crashed)).toMatchObject({ _tag: "Some", value: { _tag: "StateInvalid", problem: "g is not at level 0" } })
        expect(fake.log.lines.some((line) => / bug .*broke an invariant \(g is not at level 0\)/.test(line))).toBe(true)
        // The bad state never became the loop's state.
        expect(groupOf(Ref.getUnsafe(loop.state), "g").seq).toBe(0)
      },
      { stateProblem: (state) => (groupOf(state, "g").seq > 0 ? "g is not at level 0" : undefined) },
    )
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
