/**
 * What the daemon's shell asks of etcd for the node reducer, against a real etcd: leases kept
 * alive by keep-alives it sends itself (TTL 0 once the lease is gone), the claim and candidate
 * keys (created once, another daemon's refused, an earlier lease's moved onto the new one in
 * place), proclamations and resignations only under the candidate key's guard, a status on a lease
 * etcd no longer has refused as unavailable, and one read and one watch of everything a daemon
 * follows (one batch per revision, failover keys classified).
 */
import type { Etcd3 } from "etcd3"
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest"
import { candidateKey } from "../../src/cluster/keys.ts"
import type { Active, Change } from "../../src/cluster/node/types.ts"
import type { EtcdServer } from "./etcd-harness.ts"
import { eventually, rawEtcd, skipWithoutEtcd, startEtcd } from "./etcd-harness.ts"
import type { OpenStore } from "./helpers.ts"
import { openStore, run, statusInput } from "./helpers.ts"

const active = (node: string, epoch: number, state: Active["state"]): Active => ({ node, epoch, state, ttlMs: 3_000, renewDeadlineMs: 1_800, killGraceMs: 900, reason: "test" })

describe.skipIf(skipWithoutEtcd())("the node's etcd operations", () => {
  let etcd: EtcdServer
  let raw: Etcd3
  const opened: OpenStore[] = []
  let count = 0
  const fresh = async (): Promise<OpenStore> => {
    count += 1
    const open = await openStore(etcd.url, { cluster: `e${count}` })
    opened.push(open)
    return open
  }

  beforeAll(async () => {
    etcd = await startEtcd()
    raw = rawEtcd(etcd.url)
  })
  afterEach(async () => {
    for (const o of opened.splice(0)) await o.close()
  })
  afterAll(async () => {
    raw?.close()
    await etcd?.destroy()
  })

  it("grants a lease, keeps it alive on request, and answers TTL 0 once it is revoked", async () => {
    const { store } = await fresh()
    const lease = await run(store.leases.grant(2_500))
    expect(lease.ttlMs).toBe(3_000) // whole seconds, rounded up
    expect(await run(store.leases.keepAlive(lease.id))).toBe(3_000)
    // Two at once on the one stream: each gets its own answer.
    expect(await Promise.all([run(store.leases.keepAlive(lease.id)), run(store.leases.keepAlive(lease.id))])).toEqual([3_000, 3_000])
    await run(store.leases.revoke(lease.id))
    expect(await run(store.leases.keepAlive(lease.id))).toBe(0)
    // A status on a lease etcd no longer has is refused as unavailable (the reducer grants anew).
    const published = await run(store.election("n1").write({ _tag: "Publish", seq: 1, lease: lease.id, status: statusInput("1"), seen: "mark" }))
    expect(published).toMatchObject({ _tag: "Unavailable", reason: expect.stringMatching(/lease not found/) as string })
  })

  it("creates a candidate key once, refuses another daemon's, and moves this daemon's onto its new lease in place", async () => {
    const { store } = await fresh()
    const first = await run(store.leases.grant(10_000))
    const second = await run(store.leases.grant(10_000))
    const n1 = store.election("n1")
    const made = await run(n1.write({ _tag: "Campaign", group: "web", lease: first.id, instance: "i1" }))
    expect(made._tag).toBe("Done")
    const epoch = made._tag === "Done" ? made.createRevision : 0
    expect(await run(n1.write({ _tag: "Campaign", group: "web", lease: first.id, instance: "i1" }))).toMatchObject({ _tag: "Done", createRevision: epoch })
    expect(await run(n1.write({ _tag: "Campaign", group: "web", lease: first.id, instance: "other" }))).toEqual({ _tag: "Lost" })
    expect(await run(n1.write({ _tag: "Campaign", group: "web", lease: second.id, instance: "i1" }))).toMatchObject({ _tag: "Done", createRevision: epoch })
    const key = await raw.get(candidateKey(`e${count}`, "n1", "web")).exec()
    expect(key.kvs[0]?.lease).toBe(second.id)
    // The first lease going no longer takes the key with it.
    await run(store.leases.revoke(first.id))
    expect((await raw.get(candidateKey(`e${count}`, "n1", "web")).exec()).kvs).toHaveLength(1)
    expect(await run(n1.write({ _tag: "Claim", lease: second.id, instance: "i1" }))).toMatchObject({ _tag: "Done" })
    expect(await run(store.election("n1").write({ _tag: "Claim", lease: second.id, instance: "i2" }))).toEqual({ _tag: "Lost" })
  })

  it("proclaims and resigns only under the candidate key's guard", async () => {
    const { store } = await fresh()
    const lease = await run(store.leases.grant(10_000))
    const n1 = store.election("n1")
    const made = await run(n1.write({ _tag: "Campaign", group: "web", lease: lease.id, instance: "i1" }))
    const epoch = made._tag === "Done" ? made.createRevision : 0
    const key = candidateKey(`e${count}`, "n1", "web")
    expect(await run(n1.write({ _tag: "Proclaim", group: "web", key, epoch: epoch + 1, active: active("n1", epoch + 1, "running") }))).toEqual({ _tag: "Lost" })
    expect(await run(n1.write({ _tag: "Proclaim", group: "web", key, epoch, active: active("n1", epoch, "running") }))).toMatchObject({ _tag: "Done" })
    const read = await run(store.readFailover())
    expect(read.proclamations.get("web")).toEqual([expect.objectContaining({ node: "n1", epoch, state: "running" })])
    expect(read.candidates.get("web")).toEqual([expect.objectContaining({ node: "n1", createRevision: epoch, leftMs: expect.any(Number) as number })])
    expect(await run(n1.write({ _tag: "Resign", group: "web", key, epoch, active: active("n1", epoch, "released") }))).toMatchObject({ _tag: "Done" })
    const after = await run(store.readFailover())
    expect(after.candidates.get("web") ?? []).toEqual([])
    expect(after.proclamations.get("web")?.[0]?.state).toBe("released")
    expect(await run(n1.write({ _tag: "Withdraw", group: "web", key, epoch }))).toEqual({ _tag: "Lost" })
  })

  it("reads and watches everything a daemon follows: one batch per revision, failover keys included, bans not", async () => {
    const { store } = await fresh()
    const cluster = `e${count}`
    const lease = await run(store.leases.grant(10_000))
    await run(store.setDesired("web", "1"))
    const before = await run(store.readAll())
    expect(before.obeyed.cluster.get("web")?.level).toBe("1")
    const batches: { readonly revision: number; readonly changes: readonly Change[] }[] = []
    const lost: string[] = []
    const cancel = store.watchAll(before.revision, { batch: (revision, changes) => batches.push({ revision, changes }), lost: (reason) => lost.push(reason) })
    try {
      await run(store.election("n2").write({ _tag: "Campaign", group: "web", lease: lease.id, instance: "i9" }))
      await run(store.election("n2").write({ _tag: "Ban", group: "web", reason: "test", ttlMs: 5_000 }))
      await run(store.moveGroup("web", "n2", 5_000, "me@here"))
      await eventually("three batches", () => batches.length === 3)
      expect(batches.map((b) => b.changes.map((c) => c._tag))).toEqual([["CandidateSet"], [], ["MoveSet"]])
      expect(batches.map((b) => b.revision)).toEqual(batches.map((b) => b.revision).toSorted((a, b) => a - b))
      const snapshot = await run(store.readAll())
      expect(snapshot.failover.candidates.get("web")?.map((c) => c.node)).toEqual(["n2"])
      expect(snapshot.failover.moves.get("web")?.node).toBe("n2")
      expect(lost).toEqual([])
      expect((await raw.getAll().prefix(`/isinit/${cluster}/failover-node/n2/ban/`).keys()).length).toBe(1)
    } finally {
      cancel()
    }
  })
})
