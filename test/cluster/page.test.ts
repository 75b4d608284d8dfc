/**
 * The status page and the metrics of a daemon in cluster mode: the node × group table read from
 * etcd (every live node, its states and levels), this node's link to etcd, and the cluster's
 * figures in /metrics. How cells are marked (lagging, drift, the failover holder) is shown on
 * view.ts's rows directly, without waiting for a cluster to be caught in the act.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { NodeStatus } from "../../src/cluster/codecs.ts"
import { tableOf } from "../../src/cluster/table.ts"
import { clusterRows } from "../../src/cluster/view.ts"
import { parseInittab } from "../../src/core/inittab.ts"
import type { ClusterInfo } from "../../src/codec/protocol.ts"
import { renderCluster } from "../../src/web/page.ts"
import { fetchText, readEvents } from "../runtime/opsHarness.ts"
import type { EtcdServer } from "./etcd-harness.ts"
import { eventually, skipWithoutEtcd, startEtcd } from "./etcd-harness.ts"
import type { Lab, Node } from "./nodes.ts"
import { isinit, makeLab } from "./nodes.ts"

const info: ClusterInfo = { cluster: "c", node: "n1", etcd: "http://x", connected: true, since: "2026-01-01T00:00:00.000Z", configSource: "etcd", configSeq: 1, configSha256: "a", pendingOverrides: [] }

const statusOf = (node: string, groups: readonly { group: string; state: "run" | "start" | "stopped" | "fail" | "stopping"; level: string }[], sha: string, desired: Record<string, number>): NodeStatus =>
  ({
    node,
    at: "2026-01-01T00:00:00.000Z",
    configSeq: 1,
    configSha256: sha,
    desired: Object.fromEntries(Object.entries(desired).map(([group, revision]) => [group, { level: "1", revision }])),
    report: { lifecycle: "running", groups: groups.map((g) => ({ ...g, seq: 1, entries: [] })) },
  }) as unknown as NodeStatus

describe("the cluster table of the page", () => {
  it("marks lagging cells, drift, and the failover holder", () => {
    const parsed = parseInittab(":::failover:db:on\nweb:w:1:respawn:x\ndb:d:on,:respawn:y\n")
    const config = { value: { seq: 1, sha256: "good" }, parsed, revision: 5 }
    const obeyed = { revision: 9, cluster: new Map([["web", { level: "1", revision: 7 }]]), nodes: new Map(), config } as unknown as Parameters<typeof clusterRows>[0]
    const live = [
      statusOf("n1", [{ group: "web", state: "run", level: "1" }, { group: "db", state: "run", level: "on" }], "good", { web: 7 }),
      statusOf("n2", [{ group: "web", state: "start", level: "1" }, { group: "db", state: "stopped", level: "standby" }], "bad", { web: 7 }),
    ]
    const table = tableOf("c", clusterRows(obeyed, live), ["n3"], 1, parsed.config.failover)
    expect(table.groups).toEqual(["db", "web"])
    expect(table.rows.map((r) => [r.node, r.drift, r.cells.get("web")?.lagging, r.cells.get("db")?.holder])).toEqual([
      ["n1", false, false, true],
      ["n2", true, true, false],
    ])
    const html = renderCluster(info, { _tag: "Table", table })
    expect(html).toContain('<tr data-node="n2"><td>n2</td><td class="state state-stopped">stopped standby</td><td class="state state-start lagging">start 1 → 1 *</td><td class="drift">DRIFT</td></tr>')
    expect(html).toContain('<td class="state state-run holder">run on (holder)</td>')
    expect(html).toContain("Missing (seen before, no live status): n3")
    expect(renderCluster(info, { _tag: "Unreadable", reason: "etcd unavailable (read nodes): <down>" })).toContain("cannot be read from etcd now: etcd unavailable (read nodes): &lt;down&gt;")
  })
})

describe.skipIf(skipWithoutEtcd())("the status page and the metrics of a node in cluster mode", () => {
  const cluster = "page"
  let etcd: EtcdServer
  let lab: Lab
  let n1: Node
  let n2: Node

  beforeAll(async () => {
    etcd = await startEtcd()
    lab = makeLab(etcd.url, cluster)
    const tab = lab.write("isinittab", "web:w:1,2:respawn:sleep 3600\ndb:d:1:respawn:sleep 3600\n")
    n1 = lab.node("n1", { tab, args: ["--http", "127.0.0.1:0", "--metrics", "127.0.0.1:0"] })
    n2 = lab.node("n2", { tab })
    await Promise.all([n1.start(), n2.start()])
    const push = await isinit(["--etcd", etcd.url, "--cluster", cluster, "config", "push", tab])
    expect(push.code, push.err).toBe(0)
  })

  afterAll(async () => {
    await lab?.cleanup()
    await etcd?.destroy()
  })

  const served = (what: string): string => {
    const url = new RegExp(`serving ${what} on (http://[^/ ]+)/`).exec(n1.log())?.[1]
    if (url === undefined) throw new Error(`n1 does not serve ${what}:\n${n1.log()}`)
    return url
  }

  it("shows every live node's groups, read from etcd, and this node's link to etcd", async () => {
    const tell = await isinit(["--etcd", etcd.url, "--cluster", cluster, "tell", "web", "1", "--wait", "--timeout", "30"])
    expect(tell.code, tell.err).toBe(0)
    const page = served("the status page")
    await eventually("both nodes in n1's cluster table", async () => {
      const body = (await fetchText(`${page}/`)).body
      return ["n1", "n2"].every((n) => new RegExp(`<tr data-node="${n}"><td>${n}</td><td class="state state-stopped">stopped</td><td class="state state-run">run 1</td><td>ok</td></tr>`).test(body))
    }, 30_000)
    const body = (await fetchText(`${page}/`)).body
    expect(body).toContain("Node <b>n1</b> of cluster <b>page</b>: etcd connected since")
    const stream = await readEvents(`${page}/events`, (events) => events.some((e) => e.event === "cluster"))
    expect(stream.find((e) => e.event === "cluster")?.data).toContain('<tr data-node="n2">')
  })

  it("says in /metrics that etcd answers and which config runs", async () => {
    const metrics = served("/metrics")
    await eventually("config #1 in the metrics", async () => {
      const text = (await fetchText(`${metrics}/metrics`)).body
      return /^isinit_etcd_connected 1$/m.test(text) && /^isinit_cluster_config_seq 1$/m.test(text) && /^isinit_info\{version="[^"]+",node="n1",cluster="page"\} 1$/m.test(text)
    }, 30_000)
  })
})
