/**
 * Generators and a runner for the cluster properties: random clusters (clock rates at and inside
 * the drift bound, delays, failover timings on the edge of the safety rule) and random faults
 * (partitions, paused daemons, killed hosts, etcd outages and leader changes, moves), run in the
 * cluster simulator (src/sim/cluster.ts) with the real core and node reducers.
 */
import { fc } from "@fast-check/vitest"
import type { FailoverTiming } from "../src/core/failover.ts"
import { driftBound, stretch, takeoverDelayAfter, timingProblems, worstStopMs } from "../src/core/failover.ts"
import type { Behaviour } from "../src/sim/behaviour.ts"
import { ignoresSigterm, runsForever, stopsAfter } from "../src/sim/behaviour.ts"
import type { ClusterOptions, HostSpec } from "../src/sim/cluster.ts"
import { ClusterWorld } from "../src/sim/cluster.ts"
import { nearArb } from "./helpers.ts"

/** Runs of a cluster property: `n`, or ISINIT_FAILOVER_RUNS for a soak (e.g. 5000 before a release). */
export const runs = (n: number): number => Number(process.env["ISINIT_FAILOVER_RUNS"] ?? n)

export type Fault =
  | { readonly kind: "partition"; readonly at: number; readonly host: number; readonly ms: number }
  | { readonly kind: "pause"; readonly at: number; readonly host: number; readonly ms: number }
  | { readonly kind: "kill"; readonly at: number; readonly host: number; readonly restartAfter: number | undefined }
  | { readonly kind: "outage"; readonly at: number; readonly ms: number }
  | { readonly kind: "move"; readonly at: number; readonly host: number }

export interface Scenario {
  readonly seed: number
  readonly hosts: readonly HostSpec[]
  readonly etcdRate: number
  readonly timing: FailoverTiming
  /** Preference list (host indexes) or every node. */
  readonly listed: readonly number[] | "any"
  readonly delayMs: { readonly min: number; readonly max: number }
  readonly watchDelayMs: { readonly min: number; readonly max: number }
  /** How the group's processes take SIGTERM. */
  readonly onSigterm: "ignores" | number
  readonly faults: readonly Fault[]
  readonly horizonMs: number
}

export const rateArb = fc.oneof(fc.constantFrom(1 - driftBound, 1, 1 + driftBound), fc.double({ min: 1 - driftBound, max: 1 + driftBound, noNaN: true }))

/** A timing `isinit check` accepts, its takeover delay often exactly at the rule's minimum. */
export const timingArb: fc.Arbitrary<FailoverTiming> = fc
  .record({
    ttlMs: fc.oneof(fc.constantFrom(2_000, 3_000), fc.integer({ min: 2_000, max: 6_000 })),
    deadlineFraction: fc.oneof(fc.constant(0.6), fc.double({ min: 0.3, max: 0.97, noNaN: true })),
    graceFraction: fc.oneof(fc.constant(0.3), fc.double({ min: 0.05, max: 0.8, noNaN: true })),
    slackMs: fc.oneof(fc.constant(0), fc.constant(1), fc.integer({ min: 0, max: 1_000 })),
    banMs: fc.integer({ min: 3_000, max: 15_000 }),
  })
  .map(({ ttlMs, deadlineFraction, graceFraction, slackMs, banMs }) => {
    const renewDeadlineMs = Math.max(300, Math.min(Math.floor(ttlMs * deadlineFraction), Math.ceil(ttlMs / stretch) - 2))
    const killGraceMs = Math.max(1, Math.floor(ttlMs * graceFraction))
    const takeoverDelayMs = Math.max(0, Math.ceil(worstStopMs({ renewDeadlineMs, killGraceMs }) - ttlMs)) + slackMs
    return { ttlMs, renewDeadlineMs, killGraceMs, takeoverDelayMs, banMs }
  })

export const hostsArb = (min: number, max: number): fc.Arbitrary<HostSpec[]> =>
  fc.array(fc.record({ rate: rateArb, offset: fc.integer({ min: 0, max: 1_000_000 }) }), { minLength: min, maxLength: max }).map((specs) => specs.map((s, i) => ({ name: `n${i + 1}`, ...s })))

// One-way delays up to just under half the shell's 1 s deadline, so that slow answers still count.
const delayArb = fc.constantFrom(5, 50, 300, 490).map((max) => ({ min: 1, max }))

/** Durations on the edges that matter to a holder: its renew deadline, its stop, the TTL, the takeover. */
const faultMsArb = (t: FailoverTiming): fc.Arbitrary<number> =>
  nearArb([t.renewDeadlineMs, t.renewDeadlineMs + t.killGraceMs, t.ttlMs, t.ttlMs + t.takeoverDelayMs, 2 * t.ttlMs], 3 * t.ttlMs)

export const faultArb = (t: FailoverTiming, hosts: number, horizonMs: number): fc.Arbitrary<Fault> => {
  const at = fc.integer({ min: 0, max: horizonMs - 1 })
  const host = fc.integer({ min: 0, max: hosts - 1 })
  return fc.oneof(
    { weight: 3, arbitrary: fc.record({ kind: fc.constant("partition" as const), at, host, ms: faultMsArb(t) }) },
    { weight: 3, arbitrary: fc.record({ kind: fc.constant("pause" as const), at, host, ms: faultMsArb(t) }) },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant("kill" as const), at, host, restartAfter: fc.option(faultMsArb(t), { nil: undefined }) }) },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant("outage" as const), at, ms: fc.oneof(fc.integer({ min: 0, max: 500 }), faultMsArb(t)) }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant("move" as const), at, host }) },
  )
}

export const scenarioArb = (options: { readonly minHosts?: number; readonly maxHosts?: number; readonly maxFaults?: number; readonly horizonMs?: number } = {}): fc.Arbitrary<Scenario> =>
  fc
    .record({
      seed: fc.integer(),
      hosts: hostsArb(options.minHosts ?? 2, options.maxHosts ?? 4),
      etcdRate: rateArb,
      timing: timingArb,
      delayMs: delayArb,
      watchDelayMs: delayArb,
      onSigterm: fc.oneof(fc.constant("ignores" as const), fc.integer({ min: 1, max: 3_000 })),
      listedOrder: fc.option(fc.array(fc.nat(), { minLength: 4, maxLength: 4 }), { nil: undefined }),
    })
    .chain((base) => {
      const horizonMs = options.horizonMs ?? 40_000
      const faults = fc.array(faultArb(base.timing, base.hosts.length, horizonMs), { maxLength: options.maxFaults ?? 8 })
      const listed = base.listedOrder === undefined ? ("any" as const) : base.hosts.map((_, i) => i).sort((a, b) => (base.listedOrder?.[a] ?? 0) - (base.listedOrder?.[b] ?? 0))
      return faults.map((list): Scenario => ({ ...base, listed, faults: [...list].sort((a, b) => a.at - b.at), horizonMs }))
    })

/**
 * Liveness needs a network faster than the renew deadline: keep-alives go out every D / 3, and a
 * hold lasts D from a keep-alive's send, so round trips must be well below D / 3 (safety needs
 * nothing of the kind). The liveness properties keep to such networks.
 */
export const fitsNetwork = (s: Pick<Scenario, "delayMs" | "watchDelayMs" | "timing">): boolean =>
  2 * s.delayMs.max + s.watchDelayMs.max < s.timing.renewDeadlineMs / 3

export const configFor = (s: Pick<Scenario, "timing" | "listed" | "hosts">): string => {
  const t = s.timing
  const list = s.listed === "any" ? "" : `:${s.listed.map((i) => s.hosts[i]?.name ?? "").join(",")}`
  return [
    `:::failover:web:on${list}`,
    `:::failover-ttl:${t.ttlMs}ms`,
    `:::failover-renew-deadline:${t.renewDeadlineMs}ms`,
    `:::failover-kill-grace:${t.killGraceMs}ms`,
    `:::failover-takeover-delay:${t.takeoverDelayMs}ms`,
    `:::failover-ban:${t.banMs}ms`,
    "web:w1:on,:respawn:web-server",
    "web:w2:on,:respawn:web-helper",
    "db:d1:1:respawn:db",
    "",
  ].join("\n")
}

const behaviourFor = (s: Scenario): Behaviour => (s.onSigterm === "ignores" ? ignoresSigterm(runsForever()) : stopsAfter(s.onSigterm))

export const worldFor = (s: Scenario, extra: Partial<ClusterOptions> = {}): ClusterWorld =>
  new ClusterWorld({
    seed: s.seed,
    hosts: s.hosts,
    config: configFor(s),
    etcdRate: s.etcdRate,
    delayMs: s.delayMs,
    watchDelayMs: s.watchDelayMs,
    behaviour: (_host, tag) => (tag.startsWith("w") ? behaviourFor(s) : undefined),
    ...extra,
  })

/** Applies the scenario's faults at their times; the ordinary group `db` is told level 1 first. */
export const runScenario = (s: Scenario, extra: Partial<ClusterOptions> = {}): ClusterWorld => {
  const world = worldFor(s, extra)
  world.tell("db", "1")
  const name = (i: number): string => s.hosts[i]?.name ?? "n1"
  for (const fault of s.faults) {
    world.run(fault.at)
    if (fault.kind === "partition") world.partition(name(fault.host), fault.ms)
    else if (fault.kind === "pause") world.pause(name(fault.host), fault.ms)
    else if (fault.kind === "outage") world.outage(fault.ms)
    else if (fault.kind === "move") world.move("web", name(fault.host), 2 * s.timing.ttlMs)
    else killAndRestart(world, name(fault.host), fault.restartAfter)
  }
  world.run(s.horizonMs)
  return world
}

const killAndRestart = (world: ClusterWorld, host: string, restartAfter: number | undefined): void => {
  world.kill(host)
  if (restartAfter === undefined) return
  const at = world.now + restartAfter
  world.agenda.schedule(at, () => world.restart(host))
}

/** The facts a failure message needs: the scenario and the end of the trace. */
export const explain = (world: ClusterWorld, what: string): string => `${what}\n--- trace (last 150 lines) ---\n${world.traceText(150)}`

export { takeoverDelayAfter, timingProblems }
