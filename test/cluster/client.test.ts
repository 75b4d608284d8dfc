/**
 * `isinit --etcd ...` against a real etcd, for what the client decides itself: `forget` refuses a
 * live node and a node never seen; `tell --wait` ends at once, naming the later tell, when a later
 * tell of the group replaces it. Nodes are published through the store (no daemons needed: the
 * client reads only etcd).
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest"
import type { EtcdServer } from "./etcd-harness.ts"
import { skipWithoutEtcd, startEtcd } from "./etcd-harness.ts"
import type { OpenStore } from "./helpers.ts"
import { openStore, run, statusInput } from "./helpers.ts"
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
    await run(open.store.publishStatus("n1", statusInput("3")))

    const live = await isinit([...args, "forget", "n1"])
    expect(live.code).toBe(1)
    expect(live.err).toMatch(/n1 is live: stop it first/)
    const ghost = await isinit([...args, "forget", "ghost"])
    expect(ghost.code).toBe(1)
    expect(ghost.err).toMatch(/no node ghost was ever seen in cluster c\d+/)

    // Once stopped, n1 is missing, and forgetting it works.
    await run(open.store.withdraw("n1"))
    expect((await run(open.store.missingNodes())).map((n) => n.node)).toEqual(["n1"])
    const gone = await isinit([...args, "forget", "n1"])
    expect(gone.code, gone.err).toBe(0)
    expect(await run(open.store.missingNodes())).toEqual([])
  })
})
