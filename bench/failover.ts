/**
 * Failover time (issue 10): from the holder's death until the failover group runs on another
 * node, on a local etcd with three real `isinitd --etcd` nodes and the tests' witness as the
 * group's only entry (test/cluster/failover-lab.ts: it logs its node, epoch and start/stop on the
 * boot clock, and an exclusive lock records any two witnesses alive at once as `OVERLAP`).
 *
 * Two deaths: SIGKILL of the holder's daemon (its fencer stops the witness at the renew deadline),
 * and SIGKILL of every process of the holder's node at once (daemon, fencer, witness: a host that
 * dies). Each with TTL 10 s (the default) and 3 s. The killed node is restarted after each failover,
 * so the next holder has two others to fail over to. Also measures the fencer's memory (RSS) from
 * the build (`dist/`), next to the daemon's.
 *
 * Run: `npm run bench:failover [-- ROUNDS [TTL...]]` (default 20 rounds per death and TTL, TTLs
 * 10 and 3). Prints Markdown tables.
 */
import { spawn } from "node:child_process"
import { readdirSync, readFileSync } from "node:fs"
import type { Socket } from "node:net"
import { join, resolve } from "node:path"
import { eventually, startEtcd } from "../test/cluster/etcd-harness.ts"
import { uptime, witnessLines, witnessScript, witnessesAlive } from "../test/cluster/failover-lab.ts"
import type { Lab, Node } from "../test/cluster/nodes.ts"
import { isinit, makeLab } from "../test/cluster/nodes.ts"

const rounds = Number(process.argv[2] ?? 20)
const ttls = process.argv.length > 3 ? process.argv.slice(3).map(Number) : [10, 3]
const repoRoot = resolve(import.meta.dirname, "..")

type Death = "daemon" | "node"

interface Sample {
  readonly death: Death
  /** Seconds from the kill until the witness started on another node. */
  readonly failover: number
  /** Seconds from the old witness's end (its STOP line, or the kill of the whole node) to the new start; negative is an overlap. */
  readonly gap: number
}

const quantile = (xs: readonly number[], q: number): number => {
  const sorted = [...xs].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * q))] ?? Number.NaN
}

const sleep = (ms: number): Promise<void> => new Promise((done) => setTimeout(done, ms))

/** Every live process of node `name` (daemon, fencer, children): its environment names it. */
const processesOf = (name: string, marker: string): number[] =>
  readdirSync("/proc").flatMap((pid) => {
    if (!/^\d+$/.test(pid)) return []
    try {
      const environ = `\0${readFileSync(`/proc/${pid}/environ`, "latin1")}`
      return environ.includes(`\0ISINIT_NODE=${name}\0`) && environ.includes(marker) ? [Number(pid)] : []
    } catch {
      return []
    }
  })

interface Cluster {
  readonly lab: Lab
  readonly nodes: ReadonlyMap<string, Node>
  readonly log: string
  readonly script: string
  readonly etcdArgs: readonly string[]
}

/** The one node the witness runs on, once etcd names it the holder too. */
const holderOf = async (c: Cluster, not?: string): Promise<string> => {
  let on: readonly string[] = []
  await eventually(
    "one holder",
    async () => {
      on = witnessesAlive(c.script)
      if (on.length !== 1 || on[0] === not) return false
      const run = await isinit([...c.etcdArgs, "status", "--json"])
      const holder = (JSON.parse(run.out) as { failover: { group: string; holder: { node: string } | null }[] }).failover.find((f) => f.group === "web")?.holder?.node
      return holder === on[0]
    },
    120_000,
  )
  return on[0] ?? ""
}

const kill = (c: Cluster, name: string, death: Death): void => {
  const daemon = c.nodes.get(name)?.child()
  // The whole node at once: the daemon, and what it started (its environment names the node; the
  // daemon's own /proc environ is the one it was started with, without it).
  const marker = /ISINIT_CLUSTER_TEST_MARK=[^\0]*/.exec(readFileSync(`/proc/${daemon?.pid ?? 0}/environ`, "latin1"))?.[0] ?? "?"
  const others = death === "node" ? processesOf(name, marker) : []
  daemon?.kill("SIGKILL")
  for (const pid of others) {
    try {
      process.kill(pid, "SIGKILL")
    } catch {
      // gone
    }
  }
}

/** One failover: kill the holder, time the witness's start elsewhere, restart the dead node. */
const failoverOnce = async (c: Cluster, death: Death): Promise<Sample> => {
  const before = await holderOf(c)
  const startsBefore = witnessLines(c.log).length
  const killedAt = uptime()
  kill(c, before, death)
  let start: { readonly at: number; readonly node: string } | undefined
  await eventually("the witness elsewhere", () => {
    start = witnessLines(c.log).slice(startsBefore).find((l) => l.kind === "START" && l.node !== before)
    return start !== undefined
  }, 120_000)
  const stop = witnessLines(c.log).slice(startsBefore).find((l) => l.kind === "STOP" && l.node === before)
  const ended = death === "node" ? killedAt : (stop?.at ?? killedAt)
  const node = c.nodes.get(before)
  await eventually(`${before} gone`, () => node?.running() !== true, 30_000)
  await node?.start()
  return { death, failover: (start?.at ?? Number.NaN) - killedAt, gap: (start?.at ?? Number.NaN) - ended }
}

const startCluster = async (etcdUrl: string, ttl: number): Promise<Cluster> => {
  const cluster = `fo${ttl}`
  const lab = makeLab(etcdUrl, cluster)
  const script = lab.write("witness.sh", witnessScript)
  const log = lab.path("witness.log")
  const tab = lab.write("isinittab", [":::failover:web:on", `:::failover-ttl:${ttl}s`, `web:witness:on,:respawn:/bin/sh ${script} ${log} ${lab.path("witness.lock")}`, ""].join("\n"))
  const etcdArgs = ["--etcd", etcdUrl, "--cluster", cluster]
  const push = await isinit([...etcdArgs, "config", "push", tab])
  if (push.code !== 0) throw new Error(push.err)
  const nodes = new Map(["n1", "n2", "n3"].map((name) => [name, lab.node(name, { tab, leaseTtlSeconds: 5 })]))
  await Promise.all([...nodes.values()].map((n) => n.start()))
  return { lab, nodes, log, script, etcdArgs }
}

const measureTtl = async (etcdUrl: string, ttl: number): Promise<{ readonly samples: readonly Sample[]; readonly overlaps: number }> => {
  const c = await startCluster(etcdUrl, ttl)
  try {
    const samples: Sample[] = []
    for (let i = 0; i < 2 * rounds; i++) {
      const sample = await failoverOnce(c, i % 2 === 0 ? "daemon" : "node")
      samples.push(sample)
      process.stderr.write(`TTL ${ttl} s, ${sample.death} killed: ${sample.failover.toFixed(2)} s (gap ${sample.gap.toFixed(2)} s)\n`)
    }
    return { samples, overlaps: witnessLines(c.log).filter((l) => l.kind === "OVERLAP").length }
  } catch (error) {
    // What went wrong, for whoever reads the failure: every node's log and the witness's.
    for (const [name, node] of c.nodes) process.stderr.write(`--- ${name}\n${node.log().split("\n").slice(-40).join("\n")}\n`)
    process.stderr.write(`--- witness\n${readFileSync(c.log, "utf8")}\n`)
    throw error
  } finally {
    await c.lab.cleanup()
  }
}

interface Memory {
  readonly rssKb: number
  /** Its share of pages it shares (the node binary with the daemon): what it adds, shared fairly. */
  readonly pssKb: number
  /** Pages only it uses. */
  readonly privateKb: number
}

/** A process's memory, from /proc/PID/smaps_rollup. */
const memoryOf = (pid: number): Memory => {
  const text = readFileSync(`/proc/${pid}/smaps_rollup`, "latin1")
  const kb = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+)`, "m").exec(text)?.[1] ?? Number.NaN)
  return { rssKb: kb("Rss"), pssKb: kb("Pss"), privateKb: kb("Private_Clean") + kb("Private_Dirty") }
}

/** The built fencer, fed a hello and one group, after it settled (this process shares the node binary's pages with it, as its daemon would). */
const fencerMemory = async (): Promise<Memory> => {
  const child = spawn(process.execPath, [join(repoRoot, "dist/cli/isinitd.js"), "--fencer"], { stdio: ["ignore", "ignore", "ignore", "pipe"] })
  const channel = child.stdio[3] as Socket
  channel.write(`${JSON.stringify({ op: "hello", daemon: process.pid, instance: "bench", clock: "monotonic" })}\n`)
  channel.write(`${JSON.stringify({ op: "arm", group: "web", epoch: 1, termAt: 1e15, killAt: 1e15 })}\n`)
  await sleep(2_000)
  const memory = memoryOf(child.pid ?? 0)
  child.kill("SIGKILL")
  return memory
}

const table = (ttl: number, samples: readonly Sample[], overlaps: number): string[] =>
  (["daemon", "node"] as const).map((death) => {
    const xs = samples.filter((s) => s.death === death)
    const times = xs.map((s) => s.failover)
    const what = death === "daemon" ? "SIGKILL of the daemon" : "SIGKILL of the whole node"
    return `| ${ttl} s | ${what} | ${xs.length} | ${quantile(times, 0.5).toFixed(2)} | ${quantile(times, 0.9).toFixed(2)} | ${Math.max(...times).toFixed(2)} | ${Math.min(...xs.map((s) => s.gap)).toFixed(2)} | ${overlaps} |`
  })

const main = async (): Promise<void> => {
  const etcd = await startEtcd({ tls: undefined })
  const lines: string[] = []
  try {
    for (const ttl of ttls) {
      const { samples, overlaps } = await measureTtl(etcd.url, ttl)
      lines.push(...table(ttl, samples, overlaps))
    }
  } finally {
    await etcd.destroy()
  }
  const fencer = await fencerMemory()
  process.stdout.write(
    [
      "| TTL | death | failovers | median s | p90 s | max s | smallest gap s | overlaps |",
      "|---:|---|---:|---:|---:|---:|---:|---:|",
      ...lines,
      "",
      `fencer (dist, one group armed): RSS ${(fencer.rssKb / 1024).toFixed(1)} MB, PSS ${(fencer.pssKb / 1024).toFixed(1)} MB, private ${(fencer.privateKb / 1024).toFixed(1)} MB`,
      "",
    ].join("\n"),
  )
}

await main()
process.exit(0)
