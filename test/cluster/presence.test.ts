/**
 * Node status on etcd leases: a node whose daemon dies (no revoke, keep-alives stop) drops out
 * of the live nodes within the lease time and is listed as missing; a living node stays live
 * well past its TTL (keep-alive works); a clean stop (withdraw) shows at once.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest"
import type { EtcdServer } from "./etcd-harness.ts"
import { eventually, rawEtcd, skipWithoutEtcd, startEtcd } from "./etcd-harness.ts"
import type { OpenStore } from "./helpers.ts"
import { openStore, run, statusInput } from "./helpers.ts"

const ttlSeconds = 2

describe.skipIf(skipWithoutEtcd())("node presence on etcd leases", () => {
  let etcd: EtcdServer
  const opened: OpenStore[] = []
  const open = async (options: Parameters<typeof openStore>[1] = {}): Promise<OpenStore> => {
    const o = await openStore(etcd.url, { cluster: "presence", leaseTtlSeconds: ttlSeconds, ...options })
    opened.push(o)
    return o
  }

  beforeAll(async () => {
    etcd = await startEtcd()
  })
  afterEach(async () => {
    for (const o of opened.splice(0)) await o.close()
  })
  afterAll(async () => {
    await etcd?.destroy()
  })

  it("drops a dead node within the lease time, keeps a live one, and lists the dead one as missing", async () => {
    // The dying node's store closes without revoking, as a SIGKILLed daemon would leave it.
    const dying = await open({ revokeOnClose: false })
    const living = await open()
    await run(dying.store.publishStatus("n1", statusInput("3")))
    await run(living.store.publishStatus("n2", statusInput("3")))
    const both = await run(living.store.nodes())
    expect(both.live.map((n) => n.node)).toEqual(["n1", "n2"])
    expect(both.live[0]).toMatchObject({ node: "n1", report: { groups: [{ group: "web", level: "3", state: "run" }] } })
    expect(both.missing).toEqual([])

    await dying.close()
    const diedAt = Date.now()
    await eventually("n1 to leave the live nodes", async () => (await run(living.store.liveNodes())).every((n) => n.node !== "n1"))
    // Generous bound for a slow machine; the lease itself is 2 s.
    expect(Date.now() - diedAt).toBeLessThan(15_000)
    const after = await run(living.store.nodes())
    expect(after.live.map((n) => n.node)).toEqual(["n2"])
    expect(after.missing.map((n) => n.node)).toEqual(["n1"])

    // Keep-alive: n2 is still live after three of its TTLs have passed since it published.
    await new Promise((resolve) => setTimeout(resolve, 3 * ttlSeconds * 1000))
    expect((await run(living.store.liveNodes())).map((n) => n.node)).toEqual(["n2"])

    // A newer status replaces the old one on the same lease.
    await run(living.store.publishStatus("n2", statusInput("4")))
    expect((await run(living.store.liveNodes()))[0]?.report.groups[0]?.level).toBe("4")

    // A clean stop shows at once; forgetting a node stops listing it as missing.
    await run(living.store.withdraw("n2"))
    const withdrawn = await run(living.store.nodes())
    expect(withdrawn.live).toEqual([])
    expect(withdrawn.missing.map((n) => n.node)).toEqual(["n1", "n2"])
    await run(living.store.forgetNode("n1"))
    expect((await run(living.store.missingNodes())).map((n) => n.node)).toEqual(["n2"])
  })

  it("revokes on close by default, and rejects a node status that is not one", async () => {
    const a = await open({ cluster: "presence2" })
    await run(a.store.publishStatus("n1", statusInput("3")))
    const raw = rawEtcd(etcd.url)
    try {
      await raw.put("/isinit/presence2/nodes/n9").value("{}")
      await raw.put("/isinit/presence2/nodes/n8").value(JSON.stringify({ ...statusInput("3"), node: "n7", at: new Date().toISOString() }))
      const listed = await run(a.store.nodes())
      expect(listed.live.map((n) => n.node)).toEqual(["n1"])
      expect(listed.rejections.map((r) => r.key).sort()).toEqual(["/isinit/presence2/nodes/n8", "/isinit/presence2/nodes/n9"])
      expect(listed.rejections.find((r) => r.key.endsWith("n8"))?.reason).toMatch(/n7/)
      await raw.delete().prefix("/isinit/presence2/nodes/n")
      await run(a.store.publishStatus("n1", statusInput("3")))
      await a.close()
      opened.splice(opened.indexOf(a), 1)
      const b = await open({ cluster: "presence2" })
      const after = await run(b.store.nodes())
      expect(after.live).toEqual([])
      expect(after.missing.map((n) => n.node)).toEqual(["n1"])
    } finally {
      raw.close()
    }
  })
})
