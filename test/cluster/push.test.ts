/**
 * `config push` of a file a rewrite left empty or cut in the middle: refused by the client with
 * the reason (and `--force` for a cut that was meant), and an empty config written to etcd by
 * anything else is refused by the nodes, which stop nothing. Real etcd, one real node.
 */
import { Etcd3 } from "etcd3"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { sha256Of } from "../../src/cluster/codecs.ts"
import { configKey } from "../../src/cluster/keys.ts"
import type { EtcdServer } from "./etcd-harness.ts"
import { eventually, skipWithoutEtcd, startEtcd } from "./etcd-harness.ts"
import type { Lab, Node } from "./nodes.ts"
import { isinit, makeLab } from "./nodes.ts"

const cluster = "cuts"
const four = ["g:a:1:respawn:sleep 301", "g:b:1:respawn:sleep 302", "g:c:1:respawn:sleep 303", "g:d:1:respawn:sleep 304"]

describe.skipIf(skipWithoutEtcd())("config push of an empty or cut isinittab", () => {
  let etcd: EtcdServer
  let lab: Lab
  let node: Node
  const args = (): string[] => ["--etcd", etcd.url, "--cluster", cluster]
  const pids = async (): Promise<Record<string, number | null>> => {
    const run = await isinit(["-s", node.socket, "status", "--json"])
    const report = JSON.parse(run.out) as { readonly groups: readonly { readonly entries: readonly { readonly tag: string; readonly state: string; readonly pid: number | null }[] }[] }
    return Object.fromEntries(report.groups.flatMap((g) => g.entries.map((e) => [e.tag, e.state === "running" ? e.pid : null])))
  }
  const shownSeq = async (): Promise<string> => (await isinit([...args(), "config", "show"])).err

  beforeAll(async () => {
    etcd = await startEtcd()
    lab = makeLab(etcd.url, cluster)
    const tab = lab.write("full.tab", four.map((l) => `${l}\n`).join(""))
    expect((await isinit([...args(), "config", "push", tab])).code).toBe(0)
    node = lab.node("n1", { tab })
    await node.start()
    const told = await isinit([...args(), "tell", "g", "1", "--wait", "--timeout", "30"])
    expect(told.code, told.err).toBe(0)
    // A cluster tell waits for the nodes that are live when it is written; on a loaded machine the
    // node may publish its presence only after that. Every test starts from the four running.
    await eventually("the four entries running on the node", async () => Object.values(await pids()).filter((pid) => pid !== null).length === 4, 30_000)
  }, 90_000)
  afterAll(async () => {
    await lab.cleanup()
    await etcd.destroy()
  })

  it("an empty file is not pushed: no entries, with the reason", async () => {
    const before = await pids()
    const push = await isinit([...args(), "config", "push", lab.write("empty.tab", "")])
    expect(push.code).toBe(1)
    expect(push.err).toMatch(/empty\.tab: error: no entries: /)
    expect(push.err).toMatch(/config not pushed; nothing was changed/)
    expect(await shownSeq()).toMatch(/config #1/)
    expect(await pids()).toEqual(before)
  })

  it("a file that drops most of the stored config's entries is not pushed unless --force", async () => {
    const before = await pids()
    const cut = lab.write("cut.tab", `${four[0]}\n`)
    const push = await isinit([...args(), "config", "push", cut])
    expect(push.code).toBe(1)
    expect(push.err).toMatch(/config not pushed; nothing was changed: it drops 3 of the 4 entries of config #1 \(b, c, d\), more than the 50% .*--force/)
    expect(await shownSeq()).toMatch(/config #1/)
    expect(await pids()).toEqual(before)
    const two = lab.write("two.tab", `${four[0]}\n${four[1]}\n`) // 2 of 4: not more than half
    expect((await isinit([...args(), "config", "push", two])).code).toBe(0)
    const forced = await isinit([...args(), "config", "push", cut, "--force"])
    expect(forced.code, forced.err).toBe(0)
    expect(forced.out).toMatch(/pushed config #3/)
    await eventually("only a runs on the node", async () => {
      const now = await pids()
      return now["a"] === before["a"] && ["b", "c", "d"].every((tag) => (now[tag] ?? null) === null)
    })
  })

  it("an empty config written to etcd by an old client is refused by the node, which stops nothing", async () => {
    const before = await pids()
    expect(before["a"]).toEqual(expect.any(Number))
    const raw = new Etcd3({ hosts: etcd.url })
    try {
      await raw.put(configKey(cluster)).value(JSON.stringify({ text: "", sha256: sha256Of(""), seq: 50, pushedAt: new Date().toISOString() }))
    } finally {
      raw.close()
    }
    await eventually("the node logs the refusal", () => /no entries/.test(node.log()))
    expect(await pids()).toEqual(before)
  })
})
