/**
 * Rolling tells end to end: a real etcd, four real `isinitd --etcd` nodes (n1..n4) and `isinit`
 * as the client (in this process, or as its own process where it must be killed). Level 2 holds
 * each node at `start` behind a gate file until the test opens it, so a batch's progress is the
 * test's to decide; level 3 has a test that fails on a node whose `bad` file exists. What the
 * client did is read back from etcd: a watch records every put and delete under the cluster's
 * prefix, with its revision. The steps build on each other (one cluster, one history).
 */
import type { ChildProcess } from "node:child_process"
import { spawn } from "node:child_process"
import { rmSync, writeFileSync } from "node:fs"
import { resolve } from "node:path"
import type { Etcd3, Watcher } from "etcd3"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { EtcdServer } from "./etcd-harness.ts"
import { clientEnv, eventually, rawEtcd, skipWithoutEtcd, startEtcd } from "./etcd-harness.ts"
import type { Lab, Node, Run } from "./nodes.ts"
import { isinit, linesOf, makeLab } from "./nodes.ts"

const cluster = "roll"
const prefix = `/isinit/${cluster}/`
const repoRoot = resolve(import.meta.dirname, "../..")

interface Change {
  readonly type: "put" | "delete"
  readonly key: string
  readonly revision: number
  readonly value: string
}

interface RolloutRecord {
  readonly phase: { readonly _tag: string; readonly reason?: string }
  readonly nodes: readonly { readonly node: string; readonly step: { readonly _tag: string } }[]
}

interface NodeValue {
  readonly desired: Record<string, { readonly revision: number } | undefined>
  readonly report: { readonly groups: readonly { readonly group: string; readonly state: string; readonly level: string }[] }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

describe.skipIf(skipWithoutEtcd())("rolling tells on four isinitd nodes", () => {
  let etcd: EtcdServer
  let lab: Lab
  let nodes: readonly Node[]
  let raw: Etcd3
  let watcher: Watcher
  const changes: Change[] = []

  const etcdArgs = (): string[] => ["--etcd", etcd.url, "--cluster", cluster]
  const node = (name: string): Node => nodes.find((n) => n.name === name) as Node
  const gate = (...names: string[]): void => names.forEach((n) => writeFileSync(lab.path(`gate.${n}`), ""))
  const closeGates = (): void => ["n1", "n2", "n3", "n4"].forEach((n) => rmSync(lab.path(`gate.${n}`), { force: true }))
  const starts = (n: string): number => linesOf(lab.path(`starts.${n}`)).length
  const gated = (n: string): number => linesOf(lab.path(`gated.${n}`)).length

  /** Each node's override of web, as etcd holds it now: node -> level. */
  const overrides = async (): Promise<Record<string, string>> => {
    const all = await raw.getAll().prefix(`${prefix}desired-node/`).strings()
    return Object.fromEntries(Object.entries(all).flatMap(([key, value]) => (key.endsWith("/web") ? [[key.split("/")[4] ?? "", (JSON.parse(value) as { level: string }).level]] : [])))
  }
  const record = async (): Promise<RolloutRecord> => JSON.parse((await raw.get(`${prefix}rollout/web`).string()) ?? "null") as RolloutRecord
  const clusterWide = async (): Promise<string | undefined> => {
    const value = await raw.get(`${prefix}desired/web`).string()
    return value === null ? undefined : (JSON.parse(value) as { level: string }).level
  }
  const localWeb = async (n: Node): Promise<{ readonly state: string; readonly level: string } | undefined> => {
    const run = await isinit(["-s", n.socket, "status", "--json"])
    return (JSON.parse(run.out) as { groups: { group: string; state: string; level: string }[] }).groups.find((g) => g.group === "web")
  }
  /** Every node publishes web run at `level`, its desired level taken: nothing lags. */
  const settled = async (level: string, names = ["n1", "n2", "n3", "n4"]): Promise<void> =>
    eventually(`web run ${level} on ${names.join(", ")}`, async () => {
      const s = JSON.parse((await isinit([...etcdArgs(), "status", "--json"])).out) as { nodes: { node: string; groups: Record<string, { state: string; level: string; lagging: boolean }> }[] }
      return names.every((n) => {
        const web = s.nodes.find((x) => x.node === n)?.groups["web"]
        return web?.state === "run" && web.level === level && !web.lagging
      })
    }, 30_000)
  const puts = (key: string, since: number): Change[] => changes.filter((c) => c.type === "put" && c.key === `${prefix}${key}` && c.revision > since)
  const revisionNow = async (): Promise<number> => Number((await raw.get(`${prefix}config`).exec()).header.revision)

  beforeAll(async () => {
    etcd = await startEtcd()
    lab = makeLab(etcd.url, cluster)
    raw = rawEtcd(etcd.url)
    watcher = await raw.watch().prefix(prefix).create()
    const keep = (type: Change["type"]) => (kv: { key: Buffer; mod_revision: string; value: Buffer }) =>
      void changes.push({ type, key: kv.key.toString(), revision: Number(kv.mod_revision), value: kv.value.toString() })
    watcher.on("put", keep("put"))
    watcher.on("delete", keep("delete"))
    const tab = lab.write(
      "isinittab",
      [
        `web:web-server:1,2,3:respawn:echo $$ >> ${lab.dir}/starts.$ISINIT_NODE; exec sleep 3600`,
        `web:web-gate:2:wait:echo $$ >> ${lab.dir}/gated.$ISINIT_NODE; while [ ! -e ${lab.dir}/gate.$ISINIT_NODE ]; do sleep 0.1; done`,
        `web:web-check:3:test:test ! -e ${lab.dir}/bad.$ISINIT_NODE`,
        "",
      ].join("\n"),
    )
    nodes = ["n1", "n2", "n3", "n4"].map((name) => lab.node(name, { tab, leaseTtlSeconds: 2 }))
    await Promise.all(nodes.map((n) => n.start()))
    expect((await isinit([...etcdArgs(), "config", "push", tab])).code).toBe(0)
    const first = await isinit([...etcdArgs(), "tell", "web", "1", "--wait", "--timeout", "60"])
    expect(first.code, first.err).toBe(0)
  })

  afterAll(async () => {
    await watcher?.cancel()
    raw?.close()
    await lab?.cleanup()
    await etcd?.destroy()
  })

  it("moves the nodes 2 at a time: batch 2 starts only after batch 1 reported run; a second client follows; no override is left", async () => {
    closeGates()
    const from = await revisionNow()
    const rolling = isinit([...etcdArgs(), "tell", "web", "2", "--rolling", "2", "--wait", "--timeout", "60"])
    await eventually("batch 1's overrides", async () => Object.keys(await overrides()).join() === "n1,n2")
    // Another client resuming meanwhile follows the one that drives.
    const follower = isinit([...etcdArgs(), "rollout", "resume", "web", "--wait"])
    await eventually("n1 and n2 held at the gate", async () => (await localWeb(node("n1")))?.state === "start" && (await localWeb(node("n2")))?.state === "start")
    await sleep(1_000)
    expect(await overrides()).toEqual({ n1: "2", n2: "2" })
    expect((await isinit([...etcdArgs(), "status"])).out).toMatch(/rollouts:\n.*\n {2}web +2 +2 +batch 1: moving n1, n2 +0\/4 done; 2 pending +\S+@/)
    gate("n1", "n2")
    await eventually("batch 2's overrides", async () => Object.keys(await overrides()).includes("n3"))
    gate("n3", "n4")
    const [done, followed] = await Promise.all([rolling, follower])
    expect(done.code, done.err).toBe(0)
    expect(done.out).toMatch(/^web=2 rolled out: reached \(run\) on n1, n2, n3, n4; now set cluster-wide$/m)
    expect(done.err).toMatch(/batch 1: web=2 on n1, n2 \(override, revision \d+\)\n(isinit: web=2 reached \(run\) on (n1|n2|n1, n2)\n)+isinit: batch 2: web=2 on n3, n4 /)
    expect(followed.code, followed.err).toBe(0)
    expect(followed.err).toMatch(/is driven by \S+@\S+ \(since [^)]+\); following it/)

    // From etcd's own record: batch 2's overrides came after n1 and n2 published web run 2 with batch 1's revision taken.
    const [n3] = puts("desired-node/n3/web", from)
    const batch1 = Math.max(...["n1", "n2"].map((n) => puts(`desired-node/${n}/web`, from)[0]?.revision ?? Infinity))
    expect(n3).toBeDefined()
    for (const n of ["n1", "n2"]) {
      const ran = puts(`nodes/${n}`, batch1).filter((c) => c.revision < (n3?.revision ?? 0)).map((c) => JSON.parse(c.value) as NodeValue)
      expect(ran.some((v) => v.report.groups.some((g) => g.group === "web" && g.state === "run" && g.level === "2") && (v.desired["web"]?.revision ?? 0) >= batch1), n).toBe(true)
    }
    // Each node's override was written once: the two clients never both took a step.
    for (const n of ["n1", "n2", "n3", "n4"]) expect(puts(`desired-node/${n}/web`, from).length, n).toBe(1)
    expect(await overrides()).toEqual({})
    expect(await clusterWide()).toBe("2")
    expect((await record()).phase._tag).toBe("Done")
    await settled("2")
    // The hand-over from overrides to the cluster-wide level re-entered no level: nothing started again.
    await sleep(500)
    expect(["n1", "n2", "n3", "n4"].map(starts)).toEqual([1, 1, 1, 1])
    expect(["n1", "n2", "n3", "n4"].map(gated)).toEqual([1, 1, 1, 1])
  })

  it("stops at a failed batch, names the nodes that moved, leaves the rest untouched; resume retries the failed node and goes on", async () => {
    writeFileSync(lab.path("bad.n2"), "")
    const from = await revisionNow()
    const failed = await isinit([...etcdArgs(), "tell", "web", "3", "--rolling", "2", "--wait", "--timeout", "60"])
    expect(failed.code).toBe(1)
    expect(failed.err).toMatch(/web=3 FAILED on n2: web=3 failed there \(fail\)/)
    expect(failed.err).toMatch(/the rollout of web=3 stopped: 1 failed node \(--max-failures 1\): n2/)
    expect(failed.err).toMatch(/moved \(their overrides stay\): n1, n2; of them failed: n2\n/)
    expect(failed.err).toMatch(/untouched: n3, n4\n/)
    expect(await overrides()).toEqual({ n1: "3", n2: "3" })
    expect(await localWeb(node("n3"))).toMatchObject({ state: "run", level: "2" })
    expect(await localWeb(node("n4"))).toMatchObject({ state: "run", level: "2" })
    expect((await record()).phase).toMatchObject({ _tag: "Stopped" })
    expect((await isinit([...etcdArgs(), "status"])).out).toMatch(/web +3 +2 +STOPPED: 1 failed node .* +1\/4 done; failed n2; 2 pending +nobody: rollout resume web/)
    // A new rolling tell is refused while this one is stopped.
    const again = await isinit([...etcdArgs(), "tell", "web", "1", "--rolling", "1"])
    expect([again.code, again.err]).toEqual([1, expect.stringMatching(/a rollout of web=3 .* is stopped .*rollout resume web continues it/) as string])

    rmSync(lab.path("bad.n2"))
    const resumed = await isinit([...etcdArgs(), "rollout", "resume", "web", "--wait"])
    expect(resumed.code, resumed.err).toBe(0)
    expect(resumed.err).toMatch(/resuming the rollout of web=3: trying n2, n3, n4/)
    // n1 got there before the stop: never touched again; n2 was tried once more.
    expect(puts("desired-node/n1/web", from).length).toBe(1)
    expect(puts("desired-node/n2/web", from).length).toBe(2)
    expect(await overrides()).toEqual({})
    expect(await clusterWide()).toBe("3")
    await settled("3")
  })

  it("survives the client's death: a client killed mid-rollout leaves it in etcd, and rollout resume finishes it", async () => {
    expect((await isinit([...etcdArgs(), "tell", "web", "1", "--wait", "--timeout", "60"])).code).toBe(0)
    closeGates()
    const client: ChildProcess = spawn(process.execPath, ["--import", "tsx", "src/cli/isinit.ts", ...etcdArgs(), "tell", "web", "2", "--rolling", "1"], {
      cwd: repoRoot,
      env: { ...process.env, ...clientEnv() },
      stdio: "ignore",
    })
    try {
      await eventually("n1's override", async () => Object.keys(await overrides()).join() === "n1", 30_000)
    } finally {
      client.kill("SIGKILL")
    }
    await new Promise((r) => (client.exitCode !== null || client.signalCode !== null ? r(undefined) : client.once("exit", r)))
    const left = await record()
    expect(left.phase._tag).toBe("Running")
    expect(left.nodes.map((n) => `${n.node}:${n.step._tag}`)).toEqual(["n1:Moving", "n2:Pending", "n3:Pending", "n4:Pending"])
    // Once the dead client's lease is gone, status says nobody drives it.
    await eventually("no driver", async () => /web +2 +1 +batch 1: moving n1 .* +nobody: rollout resume web/.test((await isinit([...etcdArgs(), "status"])).out), 20_000)
    gate("n1", "n2", "n3", "n4")
    const resumed = await isinit([...etcdArgs(), "rollout", "resume", "web", "--wait"])
    expect(resumed.code, resumed.err).toBe(0)
    expect(resumed.out).toMatch(/web=2 rolled out: reached \(run\) on n1, n2, n3, n4/)
    expect(await overrides()).toEqual({})
    await settled("2")
  })

  it("rollout abort ends a driven rollout: it writes nothing more; a new rolling tell takes its overrides over", async () => {
    expect((await isinit([...etcdArgs(), "tell", "web", "1", "--wait", "--timeout", "60"])).code).toBe(0)
    closeGates()
    const rolling = isinit([...etcdArgs(), "tell", "web", "2", "--rolling", "1"])
    await eventually("n1's override", async () => Object.keys(await overrides()).join() === "n1")
    const aborted = await isinit([...etcdArgs(), "rollout", "abort", "web"])
    expect(aborted.code, aborted.err).toBe(0)
    expect(aborted.err).toMatch(/the rollout of web=2 is aborted: it writes nothing more\nisinit: moved \(their overrides stay\): n1\nisinit: untouched: n2, n3, n4\n/)
    const driver: Run = await rolling
    expect(driver.code).toBe(1)
    expect(driver.err).toMatch(/the rollout of web=2 was aborted by \S+ at /)
    const from = await revisionNow()
    gate("n1", "n2", "n3", "n4")
    await settled("2", ["n1"])
    await sleep(1_000)
    expect(await overrides()).toEqual({ n1: "2" })
    expect(changes.filter((c) => c.revision > from && (c.key.includes("/desired") || c.key.endsWith("/rollout/web")))).toEqual([])
    expect((await isinit([...etcdArgs(), "rollout", "resume", "web"])).err).toMatch(/was aborted by .*: start a new rolling tell/)

    const back = await isinit([...etcdArgs(), "tell", "web", "1", "--rolling", "4", "--wait", "--timeout", "60"])
    expect(back.code, back.err).toBe(0)
    expect(back.err).not.toMatch(/keeps its own override/)
    expect(await overrides()).toEqual({})
    await settled("1")
  })

  it("skips and reports a node that is not live when its turn comes; it takes the level from the cluster-wide key when it is back", async () => {
    await node("n4").kill("SIGTERM")
    await eventually("n4 gone", async () => !(await isinit([...etcdArgs(), "status"])).out.includes("\nn4 "))
    const run = await isinit([...etcdArgs(), "tell", "web", "2", "--rolling", "2", "--order", "n4", "--wait", "--timeout", "60"])
    expect(run.code).toBe(1)
    expect(run.err).toMatch(/skipped n4: not live when its turn came/)
    expect(run.err).toMatch(/skipped \(not live when their turn came\): n4; they take web=2 from the cluster-wide level when they come back/)
    expect(run.err).toMatch(/batch 1: web=2 on n1, n2 /)
    expect(run.out).toMatch(/web=2 rolled out: reached \(run\) on n1, n2, n3;/)
    expect(await overrides()).toEqual({})
    expect(await clusterWide()).toBe("2")
    await node("n4").start()
    await settled("2")
  })

  it("refuses what cannot be a rolling tell, before touching etcd", async () => {
    const cases: readonly (readonly [readonly string[], RegExp])[] = [
      [["tell", "web", "2", "--rolling", "0"], /--rolling takes a whole number from 1 to 100, not "0"/],
      [["tell", "web", "2", "--rolling", "101"], /--rolling takes a whole number from 1 to 100/],
      [["tell", "web", "2", "--rolling", "2", "--node", "n1"], /--node does not apply/],
      [["tell", "web", "2", "--pause", "3"], /--pause applies only with --rolling N/],
      [["tell", "web", "2", "--rolling", "2", "--order", "a/b"], /--order: node contains a slash/],
      [["rollout", "pause", "web"], /rollout takes resume GROUP or abort GROUP, not "pause"/],
      [["status", "--rolling", "2"], /--rolling does not apply to status/],
    ]
    for (const [args, message] of cases) {
      const run = await isinit([...etcdArgs(), ...args])
      expect([args.join(" "), run.code, run.err]).toEqual([args.join(" "), 2, expect.stringMatching(message) as string])
    }
    const unknown = await isinit([...etcdArgs(), "tell", "nosuch", "2", "--rolling", "2"])
    expect([unknown.code, unknown.err]).toEqual([1, expect.stringMatching(/unknown group "nosuch"/) as string])
    const none = await isinit([...etcdArgs(), "rollout", "abort", "db"])
    expect([none.code, none.err]).toEqual([1, expect.stringMatching(/no rollout of group db/) as string])
  })
})
