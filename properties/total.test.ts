import { fc, test } from "@fast-check/vitest"
import { expect } from "vitest"
import type { Parsed } from "../src/core/config.ts"
import type { Effect } from "../src/core/effects.ts"
import type { Event, Outcome } from "../src/core/events.ts"
import { childExit } from "../src/core/events.ts"
import { parseInittab } from "../src/core/inittab.ts"
import { nextDeadline, reduce } from "../src/core/reducer.ts"
import { report } from "../src/core/report.ts"
import { snapshot } from "../src/core/snapshot.ts"
import type { State } from "../src/core/state.ts"
import { initialState } from "../src/core/state.ts"
import { statusRows } from "../src/core/status.ts"
import { crashesEvery, exitsAfter, ignoresSigterm } from "../src/sim/behaviour.ts"
import { World } from "../src/sim/world.ts"
import { checkInvariants, stepProblems } from "../src/core/invariants.ts"

const configs: readonly Parsed[] = [
  parseInittab("g:t1:12:respawn:a\ng:t2:1:wait:b\ng:t3:2:test:c\nh:t4:1,2:once:d\n"),
  parseInittab(
    ":::kill-grace:1s\n:::respawn-limit:2/1s\n:::jail:2s\ng:t1:1:respawn:a --v2\nh:t2:.:respawn:b\ng:t3:2:off:c\n",
  ),
  parseInittab("g:t1:1:respawn:a\ng:t1:2:once:dup\n"), // an error: repeated tag
  parseInittab(""),
]

const configArb = fc.constantFrom(...configs)
const tagArb = fc.constantFrom("t1", "t2", "t3", "t4", "zz")
/** Run numbers of live, past and never-started runs. */
const runArb = fc.integer({ min: -1, max: 15 })
/** Times from the past, the present and the far future. */
const nowArb = fc.integer({ min: -5_000, max: 400_000 })
const outcomeArb: fc.Arbitrary<Outcome> = fc.oneof(
  fc.integer({ min: 0, max: 255 }).map((code): Outcome => ({ _tag: "Exited", code })),
  fc.constantFrom<Outcome>(
    { _tag: "Signaled", signal: "SIGKILL" },
    { _tag: "Signaled", signal: "SIGTERM" },
    { _tag: "SpawnFailed", reason: "ENOENT" },
    { _tag: "Vanished" },
  ),
)

/** An event, or a recipe for a Restore built from the state at that point (a snapshot of it). */
type Gen = { readonly event: Event } | { readonly restore: RestoreRecipe }
interface RestoreRecipe {
  readonly alive: readonly number[]
  readonly parsed: Parsed
  readonly now: number
}

const event = (e: Event): Gen => ({ event: e })
const tellArb = fc.record({
  group: fc.constantFrom("g", "h", "nosuch"),
  level: fc.constantFrom("1", "2", ".", "0", ""),
  parsed: configArb,
  now: nowArb,
})
const exitArb = fc.record({ tag: tagArb, run: runArb, outcome: outcomeArb, now: nowArb })
const restoreArb = fc.record({
  alive: fc.array(fc.integer({ min: 1, max: 5 }), { maxLength: 3 }),
  parsed: configArb,
  now: nowArb,
})
const startedArb = fc.record({ tag: tagArb, run: runArb, pid: fc.integer({ min: 1, max: 5 }), now: nowArb })

/** Any event the daemon can receive, in any order, at any time. */
const genArb: fc.Arbitrary<Gen> = fc.oneof(
  tellArb.map((e) => event({ _tag: "Tell", ...e })),
  fc.record({ parsed: configArb, now: nowArb }).map((e) => event({ _tag: "Reload", ...e })),
  nowArb.map((now) => event({ _tag: "StopAll", now })),
  startedArb.map((e) => event({ _tag: "Started", ...e })),
  exitArb.map((e) => event({ _tag: "ChildExit", ...e })),
  exitArb.map((e) => event({ _tag: "ChildExit", ...e })),
  exitArb.map((e) => event({ _tag: "LeaderExited", ...e })),
  nowArb.map((now) => event({ _tag: "Tick", now })),
  restoreArb.map((restore): Gen => ({ restore })),
)

interface Played {
  readonly effects: Effect[][]
  readonly reports: unknown[]
  readonly deadlines: (number | undefined)[]
  readonly state: State
}

/** Runs a script through the bare reducer; everything observable is collected. */
const play = (script: readonly Gen[]): Played => {
  let state = initialState
  const effects: Effect[][] = []
  const reports: unknown[] = []
  const deadlines: (number | undefined)[] = []
  for (const g of script) {
    const next: Event = "event" in g ? g.event : { _tag: "Restore", snapshot: snapshot(state), ...g.restore }
    const [after, fx] = reduce(state, next)
    // The core's invariants hold after every step (core/invariants.ts; a broken one throws).
    checkInvariants(after)
    const broken = stepProblems(state, next, after)
    if (broken.length > 0) throw new Error(broken.map((p) => `${p.invariant}: ${p.message}`).join("; "))
    state = after
    effects.push([...fx])
    reports.push(report(state))
    deadlines.push(nextDeadline(state))
  }
  return { effects, reports, deadlines, state }
}

const scriptArb = fc.array(genArb, { maxLength: 60 })

test.prop([scriptArb], { numRuns: 300 })(
  "rule 13: the reducer is total: any sequence of events (unknown runs, past ticks, duplicate exits, leader " +
    "exits, bad configs, restores) never throws and breaks no invariant",
  (script) => {
    const { state } = play(script)
    expect(() => statusRows(state)).not.toThrow()
  },
)

test.prop([scriptArb], { numRuns: 200 })(
  "rule 13: the reducer is deterministic: the same events give the same states and effects",
  (script) => {
    const a = play(script)
    const b = play(script)
    expect(b.effects).toEqual(a.effects)
    expect(b.reports).toEqual(a.reports)
    expect(b.deadlines).toEqual(a.deadlines)
  },
)

const exitedZero: Outcome = { _tag: "Exited", code: 0 }

type Noise = "tell" | "crash" | "dup-exit" | "past-tick" | "unknown" | "advance"
/** Real work (tells, crashes, time) mixed with noise: exits seen before, exits of unknown runs, ticks from the past. */
const noisyScriptArb = fc.array(
  fc.record({
    what: fc.constantFrom<Noise>("tell", "crash", "dup-exit", "past-tick", "unknown", "advance"),
    n: fc.integer({ min: 0, max: 20_000 }),
    level: fc.constantFrom("1", "2"),
  }),
  { maxLength: 40 },
)

test.prop([noisyScriptArb])(
  "rule 13: duplicate exits, exits of unknown runs and ticks from the past, interleaved with real work, " +
    "break no invariant",
  (script) => {
    const w = new World({
      config: "g:t1:12:respawn:a\ng:t2:1:wait:b\ng:t3:2:once:c\n",
      behaviours: [["t1", crashesEvery(3_000)], ["t2", exitsAfter(500, 0)], ["t3", ignoresSigterm()]],
    })
    for (const { what, n, level } of script) {
      if (what === "tell") w.tell("g", level)
      else if (what === "crash") w.crash(n % 2 === 0 ? "t1" : "t3", "SIGKILL")
      else if (what === "advance") w.advance(n)
      else if (what === "past-tick") w.inject({ _tag: "Tick", now: Math.max(0, w.now - n) })
      else if (what === "unknown") w.inject(childExit(n % 2 === 0 ? "t1" : "nosuch", 1_000 + n, exitedZero, w.now))
      else {
        const old = w.history.filter((s) => s.event._tag === "ChildExit").at(-(1 + (n % 3)))?.event
        if (old !== undefined) w.inject({ ...old, now: w.now })
      }
    }
    w.runUntilIdle(200_000)
    expect(w.violations).toEqual([])
  },
)
