/**
 * The cluster store against a real etcd: desired levels read and watched without gaps or repeats,
 * node override precedence, config push and history, bad keys and values rejected.
 */
import type { Etcd3 } from "etcd3"
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest"
import { encodeValue, sha256Of } from "../../src/cluster/codecs.ts"
import type { Obeyed, WatchEvent } from "../../src/cluster/desired.ts"
import { applyEvent, effectiveFor, pendingTells } from "../../src/cluster/desired.ts"
import { nodeTarget } from "../../src/cluster/keys.ts"
import type { EtcdServer } from "./etcd-harness.ts"
import { eventually, rawEtcd, skipWithoutEtcd, startEtcd } from "./etcd-harness.ts"
import type { Followed, OpenStore } from "./helpers.ts"
import { failure, follow, goodConfig, inittab, openStore, publishNode, run, statusInput, withdrawNode } from "./helpers.ts"

describe.skipIf(skipWithoutEtcd())("cluster store on etcd", () => {
  let etcd: EtcdServer
  let raw: Etcd3
  const opened: OpenStore[] = []
  const watches: Followed[] = []
  let clusterCount = 0

  /** A store on a cluster name of its own, so tests never see each other's keys. */
  const fresh = async (): Promise<OpenStore> => {
    clusterCount += 1
    const open = await openStore(etcd.url, { cluster: `t${clusterCount}` })
    opened.push(open)
    return open
  }
  const watching = (w: Followed): Followed => {
    watches.push(w)
    return w
  }

  beforeAll(async () => {
    etcd = await startEtcd()
    raw = rawEtcd(etcd.url)
  })
  afterEach(async () => {
    for (const w of watches.splice(0)) w.stop()
    for (const o of opened.splice(0)) await o.close()
  })
  afterAll(async () => {
    raw?.close()
    await etcd?.destroy()
  })

  const levels = (events: readonly WatchEvent[]): string[] =>
    events.flatMap((e) => (e._tag === "DesiredSet" ? [`${e.target._tag === "Node" ? `${e.target.node}:` : ""}${e.group}=${e.desired.level}`] : []))

  it("reads then watches from the read's revision: a write in between arrives once, older ones never", async () => {
    const { store } = await fresh()
    await run(store.setDesired("web", "2"))
    const snapshot = await run(store.readDesired())
    expect(snapshot.obeyed.cluster.get("web")?.level).toBe("2")
    // Written after the read but before the watch starts: the gap a naive watch would miss.
    await run(store.setDesired("web", "3"))
    await run(store.setDesired("db", "1"))
    const w = watching(follow(store, snapshot.obeyed.revision))
    await run(store.setDesired("web", "4"))
    await eventually("three changes", () => w.events.length >= 3)
    // A marker written last: once it has arrived, anything duplicated would have arrived too.
    await run(store.setDesired("marker", "1"))
    await eventually("the marker", () => levels(w.events).includes("marker=1"))
    expect(levels(w.events)).toEqual(["web=3", "db=1", "web=4", "marker=1"])
    const view = w.events.reduce(applyEvent, snapshot.obeyed)
    const revisions = w.events.flatMap((e) => (e._tag === "DesiredSet" ? [e.desired.revision] : []))
    expect(revisions).toEqual([...revisions].sort((a, b) => a - b))
    expect(revisions[0]).toBeGreaterThan(snapshot.obeyed.revision)
    expect(view.cluster.get("web")?.level).toBe("4")
    expect((await run(store.readDesired())).obeyed.cluster).toEqual(view.cluster)
  })

  it("reports a watch from a revision compacted away (a daemon offline for long) as lost, once; a read and a watch from its revision go on", async () => {
    const { store } = await fresh()
    await run(store.setDesired("web", "2"))
    const old = await run(store.readAll())
    await run(store.setDesired("web", "3"))
    const latest = await run(store.setDesired("db", "1"))
    await raw.kv.compact({ revision: String(latest.revision), physical: true })
    const w = watching(follow(store, old.revision))
    await eventually("the watch lost", () => w.lost.length > 0)
    expect(w.lost).toHaveLength(1)
    expect(w.events).toEqual([])
    // What the shell does when the node reducer asks for a resync (a Read, then a Watch from it).
    const fresh2 = await run(store.readAll())
    expect(fresh2.obeyed.cluster.get("web")?.level).toBe("3")
    expect(fresh2.obeyed.cluster.get("db")?.level).toBe("1")
    const again = watching(follow(store, fresh2.revision))
    await run(store.setDesired("web", "4"))
    await eventually("the watch after the resync", () => again.events.reduce(applyEvent, fresh2.obeyed).cluster.get("web")?.level === "4")
    expect(again.lost).toEqual([])
    expect(w.events).toEqual([])
  })

  it("gives a node override precedence over the cluster-wide level and hands back on delete", async () => {
    const { store } = await fresh()
    await run(store.setDesired("web", "3"))
    await run(store.setDesired("web", "maint", { node: "n1" }))
    const snapshot = await run(store.readDesired())
    expect(effectiveFor(snapshot.obeyed, "n1").get("web")).toMatchObject({ level: "maint", source: "node" })
    expect(effectiveFor(snapshot.obeyed, "n2").get("web")).toMatchObject({ level: "3", source: "cluster" })

    const w = watching(follow(store, snapshot.obeyed.revision))
    // A cluster-wide tell leaves n1's override in force: no new tell for n1, one for n2.
    const applied = (view: Obeyed, node: string) =>
      new Map([...effectiveFor(view, node)].map(([g, e]) => [g, { level: e.level, revision: e.revision }]))
    const appliedN1 = applied(snapshot.obeyed, "n1")
    const appliedN2 = applied(snapshot.obeyed, "n2")
    await run(store.setDesired("web", "4"))
    await eventually("the cluster-wide change", () => w.events.length >= 1)
    let view = w.events.reduce(applyEvent, snapshot.obeyed)
    expect(pendingTells(effectiveFor(view, "n1"), appliedN1)).toEqual([])
    expect(pendingTells(effectiveFor(view, "n2"), appliedN2)).toMatchObject([{ group: "web", level: "4" }])

    const cleared = await run(store.clearDesired("web", { node: "n1" }))
    expect(cleared.deleted).toBe(true)
    await eventually("the override's deletion", () => w.events.some((e) => e._tag === "DesiredCleared"))
    const deletion = w.events.find((e) => e._tag === "DesiredCleared")
    expect(deletion).toMatchObject({ target: nodeTarget("n1"), group: "web", revision: cleared.revision })
    view = w.events.reduce(applyEvent, snapshot.obeyed)
    expect(pendingTells(effectiveFor(view, "n1"), appliedN1)).toMatchObject([{ group: "web", level: "4" }])
    expect((await run(store.clearDesired("web", { node: "n1" }))).deleted).toBe(false)
  })

  it("refuses names that cannot be one key segment", async () => {
    const { store } = await fresh()
    expect(await failure(store.setDesired("a/b", "3"))).toMatchObject({ _tag: "InvalidName" })
    expect(await failure(store.setDesired("web", "3 4"))).toMatchObject({ _tag: "InvalidName" })
    expect(await failure(store.setDesired("web", "3", { node: "" }))).toMatchObject({ _tag: "InvalidName" })
  })

  it("pushes a valid config with a number and a history, and refuses one with errors, line by line", async () => {
    const { store } = await fresh()
    const bad = inittab(["web:a:3,:respawn:sleep 1", "web:b:3,:sometimes:true", "web:a:3,:once:true"])
    const rejected = await failure(store.pushConfig(bad))
    expect(rejected._tag).toBe("ConfigRejected")
    if (rejected._tag === "ConfigRejected") {
      expect(rejected.problems.some((p) => p.startsWith("line 2: "))).toBe(true)
      expect(rejected.problems.some((p) => p.startsWith("line 3: "))).toBe(true)
    }
    expect(await run(store.currentConfig())).toEqual({ _tag: "None" })

    const snapshot = await run(store.readDesired())
    const w = watching(follow(store, snapshot.obeyed.revision))
    const first = await run(store.pushConfig(goodConfig, { by: "test" }))
    expect(first).toMatchObject({ _tag: "Pushed", seq: 1, sha256: sha256Of(goodConfig) })
    expect(await run(store.pushConfig(goodConfig))).toMatchObject({ _tag: "Unchanged", seq: 1, revision: first.revision })
    const second = inittab(["web:web-server:3,:respawn:sleep 3600"])
    const pushed = await run(store.pushConfig(second))
    expect(pushed).toMatchObject({ _tag: "Pushed", seq: 2 })
    expect(pushed.revision).toBeGreaterThan(first.revision)

    const current = await run(store.currentConfig())
    expect(current._tag).toBe("Valid")
    if (current._tag === "Valid") {
      expect(current.config.value.text).toBe(second)
      expect(current.config.revision).toBe(pushed.revision)
    }
    const history = await run(store.configHistory())
    expect(history.rejections).toEqual([])
    expect(history.entries.map((e) => [e.seq, e.text, e.revision, e.by])).toEqual([
      [1, goodConfig, first.revision, "test"],
      [2, second, pushed.revision, undefined],
    ])
    await eventually("both configs on the watch", () => w.events.filter((e) => e._tag === "ConfigSet").length === 2)
    expect(w.events.map((e) => (e._tag === "ConfigSet" ? e.config.value.seq : e._tag))).toEqual([1, 2])

    // With a config stored, a desired level for a group it lacks is refused; db left with push #2.
    expect(await failure(store.setDesired("db", "3"))).toMatchObject({ _tag: "UnknownGroup", group: "db", configSeq: 2 })
    expect(await run(store.setDesired("web", "3"))).toHaveProperty("revision")
  })

  it("rejects bad keys and values with a reason, logs them, and keeps the last good state", async () => {
    const { store, log } = await fresh()
    const cluster = store.cluster
    await run(store.setDesired("web", "3"))
    await run(store.pushConfig(goodConfig))
    const before = await run(store.readDesired())
    const w = watching(follow(store, before.obeyed.revision))

    const brokenText = "web:x:3,:whenever:true\n"
    const writes: readonly [string, string][] = [
      [`/isinit/${cluster}/desired/web`, "not json"],
      [`/isinit/${cluster}/desired/db`, JSON.stringify({ level: "two words" })],
      [`/isinit/${cluster}/desired-node/n1`, JSON.stringify({ level: "3" })],
      [`/isinit/${cluster}/defaults`, "{}"],
      [`/isinit/${cluster}/config`, encodeValue({ text: brokenText, sha256: sha256Of(brokenText), seq: 9, pushedAt: new Date().toISOString() })],
      [`/isinit/${cluster}/config`, encodeValue({ text: goodConfig, sha256: sha256Of("other"), seq: 9, pushedAt: new Date().toISOString() })],
    ]
    for (const [key, value] of writes) await raw.put(key).value(value)
    await eventually("every bad write rejected", () => w.events.filter((e) => e._tag === "Rejected").length === writes.length)
    expect(w.events.every((e) => e._tag === "Rejected")).toBe(true)
    const reasons = w.events.flatMap((e) => (e._tag === "Rejected" ? [`${e.rejection.key.replace(`/isinit/${cluster}/`, "")}: ${e.rejection.reason}`] : []))
    expect(reasons[0]).toMatch(/^desired\/web: not JSON/)
    expect(reasons[1]).toMatch(/^desired\/db: .*whitespace/)
    expect(reasons[2]).toMatch(/^desired-node\/n1: unknown key/)
    expect(reasons[3]).toMatch(/^defaults: unknown key/)
    expect(reasons[4]).toMatch(/^config: the isinittab has errors: line 1: /)
    expect(reasons[5]).toMatch(/^config: sha256 does not match/)
    // The watched view keeps the last good level and config.
    const view = w.events.reduce(applyEvent, before.obeyed)
    expect(view.cluster.get("web")?.level).toBe("3")
    expect(view.config?.value.text).toBe(goodConfig)
    expect(view.revision).toBeGreaterThan(before.obeyed.revision)
    // A fresh read reports the same rejections (the bad values are still there) and no bad level.
    const after = await run(store.readDesired())
    expect(after.rejections.map((r) => r.key.replace(`/isinit/${cluster}/`, "")).sort()).toEqual(
      ["config", "defaults", "desired-node/n1", "desired/db", "desired/web"],
    )
    expect(after.obeyed.cluster.size).toBe(0)
    expect(after.obeyed.config).toBeUndefined()
    expect(log.lines.filter((l) => l.includes("etcd-rejected")).length).toBeGreaterThanOrEqual(writes.length)
    // The store refuses to build on a damaged config: push continues numbering after history.
    expect(await run(store.pushConfig(goodConfig))).toMatchObject({ _tag: "Pushed", seq: 2 })
  })

  it("reads a fleet whose statuses together exceed gRPC's default 4 MiB message: status, tell --wait and rollouts read them all at once", async () => {
    const { store } = await fresh()
    // 45 nodes with 100 KB of status each: 4.5 MB in one range read (as a fleet of about 1,000 nodes with 30 entries each).
    const big = (level: string) => {
      const input = statusInput(level)
      const entries = [{ tag: "web-server", mode: "respawn", levels: [level], state: "running", pid: 1, run: 1, restarts: 0, jailedUntil: null, lastExit: "x".repeat(100_000) }] as const
      return { ...input, report: { ...input.report, groups: input.report.groups.map((g) => ({ ...g, entries })) } }
    }
    const names = Array.from({ length: 45 }, (_, i) => `n${i + 1}`)
    for (const n of names) await publishNode(store, n, big("2"))
    const nodes = await run(store.nodes())
    expect(nodes.live.map((n) => n.node).sort()).toEqual([...names].sort())
  })

  it("names the live nodes from their keys, and reads the statuses of a few at one revision", async () => {
    const { store } = await fresh()
    const leases = new Map<string, string>()
    for (const n of ["n1", "n2", "n3"]) leases.set(n, await publishNode(store, n, statusInput("2")))
    expect([...(await run(store.liveNames()))].sort()).toEqual(["n1", "n2", "n3"])
    expect((await run(store.statusesOf(["n3", "ghost", "n1"]))).map((s) => s.node)).toEqual(["n3", "n1"])
    expect(await run(store.statusesOf([]))).toEqual([])
    await withdrawNode(store, leases.get("n2") ?? "")
    expect([...(await run(store.liveNames()))].sort()).toEqual(["n1", "n3"])
  })
})
