/**
 * Failover groups move when they must, and only then (docs/cluster.md "Failover groups"): a dead,
 * cut-off or stalled holder is replaced within TTL + takeover delay (+ message delays, stretched by
 * the drift bound); a move and a failure hand over cleanly, without the takeover delay; bans
 * expire by themselves; and the rule `isinit check` enforces, and the fencer, are both needed.
 */
import { fc, test } from "@fast-check/vitest"
import { expect } from "vitest"
import type { FailoverTiming } from "../src/core/failover.ts"
import { driftBound, timingFor } from "../src/core/failover.ts"
import { parseInittab } from "../src/core/inittab.ts"
import { moveOf } from "../src/cluster/node/view.ts"
import { exitsAfter, ignoresSigterm, runsForever, stopsAfter } from "../src/sim/behaviour.ts"
import type { ClusterWorld, HostSpec } from "../src/sim/cluster.ts"
import { ClusterWorld as World } from "../src/sim/cluster.ts"
import type { Scenario } from "./cluster.ts"
import { configFor, explain, fitsNetwork, hostsArb, runs, scenarioArb, worldFor } from "./cluster.ts"

/** Long enough for the first placement (preference pauses) and a few keep-alives. */
const settleMs = (t: FailoverTiming): number => 3 * t.ttlMs + 4_000

/** TTL + takeover delay on the slowest clocks, plus the messages a takeover needs. */
const takeoverBoundMs = (s: Scenario): number =>
  (s.timing.ttlMs + s.timing.takeoverDelayMs) / (1 - driftBound) + 4 * s.delayMs.max + s.watchDelayMs.max + 50

const holderOf = (world: ClusterWorld): string | undefined => world.runningOn("web")[0]

type HolderFault = "kill" | "partition" | "pause"

const strike = (world: ClusterWorld, host: string, fault: HolderFault): void => {
  if (fault === "kill") world.kill(host)
  else if (fault === "partition") world.partition(host, 1_000_000)
  else world.pause(host, 1_000_000)
}

test.prop(
  [scenarioArb({ maxFaults: 0, minHosts: 2 }).filter(fitsNetwork), fc.constantFrom<HolderFault>("kill", "partition", "pause"), fc.constantFrom<HolderFault | "none">("none", "kill", "partition", "pause")],
  { numRuns: runs(40) },
)("liveness: a dead, cut-off or stalled holder is replaced within TTL + takeover delay while an eligible node stays connected", (scenario, fault, other) => {
  const world = worldFor(scenario)
  world.run(settleMs(scenario.timing))
  const holder = holderOf(world)
  if (holder === undefined) throw new Error(explain(world, "the group did not start"))
  const others = scenario.hosts.map((h) => h.name).filter((n) => n !== holder)
  strike(world, holder, fault)
  // A second fault, on another node, when one more stays healthy.
  const second = others[0]
  if (other !== "none" && others.length >= 2 && second !== undefined) strike(world, second, other)
  const healthy = others.filter((n) => !(other !== "none" && others.length >= 2 && n === second))
  const deadline = world.now + takeoverBoundMs(scenario)
  world.run(deadline)
  const on = world.runningOn("web").filter((n) => healthy.includes(n))
  if (on.length === 0) throw new Error(explain(world, `${holder} (${fault}) was not replaced by ${deadline.toFixed(0)} on any of ${healthy.join(", ")}`))
})

/** A timing whose takeover delay is long, so that skipping it shows. */
const slowTakeover = (t: FailoverTiming): FailoverTiming => ({ ...t, takeoverDelayMs: t.takeoverDelayMs + 5_000 })

test.prop([scenarioArb({ maxFaults: 0, minHosts: 2 }).filter(fitsNetwork), fc.nat()], { numRuns: runs(30) })(
  "move: the holder stops, confirms, resigns, and the target starts without the takeover delay; the preference then goes",
  (base, pick) => {
    const scenario: Scenario = { ...base, timing: slowTakeover(base.timing), onSigterm: 200 }
    const world = worldFor(scenario)
    world.run(settleMs(scenario.timing))
    const holder = holderOf(world)
    const targets = scenario.hosts.map((h) => h.name).filter((n) => n !== holder)
    const target = targets[pick % targets.length] ?? "n1"
    const movedAt = world.now
    world.move("web", target, 2 * scenario.timing.ttlMs)
    world.run(movedAt + 3_000)
    expect(world.runningOn("web"), explain(world, `not moved to ${target}`)).toEqual([target])
    const lastOld = Math.max(...world.intervals.filter((i) => i.host === holder).map((i) => i.end ?? Infinity))
    const firstNew = Math.min(...world.intervals.filter((i) => i.host === target).map((i) => i.start))
    expect(firstNew, explain(world, "overlap")).toBeGreaterThanOrEqual(lastOld)
    expect(firstNew - lastOld, explain(world, "the hand-over waited")).toBeLessThan(scenario.timing.takeoverDelayMs / 2)
    // Nodes may not delete the operator's key: the move is over once its target proclaimed after it.
    const inForce = [...world.hosts.values()].filter((h) => h.life !== "dead" && moveOf(h.node.view, "web") !== undefined).map((h) => h.spec.name)
    expect(inForce, explain(world, "the move preference stayed in force")).toEqual([])
  },
)

test.prop([scenarioArb({ maxFaults: 0, minHosts: 2 }).filter(fitsNetwork)], { numRuns: runs(20) })(
  "a daemon that stops cleanly (stopall) hands its groups over without the takeover delay and gives its leases back",
  (base) => {
    const scenario: Scenario = { ...base, timing: slowTakeover(base.timing), onSigterm: 100 }
    const world = worldFor(scenario)
    world.run(settleMs(scenario.timing))
    const holder = holderOf(world)
    if (holder === undefined) throw new Error(explain(world, "the group did not start"))
    world.stopDaemon(holder)
    world.run(world.now + 3_000)
    expect(world.host(holder).life, explain(world, "the daemon did not finish stopping")).toBe("dead")
    expect(world.etcd.kv.has(`nodes/${holder}`), explain(world, "its status is still published")).toBe(false)
    const lastOld = Math.max(...world.intervals.filter((i) => i.host === holder).map((i) => i.end ?? Infinity))
    const next = world.intervals.find((i) => i.host !== holder && i.start >= lastOld)
    expect(next, explain(world, "nobody took over")).toBeDefined()
    expect((next?.start ?? Infinity) - lastOld, explain(world, "the hand-over waited")).toBeLessThan(scenario.timing.takeoverDelayMs / 2)
    expect(world.overlaps()).toEqual([])
  },
)

const banConfig = (t: FailoverTiming): string =>
  [
    ":::failover:web:on:n1,n2,n3",
    `:::failover-ttl:${t.ttlMs}ms`,
    `:::failover-takeover-delay:${t.takeoverDelayMs}ms`,
    `:::failover-ban:${t.banMs}ms`,
    "web:t1:on,:test:check-web",
    "web:w1:on,:respawn:web-server",
    "",
  ].join("\n")

test.prop([hostsArb(3, 3), fc.integer({ min: 2_000, max: 5_000 }), fc.integer({ min: 3_000, max: 20_000 }), fc.integer()], { numRuns: runs(25) })(
  "bans: a node whose test fails hands the group over cleanly, sits out its ban, then campaigns again; the group stays where it went",
  (hosts, ttlMs, banMs, seed) => {
    const timing = { ...timingFor(ttlMs), takeoverDelayMs: 5_000, banMs }
    const world = new World({
      seed,
      hosts,
      config: banConfig(timing),
      behaviour: (host, tag) => (tag === "t1" ? exitsAfter(50, host === "n1" ? 1 : 0) : stopsAfter(100)),
    })
    world.run(settleMs(timing) + banMs * 2)
    const bannedAt = world.trace.find((l) => l.host === "n1" && /banned from the group/.test(l.text))?.at
    if (bannedAt === undefined) throw new Error(explain(world, "n1 was never banned"))
    const campaigns = world.trace.filter((l) => l.host === "n1" && /etcd: Campaign web done/.test(l.text)).map((l) => l.at)
    const early = campaigns.find((at) => at > bannedAt && at < bannedAt + banMs / (1 + driftBound) - 1)
    expect(early, explain(world, "n1 campaigned during its ban")).toBeUndefined()
    const back = campaigns.find((at) => at >= bannedAt + banMs / (1 + driftBound) - 1)
    expect(back, explain(world, "n1 never campaigned again")).toBeLessThan(bannedAt + banMs / (1 - driftBound) + 200)
    const lastN1 = Math.max(...world.intervals.filter((i) => i.host === "n1").map((i) => i.end ?? Infinity))
    const firstN2 = Math.min(...world.intervals.filter((i) => i.host === "n2").map((i) => i.start))
    expect(firstN2 - lastN1, explain(world, "the failure-driven move waited for the takeover delay")).toBeLessThan(1_000)
    expect(world.runningOn("web"), explain(world, "no failback")).toEqual(["n2"])
    expect(world.overlaps()).toEqual([])
  },
)

// ---------------------------------------------------------------------------------------------
// The rule and the fencer are needed: without them the simulator finds two holders.

const adversarial = (hosts: readonly HostSpec[]): HostSpec[] => hosts.map((h, i) => ({ ...h, rate: i === 0 ? 1 - driftBound : 1 + driftBound }))

const tightTiming: FailoverTiming = { ttlMs: 3_000, renewDeadlineMs: 2_000, killGraceMs: 2_000, takeoverDelayMs: 1_334, banMs: 60_000 }

/** The holder (n1, slow clock) is cut off right after a keep-alive; its processes ignore SIGTERM. */
const cutOffHolder = (timing: FailoverTiming, extra: { readonly fencer?: "on" | "off"; readonly fault: "partition" | "pause" }): World => {
  const scenario: Scenario = {
    seed: 7,
    hosts: adversarial([{ name: "n1", rate: 1, offset: 0 }, { name: "n2", rate: 1, offset: 5_000 }]),
    etcdRate: 1 + driftBound,
    timing,
    listed: [0, 1],
    delayMs: { min: 1, max: 5 },
    watchDelayMs: { min: 1, max: 5 },
    onSigterm: "ignores",
    faults: [],
    horizonMs: 40_000,
  }
  const parse = (t: string) => {
    const parsed = parseInittab(t)
    return { ...parsed, problems: [], config: { ...parsed.config, failover: { ...parsed.config.failover, timing } } }
  }
  const world = worldFor(scenario, { parse, fencer: extra.fencer ?? "on", behaviour: (_h, tag) => (tag.startsWith("w") ? ignoresSigterm(runsForever()) : undefined) })
  world.run(20_000)
  expect(world.runningOn("web")).toEqual(["n1"])
  if (extra.fault === "partition") world.partition("n1", 15_000)
  else world.pause("n1", 15_000)
  world.run(45_000)
  return world
}

test("a takeover delay configured below the rule is raised by the taker to what the old holder's proclaimed timing needs", () => {
  const below = { ...tightTiming, takeoverDelayMs: 0 }
  const hosts = [{ name: "n1", rate: 1, offset: 0 }, { name: "n2", rate: 1, offset: 0 }]
  expect(parseInittab(configFor({ timing: below, listed: [0, 1], hosts })).problems.some((p) => p.severity === "error" && /cannot be safe/.test(p.message))).toBe(true)
  const world = cutOffHolder(below, { fault: "partition" })
  expect(world.overlaps(), world.traceText()).toEqual([])
  const expiry = world.trace.find((l) => /lease expiry deleted .*failover-node\/n1\/cand\/web/.test(l.text))?.at ?? 0
  const start = world.startChecks.find((c) => c.host === "n2")?.at ?? 0
  expect(start - expiry).toBeGreaterThanOrEqual(tightTiming.takeoverDelayMs / (1 + driftBound))
})

test("the fencer is needed: a paused holder's children run on without it, and are stopped in time with it", () => {
  expect(cutOffHolder(tightTiming, { fault: "pause", fencer: "off" }).overlaps().length).toBeGreaterThan(0)
  const fenced = cutOffHolder(tightTiming, { fault: "pause" })
  expect(fenced.overlaps(), fenced.traceText()).toEqual([])
  expect(fenced.runningOn("web")).toEqual(["n2"])
  expect(fenced.trace.some((l) => l.host === "n1" && /fencer: SIGKILL w1/.test(l.text))).toBe(true)
})

test("a holder that resumes after its deadline restarts nothing: the exits the fencer caused are handled with the hold run out", () => {
  // Default ratios: the fencer's SIGKILL (D + G) comes before the lease can expire, so the core
  // hears of the exits before it hears that the key is gone.
  const world = cutOffHolder({ ...timingFor(3_000), banMs: 60_000 }, { fault: "pause" })
  expect(world.startChecks.filter((c) => c.host === "n1" && c.at > 20_000), world.traceText()).toEqual([])
  expect(world.trace.some((l) => l.host === "n1" && /core fenced: not started/.test(l.text)), world.traceText()).toBe(true)
  expect(world.overlaps()).toEqual([])
  expect(world.runningOn("web")).toEqual(["n2"])
})

test.prop([fc.integer(), fc.integer({ min: 0, max: 3_000 })], { numRuns: runs(20) })(
  "identity: of two daemons running as one node name, the second does not campaign until the first is gone",
  (seed, lateMs) => {
    const timing = timingFor(3_000)
    const scenario: Scenario = {
      seed,
      hosts: [{ name: "a", node: "n1", rate: 1, offset: 0 }, { name: "b", node: "n1", rate: 1, offset: 0 }, { name: "c", node: "n2", rate: 1, offset: 0 }],
      etcdRate: 1,
      timing: { ...timing, banMs: 60_000 },
      listed: "any",
      delayMs: { min: 1, max: 20 },
      watchDelayMs: { min: 1, max: 20 },
      onSigterm: 10,
      faults: [],
      horizonMs: 30_000,
    }
    const world = worldFor(scenario)
    world.run(10_000 + lateMs)
    const campaigners = new Set(world.trace.filter((l) => /etcd: Campaign web done/.test(l.text)).map((l) => l.host))
    expect(campaigners.has("a") && campaigners.has("b"), explain(world, "both daemons named n1 campaigned")).toBe(false)
    const refused = campaigners.has("a") ? "b" : "a"
    expect(world.trace.some((l) => l.host === refused && /another isinitd .* runs as node n1/.test(l.text)), explain(world, "no conflict logged")).toBe(true)
    world.kill(refused === "a" ? "b" : "a")
    world.kill("c")
    world.run(world.now + 10_000)
    expect(world.runningOn("web"), explain(world, "the second daemon did not take over once the first was gone")).toEqual([refused])
    expect(world.overlaps()).toEqual([])
  },
)

test.prop([scenarioArb({ maxFaults: 0, minHosts: 2 }).filter(fitsNetwork)], { numRuns: runs(15) })(
  "a config that makes the group ordinary again: its holder leaves the queue and keeps running it, nobody else starts it",
  (scenario) => {
    const world = worldFor(scenario)
    world.run(settleMs(scenario.timing))
    const holder = holderOf(world)
    world.pushConfig(configFor(scenario).replace(/^:::failover.*\n/gm, ""))
    world.run(world.now + 5_000)
    expect([...world.etcd.kv.keys()].filter((k) => k.startsWith("failover-node/") && k.endsWith("/cand/web")), explain(world, "keys left in the queue")).toEqual([])
    expect(world.runningOn("web"), explain(world, "the group moved or stopped")).toEqual([holder])
    expect(world.trace.filter((l) => /SIG\w+ w\d#/.test(l.text)), explain(world, "a process was stopped")).toEqual([])
  },
)
