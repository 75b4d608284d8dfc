import { fc, test } from "@fast-check/vitest"
import { expect, it } from "vitest"
import type { Mode } from "../src/core/config.ts"
import type { Effect } from "../src/core/effects.ts"
import { signals } from "../src/core/enums.ts"
import { plan } from "../src/core/plan.ts"
import { hold } from "../src/core/events.ts"
import { World } from "../src/sim/world.ts"
import { exitsAfter, ignoresSigterm, runsForever, stopsAfter } from "../src/sim/behaviour.ts"
import type { Behaviour } from "../src/sim/behaviour.ts"
import { noSignalToReapedRun } from "../src/sim/invariants.ts"
import type { EntrySpec } from "./helpers.ts"
import { configText, effects, entriesArb, entrySpec, exits, isJob, isLive, kills, levelsArb } from "./helpers.ts"
import { acceptedEffects, makeWorld, nearArb, phaseOf, plainBehaviours as plain } from "./helpers.ts"

const allModes: Mode[] = ["respawn", "once", "wait", "test"]

test.prop([entriesArb({ modes: allModes, max: 7 }), levelsArb, levelsArb])(
  "rule 3: entries that do not list the new level are stopped, and their wait/test marks are cleared so they " +
    "run again",
  (entries, [a = "1"], [b = "2"]) => {
    const w = makeWorld(entries, plain(entries))
    w.tell("g", a)
    w.runUntilIdle(60_000)
    const stepB = w.steps
    w.tell("g", b)
    w.runUntilIdle(60_000)
    for (const e of entries) {
      if (!e.levels.includes(b)) {
        expect(isLive(w, e.tag)).toBe(false)
        const wasLive = w.startsOf(e.tag).length > 0 && !isJob(e.mode)
        expect(kills(w, e.tag).filter((k) => k.step >= stepB).map((k) => k.signal)).toEqual(wasLive ? ["SIGTERM"] : [])
      }
    }
    const stepA = w.steps
    w.tell("g", a)
    w.runUntilIdle(60_000)
    for (const e of entries) {
      if (isJob(e.mode) && e.levels.includes(a)) {
        const again = w.startsOf(e.tag).filter((s) => s.step >= stepA).length
        expect(again).toBe(e.levels.includes(b) ? 0 : 1)
      }
    }
    expect(w.violations).toEqual([])
  },
)

type Edit = "remove" | "off" | "keep"
/** What an edit does to each entry. */
const editsArb = fc.array(fc.constantFrom<Edit>("remove", "off", "keep", "keep"), { minLength: 6, maxLength: 6 })
const twoGroupsArb = entriesArb({ modes: ["respawn", "once"], groups: ["g1", "g2"], min: 1, max: 6 })
/** Both groups stay defined whatever the edit removes. */
const anchors = "g1:anchor1:123:once:a1\ng2:anchor2:123:once:a2\n"

const edited = (e: EntrySpec, edit: Edit | undefined): EntrySpec[] => {
  if (edit === "remove") return []
  return edit === "off" ? [{ ...e, mode: "off" }] : [e]
}

test.prop([twoGroupsArb, editsArb, fc.constantFrom("g1", "g2")])(
  "rule 4: entries removed from the isinittab or set to off are stopped at the next tell, whatever group",
  (entries, edits, toldGroup) => {
    const w = makeWorld(entries, plain(entries), { sigtermDelayMs: 0 }, anchors)
    for (const level of ["1", "2", "3"]) {
      w.tell("g1", level)
      w.tell("g2", level)
    }
    const before = new Map(entries.map((e) => [e.tag, w.liveRuns(e.tag).map((p) => p.run)]))
    w.editConfig(anchors + configText(entries.flatMap((e, i) => edited(e, edits[i]))))
    const tellStep = w.steps
    w.tell(toldGroup, "3")
    for (const [i, e] of entries.entries()) {
      const gone = edits[i] !== "keep"
      if (gone) {
        expect(isLive(w, e.tag)).toBe(false)
        const signals = kills(w, e.tag).filter((k) => k.step === tellStep).map((k) => k.signal)
        if ((before.get(e.tag) ?? []).length > 0) expect(signals).toEqual(["SIGTERM"])
      } else if (e.group !== toldGroup) {
        // untouched: a tell for one group leaves the other group's kept entries alone
        expect(w.liveRuns(e.tag).map((p) => p.run)).toEqual(before.get(e.tag))
      }
    }
    expect(w.violations).toEqual([])
  },
)

/** A process that ignores SIGTERM, or the time it takes to honour it (on the grace's edge). */
const stopperArb = fc.oneof(fc.constant<"ignores" | number>("ignores"), nearArb([30_000], 60_000))
const stoppersArb = fc.array(stopperArb, { minLength: 1, maxLength: 6 })

test.prop([stoppersArb, nearArb([0], 50_000)])(
  "rule 7: a stop sends SIGTERM, then SIGKILL exactly when the 30 s grace ends if the process is still alive; " +
    "all stops run concurrently",
  (stoppers, startAt) => {
    const entries = stoppers.map((_, i) => entrySpec(i, "respawn"))
    const taking = (s: "ignores" | number): Behaviour => (s === "ignores" ? ignoresSigterm() : stopsAfter(s))
    const behaviours = stoppers.map((s, i): [string, Behaviour] => [`t${i + 1}`, taking(s)])
    const w = makeWorld(entries, behaviours)
    w.tell("g", "1")
    w.advanceTo(startAt)
    w.tell("g", "2")
    w.runUntilIdle(120_000)
    for (const [i, s] of stoppers.entries()) {
      const tag = `t${i + 1}`
      const signals = kills(w, tag).map((k) => [k.at, k.signal])
      // A process that ends exactly at the grace is reaped before the tick: no SIGKILL.
      const killed = s === "ignores" || s > 30_000
      const term = [startAt, "SIGTERM"]
      expect(signals).toEqual(killed ? [term, [startAt + 30_000, "SIGKILL"]] : [term])
      expect(exits(w, tag).map((x) => x.at)).toEqual([killed ? startAt + 30_000 : startAt + (s as number)])
    }
    expect(w.violations).toEqual([])
  },
)

/** An entry's own stop: its `stop-signal` and `kill-grace` options, each given or not (issue 11). */
const ownStopArb = fc.record({
  signal: fc.option(fc.constantFrom(...signals), { nil: undefined }),
  graceMs: fc.option(fc.integer({ min: 1, max: 40_000 }), { nil: undefined }),
})
/** The directive's grace, entries with their own stops, and how each takes its stop signal (edges on its grace). */
const ownStopsArb = fc.integer({ min: 1, max: 40_000 }).chain((directiveMs) =>
  fc.record({
    directiveMs: fc.constant(directiveMs),
    stops: fc.array(ownStopArb, { minLength: 1, maxLength: 5 }).chain((own) =>
      fc.tuple(...own.map((o) => fc.tuple(fc.constant(o), fc.oneof(fc.constant<"ignores" | number>("ignores"), nearArb([o.graceMs ?? directiveMs], 50_000))))),
    ),
  }),
)

test.prop([ownStopsArb])(
  "rule 7: a stop sends the entry's stop signal (SIGTERM unless it says), then SIGKILL exactly when its grace ends " +
    "(its kill-grace, else the directive's) if the process is still alive",
  ({ directiveMs, stops }) => {
    const entries = stops.map((_, i) => entrySpec(i, "respawn"))
    const options = stops.flatMap(([own], i) => [
      ...(own.signal === undefined ? [] : [`:::option:t${i + 1}:stop-signal=${own.signal.slice(3)}\n`]),
      ...(own.graceMs === undefined ? [] : [`:::option:t${i + 1}:kill-grace=${own.graceMs}ms\n`]),
    ])
    const behaviours = stops.map(([, s], i): [string, Behaviour] => [`t${i + 1}`, s === "ignores" ? ignoresSigterm() : stopsAfter(s)])
    const w = makeWorld(entries, behaviours, {}, `:::kill-grace:${directiveMs}ms\n${options.join("")}`)
    w.tell("g", "1")
    w.advanceTo(100)
    w.tell("g", "2")
    w.runUntilIdle(200_000)
    for (const [i, [own, s]] of stops.entries()) {
      const tag = `t${i + 1}`
      const first = own.signal ?? "SIGTERM"
      const grace = own.graceMs ?? directiveMs
      // SIGKILL as the stop signal needs no second one; a process that ends exactly at the grace is reaped first.
      const killed = first !== "SIGKILL" && (s === "ignores" || s > grace)
      expect(kills(w, tag).map((k) => [k.at, k.signal])).toEqual(killed ? [[100, first], [100 + grace, "SIGKILL"]] : [[100, first]])
      const endsAt = first === "SIGKILL" ? 100 : killed ? 100 + grace : 100 + (s as number)
      expect(exits(w, tag).map((x) => [x.at, x.outcome])).toEqual([[endsAt, { _tag: "Signaled", signal: killed ? "SIGKILL" : first }]])
    }
    expect(w.violations).toEqual([])
  },
)

it.each([
  { what: "by default SIGTERM, then SIGKILL at exactly the end of the 30 s grace", config: "g:r:1:respawn:server\n", signal: "SIGTERM", grace: 30_000 },
  {
    what: "with stop-signal=INT and kill-grace=2s, SIGINT, then SIGKILL exactly 2 s later",
    config: ":::kill-grace:30s\n:::option:r:stop-signal=INT\n:::option:r:kill-grace=2s\ng:r:1:respawn:server\n",
    signal: "SIGINT",
    grace: 2_000,
  },
])("rule 7 by example: $what, not a millisecond before", ({ config, signal, grace }) => {
  const w = new World({ config, behaviours: [["r", ignoresSigterm()]] })
  w.tell("g", "1")
  w.advanceTo(1_000)
  w.tell("g", "2")
  w.advanceTo(1_000 + grace - 1)
  expect(kills(w, "r").map((k) => [k.at, k.signal])).toEqual([[1_000, signal]])
  w.advanceTo(1_000 + grace)
  expect(kills(w, "r").map((k) => [k.at, k.signal])).toEqual([[1_000, signal], [1_000 + grace, "SIGKILL"]])
  expect(w.processes.size).toBe(0)
  expect(w.violations).toEqual([])
})

it("rule 7 by example: in a failover group an entry's kill-grace=60s is cut to the failover grace (2 s), which the lease's fencing counts on", () => {
  const config = ":::failover:g:1\n:::failover-kill-grace:2s\n:::option:r:kill-grace=60s\ng:r:1:respawn:server\n"
  const w = new World({ config, behaviours: [["r", ignoresSigterm()]] })
  // Held until 1 s: the lapsed hold stops the group (a tell is refused for a failover group).
  w.inject(hold("g", 1, 1_000, 0))
  w.advanceTo(999)
  expect(w.liveRuns("r")).toHaveLength(1)
  w.advanceTo(2_999)
  expect(kills(w, "r").map((k) => [k.at, k.signal])).toEqual([[1_000, "SIGTERM"]])
  w.advanceTo(3_000)
  expect(kills(w, "r").map((k) => [k.at, k.signal])).toEqual([[1_000, "SIGTERM"], [3_000, "SIGKILL"]])
  expect(w.processes.size).toBe(0)
  expect(w.violations).toEqual([])
})

/** Tells, crashes, time and stopall, with times on the grace's edge. */
const scriptArb = fc.array(
  fc.tuple(fc.integer({ min: 0, max: 3 }), nearArb([30_000, 10], 40_000), fc.constantFrom("1", "2", "3")),
  { maxLength: 12 },
)
/** How long each entry runs before it exits by itself. */
const lifetimesArb = fc.array(fc.integer({ min: 0, max: 40_000 }), { minLength: 6, maxLength: 6 })

test.prop([entriesArb({ modes: allModes, max: 6 }), scriptArb, lifetimesArb])(
  "rule 7: no signal is ever aimed at a run that has already been reaped",
  (entries, script, lifetimes) => {
    const behaviours = entries.map((e, i): [string, Behaviour] => [e.tag, exitsAfter(lifetimes[i] ?? 10, i % 2)])
    const w = makeWorld(entries, behaviours, { invariants: [noSignalToReapedRun] })
    for (const [kind, ms, level] of script) {
      w.advance(ms)
      if (kind === 0) w.tell("g", level)
      else if (kind === 1) w.crash(`t${(ms % entries.length) + 1}`, 1)
      else if (kind === 2) w.advance(ms)
      else w.stopAll()
    }
    w.runUntilIdle(200_000)
    expect(w.violations).toEqual([])
  },
)

/** How an outgoing process takes its SIGTERM: it ignores it, or ends after a while (edges on the grace). */
const sigtermTakerArb = fc.oneof(
  fc.constant(ignoresSigterm()),
  nearArb([30_000, 0], 40_000).map((ms) => stopsAfter(ms)),
)
/** Entries of group g with how each takes SIGTERM, and two levels to move between. */
const groupMoveArb = fc.record({
  entries: entriesArb({ modes: ["respawn", "once", "wait", "test"], max: 6 }),
  takers: fc.array(sigtermTakerArb, { minLength: 6, maxLength: 6 }),
  from: fc.constantFrom("1", "2", "3"),
  to: fc.constantFrom("1", "2", "3"),
  crashAt: fc.integer({ min: 0, max: 40_000 }),
})

/** The exit of one run, as the world delivered it. */
const exitOf = (w: World, tag: string, run: number) =>
  w.history.find((s) => s.event._tag === "ChildExit" && s.event.tag === tag && s.event.run === run)

test.prop([groupMoveArb])(
  "rule 15: a group's outgoing processes are gone before its incoming entries start (K before S); " +
    "other groups go on meanwhile",
  ({ entries, takers, from, to, crashAt }) => {
    const behaviours = entries.map((e, i): [string, Behaviour] =>
      [e.tag, e.mode === "wait" || e.mode === "test" ? exitsAfter(50, 0) : (takers[i] ?? runsForever())])
    const other = "h:crashy:123:respawn:crashy\n"
    const w = makeWorld(entries, behaviours, {}, other)
    w.tell("h", "1")
    w.tell("g", from)
    w.runUntilIdle(600_000)
    const tellStep = w.steps
    w.tell("g", to)
    const outgoing = kills(w).filter((k) => k.step === tellStep && k.signal === "SIGTERM")
    w.advanceTo(w.now + crashAt)
    w.crash("crashy", 1) // another group's restart never waits for g
    expect(w.startsOf("crashy").at(-1)?.at).toBe(w.now)
    w.runUntilIdle(600_000)
    const gone = outgoing.map((k) => exitOf(w, k.tag, k.run))
    const lastGone = Math.max(-1, ...gone.map((s) => s?.index ?? Infinity))
    const incoming = w.starts.filter((s) => s.step >= tellStep && s.group === "g")
    for (const start of incoming) expect(start.step).toBeGreaterThanOrEqual(lastGone)
    // ...and not later than needed: the first one starts as the last outgoing process goes.
    const first = incoming[0]
    if (first !== undefined && outgoing.length > 0) expect(first.step).toBe(lastGone)
    expect(w.violations).toEqual([])
  },
)

test.prop([groupMoveArb])(
  "rule 15: `plan` tells the truth: its stops and starts come in the order the daemon takes them",
  ({ entries, from, to }) => {
    const w = makeWorld(entries, plain(entries))
    w.tell("g", from)
    w.runUntilIdle(600_000)
    const planned = acceptedEffects(plan(w.state, "g", to, w.parsed, w.now))
    const stepOfTell = w.steps
    w.tell("g", to)
    w.runUntilIdle(600_000)
    const order = (fx: readonly Effect[]) =>
      fx.flatMap((e) => (e._tag === "Kill" || e._tag === "Spawn" || e._tag === "RunSync" ? [`${e._tag} ${e.tag}`] : []))
    const done = effects(w).filter((e) => e.step >= stepOfTell).map((e) => e.effect)
    expect(order(planned)).toEqual(order(done))
    expect(w.violations).toEqual([])
  },
)

it("rule 15: a server and the maintenance page on its port: the page starts when the server is gone", () => {
  const w = new World({
    config: "web:server:run,:respawn:httpd\nweb:page:maint,:respawn:maint-page\n",
    behaviours: [["server", stopsAfter(2_000)]],
  })
  w.tell("web", "run")
  w.advanceTo(1_000)
  w.tell("web", "maint")
  w.advanceTo(2_999)
  expect(w.startsOf("page")).toEqual([])
  expect(phaseOf(w, "web")).toBe("start")
  w.advanceTo(3_000)
  expect(w.startsOf("page").map((s) => s.at)).toEqual([3_000])
  expect(phaseOf(w, "web")).toBe("run")
  const steps = acceptedEffects(plan(w.state, "web", "run", w.parsed, w.now))
  expect(steps.flatMap((e) => (e._tag === "Kill" || e._tag === "Spawn" ? [`${e._tag} ${e.tag}`] : []))).toEqual([
    "Kill page",
    "Spawn server",
  ])
})
