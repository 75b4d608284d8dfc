/**
 * Cluster mode end to end: a real etcd, three real `isinitd --etcd` processes as nodes n1, n2, n3
 * (own names, sockets, status files), and `isinit` as the client. The steps build on each other
 * (one cluster, one history), in the order of issue 5's list. Process starts are counted through
 * files the entries append to, so a double start cannot hide.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { EtcdServer } from "./etcd-harness.ts"
import { eventually, rawEtcd, skipWithoutEtcd, startEtcd, suiteTls } from "./etcd-harness.ts"
import type { Lab, Node } from "./nodes.ts"
import { isinit, linesOf, makeLab } from "./nodes.ts"

const cluster = "three"
const ttlSeconds = 2

interface LocalStatus {
  readonly groups: readonly {
    readonly group: string
    readonly state: string
    readonly level: string
    readonly entries: readonly { readonly tag: string; readonly state: string; readonly pid: number | null }[]
  }[]
  readonly cluster?: { readonly connected: boolean; readonly node: string; readonly configSeq: number | null; readonly pendingOverrides: readonly string[] }
}

interface ClusterStatus {
  readonly config: { readonly seq: number } | null
  readonly desired: { readonly cluster: Record<string, string>; readonly nodes: Record<string, Record<string, string>> }
  readonly nodes: readonly {
    readonly node: string
    readonly drift: boolean
    readonly configSeq: number | null
    readonly groups: Record<string, { readonly state: string; readonly level: string; readonly lagging: boolean } | null>
  }[]
  readonly missing: readonly { readonly node: string }[]
  readonly drift: readonly string[]
}

describe.skipIf(skipWithoutEtcd())("three isinitd nodes on one etcd", () => {
  let etcd: EtcdServer
  let lab: Lab
  let nodes: readonly Node[]
  let tab: string
  let url: string

  const etcdArgs = (): string[] => ["--etcd", url, "--cluster", cluster]
  const node = (name: string): Node => {
    const found = nodes.find((n) => n.name === name)
    if (found === undefined) throw new Error(`no node ${name}`)
    return found
  }

  const clusterStatus = async (): Promise<ClusterStatus> => {
    const run = await isinit([...etcdArgs(), "status", "--json"])
    if (run.code !== 0) throw new Error(`status failed: ${run.err}`)
    return JSON.parse(run.out) as ClusterStatus
  }
  const localStatus = async (n: Node): Promise<LocalStatus> => {
    const run = await isinit(["-s", n.socket, "status", "--json"])
    if (run.code !== 0) throw new Error(`local status of ${n.name} failed: ${run.err}`)
    return JSON.parse(run.out) as LocalStatus
  }
  const groupOn = async (n: Node, group: string): Promise<{ readonly state: string; readonly level: string } | undefined> =>
    (await localStatus(n)).groups.find((g) => g.group === group)
  const pidOf = async (n: Node, tag: string): Promise<number | null | undefined> => {
    for (const g of (await localStatus(n)).groups) for (const e of g.entries) if (e.tag === tag) return e.state === "running" ? e.pid : null
    return undefined
  }
  const starts = (n: string, tag: string): number => linesOf(lab.path(`starts.${n}.${tag}`)).length
  const alive = (pid: number): boolean => {
    try {
      process.kill(pid, 0)
      return true
    } catch {
      return false
    }
  }

  beforeAll(async () => {
    etcd = await startEtcd()
    url = etcd.url
    lab = makeLab(url, cluster)
    const lines = [
      `web:web-server:1,2:respawn:echo $$ >> ${lab.dir}/starts.$ISINIT_NODE.web-server; exec sleep 3600`,
      `web:web-check:2:test:test "$ISINIT_NODE" != n2`,
      `db:db-server:1:respawn:echo $$ >> ${lab.dir}/starts.$ISINIT_NODE.db-server; exec sleep 3600`,
    ]
    tab = lab.write("isinittab", `${lines.join("\n")}\n`)
    // n3 was hand-copied and edited: a different config.
    const other = lab.write("isinittab.n3", `# n3's own copy\n${lines.join("\n")}\n`)
    nodes = [lab.node("n1", { tab, leaseTtlSeconds: ttlSeconds }), lab.node("n2", { tab, leaseTtlSeconds: ttlSeconds }), lab.node("n3", { tab: other, leaseTtlSeconds: ttlSeconds })]
    await Promise.all(nodes.map((n) => n.start()))
  })

  afterAll(async () => {
    await lab?.cleanup()
    await etcd?.destroy()
  })

  it("reports drift while nodes run different local configs, none once a config is pushed", async () => {
    await eventually("three live nodes", async () => (await clusterStatus()).nodes.length === 3)
    // Plain http without authentication is said once at start; over TLS, not at all.
    for (const n of nodes) expect(n.log().match(/plain http without authentication/g)?.length ?? 0).toBe(suiteTls() === undefined ? 1 : 0)
    const before = await clusterStatus()
    expect(before.config).toBeNull()
    expect(before.drift).toEqual(["n3"])
    const text = await isinit([...etcdArgs(), "status"])
    expect(text.out).toMatch(/^n3 .*DRIFT/m)

    const push = await isinit([...etcdArgs(), "config", "push", tab])
    expect(push.code, push.err).toBe(0)
    expect(push.out).toMatch(/pushed config #1/)
    await eventually("every node on config #1", async () => {
      const s = await clusterStatus()
      return s.nodes.length === 3 && s.nodes.every((n) => n.configSeq === 1 && !n.drift)
    })
    expect((await localStatus(node("n3"))).cluster).toMatchObject({ node: "n3", connected: true, configSeq: 1 })
  })

  it("converges a cluster-wide tell on all three nodes", async () => {
    const tell = await isinit([...etcdArgs(), "tell", "web", "1", "--wait", "--timeout", "30"])
    expect(tell.code, tell.err).toBe(0)
    expect(tell.out).toMatch(/web=1 reached \(run\) on n1, n2, n3/)
    for (const n of nodes) {
      expect(await groupOn(n, "web")).toMatchObject({ state: "run", level: "1" })
      expect(await groupOn(n, "db")).toMatchObject({ state: "stopped" })
    }
    await eventually("every web-server started once", () => nodes.every((n) => starts(n.name, "web-server") === 1))
  })

  it("a per-node tell touches only that node", async () => {
    const tell = await isinit([...etcdArgs(), "tell", "db", "1", "--node", "n3", "--wait", "--timeout", "30"])
    expect(tell.code, tell.err).toBe(0)
    expect(await groupOn(node("n3"), "db")).toMatchObject({ state: "run", level: "1" })
    expect(await groupOn(node("n1"), "db")).toMatchObject({ state: "stopped" })
    expect(await groupOn(node("n2"), "db")).toMatchObject({ state: "stopped" })
    const status = await clusterStatus()
    expect(status.desired.nodes).toEqual({ n3: { db: "1" } })
    expect(starts("n3", "db-server")).toBe(1)
    expect(starts("n1", "db-server") + starts("n2", "db-server")).toBe(0)
  })

  it("--wait fails listing the node whose test failed, and the nodes that did not answer", async () => {
    const tell = await isinit([...etcdArgs(), "tell", "web", "2", "--wait", "--timeout", "30"])
    expect(tell.code).toBe(1)
    expect(tell.err).toMatch(/web=2 failed on: n2\b/)
    expect(tell.err).toMatch(/reached on: n1, n3/)
    expect(await groupOn(node("n2"), "web")).toMatchObject({ state: "fail", level: "2" })
    expect(await groupOn(node("n1"), "web")).toMatchObject({ state: "run", level: "2" })

    const ghost = await isinit([...etcdArgs(), "tell", "db", "1", "--node", "ghost", "--wait", "--timeout", "1"])
    expect(ghost.code).toBe(1)
    expect(ghost.err).toMatch(/not reached within 1 s on: ghost/)
    await isinit([...etcdArgs(), "clear", "db", "--node", "ghost"])

    const back = await isinit([...etcdArgs(), "tell", "web", "1", "--wait", "--timeout", "30"])
    expect(back.code, back.err).toBe(0)
    // web-server is in both levels: it ran on throughout.
    expect(nodes.map((n) => starts(n.name, "web-server"))).toEqual([1, 1, 1])
  })

  it("records a local tell as the node's override in etcd", async () => {
    const local = await isinit(["-s", node("n1").socket, "db", "1"])
    expect(local.code, local.err).toBe(0)
    expect(local.err).toMatch(/recorded in etcd as n1's override/)
    // Who asked, as the kernel reports the socket's peer: this test process.
    expect(node("n1").log()).toMatch(new RegExp(`tell db 1 from uid ${process.getuid?.()} gid ${process.getgid?.()} \\(pid ${process.pid}\\)`))
    expect(await groupOn(node("n1"), "db")).toMatchObject({ state: "run", level: "1" })
    await eventually("the override in etcd", async () => (await clusterStatus()).desired.nodes["n1"]?.["db"] === "1")
    // Taking its own override back from the watch does not start anything again.
    await eventually("n1 publishes db run 1", async () => (await clusterStatus()).nodes.find((n) => n.node === "n1")?.groups["db"]?.lagging === false)
    expect(starts("n1", "db-server")).toBe(1)
  })

  it("a local tell with --wait says where its override was recorded, too", async () => {
    const local = await isinit(["-s", node("n3").socket, "web", "2", "--wait", "--timeout", "30"])
    expect(local.code, local.err).toBe(0)
    expect(local.out).toMatch(/web: level 2 reached \(run\)/)
    expect(local.err).toMatch(/web 2: recorded in etcd as n3's override \(revision \d+\)/)
    await eventually("the override in etcd", async () => (await clusterStatus()).desired.nodes["n3"]?.["web"] === "2")
    const back = await isinit([...etcdArgs(), "clear", "web", "--node", "n3"])
    expect(back.code, back.err).toBe(0)
  })

  it("a daemon killed with SIGKILL drops out within the lease; its restart converges without double starts", async () => {
    const n1 = node("n1")
    const webPid = await pidOf(n1, "web-server")
    const dbPid = await pidOf(n1, "db-server")
    expect(webPid).toEqual(expect.any(Number))
    await n1.kill("SIGKILL")
    const killedAt = Date.now()
    await eventually(
      "n1 missing",
      async () => {
        const s = await clusterStatus()
        return !s.nodes.some((n) => n.node === "n1") && s.missing.some((m) => m.node === "n1")
      },
      ttlSeconds * 1000 + 10_000,
    )
    console.info(`n1 dropped out ${Date.now() - killedAt} ms after SIGKILL (lease ${ttlSeconds} s)`)
    // Its processes live on without it.
    expect(alive(webPid as number) && alive(dbPid as number)).toBe(true)

    // A change made while n1 is away reaches it when it comes back.
    const tell = await isinit([...etcdArgs(), "tell", "web", "2"])
    expect(tell.code, tell.err).toBe(0)
    await n1.start()
    await eventually("n1 back, at web 2 and db 1", async () => {
      const row = (await clusterStatus()).nodes.find((n) => n.node === "n1")
      return row?.groups["web"]?.state === "run" && row.groups["web"].level === "2" && !row.groups["web"].lagging && row.groups["db"]?.state === "run"
    })
    expect(await pidOf(n1, "web-server")).toBe(webPid)
    expect(await pidOf(n1, "db-server")).toBe(dbPid)
    expect(starts("n1", "web-server")).toBe(1)
    expect(starts("n1", "db-server")).toBe(1)
  })

  it("keeps everything running through an etcd outage, shows it, and resyncs afterwards", async () => {
    const back = await isinit([...etcdArgs(), "tell", "web", "1", "--wait", "--timeout", "30"])
    expect(back.code, back.err).toBe(0)
    const before = await Promise.all(nodes.map((n) => pidOf(n, "web-server")))
    expect(before.every((pid) => typeof pid === "number")).toBe(true)

    await etcd.stop()
    await eventually("every node shows the outage", async () => (await Promise.all(nodes.map(localStatus))).every((s) => s.cluster?.connected === false))
    const text = await isinit(["-s", node("n2").socket, "status"])
    expect(text.out).toMatch(/etcd UNREACHABLE since/)
    // A local tell still applies at once, and waits to be recorded.
    const local = await isinit(["-s", node("n2").socket, "db", "1"])
    expect(local.code, local.err).toBe(0)
    expect(await groupOn(node("n2"), "db")).toMatchObject({ level: "1" })
    expect((await localStatus(node("n2"))).cluster?.pendingOverrides).toEqual(["db=1"])
    // Longer than the lease: every node's lease is lost meanwhile.
    await new Promise((resolve) => setTimeout(resolve, 3 * ttlSeconds * 1000))
    expect(await Promise.all(nodes.map((n) => pidOf(n, "web-server")))).toEqual(before)
    expect(before.every((pid) => alive(pid as number))).toBe(true)

    await etcd.start()
    await eventually("every node connected again", async () => (await Promise.all(nodes.map(localStatus))).every((s) => s.cluster?.connected === true), 30_000)
    await eventually("three live nodes again, n2's override recorded", async () => {
      const s = await clusterStatus()
      return s.nodes.length === 3 && s.desired.nodes["n2"]?.["db"] === "1"
    }, 30_000)
    const after = await isinit([...etcdArgs(), "tell", "web", "2", "--node", "n1", "--node", "n3", "--wait", "--timeout", "30"])
    expect(after.code, after.err).toBe(0)
    expect(await Promise.all(nodes.map((n) => pidOf(n, "web-server")))).toEqual(before)
    expect(nodes.map((n) => starts(n.name, "web-server"))).toEqual([1, 1, 1])
    expect(starts("n2", "db-server")).toBe(1)
    for (const n of nodes) expect(n.log()).toMatch(/etcd-resync/)
  })

  it("rejects a bad config push with line numbers and keeps the stored one", async () => {
    const bad = lab.write("bad.tab", "web:web-server:1:respawn:sleep 1\nweb:broken:1:sometimes:true\n")
    const push = await isinit([...etcdArgs(), "config", "push", bad])
    expect(push.code).toBe(1)
    expect(push.err).toMatch(/bad\.tab:2: error:/)
    expect(push.err).toMatch(/not pushed/)
    const show = await isinit([...etcdArgs(), "config", "show"])
    expect(show.code).toBe(0)
    expect(show.err).toMatch(/config #1/)
    const history = await isinit([...etcdArgs(), "config", "history", "--json"])
    expect((JSON.parse(history.out) as unknown[]).length).toBe(1)
  })

  it("rejects bad keys and values written to etcd by hand, with a logged reason, changing nothing", async () => {
    const raw = rawEtcd(url)
    try {
      await raw.put(`/isinit/${cluster}/desired/nosuch`).value(JSON.stringify({ level: "1" }))
      await raw.put(`/isinit/${cluster}/desired/db`).value("not json")
    } finally {
      raw.close()
    }
    await eventually("every node logs both rejections", () =>
      nodes.every((n) => / rejected desired nosuch=1 from etcd .*: unknown group/.test(n.log()) && /desired\/db .*not JSON/.test(n.log())),
    )
    expect(await groupOn(node("n1"), "db")).toMatchObject({ state: "run", level: "1" })
    expect(await groupOn(node("n3"), "web")).toMatchObject({ state: "run", level: "2" })
  })
})
