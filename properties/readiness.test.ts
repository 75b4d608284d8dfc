/**
 * Rules 20-22: readiness and health probes (`ready`, `ready-timeout`, `health`, `health-every`,
 * `health-fails`), in virtual time. The world answers each probe at once from the process's
 * behaviour (`readyAfter`, `neverReady`, `unhealthyAfter`): probes while starting run every 200ms
 * from the start, health probes every `health-every` from the moment the entry is ready.
 */
import { fc, test } from "@fast-check/vitest"
import { describe, expect, it } from "vitest"
import type { Mode } from "../src/core/config.ts"
import { hold, probeResult, restore, tick } from "../src/core/events.ts"
import { snapshot } from "../src/core/snapshot.ts"
import { initialState } from "../src/core/state.ts"
import { plan } from "../src/core/plan.ts"
import { reduce } from "../src/core/reducer.ts"
import { lookup } from "../src/core/state.ts"
import type { Behaviour } from "../src/sim/behaviour.ts"
import { crashesEvery, exitsAfter, neverReady, readyAfter, runsForever, unhealthyAfter } from "../src/sim/behaviour.ts"
import type { World } from "../src/sim/world.ts"
import type { EntrySpec } from "./helpers.ts"
import { entrySpec, kills, makeWorld, nearArb, phaseOf } from "./helpers.ts"

/** When a run started at `from` is probed for readiness: at once, then 5, 10, 20, 40, 80, 160 ms apart, then every 200 ms. */
const readyProbeTimes = (from: number, until: number): number[] => {
  const times = [from]
  const gaps = [5, 10, 20, 40, 80, 160]
  for (let i = 0, at = from; at <= until; i++) times.push((at += gaps[i] ?? 200))
  return times
}

/** The first readiness probe at or after `readyAt` of a run started at `from`. */
const firstProbeFrom = (from: number, readyAt: number): number => readyProbeTimes(from, from + readyAt + 200).find((at) => at >= from + readyAt) ?? Infinity

/** When the tag's ready probe first passed (its `probe ready` log lines). */
const readyTimes = (w: World, tag: string): number[] =>
  w.timeline.filter((t) => t.what === "probe" && t.tag === tag && t.detail.startsWith("probe ready")).map((t) => t.at)

const stateOf = (w: World, tag: string): string | undefined => w.report().groups.flatMap((g) => g.entries).find((e) => e.tag === tag)?.state

/** Whether t1 has a probe in flight. */
const probing = (w: World): boolean => {
  const r = lookup(w.state.entries, "t1")?.readiness
  return (r?._tag === "Starting" || r?._tag === "Ready") && r.probe?.stage === "InFlight"
}

const options = (lines: readonly string[]): string => lines.map((l) => `:::option:${l}\n`).join("")

/** Entries after the ready-checked first one: any mode that runs. */
const laterModesArb = fc.array(fc.constantFrom<Mode>("respawn", "once", "wait", "test"), { minLength: 1, maxLength: 4 })
const laterBehaviour = (mode: Mode): Behaviour => (mode === "wait" || mode === "test" ? exitsAfter(50, 0) : runsForever())

describe("rule 20: readiness is a barrier", () => {
  test.prop([nearArb([0, 5, 15, 35, 75, 155, 315, 515], 5_000), laterModesArb])(
    "rule 20: an entry after a ready-checked one starts only once its probe has passed (at the first probe " +
      "at or after it is ready), it shows starting until then, and the group is run once every entry is taken",
    (readyMs, laterModes) => {
      const entries: EntrySpec[] = [entrySpec(0, "respawn"), ...laterModes.map((mode, i) => entrySpec(i + 1, mode))]
      const behaviours: [string, Behaviour][] = [["t1", readyAfter(readyMs)], ...entries.slice(1).map((e): [string, Behaviour] => [e.tag, laterBehaviour(e.mode)])]
      const w = makeWorld(entries, behaviours, {}, options(["t1:ready=tcp:127.0.0.1:5432", "t1:ready-timeout=1m"]))
      w.tell("g", "1")
      const readyAt = firstProbeFrom(0, readyMs)
      if (readyAt > 0) {
        w.advanceTo(readyAt - 1)
        expect(stateOf(w, "t1")).toBe("starting")
        expect(phaseOf(w, "g")).toBe("start")
        expect(w.startsOf("t2")).toEqual([])
      }
      w.runUntilIdle(120_000)
      expect(readyTimes(w, "t1")).toEqual([readyAt])
      expect(w.startsOf("t2")[0]?.at).toBe(readyAt)
      expect(stateOf(w, "t1")).toBe("running")
      expect(phaseOf(w, "g")).toBe("run")
      expect(w.violations).toEqual([])
    },
  )

  test.prop([fc.integer({ min: 50, max: 3_000 }), fc.integer({ min: 0, max: 4_000 }), fc.integer({ min: 1_000, max: 30_000 })])(
    "rule 20: a ready-checked entry that exits before it is ready is restarted by the respawn rules (window, jail) " +
      "while the barrier and its deadline hold: the next entry starts when a run is ready or at the deadline",
    (crashMs, readyMs, timeoutMs) => {
      const entries = [entrySpec(0, "respawn"), entrySpec(1, "once")]
      const w = makeWorld(entries, [["t1", readyAfter(readyMs, crashesEvery(crashMs))]], {}, options(["t1:ready=file:/run/t1.ready", `t1:ready-timeout=${timeoutMs}ms`]))
      w.tell("g", "1")
      w.advanceTo(timeoutMs + 1)
      const ready = readyTimes(w, "t1").filter((at) => at < timeoutMs)
      const released = ready[0] ?? timeoutMs
      expect(w.startsOf("t2")[0]?.at).toBe(released)
      // Every start of t1 is a respawn of the barrier, within its rate limit (the world's invariants check it).
      expect(w.startsOf("t1").length).toBeGreaterThanOrEqual(Math.min(5, Math.ceil(released / crashMs)))
      expect(phaseOf(w, "g")).toBe(ready.length > 0 ? "run" : "fail")
      expect(w.violations).toEqual([])
    },
  )
})

describe("rule 21: the ready timeout", () => {
  test.prop([fc.integer({ min: 1, max: 100_000 })])(
    "rule 21: an entry never ready: at exactly ready-timeout the group is fail and the next entry starts, one ms " +
      "before it is start; the entry keeps running as not-ready",
    (timeoutMs) => {
      const w = makeWorld([entrySpec(0, "respawn"), entrySpec(1, "respawn")], [["t1", neverReady()]], {}, options([`t1:ready=exec:pg_isready`, `t1:ready-timeout=${timeoutMs}ms`]))
      w.tell("g", "1")
      w.advanceTo(timeoutMs - 1)
      expect(phaseOf(w, "g")).toBe("start")
      expect(w.startsOf("t2")).toEqual([])
      w.advanceTo(timeoutMs)
      expect(phaseOf(w, "g")).toBe("fail")
      expect(w.startsOf("t2").map((s) => s.at)).toEqual([timeoutMs])
      expect(stateOf(w, "t1")).toBe("not-ready")
      expect(w.startsOf("t1")).toHaveLength(1)
      expect(w.violations).toEqual([])
    },
  )

  test.prop([fc.integer({ min: 1_000, max: 20_000 }), fc.integer({ min: 1, max: 20_000 })])(
    "rule 21: a tell of the level a group is at after a ready timeout (rules 16, 17) probes again with a new " +
      "deadline, without restarting the entry; the group is run once it is ready",
    (timeoutMs, lateMs) => {
      const readyMs = timeoutMs + lateMs
      const w = makeWorld([entrySpec(0, "respawn"), entrySpec(1, "once")], [["t1", readyAfter(readyMs)]], {}, options(["t1:ready=http://127.0.0.1:8080/ready", `t1:ready-timeout=${timeoutMs}ms`]))
      w.tell("g", "1")
      w.advanceTo(timeoutMs)
      expect(phaseOf(w, "g")).toBe("fail")
      w.tell("g", "1")
      expect(phaseOf(w, "g")).toBe("start")
      expect(stateOf(w, "t1")).toBe("starting")
      w.advanceTo(timeoutMs + timeoutMs)
      // Probed again from the re-tell, as from a start; an answer counts only before the new deadline.
      const detectedAt = firstProbeFrom(timeoutMs, lateMs)
      const expected = detectedAt < 2 * timeoutMs ? "run" : "fail"
      expect(phaseOf(w, "g")).toBe(expected)
      expect(w.startsOf("t1")).toHaveLength(1)
      expect(w.startsOf("t2")).toHaveLength(1)
      expect(w.violations).toEqual([])
    },
  )
})

/** Health arbitraries: the period, failures in a row that restart, when the process turns unhealthy. */
const everyArb = fc.integer({ min: 100, max: 10_000 })
const failsArb = fc.integer({ min: 1, max: 5 })
const unhealthyArb = fc.integer({ min: 0, max: 60_000 })

describe("rule 22: health checks", () => {
  test.prop([everyArb, failsArb, unhealthyArb])(
    "rule 22: after exactly health-fails failures in a row the entry is stopped and started again, its restart " +
      "counted; not one probe earlier",
    (everyMs, fails, unhealthyMs) => {
      const w = makeWorld([entrySpec(0, "respawn")], [["t1", unhealthyAfter(unhealthyMs)]], {}, options(["t1:ready=tcp:127.0.0.1:1", "t1:health=tcp:127.0.0.1:1", `t1:health-every=${everyMs}ms`, `t1:health-fails=${fails}`]))
      w.tell("g", "1")
      const firstFailing = Math.max(1, Math.ceil(unhealthyMs / everyMs))
      const restartAt = (firstFailing + fails - 1) * everyMs
      w.advanceTo(restartAt - 1)
      expect(kills(w, "t1")).toEqual([])
      w.advanceTo(restartAt)
      expect(kills(w, "t1").map((k) => [k.at, k.signal])).toEqual([[restartAt, "SIGTERM"]])
      w.advanceTo(restartAt + 100)
      expect(w.startsOf("t1").map((s) => s.at)).toEqual([0, restartAt + 10])
      expect(w.report().groups[0]?.entries[0]?.restarts).toBe(1)
      expect(w.violations).toEqual([])
    },
  )

  it("rule 22 by example: health restarts count toward the respawn window: with respawn-limit 2/1m the third start is jailed", () => {
    const w = makeWorld([entrySpec(0, "respawn")], [["t1", unhealthyAfter(0)]], {}, ":::respawn-limit:2/1m\n:::jail:5m\n" + options(["t1:health=file:/run/ok", "t1:health-every=1s", "t1:health-fails=2"]))
    w.tell("g", "1")
    w.advanceTo(10_000)
    expect(w.startsOf("t1").map((s) => s.at)).toEqual([0, 2_010])
    expect(w.report().groups[0]?.entries[0]).toMatchObject({ state: "jailed", restarts: 2 })
    expect(w.timeline.filter((t) => t.kind === "jailed").map((t) => t.at)).toEqual([4_020])
    expect(w.violations).toEqual([])
  })

  const staleArb = fc.record({
    at: fc.integer({ min: 0, max: 30_000 }),
    /** Move on to the next moment a probe is in flight (they answer 5ms after they are sent). */
    inFlight: fc.boolean(),
    run: fc.integer({ min: -2, max: 2 }),
    attempt: fc.integer({ min: -3, max: 3 }),
    passed: fc.boolean(),
  })

  test.prop([fc.integer({ min: 0, max: 10_000 }), fc.integer({ min: 0, max: 20_000 }), staleArb])(
    "rule 22: a probe result that is not the one an entry waits for (another run, another attempt, one not sent) " +
      "changes nothing",
    (readyMs, unhealthyMs, stale) => {
      const w = makeWorld([entrySpec(0, "respawn"), entrySpec(1, "respawn")], [["t1", unhealthyAfter(unhealthyMs, readyAfter(readyMs))]], { probeLatencyMs: 5 }, options(["t1:ready=tcp:127.0.0.1:1", "t1:ready-timeout=8s", "t1:health=tcp:127.0.0.1:1", "t1:health-every=1s", "t1:health-fails=2"]))
      w.tell("g", "1")
      w.advanceTo(stale.at)
      for (let ms = 0; stale.inFlight && ms < 2_000 && !probing(w); ms++) w.advance(1)
      const before = w.state
      const entry = lookup(before.entries, "t1")
      const r = entry?.readiness
      const slot = r?._tag === "Starting" || r?._tag === "Ready" ? r.probe : undefined
      const run = (entry?.proc._tag === "Idle" ? undefined : entry?.proc.run) ?? 1
      const attempt = (slot?.attempt ?? 1) + stale.attempt
      const awaited = stale.run === 0 && stale.attempt === 0 && slot?.stage === "InFlight" && slot.run === run
      fc.pre(!awaited)
      const result = stale.passed ? { _tag: "Passed" as const } : { _tag: "Failed" as const, reason: "x" }
      const [after, fx] = reduce(before, probeResult("t1", run + stale.run, attempt, result, w.now))
      expect(fx).toEqual([])
      expect(after.entries).toBe(before.entries)
      expect(after.groups).toBe(before.groups)
    },
  )
})

describe("rules 20-22 by example: stop before start, stopall, reload, restore", () => {
  it("rule 15 with 20: the outgoing entry is gone before the ready-checked one starts, and the next waits for its readiness", () => {
    const entries = [entrySpec(0, "respawn", ["1"]), entrySpec(1, "respawn", ["2"]), entrySpec(2, "once", ["2"])]
    const w = makeWorld(entries, [["t2", readyAfter(1_000)]], { sigtermDelayMs: 500 }, options(["t2:ready=tcp:127.0.0.1:80"]))
    w.tell("g", "1")
    w.tell("g", "2")
    w.runUntilIdle(10_000)
    expect(w.startsOf("t2").map((s) => s.at)).toEqual([500])
    expect(w.startsOf("t3").map((s) => s.at)).toEqual([firstProbeFrom(500, 1_000)])
    expect(phaseOf(w, "g")).toBe("run")
    expect(w.violations).toEqual([])
  })

  it("rule 8 with 20: stopall while an entry is starting stops it, sends no more probes and halts", () => {
    const w = makeWorld([entrySpec(0, "respawn"), entrySpec(1, "once")], [["t1", neverReady()]], {}, options(["t1:ready=tcp:127.0.0.1:80"]))
    w.tell("g", "1")
    w.advanceTo(1_000)
    const probes = w.probes
    w.stopAll()
    w.runUntilIdle(120_000)
    expect(w.state.lifecycle).toBe("halted")
    expect(w.probes).toBe(probes)
    expect(w.startsOf("t2")).toEqual([])
    expect(w.violations).toEqual([])
  })

  it("rule 12 with 20: a reload with a changed probe restarts the entry, which must pass its new probe", () => {
    const config = (probe: string): string => `g:t1:1:respawn:c1\ng:t2:1:once:c2\n:::option:t1:ready=${probe}\n`
    const w = makeWorld([], [["t1", readyAfter(300)]], {}, config("tcp:127.0.0.1:80"))
    w.tell("g", "1")
    w.advanceTo(1_000)
    expect(phaseOf(w, "g")).toBe("run")
    w.editConfig(config("file:/run/t1.ready"))
    w.reload()
    w.advanceTo(1_100)
    expect(stateOf(w, "t1")).toBe("starting")
    w.runUntilIdle(10_000)
    const probesSent = w.history.flatMap((s) => s.effects.flatMap((e) => (e._tag === "Probe" && e.run === 3 ? [e.probe._tag] : [])))
    expect(probesSent[0]).toBe("File")
    expect(phaseOf(w, "g")).toBe("run")
    expect(w.violations).toEqual([])
  })

  it("rule 19 with 20: an adopted ready-checked entry is probed again: its group is start until it passes, then run; health resumes", () => {
    const w = makeWorld([entrySpec(0, "respawn"), entrySpec(1, "once")], [], {}, options(["t1:ready=tcp:127.0.0.1:80", "t1:health=tcp:127.0.0.1:80"]))
    w.tell("g", "1")
    w.advanceTo(1_000)
    expect(phaseOf(w, "g")).toBe("run")
    const runs = [...w.processes.values()].map((p) => p.run)
    const [restored, fx] = reduce(initialState, restore(snapshot(w.state), runs, w.parsed, w.now + 1))
    expect(lookup(restored.groups, "g")?.phase).toBe("start")
    expect(fx.filter((e) => e._tag === "Spawn")).toEqual([])
    const [adopted, probed] = reduce(restored, tick(w.now + 1))
    const probe = probed.find((e) => e._tag === "Probe")
    expect(probe).toMatchObject({ tag: "t1", purpose: "ready" })
    if (probe?._tag !== "Probe") return
    const [ready, more] = reduce(adopted, probeResult("t1", probe.run, probe.attempt, { _tag: "Passed" }, w.now + 2))
    expect(lookup(ready.groups, "g")?.phase).toBe("run")
    expect(more.filter((e) => e._tag === "Spawn")).toEqual([])
    expect(lookup(ready.entries, "t1")?.readiness).toMatchObject({ _tag: "Ready", probe: { stage: "Scheduled" } })
  })

  it("rules 20-22: an entry without probes arms no timer and sends no probe (an idle daemon stays idle); one with health does", () => {
    const plain = makeWorld([entrySpec(0, "respawn"), entrySpec(1, "respawn")])
    plain.tell("g", "1")
    plain.advance(1)
    expect(plain.isIdle()).toBe(true)
    expect(plain.probes).toBe(0)
    const checked = makeWorld([entrySpec(0, "respawn")], [], {}, options(["t1:health=file:/x"]))
    checked.tell("g", "1")
    checked.advance(1)
    expect(checked.deadline).toBe(10_000)
  })

  it("failover holds with 20: a failover group's ready entry is probed while the hold lasts; when the hold runs out it is stopped and probed no more", () => {
    const w = makeWorld([entrySpec(0, "respawn", ["1"]), entrySpec(1, "once", ["1"])], [["t1", readyAfter(300)]], {}, ":::failover:g:1\n" + options(["t1:ready=tcp:127.0.0.1:80", "t1:health=tcp:127.0.0.1:80", "t1:health-every=1s"]))
    w.inject(hold("g", 1, 10_000, 0))
    w.advanceTo(1_000)
    expect(phaseOf(w, "g")).toBe("run")
    expect(w.startsOf("t2").map((s) => s.at)).toEqual([315])
    w.advanceTo(10_000)
    const probes = w.probes
    w.advanceTo(60_000)
    expect(w.probes).toBe(probes)
    expect(w.liveRuns("t1")).toEqual([])
    expect(w.violations).toEqual([])
  })

  it("rule 15 with 20: `plan` assumes each ready probe passes at once and lists the whole transition, waiting at each ready entry", () => {
    const entries = [entrySpec(0, "respawn"), entrySpec(1, "respawn"), entrySpec(2, "wait"), entrySpec(3, "once")]
    const w = makeWorld(entries, [], {}, options(["t1:ready=tcp:127.0.0.1:80", "t2:ready=file:/run/t2"]))
    const planned = plan(w.state, "g", "1", w.parsed, w.now)
    expect(planned._tag).toBe("Accepted")
    const steps = planned._tag === "Accepted" ? planned.effects.flatMap((e) => (e._tag === "Spawn" || e._tag === "RunSync" || e._tag === "Probe" ? [`${e._tag} ${e.tag}`] : [])) : []
    expect(steps).toEqual(["Spawn t1", "Probe t1", "Spawn t2", "Probe t2", "RunSync t3", "Spawn t4"])
  })
})

/** A respawn entry's probe options, at random: none, ready (with a timeout), health, or both. */
const probeOptionsArb = (tag: string): fc.Arbitrary<string[]> =>
  fc.record({
    ready: fc.option(fc.integer({ min: 1, max: 20_000 }), { nil: undefined }),
    health: fc.option(fc.record({ every: fc.integer({ min: 1, max: 5_000 }), fails: fc.integer({ min: 1, max: 4 }) }), { nil: undefined }),
  }).map(({ ready, health }) => [
    ...(ready === undefined ? [] : [`${tag}:ready=tcp:127.0.0.1:1`, `${tag}:ready-timeout=${ready}ms`]),
    ...(health === undefined ? [] : [`${tag}:health=file:/x`, `${tag}:health-every=${health.every}ms`, `${tag}:health-fails=${health.fails}`]),
  ])

const probeBehaviourArb: fc.Arbitrary<Behaviour> = fc.oneof(
  fc.integer({ min: 0, max: 30_000 }).map((ms) => readyAfter(ms)),
  fc.constant(neverReady()),
  fc.tuple(fc.integer({ min: 0, max: 5_000 }), fc.integer({ min: 0, max: 30_000 })).map(([r, u]) => unhealthyAfter(u, readyAfter(r))),
  fc.tuple(fc.integer({ min: 0, max: 3_000 }), fc.integer({ min: 1, max: 5_000 })).map(([r, c]) => readyAfter(r, crashesEvery(c))),
)

type Act = { readonly _tag: "Tell"; readonly level: string } | { readonly _tag: "Crash"; readonly tag: string } | { readonly _tag: "Advance"; readonly ms: number } | { readonly _tag: "Reload"; readonly options: readonly string[] } | { readonly _tag: "StopAll" }

const tagsArb = fc.constantFrom("t1", "t2", "t3", "t4")
const actArb: fc.Arbitrary<Act> = fc.oneof(
  { weight: 15, arbitrary: fc.constantFrom("1", "2").map((level): Act => ({ _tag: "Tell", level })) },
  { weight: 10, arbitrary: tagsArb.map((tag): Act => ({ _tag: "Crash", tag })) },
  { weight: 25, arbitrary: nearArb([5, 200, 1_000, 5_000], 30_000).map((ms): Act => ({ _tag: "Advance", ms })) },
  { weight: 5, arbitrary: tagsArb.chain(probeOptionsArb).map((options): Act => ({ _tag: "Reload", options })) },
  { weight: 1, arbitrary: fc.constant<Act>({ _tag: "StopAll" }) },
)

test.prop([fc.array(fc.constantFrom<Mode>("respawn", "respawn", "once", "wait"), { minLength: 4, maxLength: 4 }), fc.tuple(...["t1", "t2", "t3", "t4"].map(probeOptionsArb)), fc.array(probeBehaviourArb, { minLength: 4, maxLength: 4 }), fc.array(actArb, { maxLength: 25 })])(
  "rules 13 and 20-22: any tells, crashes, reloads with changed probes, stopall and time steps on entries with " +
    "probes break no invariant (the world checks every step), and a group that reaches run has no ready-checked " +
    "entry of its level timed out",
  (modes, probeLines, behaviours, acts) => {
    const entries = modes.map((mode, i) => entrySpec(i, mode, i % 2 === 0 ? ["1", "2"] : ["1"]))
    const linesFor = (extra: readonly string[]): string => options(probeLines.flatMap((lines, i) => (modes[i] === "respawn" ? lines : [])).concat(extra.filter((l) => modes[Number(l[1]) - 1] === "respawn")))
    const w = makeWorld(entries, behaviours.map((b, i): [string, Behaviour] => [`t${i + 1}`, modes[i] === "wait" ? exitsAfter(100, 0) : b]), {}, linesFor([]))
    const base = w.parsed
    for (const act of acts) {
      if (act._tag === "Tell") w.tell("g", act.level)
      else if (act._tag === "Crash") w.crash(act.tag)
      else if (act._tag === "Advance") w.advance(act.ms)
      else if (act._tag === "StopAll") w.stopAll()
      else {
        w.editConfig(`${base.config.entries.map((e) => `g:${e.tag}:${e.levels.join(",")},:${e.mode}:${e.command}`).join("\n")}\n${linesFor(act.options)}`)
        w.reload()
      }
      const group = lookup(w.state.groups, "g")
      const settled = w.timeline.some((t) => t.kind === "group" && t.detail.startsWith("state run") && t.at === w.now)
      if (settled && group?.phase === "run") {
        for (const def of w.state.config.byGroup.get("g") ?? []) {
          if (def.mode !== "respawn" || def.options.ready === undefined || !def.levels.includes(group.level ?? "")) continue
          const entry = lookup(w.state.entries, def.tag)
          expect(entry?.readiness._tag).not.toBe("NotReady")
        }
      }
    }
    expect(w.violations).toEqual([])
  },
)

