/**
 * Failover groups, proven in the cluster simulator (docs/cluster.md "Failover groups"): random
 * clusters whose clocks drift within the stated bound, with timings `isinit check` accepts (often
 * exactly at the edge of its rule), under random partitions, paused daemons, killed hosts, etcd
 * outages and leader changes, and moves.
 */
import { test } from "@fast-check/vitest"
import { expect } from "vitest"
import { parseInittab } from "../src/core/inittab.ts"
import { placementStepMs } from "../src/cluster/node/election.ts"
import { configFor, explain, fitsNetwork, runs, runScenario, scenarioArb } from "./cluster.ts"

const describeInterval = (i: { readonly host: string; readonly tag: string; readonly run: number; readonly epoch: number | undefined; readonly start: number; readonly end: number | undefined }): string =>
  `${i.host} ${i.tag}#${i.run} epoch ${i.epoch ?? "none"} from ${i.start.toFixed(1)} to ${i.end?.toFixed(1) ?? "now"}`

test.prop([scenarioArb()], { numRuns: runs(250) })("safety: two hosts never run a failover group at the same time", (scenario) => {
  expect(parseInittab(configFor(scenario)).problems.filter((p) => p.severity === "error")).toEqual([])
  const world = runScenario(scenario)
  const overlaps = world.overlaps()
  if (overlaps.length > 0) {
    const [a, b] = overlaps[0] ?? []
    throw new Error(explain(world, `overlap: ${a === undefined ? "" : describeInterval(a)} and ${b === undefined ? "" : describeInterval(b)}`))
  }
})

test.prop([scenarioArb()], { numRuns: runs(120) })("epochs: a host starts the group only with the epoch etcd says it leads with, and epochs only grow", (scenario) => {
  const world = runScenario(scenario)
  const wrong = world.startChecks.find((c) => c.problem !== undefined)
  if (wrong !== undefined) throw new Error(explain(world, `${wrong.host} started ${wrong.group} at ${wrong.at}: ${wrong.problem ?? ""}`))
  const epochs = world.startChecks.map((c) => c.epoch ?? -1)
  for (let i = 1; i < epochs.length; i++) {
    if ((epochs[i] ?? 0) < (epochs[i - 1] ?? 0)) throw new Error(explain(world, `epoch went from ${epochs[i - 1]} to ${epochs[i]}`))
  }
})

test.prop([scenarioArb({ maxFaults: 6 })], { numRuns: runs(60) })(
  "ordinary groups: faults of etcd and the network stop nothing (db keeps its first process on every host that was not killed)",
  (scenario) => {
    const world = runScenario({ ...scenario, faults: scenario.faults.filter((f) => f.kind !== "kill") })
    for (const host of world.hosts.values()) {
      const stops = world.trace.filter((l) => l.host === host.spec.name && /SIG\w+ d1#/.test(l.text))
      if (stops.length > 0) throw new Error(explain(world, `${host.spec.name}: ${stops[0]?.text ?? ""}`))
      const starts = world.trace.filter((l) => l.host === host.spec.name && /start d1#/.test(l.text))
      if (starts.length !== 1) throw new Error(explain(world, `${host.spec.name} started db ${starts.length} times`))
    }
  },
)

test.prop([scenarioArb({ maxFaults: 0, horizonMs: 15_000 }).filter(fitsNetwork)], { numRuns: runs(30) })(
  "placement: without faults the group runs on exactly one host; the most preferred when all queue within the placement pause",
  (scenario) => {
    const world = runScenario(scenario)
    const on = world.runningOn("web")
    expect(on.length, explain(world, `running on ${on.join(", ")}`)).toBe(1)
    // Claim, campaign and the watch that shows it: within the 1 s pause per rank of preference.
    const queuesInTime = 4 * scenario.delayMs.max + scenario.watchDelayMs.max < placementStepMs
    if (scenario.listed !== "any" && queuesInTime) expect(on[0], explain(world, "not on the most preferred")).toBe(scenario.hosts[scenario.listed[0] ?? 0]?.name)
  },
)
