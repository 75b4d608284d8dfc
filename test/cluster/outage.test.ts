/**
 * etcd stopped and restarted under a running `isinitd --etcd` (the daemon's own path: the node
 * reducer, store/follow.ts, its presence lease): etcd operations fail with a typed error
 * meanwhile; the daemon keeps its group running, shows the outage and logs it once though its
 * reads keep failing; when etcd is back it resyncs (logged once), a write made right after the
 * restart is applied exactly once, the watch goes on, and the node publishes itself again under a
 * new lease (the old one expired during the outage).
 */
import { readFileSync } from "node:fs"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { EtcdServer } from "./etcd-harness.ts"
import { eventually, rawEtcd, skipWithoutEtcd, startEtcd } from "./etcd-harness.ts"
import type { OpenStore } from "./helpers.ts"
import { failure, openStore, run } from "./helpers.ts"
import type { Lab, Node } from "./nodes.ts"
import { isinit, makeLab } from "./nodes.ts"

const ttlSeconds = 2
const cluster = "outage"

interface LocalStatus {
  readonly groups: readonly { readonly group: string; readonly level: string; readonly state: string; readonly entries: readonly { readonly tag: string; readonly pid: number | null }[] }[]
  readonly cluster?: { readonly connected: boolean }
}

const localStatus = async (n: Node): Promise<LocalStatus> => {
  const result = await isinit(["-s", n.socket, "status", "--json"])
  if (result.code !== 0) throw new Error(`local status of ${n.name}: ${result.err}`)
  return JSON.parse(result.out) as LocalStatus
}
const web = async (n: Node) => (await localStatus(n)).groups.find((g) => g.group === "web")
const lines = (log: string, pattern: RegExp): string[] => log.split("\n").filter((l) => pattern.test(l))

describe.skipIf(skipWithoutEtcd())("etcd outage under a running daemon", () => {
  let etcd: EtcdServer
  let lab: Lab | undefined
  let open: OpenStore | undefined

  beforeAll(async () => {
    etcd = await startEtcd()
  })
  afterAll(async () => {
    await lab?.cleanup()
    await open?.close()
    await etcd?.destroy()
  })

  it("keeps the group running, logs the outage once, resyncs once, applies a write made right after the restart exactly once, and publishes the node again", async () => {
    lab = makeLab(etcd.url, cluster)
    const tab = lab.write("isinittab", `web:web-server:3,4,5:respawn:echo $$ >> ${lab.dir}/starts; exec sleep 3600\n`)
    const n1 = lab.node("n1", { tab, leaseTtlSeconds: ttlSeconds })
    await n1.start()
    open = await openStore(etcd.url, { cluster })
    const { store } = open
    const args = ["--etcd", etcd.url, "--cluster", cluster]
    const told = await isinit([...args, "tell", "web", "3", "--wait", "--timeout", "30"])
    expect(told.code, told.err).toBe(0)
    const pid = (await web(n1))?.entries[0]?.pid
    expect(pid).toEqual(expect.any(Number))

    await etcd.stop()
    await eventually("n1 shows the outage", async () => (await localStatus(n1)).cluster?.connected === false)
    expect(await failure(store.setDesired("web", "4"))).toMatchObject({ _tag: "EtcdUnavailable", operation: expect.any(String) as string })
    expect((await failure(store.readAll()))._tag).toBe("EtcdUnavailable")
    // Down for longer than the lease: n1's presence lease expires, and its reads fail again and again.
    await new Promise((resolve) => setTimeout(resolve, 3 * ttlSeconds * 1000))
    expect(await web(n1)).toMatchObject({ level: "3", state: "run", entries: [{ pid }] })

    await etcd.start()
    // Another client writes as soon as etcd is back: before or after n1's resync, applied once.
    const other = rawEtcd(etcd.url)
    try {
      await other.put(`/isinit/${cluster}/desired/web`).value(JSON.stringify({ level: "4" }))
    } finally {
      other.close()
    }
    await eventually("n1 at web 4", async () => (await web(n1))?.level === "4", 30_000)
    // The watch goes on after the resync.
    const later = await isinit([...args, "tell", "web", "5", "--wait", "--timeout", "30"])
    expect(later.code, later.err).toBe(0)
    await eventually("n1 live again", async () => (await run(store.liveNodes())).some((n) => n.node === "n1"), 30_000)

    const log = n1.log()
    // Converging, not replaying: the resync does not tell web=3 again, and web=4 is told once.
    expect(lines(log, /desired web=3 from etcd .*: told/), log).toHaveLength(1)
    expect(lines(log, /desired web=4 from etcd .*: told/), log).toHaveLength(1)
    expect(lines(log, /desired web=5 from etcd .*: told/), log).toHaveLength(1)
    expect(lines(log, /etcd-outage.*(watch lost|reading from etcd failed)/), log).toHaveLength(1)
    expect(lines(log, /etcd-resync/), log).toHaveLength(1)
    expect(await web(n1)).toMatchObject({ level: "5", state: "run", entries: [{ pid }] })
    expect(lines(readFileSync(lab.path("starts"), "utf8"), /\d/)).toHaveLength(1)
  })
})
