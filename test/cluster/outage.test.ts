/**
 * etcd stopped and restarted under a running watch and a published node: operations fail with a
 * typed error meanwhile, the watch reports the outage (which changes nothing), resynchronises when
 * etcd is back and goes on watching; a write made right after the restart is told exactly once;
 * the node whose lease was lost during the outage publishes itself again.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { ToldLevels, Obeyed, WatchEvent } from "../../src/cluster/desired.ts"
import { applyEvent, effectiveFor, pendingTells } from "../../src/cluster/desired.ts"
import type { EtcdServer } from "./etcd-harness.ts"
import { eventually, rawEtcd, skipWithoutEtcd, startEtcd } from "./etcd-harness.ts"
import type { OpenStore, Watching } from "./helpers.ts"
import { failure, openStore, run, statusInput, watch } from "./helpers.ts"

const ttlSeconds = 2

/** A daemon's convergence, replayed: the tells it would make after each event. */
const replay = (start: Obeyed, events: readonly WatchEvent[], node: string): { readonly tells: string[]; readonly view: Obeyed } => {
  let view = start
  let applied: ToldLevels = new Map([...effectiveFor(start, node)].map(([g, e]) => [g, { level: e.level, revision: e.revision }]))
  const tells: string[] = []
  for (const event of events) {
    view = applyEvent(view, event)
    for (const t of pendingTells(effectiveFor(view, node), applied)) {
      tells.push(`${t.group}=${t.level}@${event._tag}`)
      applied = new Map([...applied, [t.group, { level: t.level, revision: t.revision }]])
    }
  }
  return { tells, view }
}

describe.skipIf(skipWithoutEtcd())("etcd outage", () => {
  let etcd: EtcdServer
  let open: OpenStore | undefined
  let watching: Watching | undefined

  beforeAll(async () => {
    etcd = await startEtcd()
  })
  afterAll(async () => {
    await watching?.stop()
    await open?.close()
    await etcd?.destroy()
  })

  it("fails operations with a typed error, reports the outage, resyncs and resumes, republishes the node", async () => {
    open = await openStore(etcd.url, { cluster: "outage", leaseTtlSeconds: ttlSeconds })
    const { store, log } = open
    await run(store.setDesired("web", "3"))
    await run(store.publishStatus("n1", statusInput("3")))
    const start = await run(store.readDesired())
    watching = watch(store, start.obeyed.revision)
    const events = watching.events

    await etcd.stop()
    await eventually("the outage reported", () => events.some((e) => e._tag === "Outage"))
    expect(replay(start.obeyed, events, "n1").tells).toEqual([]) // an outage stops nothing
    const failed = await failure(store.setDesired("web", "4"))
    expect(failed).toMatchObject({ _tag: "EtcdUnavailable", operation: expect.any(String) as string })
    expect((await failure(store.readDesired()))._tag).toBe("EtcdUnavailable")
    // Down for longer than twice the lease: the node's lease is lost.
    await new Promise((resolve) => setTimeout(resolve, 3 * ttlSeconds * 1000))
    expect(log.lines.some((l) => l.includes("etcd-lease-lost"))).toBe(true)

    await etcd.start()
    // Another client writes as soon as etcd is back: before or after the resync, told once.
    const other = rawEtcd(etcd.url)
    try {
      await other.put("/isinit/outage/desired/web").value(JSON.stringify({ level: "4" }))
    } finally {
      other.close()
    }
    await eventually("the resync", () => events.some((e) => e._tag === "Resynced"))
    await eventually("web=4 in the view", () => replay(start.obeyed, events, "n1").view.cluster.get("web")?.level === "4")

    // The watch goes on after the resync.
    await run(store.setDesired("web", "5"))
    await eventually("web=5 watched", () => replay(start.obeyed, events, "n1").view.cluster.get("web")?.level === "5")
    const { tells } = replay(start.obeyed, events, "n1")
    expect(tells.map((t) => t.split("@")[0])).toEqual(["web=4", "web=5"])
    expect(events.findIndex((e) => e._tag === "Outage")).toBeLessThan(events.findIndex((e) => e._tag === "Resynced"))

    // The node is back without publishing anything new itself.
    await eventually("n1 live again", async () => (await run(store.liveNodes())).some((n) => n.node === "n1"))
    expect(log.lines.some((l) => l.includes("etcd-outage"))).toBe(true)
    expect(log.lines.some((l) => l.includes("etcd-resync"))).toBe(true)
  })
})
