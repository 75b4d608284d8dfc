/**
 * Failover groups on real processes (issue 10): a three-member etcd on loopback ports, three real
 * `isinitd --etcd` nodes, each reaching every member through a TCP proxy of its own that the test
 * can sever, and a witness as the failover group's only entry (failover-lab.ts): it appends its
 * node, epoch and start and stop times to a shared file, and holds an exclusive lock on a shared
 * file while it runs, so that two witnesses alive at once is recorded exactly (`OVERLAP`).
 *
 * Faults, one after the other on one cluster: SIGKILL of the holder's daemon; SIGSTOP of the
 * holder's daemon (its fencer stops the witness; after SIGCONT nothing restarts there); the holder
 * cut off from etcd; the etcd leader killed; a clean `move`; a node banned after its test fails.
 * After each: exactly one witness runs, on one node, no two ever overlapped, and (but after the
 * leader kill, which need not move the group) it runs on another node than before. TTL 3 s.
 * Each node serves --metrics: the holder's says it holds the group, at the epoch etcd names.
 */
import { mkdirSync, writeFileSync } from "node:fs"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { EtcdCluster } from "./etcd-harness.ts"
import { eventually, skipWithoutEtcd, startEtcdCluster } from "./etcd-harness.ts"
import type { Proxy } from "./failover-lab.ts"
import { startProxy, uptime, witnessLines, witnessScript, witnessesAlive } from "./failover-lab.ts"
import type { Lab, Node } from "./nodes.ts"
import { isinit, makeLab } from "./nodes.ts"
import { fetchText } from "../runtime/opsHarness.ts"

const cluster = "fo"
const names = ["n1", "n2", "n3"] as const
/** Bounded waits, generous for a loaded 2-core machine: a failover takes about TTL + W + start. */
const failoverWithinMs = 30_000

interface FailoverStatus {
  readonly failover: readonly {
    readonly group: string
    readonly holder: { readonly node: string; readonly epoch: number } | null
    readonly candidates: readonly { readonly node: string }[]
    readonly bans: readonly { readonly node: string; readonly reason: string }[]
    readonly last: { readonly reason: string } | null
  }[]
}

describe.skipIf(skipWithoutEtcd())("failover groups on three real nodes", () => {
  let etcd: EtcdCluster
  let lab: Lab
  let nodes: Map<string, Node>
  const proxies = new Map<string, Proxy[]>()
  let script: string
  let log: string

  const node = (name: string): Node => {
    const found = nodes.get(name)
    if (found === undefined) throw new Error(`no node ${name}`)
    return found
  }
  const etcdArgs = (): string[] => ["--etcd", etcd.urls, "--cluster", cluster]
  const status = async (): Promise<FailoverStatus> => {
    const run = await isinit([...etcdArgs(), "status", "--json"])
    if (run.code !== 0) throw new Error(`status failed: ${run.err}`)
    return JSON.parse(run.out) as FailoverStatus
  }
  const overlaps = (): readonly string[] => witnessLines(log).filter((l) => l.kind === "OVERLAP").map((l) => `${l.node} epoch ${l.epoch} at ${l.at}`)

  /** The one node a witness runs on, once exactly one does and etcd names it the holder. */
  const holder = async (not?: string): Promise<string> => {
    let on: readonly string[] = []
    await eventually(
      `exactly one witness${not === undefined ? "" : `, not on ${not}`}`,
      async () => {
        on = witnessesAlive(script)
        if (on.length !== 1 || on[0] === not) return false
        return (await status()).failover.find((f) => f.group === "web")?.holder?.node === on[0]
      },
      failoverWithinMs,
    )
    return on[0] ?? ""
  }

  /** After a fault: one holder elsewhere, and it stays the only one for a while. */
  const settled = async (before: string, moved: "moved" | "anywhere" = "moved"): Promise<string> => {
    const now = await holder(moved === "moved" ? before : undefined)
    await new Promise((resolve) => setTimeout(resolve, 1_500))
    expect(witnessesAlive(script)).toEqual([now])
    expect(overlaps()).toEqual([])
    return now
  }

  beforeAll(async () => {
    etcd = await startEtcdCluster()
    lab = makeLab(etcd.urls, cluster)
    script = lab.write("witness.sh", witnessScript)
    log = lab.path("witness.log")
    const tab = lab.write(
      "isinittab",
      [":::failover:web:on", ":::failover-ttl:3s", `web:witness:on,:respawn:/bin/sh ${script} ${log} ${lab.path("witness.lock")}`, "web:check:on,:test:test ! -e " + lab.path("fail.$ISINIT_NODE"), ""].join("\n"),
    )
    for (const name of names) proxies.set(name, await Promise.all(etcd.members.map((m) => startProxy(m.url))))
    nodes = new Map(names.map((name) => [name, lab.node(name, { tab, etcd: (proxies.get(name) ?? []).map((p) => p.url).join(","), args: ["--metrics", "127.0.0.1:0"] })]))
    const push = await isinit([...etcdArgs(), "config", "push", tab])
    expect(push.code, push.err).toBe(0)
    await Promise.all([...nodes.values()].map((n) => n.start()))
  })

  afterAll(async () => {
    const dump = process.env["ISINIT_TEST_DUMP"]
    if (dump !== undefined) {
      mkdirSync(dump, { recursive: true })
      for (const [name, n] of nodes ?? []) writeFileSync(`${dump}/${name}.log`, n.log())
      writeFileSync(`${dump}/witness.log`, witnessLines(log).map((l) => `${l.kind} ${l.node} ${l.epoch} ${l.at} ${l.pid}`).join("\n"))
    }
    await lab?.cleanup()
    for (const list of proxies.values()) for (const p of list) await p.close()
    await etcd?.destroy()
  })

  it("runs the group on exactly one node, with ISINIT_EPOCH the holder's epoch", async () => {
    const first = await holder()
    const s = (await status()).failover.find((f) => f.group === "web")
    expect(s?.candidates.map((c) => c.node).sort()).toEqual([...names])
    const start = witnessLines(log).find((l) => l.kind === "START")
    expect(start).toMatchObject({ node: first, epoch: s?.holder?.epoch })
    // It follows its election, not tells: the client refuses one, naming the command that moves it.
    const tell = await isinit([...etcdArgs(), "tell", "web", "on"])
    expect([tell.code, tell.err]).toEqual([1, expect.stringMatching(/web is a failover group: .*move it with isinit --etcd URLS move web NODE/) as string])
  })

  it("each node's /metrics says whether it holds the group, and the holder its epoch and the time left on its hold", async () => {
    const first = await holder()
    const epoch = (await status()).failover.find((f) => f.group === "web")?.holder?.epoch
    const scrape = async (name: string): Promise<string> => {
      const url = /serving \/metrics on (http:\/\/[^/ ]+)\//.exec(node(name).log())?.[1]
      if (url === undefined) throw new Error(`${name} does not serve /metrics:\n${node(name).log()}`)
      return (await fetchText(`${url}/metrics`)).body
    }
    for (const name of names) {
      const holds = name === first
      await eventually(`${name}'s metrics: ${holds ? `holding web at epoch ${epoch ?? "?"}` : "not holding web"}`, async () => {
        const text = await scrape(name)
        const remaining = Number(/^isinit_failover_hold_remaining_seconds\{group="web"\} (\S+)$/m.exec(text)?.[1] ?? Number.NaN)
        return holds
          ? /^isinit_failover_holding\{group="web"\} 1$/m.test(text) && new RegExp(`^isinit_failover_epoch\\{group="web"\\} ${epoch ?? "?"}$`, "m").test(text) && remaining > 0 && remaining <= 3
          : /^isinit_failover_holding\{group="web"\} 0$/m.test(text) && !/^isinit_failover_epoch\{/m.test(text)
      }, 30_000)
    }
  })

  it("SIGKILL of the holder's daemon: its fencer stops the witness, another node takes over, the restarted daemon runs nothing", async () => {
    const before = await holder()
    await node(before).kill("SIGKILL")
    const killedAt = uptime()
    const after = await settled(before)
    const started = witnessLines(log).filter((l) => l.kind === "START" && l.node === after).at(-1)
    console.info(`SIGKILL: ${before} -> ${after} in ${((started?.at ?? 0) - killedAt).toFixed(2)} s`)
    await node(before).start()
    await new Promise((resolve) => setTimeout(resolve, 4_000))
    expect(witnessesAlive(script)).toEqual([after])
  })

  it("the holder's daemon SIGKILLed and restarted at once, during the failover: the group runs on exactly one node, never two", async () => {
    const before = await holder()
    await node(before).kill("SIGKILL")
    // Restarted without waiting for the takeover. Starting a daemon here takes longer than the
    // renew deadline of this TTL (1.8 s), so the old fencer has stopped the witness by then; the
    // new daemon finds it gone and starts nothing without the lease.
    await node(before).start()
    const after = await settled(before, "anywhere")
    const alive = witnessesAlive(script)
    expect(alive).toEqual([after])
    expect(overlaps()).toEqual([])
  })

  it("SIGSTOP of the holder's daemon: its fencer stops the witness; another node takes over; after SIGCONT nothing restarts there", async () => {
    const before = await holder()
    const daemon = node(before).child()
    daemon.kill("SIGSTOP")
    try {
      // The fencer is not paused with the daemon: the witness goes by the renew deadline + grace.
      await eventually("the fencer stopped the stalled holder's witness", () => !witnessesAlive(script).includes(before), 10_000)
      expect(node(before).log()).toMatch(/fencer .*deadline of epoch \d+ passed without a renewal: SIGTERM to pid \d+/)
      await settled(before)
    } finally {
      daemon.kill("SIGCONT")
    }
    const after = witnessesAlive(script)[0] ?? ""
    // Resumed: its lease is gone (another node holds), its core finds its hold run out.
    await eventually(`${before} saw its failover lease gone`, () => /etcd no longer has the failover lease/.test(node(before).log()), 15_000)
    await new Promise((resolve) => setTimeout(resolve, 3_000))
    expect(witnessesAlive(script)).toEqual([after])
    expect(witnessLines(log).filter((l) => l.kind === "START").at(-1)?.node).toBe(after)
    expect(overlaps()).toEqual([])
  })

  it("the holder cut off from etcd stops the group by its deadline; another node takes over; nothing restarts when it is back", async () => {
    const before = await holder()
    for (const p of proxies.get(before) ?? []) p.sever()
    try {
      await settled(before)
      expect(node(before).log()).toMatch(/fenced .*failover lease not renewed by its deadline: stopping the group/)
    } finally {
      for (const p of proxies.get(before) ?? []) p.heal()
    }
    const after = witnessesAlive(script)[0] ?? ""
    await eventually(`${before} connected again`, async () => (await isinit(["-s", node(before).socket, "status", "--json"])).out.includes('"connected": true'), 30_000)
    expect(witnessesAlive(script)).toEqual([after])
    expect(overlaps()).toEqual([])
  })

  it("the etcd leader killed: leases are refreshed, exactly one node runs the group throughout the election", async () => {
    const before = await holder()
    const leader = await etcd.leader()
    if (leader === undefined) throw new Error("no etcd leader")
    await leader.stop()
    try {
      await eventually("a new etcd leader", async () => (await etcd.leader()) !== undefined, 20_000)
      const after = await settled(before, "anywhere")
      console.info(`etcd leader killed: the group ran on ${before}, now on ${after}`)
    } finally {
      await leader.start()
    }
  })

  it("a clean move: the holder stops, confirms, hands over; the target starts without the takeover delay", async () => {
    const before = await holder()
    const target = names.find((n) => n !== before) ?? "n1"
    const move = await isinit([...etcdArgs(), "move", "web", target, "--timeout", "30"])
    expect(move.code, move.err).toBe(0)
    expect(move.out).toMatch(new RegExp(`web moved to ${target} \\(epoch \\d+\\) in \\d+ ms`))
    expect(await settled(before)).toBe(target)
    const lines = witnessLines(log)
    const stop = lines.filter((l) => l.kind === "STOP" && l.node === before).at(-1)
    const start = lines.filter((l) => l.kind === "START" && l.node === target).at(-1)
    expect(stop).toBeDefined()
    expect((start?.at ?? 0) >= (stop?.at ?? Infinity)).toBe(true)
    const last = (await status()).failover.find((f) => f.group === "web")?.last?.reason
    expect(last).toMatch(new RegExp(`handed over by ${before} \\(moved to ${target} by an operator\\)`))
  })

  it("a node whose test fails is banned from the group for a while, and the group goes elsewhere", async () => {
    const before = await holder()
    const doomed = names.find((n) => n !== before) ?? "n1"
    lab.write(`fail.${doomed}`, "")
    const move = await isinit([...etcdArgs(), "move", "web", doomed, "--timeout", "30"])
    expect([move.code, move.err]).toEqual([1, expect.stringMatching(new RegExp(`${doomed} took web and gave it up again: failed: a test of web failed on ${doomed}`)) as string])
    await eventually(`${doomed} banned`, async () => (await status()).failover.find((f) => f.group === "web")?.bans.some((b) => b.node === doomed) === true, failoverWithinMs)
    const s = (await status()).failover.find((f) => f.group === "web")
    expect(s?.bans.find((b) => b.node === doomed)?.reason).toMatch(new RegExp(`a test of web failed on ${doomed}`))
    const after = await settled(doomed)
    expect(after).not.toBe(doomed)
    const text = await isinit([...etcdArgs(), "status", "web"])
    expect(text.out).toMatch(new RegExp(`web: ${doomed} banned for [\\d.]+ s more: a test of web failed on ${doomed}`))
    const refused = await isinit([...etcdArgs(), "move", "web", doomed])
    expect([refused.code, refused.err]).toEqual([1, expect.stringMatching(/refused: .* is banned from web/) as string])
  })

  it("a clean stop of the holder's daemon hands the group over at once (no takeover delay) and gives its leases back", async () => {
    const before = await holder()
    await node(before).kill("SIGTERM")
    expect(node(before).log()).toMatch(/failover web: handing over \(the daemon is stopping\)/)
    const after = await settled(before)
    const last = (await status()).failover.find((f) => f.group === "web")?.last?.reason
    expect(last).toMatch(new RegExp(`handed over by ${before} \\(the daemon is stopping\\)`))
    expect((await status()).failover.find((f) => f.group === "web")?.candidates.map((c) => c.node)).not.toContain(before)
    await node(before).start()
    await new Promise((resolve) => setTimeout(resolve, 2_000))
    expect(witnessesAlive(script)).toEqual([after])
  })

  it("a second daemon under a node name already in use does not campaign, and says so in its log and status", async () => {
    const current = await holder()
    const name = names.find((n) => n !== current) ?? "n1"
    const twin = lab.node(`${name}-twin`, { tab: lab.path("isinittab"), etcd: etcd.urls, args: ["--node", name] })
    await twin.start()
    await eventually("the twin refuses to campaign", () => new RegExp(`another isinitd \\(instance [0-9a-f]+\\) runs as node ${name}: this one does not campaign`).test(twin.log()), 20_000)
    const local = await isinit(["-s", twin.socket, "status", "--json"])
    expect((JSON.parse(local.out) as { readonly cluster: { readonly identity: string } }).cluster.identity).toBe("conflict")
    expect((await isinit(["-s", twin.socket, "status"])).out).toMatch(new RegExp(`ANOTHER isinitd runs as node ${name}`))
    await new Promise((resolve) => setTimeout(resolve, 2_000))
    expect(twin.log()).not.toMatch(/failover web: (leading|holding)/)
    expect(witnessesAlive(script)).toEqual([current])
    // Not SIGTERM: a clean stop would revoke the status it published under the shared name.
    await twin.kill("SIGKILL")
  })
})
