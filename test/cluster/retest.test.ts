/**
 * A failed test is not forever, in cluster mode too (issue 8 item 7, rule 17): a cluster-wide or
 * local re-tell of the level a node sits at in `fail` reruns its failed tests, and only those.
 * A real etcd, two real `isinitd --etcd` nodes, `isinit` as the client.
 */
import { writeFileSync } from "node:fs"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { EtcdServer } from "./etcd-harness.ts"
import { skipWithoutEtcd, startEtcd } from "./etcd-harness.ts"
import type { Lab, Node } from "./nodes.ts"
import { isinit, linesOf, makeLab } from "./nodes.ts"

const cluster = "retest"

describe.skipIf(skipWithoutEtcd())("a node in fail reruns its failed tests when its level is told again", () => {
  let etcd: EtcdServer
  let lab: Lab
  let nodes: readonly Node[]

  const etcdArgs = (): string[] => ["--etcd", etcd.url, "--cluster", cluster]
  const ranOn = (node: string, tag: string): number => linesOf(lab.path(`ran.${node}.${tag}`)).length
  const readyOn = (node: string): void => writeFileSync(lab.path(`ready.${node}`), "")

  beforeAll(async () => {
    etcd = await startEtcd()
    lab = makeLab(etcd.url, cluster)
    const ran = (tag: string): string => `echo x >> ${lab.dir}/ran.$ISINIT_NODE.${tag}`
    const tab = lab.write(
      "isinittab",
      `web:web-check:1:test:${ran("web-check")}; test -e ${lab.dir}/ready.$ISINIT_NODE\n` +
        `web:web-server:1:respawn:${ran("web-server")}; exec sleep 3600\n`,
    )
    nodes = [lab.node("n1", { tab }), lab.node("n2", { tab })]
    await Promise.all(nodes.map((n) => n.start()))
    const push = await isinit([...etcdArgs(), "config", "push", tab])
    expect(push.code, push.err).toBe(0)
  })

  afterAll(async () => {
    await lab?.cleanup()
    await etcd?.destroy()
  })

  it("fails on both nodes at first", async () => {
    const tell = await isinit([...etcdArgs(), "tell", "web", "1", "--wait", "--timeout", "60"])
    expect(tell.code).toBe(1)
    expect(tell.err).toMatch(/web=1 failed on: n1, n2/)
  })

  it("a cluster-wide re-tell reruns the failed test where it failed; n1, now ready, runs", async () => {
    readyOn("n1")
    const tell = await isinit([...etcdArgs(), "tell", "web", "1", "--wait", "--timeout", "60"])
    expect(tell.code).toBe(1)
    expect(tell.err).toMatch(/web=1 failed on: n2\b/)
    expect(tell.err).toMatch(/reached on: n1/)
    expect([ranOn("n1", "web-check"), ranOn("n2", "web-check")]).toEqual([2, 2])
  })

  it("a local re-tell on n2 reruns its failed test; the healthy server ran once everywhere", async () => {
    readyOn("n2")
    const local = await isinit(["-s", nodes[1]?.socket ?? "", "web", "1", "--wait", "--timeout", "60"])
    expect(local.code, local.err).toBe(0)
    expect(ranOn("n2", "web-check")).toBe(3)
    expect(ranOn("n1", "web-check")).toBe(2)
    expect([ranOn("n1", "web-server"), ranOn("n2", "web-server")]).toEqual([1, 1])
  })
})
