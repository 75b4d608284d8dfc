/**
 * Node presence as the daemon keeps it (its presence lease and the keep-alives it sends itself:
 * store/leases.ts, the node reducer's lease.ts and presence.ts), with real `isinitd --etcd`
 * processes: a running daemon stays live well past its TTL; a SIGKILLed one drops out within its
 * lease and is listed missing; a clean stop (SIGTERM) withdraws its status at once, long before
 * its lease would have expired. And the client takes node statuses that are not one as
 * rejections with a reason, not as failures.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest"
import type { EtcdServer } from "./etcd-harness.ts"
import { eventually, rawEtcd, skipWithoutEtcd, startEtcd } from "./etcd-harness.ts"
import type { OpenStore } from "./helpers.ts"
import { openStore, publishNode, run, statusInput } from "./helpers.ts"
import type { Lab } from "./nodes.ts"
import { makeLab } from "./nodes.ts"

describe.skipIf(skipWithoutEtcd())("node presence on etcd leases", () => {
  let etcd: EtcdServer
  const opened: OpenStore[] = []
  const labs: Lab[] = []
  const open = async (cluster: string): Promise<OpenStore> => {
    const o = await openStore(etcd.url, { cluster })
    opened.push(o)
    return o
  }

  beforeAll(async () => {
    etcd = await startEtcd()
  })
  afterEach(async () => {
    for (const lab of labs.splice(0)) await lab.cleanup()
    for (const o of opened.splice(0)) await o.close()
  })
  afterAll(async () => {
    await etcd?.destroy()
  })

  it("keeps a running daemon live past its TTL, drops a SIGKILLed one within its lease, and a clean stop at once", async () => {
    const lab = makeLab(etcd.url, "presence")
    labs.push(lab)
    const tab = lab.write("isinittab", "web:web-server:3:respawn:exec sleep 3600\n")
    const dying = lab.node("n1", { tab, leaseTtlSeconds: 2 })
    // A lease far longer than the test waits: only the daemon's revoke can take n2 out in time.
    const stopping = lab.node("n2", { tab, leaseTtlSeconds: 60 })
    await Promise.all([dying.start(), stopping.start()])
    const { store } = await open("presence")
    const live = async (): Promise<string[]> => (await run(store.liveNodes())).map((n) => n.node).sort()
    await eventually("both live", async () => (await live()).length === 2, 30_000)

    // Keep-alive: n1 is still live after three of its TTLs.
    await new Promise((resolve) => setTimeout(resolve, 3 * 2_000))
    expect(await live()).toEqual(["n1", "n2"])

    await dying.kill("SIGKILL")
    const diedAt = Date.now()
    await eventually("n1 to leave the live nodes", async () => !(await live()).includes("n1"), 20_000)
    // Generous bound for a slow machine; the lease itself is 2 s.
    expect(Date.now() - diedAt).toBeLessThan(15_000)
    const after = await run(store.nodes())
    expect(after.live.map((n) => n.node)).toEqual(["n2"])
    expect(after.missing.map((n) => n.node)).toEqual(["n1"])

    await stopping.kill("SIGTERM")
    const stoppedAt = Date.now()
    await eventually("n2 to leave the live nodes", async () => (await live()).length === 0, 20_000)
    expect(Date.now() - stoppedAt, "withdrawn by the daemon, not expired after its 60 s lease").toBeLessThan(20_000)
    expect((await run(store.nodes())).missing.map((n) => n.node)).toEqual(["n1", "n2"])
    await run(store.forgetNode("n1"))
    expect((await run(store.missingNodes())).map((n) => n.node)).toEqual(["n2"])
  })

  it("rejects a node status that is not one, with a reason, and lists the good ones", async () => {
    const a = await open("presence2")
    await publishNode(a.store, "n1", statusInput("3"))
    const raw = rawEtcd(etcd.url)
    try {
      await raw.put("/isinit/presence2/nodes/n9").value("{}")
      await raw.put("/isinit/presence2/nodes/n8").value(JSON.stringify({ ...statusInput("3"), node: "n7", at: new Date().toISOString() }))
      const listed = await run(a.store.nodes())
      expect(listed.live.map((n) => n.node)).toEqual(["n1"])
      expect(listed.live[0]).toMatchObject({ node: "n1", report: { groups: [{ group: "web", level: "3", state: "run" }] } })
      expect(listed.rejections.map((r) => r.key).sort()).toEqual(["/isinit/presence2/nodes/n8", "/isinit/presence2/nodes/n9"])
      expect(listed.rejections.find((r) => r.key.endsWith("n8"))?.reason).toMatch(/n7/)
    } finally {
      raw.close()
    }
  })
})
