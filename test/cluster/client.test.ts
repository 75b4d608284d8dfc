/**
 * `isinit --etcd ...` against a real etcd, for what the client decides itself: `forget` refuses a
 * live node and a node never seen; `tell --wait` ends at once, naming the later tell, when a later
 * tell of the group replaces it. Nodes are published with the daemon's own status writer (no
 * daemons needed: the client reads only etcd).
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest"
import type { EtcdServer } from "./etcd-harness.ts"
import { eventually, skipWithoutEtcd, startEtcd } from "./etcd-harness.ts"
import type { OpenStore } from "./helpers.ts"
import { openStore, publishNode, run, statusInput, withdrawNode } from "./helpers.ts"
import { isinit } from "./nodes.ts"

describe.skipIf(skipWithoutEtcd())("isinit --etcd on one etcd", () => {
  let etcd: EtcdServer
  const opened: OpenStore[] = []
  let clusterCount = 0

  /** A cluster name of its own, with a store on it, so tests never see each other's keys. */
  const fresh = async (): Promise<{ readonly open: OpenStore; readonly args: readonly string[] }> => {
    clusterCount += 1
    const cluster = `c${clusterCount}`
    const open = await openStore(etcd.url, { cluster })
    opened.push(open)
    return { open, args: ["--etcd", etcd.url, "--cluster", cluster] }
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

  it("forget refuses a live node (it would vanish from both lists) and a node never seen", async () => {
    const { open, args } = await fresh()
    const lease = await publishNode(open.store, "n1", statusInput("3"))

    const live = await isinit([...args, "forget", "n1"])
    expect(live.code).toBe(1)
    expect(live.err).toMatch(/n1 is live: stop it first/)
    const ghost = await isinit([...args, "forget", "ghost"])
    expect(ghost.code).toBe(1)
    expect(ghost.err).toMatch(/no node ghost was ever seen in cluster c\d+/)

    // Once stopped, n1 is missing, and forgetting it works.
    await withdrawNode(open.store, lease)
    expect((await run(open.store.missingNodes())).map((n) => n.node)).toEqual(["n1"])
    const gone = await isinit([...args, "forget", "n1"])
    expect(gone.code, gone.err).toBe(0)
    expect(await run(open.store.missingNodes())).toEqual([])
  })

  /** Nodes that report web at `level` and run no daemon: a tell to another level keeps them pending. */
  const publishAt = async (open: OpenStore, level: string, nodes: readonly string[]): Promise<void> => {
    for (const n of nodes) await publishNode(open.store, n, statusInput(level))
  }
  const desiredWeb = async (open: OpenStore, node?: string): Promise<string | undefined> => {
    const { obeyed } = await run(open.store.readDesired())
    return (node === undefined ? obeyed.cluster.get("web") : obeyed.nodes.get(node)?.get("web"))?.level
  }

  it("tell --wait ends at once, superseded, when a later tell replaces it, and names the later tell", async () => {
    const { open, args } = await fresh()
    await publishAt(open, "1", ["n1", "n2"])
    const started = Date.now()
    // On one host the same case ends at once; the cluster used to wait for the whole --timeout.
    const waiting = isinit([...args, "tell", "web", "2", "--wait", "--timeout", "30"])
    await eventually("the first tell in etcd", async () => (await desiredWeb(open)) === "2")
    const later = await isinit([...args, "tell", "web", "3"])
    expect(later.code, later.err).toBe(0)
    const first = await waiting
    expect(first.code).toBe(1)
    expect(first.err).toMatch(/web=2 superseded on n1, n2 by a later tell: web=3 \(revision \d+, by \S+, at /)
    expect(first.err).not.toMatch(/not reached/)
    expect(Date.now() - started).toBeLessThan(20_000)
  })

  it("a node tell's --wait ends superseded when the node's override is replaced or cleared", async () => {
    const { open, args } = await fresh()
    await publishAt(open, "1", ["n1"])
    const waiting = isinit([...args, "tell", "web", "2", "--node", "n1", "--wait", "--timeout", "30"])
    await eventually("n1's override in etcd", async () => (await desiredWeb(open, "n1")) === "2")
    expect((await isinit([...args, "clear", "web", "--node", "n1"])).code).toBe(0)
    const cleared = await waiting
    expect(cleared.code).toBe(1)
    expect(cleared.err).toMatch(/web=2 superseded on n1 by web's desired level was cleared/)
  })
})
