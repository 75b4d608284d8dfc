import { describe, expect, it } from "vitest"
import type { NodeStatus } from "../../src/cluster/codecs.ts"
import { sha256Of } from "../../src/cluster/codecs.ts"
import type { Obeyed, StoredConfig } from "../../src/cluster/desired.ts"
import { emptyObeyed } from "../../src/cluster/desired.ts"
import { clusterRows, nodeTellProgress, tellProgress } from "../../src/cluster/view.ts"
import { parseInittab } from "../../src/core/inittab.ts"
import { goodConfig, report } from "./helpers.ts"

const config: StoredConfig = {
  value: { text: goodConfig, sha256: sha256Of(goodConfig), seq: 3, pushedAt: "2026-01-01T00:00:00.000Z" },
  parsed: parseInittab(goodConfig),
  revision: 10,
}

const obeyed: Obeyed = {
  ...emptyObeyed,
  revision: 20,
  config,
  cluster: new Map([["web", { level: "3", revision: 15 }]]),
  nodes: new Map([["n3", new Map([["web", { level: "maint", revision: 16 }]])]]),
}

const node = (name: string, level: string, state: "run" | "start" | "fail", taken: number, sha = config.value.sha256): NodeStatus => ({
  node: name,
  at: "2026-01-01T00:00:01.000Z",
  configSha256: sha,
  configSeq: 3,
  desired: { web: { level, revision: taken, source: "cluster" } },
  report: report([{ group: "web", level, state }]),
})

describe("cluster view", () => {
  it("flags lagging cells and config drift", () => {
    const rows = clusterRows(obeyed, [node("n1", "3", "run", 15), node("n2", "2", "run", 12, sha256Of("old")), node("n3", "maint", "start", 16)])
    expect(rows.map((r) => [r.node, r.drift, r.cells.get("web")?.lagging])).toEqual([
      ["n1", false, false],
      ["n2", true, true],
      ["n3", false, true],
    ])
    expect(rows[2]?.cells.get("web")?.wanted).toEqual({ level: "maint", revision: 16, source: "node" })
  })

  it("tracks a cluster-wide tell: done, failed, pending, and nodes whose override wins", () => {
    const live = [node("n1", "3", "run", 15), node("n2", "3", "fail", 15), node("n4", "2", "run", 12), node("n3", "maint", "run", 16)]
    expect(tellProgress(obeyed, live, "web", "3", 15)).toEqual({ done: ["n1"], failed: ["n2"], pending: ["n4"], overridden: ["n3"], superseded: [] })
    // A node at the level from an older tell has not taken this one yet.
    expect(tellProgress(obeyed, [node("n1", "3", "run", 14)], "web", "3", 15).pending).toEqual(["n1"])
    // Nodes that do not run the group are not waited for.
    expect(tellProgress(obeyed, live, "db", "2", 15)).toEqual({ done: [], failed: [], pending: [], overridden: [], superseded: [] })
  })

  it("without a config in etcd, flags the nodes that run another config than most nodes (all of them on a tie)", () => {
    const none: Obeyed = { ...obeyed, config: undefined }
    const a = sha256Of("a")
    const b = sha256Of("b")
    const drift = (live: readonly NodeStatus[]): string[] => clusterRows(none, live).filter((r) => r.drift).map((r) => r.node)
    expect(drift([node("n1", "3", "run", 15, a), node("n2", "3", "run", 15, a), node("n3", "3", "run", 15, b)])).toEqual(["n3"])
    expect(drift([node("n1", "3", "run", 15, a), node("n2", "3", "run", 15, a)])).toEqual([])
    expect(drift([node("n1", "3", "run", 15, a), node("n2", "3", "run", 15, b)])).toEqual(["n1", "n2"])
  })

  const overrides = (written: readonly (readonly [string, number])[]): Obeyed => ({
    ...obeyed,
    nodes: new Map(written.map(([n, revision]) => [n, new Map([["web", { level: "maint", revision }]])])),
  })

  it("tracks a tell addressed to named nodes; a named node that is not live has not answered", () => {
    const live = [node("n1", "maint", "run", 16), node("n2", "maint", "fail", 17), node("n3", "maint", "run", 15)]
    const written = new Map([["n1", 16], ["n2", 17], ["n3", 18], ["gone", 19]])
    expect(nodeTellProgress(overrides([...written]), live, written, "web", "maint")).toEqual({
      done: ["n1"],
      failed: ["n2"],
      pending: ["n3", "gone"],
      overridden: [],
      superseded: [],
    })
  })

  it("marks a cluster-wide tell superseded once a later tell or a clear replaced its desired level", () => {
    const live = [node("n1", "3", "run", 15), node("n2", "2", "run", 12)]
    const later: Obeyed = { ...obeyed, cluster: new Map([["web", { level: "4", revision: 21, by: "bob" }]]) }
    expect(tellProgress(later, live, "web", "3", 15)).toMatchObject({
      done: ["n1"],
      pending: [],
      superseded: [{ node: "n2", by: { _tag: "Replaced", by: { level: "4", revision: 21, by: "bob" } } }],
    })
    const cleared: Obeyed = { ...obeyed, cluster: new Map() }
    expect(tellProgress(cleared, live, "web", "3", 15).superseded).toEqual([{ node: "n2", by: { _tag: "Cleared" } }])
  })

  it("marks a node's tell superseded when that node's override was written again later, only for that node", () => {
    const live = [node("n1", "2", "run", 12), node("n2", "2", "run", 12)]
    const written = new Map([["n1", 16], ["n2", 17]])
    const progress = nodeTellProgress(overrides([["n1", 16], ["n2", 20]]), live, written, "web", "maint")
    expect(progress.pending).toEqual(["n1"])
    expect(progress.superseded).toEqual([{ node: "n2", by: { _tag: "Replaced", by: { level: "maint", revision: 20 } } }])
  })
})
