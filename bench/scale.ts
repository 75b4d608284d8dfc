/**
 * Cluster mode at scale: N real `isinitd --etcd` nodes (the built dist/, 100 by default) on this
 * machine against one local etcd, each with its own socket, status file and state, started in
 * waves of 10. Measures, with the real `isinit` client as an operator runs it:
 *
 * - a cluster-wide `tell --wait` until every node reports run (median of 5 after a warm-up),
 * - `isinit --etcd status` (median of 5), and the size of what it reads,
 * - a `tell --rolling 10 --wait` over every node,
 * - etcd's CPU and what the nodes make etcd do, idle and during each of the above, from etcd's own
 *   /metrics: puts, deletes, transactions, range reads, raft proposals committed, watch events
 *   sent, lease keep-alives received; and the daemons' CPU and memory (from /proc).
 *
 * Run: `npm run bench:scale [-- NODES]` (builds first). Needs an etcd binary (scripts/install-etcd.sh)
 * and about 75 MB of memory per node. Prints a Markdown table on stdout and the raw figures as
 * JSON on stderr. Figures from docs/cluster.md, "Scale".
 */
import type { ChildProcess } from "node:child_process"
import { spawn } from "node:child_process"
import { randomUUID } from "node:crypto"
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join, resolve } from "node:path"
import { performance } from "node:perf_hooks"
import { Etcd3 } from "etcd3"
import { startEtcd } from "../test/cluster/etcd-harness.ts"
import { markedPids } from "../test/runtime/daemonHarness.ts"

const count = Number(process.argv[2] ?? 100)
const cluster = "scale"
const repoRoot = resolve(import.meta.dirname, "..")
const isinitd = join(repoRoot, "dist/cli/isinitd.js")
const isinit = join(repoRoot, "dist/cli/isinit.js")
const marker = `ISINIT_SCALE_MARK=${randomUUID()}`
const [markKey = "", markValue = ""] = marker.split("=")

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))
const median = (xs: readonly number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN

// ---------------------------------------------------------------------------------------------
// What etcd and the daemons did

const counters = {
  put: "etcd_mvcc_put_total",
  delete: "etcd_mvcc_delete_total",
  txn: "etcd_mvcc_txn_total",
  range: "etcd_mvcc_range_total",
  proposals: "etcd_server_proposals_committed_total",
  watchEvents: "etcd_debugging_mvcc_events_total",
  keepAlives: 'grpc_server_msg_received_total{grpc_method="LeaseKeepAlive",grpc_service="etcdserverpb.Lease",grpc_type="bidi_stream"}',
  sentBytes: "etcd_network_client_grpc_sent_bytes_total",
  cpuSeconds: "process_cpu_seconds_total",
  fsyncSeconds: "etcd_disk_wal_fsync_duration_seconds_sum",
  fsyncs: "etcd_disk_wal_fsync_duration_seconds_count",
} as const
type Counters = Record<keyof typeof counters, number>

const etcdMetrics = async (url: string): Promise<Counters> => {
  const text = await (await fetch(`${url}/metrics`)).text()
  const values = new Map(text.split("\n").filter((l) => !l.startsWith("#")).map((l) => [l.slice(0, l.lastIndexOf(" ")), Number(l.slice(l.lastIndexOf(" ") + 1))] as const))
  return Object.fromEntries(Object.entries(counters).map(([k, name]) => [k, values.get(name) ?? Number.NaN])) as Counters
}

const minus = (a: Counters, b: Counters): Counters => Object.fromEntries(Object.keys(counters).map((k) => [k, a[k as keyof Counters] - b[k as keyof Counters]])) as Counters

/** CPU seconds (user + system) of these processes, from /proc. */
const cpuOf = (pids: readonly number[]): number =>
  pids.reduce((sum, pid) => {
    try {
      const fields = readFileSync(`/proc/${pid}/stat`, "latin1").split(") ")[1]?.split(" ") ?? []
      return sum + (Number(fields[11]) + Number(fields[12])) / 100
    } catch {
      return sum
    }
  }, 0)

const rssMbOf = (pid: number): number => {
  const line = readFileSync(`/proc/${pid}/status`, "latin1").split("\n").find((l) => l.startsWith("VmRSS:"))
  return Number(line?.split(/\s+/)[1] ?? Number.NaN) / 1024
}

/** Runs `what`, and says what etcd and the daemons did meanwhile. */
const during = async <A>(url: string, daemons: readonly number[], what: () => Promise<A>) => {
  const [m0, c0, t0] = [await etcdMetrics(url), cpuOf(daemons), performance.now()]
  const result = await what()
  const [m1, c1, t1] = [await etcdMetrics(url), cpuOf(daemons), performance.now()]
  return { result, seconds: (t1 - t0) / 1000, etcd: minus(m1, m0), daemonCpu: c1 - c0 }
}

// ---------------------------------------------------------------------------------------------
// Nodes and the client

interface Started {
  readonly child: ChildProcess
  readonly pid: number
}

const startNode = (root: string, url: string, tab: string, name: string): Promise<Started> => {
  const home = join(root, name)
  mkdirSync(home, { recursive: true })
  const args = [isinitd, "--etcd", url, "--cluster", cluster, "--node", name, "--lease-ttl", "10", "-c", tab, "-s", join(home, "init.s"), "--initstat", join(home, "initstat")]
  const child = spawn(process.execPath, args, { env: { ...process.env, [markKey]: markValue }, stdio: ["ignore", "ignore", "pipe"] })
  let output = ""
  return new Promise((resolveStart, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} not ready within 120 s:\n${output}`)), 120_000)
    child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
      output = (output + chunk).slice(-4_000)
      if (/ ready /.test(output)) {
        clearTimeout(timer)
        resolveStart({ child, pid: child.pid ?? 0 })
      }
    })
    child.once("exit", (code) => reject(new Error(`${name} exited (${code}) before it was ready:\n${output}`)))
  })
}

/** `isinit ARGS` as a separate process, as an operator runs it; its wall time in ms. */
const client = (url: string, args: readonly string[]): Promise<{ readonly code: number; readonly ms: number; readonly out: string; readonly err: string }> =>
  new Promise((resolveRun) => {
    const t0 = performance.now()
    const child = spawn(process.execPath, [isinit, "--etcd", url, "--cluster", cluster, ...args], { stdio: ["ignore", "pipe", "pipe"] })
    let [out, err] = ["", ""]
    child.stdout.setEncoding("utf8").on("data", (c: string) => (out += c))
    child.stderr.setEncoding("utf8").on("data", (c: string) => (err += c))
    child.once("exit", (code) => resolveRun({ code: code ?? 1, ms: performance.now() - t0, out, err }))
  })

const must = async (url: string, args: readonly string[]) => {
  const run = await client(url, args)
  if (run.code !== 0) throw new Error(`isinit ${args.join(" ")} failed (${run.code}):\n${run.err}`)
  return run
}

const liveCount = async (raw: Etcd3): Promise<number> => (await raw.getAll().prefix(`/isinit/${cluster}/nodes/`).keys()).length

const cleanup = async (nodes: readonly Started[], root: string): Promise<void> => {
  for (const n of nodes) n.child.kill("SIGKILL")
  for (let i = 0; i < 50; i++) {
    const left = markedPids(marker)
    if (left.length === 0) break
    for (const pid of left) for (const target of [-pid, pid]) try { process.kill(target, "SIGKILL") } catch { /* gone */ }
    await sleep(200)
  }
  rmSync(root, { recursive: true, force: true })
}

// ---------------------------------------------------------------------------------------------
// The measurements

const startAll = async (root: string, url: string, tab: string, raw: Etcd3): Promise<{ readonly nodes: Started[]; readonly seconds: number }> => {
  const nodes: Started[] = []
  const t0 = performance.now()
  const names = Array.from({ length: count }, (_, i) => `n${String(i + 1).padStart(3, "0")}`)
  // In waves: a hundred Node processes starting at once on two cores take longer than ten at a time.
  for (let i = 0; i < names.length; i += 10) {
    nodes.push(...(await Promise.all(names.slice(i, i + 10).map((name) => startNode(root, url, tab, name)))))
    process.stderr.write(`${nodes.length} nodes up\n`)
  }
  for (let i = 0; i < 600 && (await liveCount(raw)) < count; i++) await sleep(200)
  return { nodes, seconds: (performance.now() - t0) / 1000 }
}

const rates = (d: { readonly seconds: number; readonly etcd: Counters; readonly daemonCpu: number }) => ({
  seconds: +d.seconds.toFixed(2),
  putsPerSecond: +(d.etcd.put / d.seconds).toFixed(1),
  txnsPerSecond: +(d.etcd.txn / d.seconds).toFixed(1),
  proposalsPerSecond: +(d.etcd.proposals / d.seconds).toFixed(1),
  rangesPerSecond: +(d.etcd.range / d.seconds).toFixed(1),
  watchEventsPerSecond: +(d.etcd.watchEvents / d.seconds).toFixed(1),
  keepAlivesPerSecond: +(d.etcd.keepAlives / d.seconds).toFixed(1),
  etcdCpuPercent: +((100 * d.etcd.cpuSeconds) / d.seconds).toFixed(1),
  etcdSentMBPerSecond: +(d.etcd.sentBytes / d.seconds / 1e6).toFixed(2),
  fsyncsPerSecond: +(d.etcd.fsyncs / d.seconds).toFixed(1),
  fsyncMs: +((1000 * d.etcd.fsyncSeconds) / Math.max(1, d.etcd.fsyncs)).toFixed(1),
  daemonsCpuPercent: +((100 * d.daemonCpu) / d.seconds).toFixed(1),
  totals: d.etcd,
})

const measure = async (url: string, raw: Etcd3, nodes: readonly Started[]) => {
  const pids = nodes.map((n) => n.pid)
  await sleep(15_000) // let the start-up settle
  const idle = rates(await during(url, pids, () => sleep(30_000)))
  const tells: ReturnType<typeof rates>[] = []
  for (let round = 0; round < 6; round++) {
    const level = round % 2 === 0 ? "2" : "1"
    const d = await during(url, pids, () => must(url, ["tell", "web", level, "--wait", "--timeout", "300"]))
    if (round > 0) tells.push(rates(d))
    await sleep(1_000)
  }
  const statuses: number[] = []
  const floor: number[] = []
  for (let round = 0; round < 6; round++) {
    const run = await must(url, ["status"])
    // The same command on a cluster without nodes: the client's own start-up and connection.
    const empty = await client(url, ["--cluster", "empty", "status"])
    if (round > 0) statuses.push(run.ms)
    if (round > 0) floor.push(empty.ms)
  }
  const statusBytes = (await raw.getAll().prefix(`/isinit/${cluster}/nodes/`).buffers()) as Record<string, Buffer>
  const sizes = Object.values(statusBytes).map((b) => b.length)
  const rolling = rates(await during(url, pids, () => must(url, ["tell", "web", "1", "--rolling", "10", "--wait", "--timeout", "300"])))
  const rss = pids.map(rssMbOf)
  return { idle, tells, statuses, floor, statusValueBytes: { median: median(sizes), total: sizes.reduce((a, b) => a + b, 0) }, rolling, rssMb: { median: median(rss), total: rss.reduce((a, b) => a + b, 0) } }
}

const report = (r: Awaited<ReturnType<typeof measure>>, startSeconds: number): string => {
  const tellMs = median(r.tells.map((t) => t.seconds * 1000))
  const perTell = (k: keyof Counters): number => median(r.tells.map((t) => t.totals[k]))
  const row = (what: string, d: ReturnType<typeof rates>): string =>
    `| ${what} | ${d.seconds} | ${d.putsPerSecond} | ${d.txnsPerSecond} | ${d.proposalsPerSecond} | ${d.fsyncsPerSecond} (${d.fsyncMs} ms) | ${d.rangesPerSecond} | ${d.watchEventsPerSecond} | ${d.keepAlivesPerSecond} | ${d.etcdCpuPercent} | ${d.etcdSentMBPerSecond} | ${d.daemonsCpuPercent} |`
  const median5 = [...r.tells].sort((a, b) => a.seconds - b.seconds)[Math.floor(r.tells.length / 2)]
  return [
    `${count} isinitd nodes, one local etcd (${startSeconds.toFixed(0)} s to start them in waves of 10; RSS per daemon median ${r.rssMb.median.toFixed(0)} MB, ${(r.rssMb.total / 1024).toFixed(1)} GB in all)`,
    "",
    `- cluster-wide \`tell --wait\` until all ${count} run: median ${tellMs.toFixed(0)} ms of ${r.tells.length} (min ${Math.min(...r.tells.map((t) => t.seconds * 1000)).toFixed(0)}, max ${Math.max(...r.tells.map((t) => t.seconds * 1000)).toFixed(0)}); per tell etcd took ${perTell("put")} puts, ${perTell("txn")} transactions, ${perTell("proposals")} proposals, ${perTell("range")} range reads`,
    `- \`isinit --etcd status\`: median ${median(r.statuses).toFixed(0)} ms (min ${Math.min(...r.statuses).toFixed(0)}, max ${Math.max(...r.statuses).toFixed(0)}), of which the client's start-up (status of an empty cluster) ${median(r.floor).toFixed(0)} ms; node statuses ${r.statusValueBytes.median} bytes each (median), ${(r.statusValueBytes.total / 1024).toFixed(0)} KiB in all`,
    `- \`tell --rolling 10 --wait\` over all ${count}: ${r.rolling.seconds} s`,
    "",
    "| while | s | puts/s | txns/s | proposals/s | WAL fsyncs/s (mean) | ranges/s | watch events/s | keep-alives/s | etcd CPU % | etcd sent MB/s | daemons' CPU % (all) |",
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    row("idle", r.idle),
    ...(median5 === undefined ? [] : [row("a cluster-wide tell --wait (median run)", median5)]),
    row("a rolling tell, 10 at a time", r.rolling),
  ].join("\n")
}

const main = async (): Promise<void> => {
  const root = mkdtempSync(join(tmpdir(), "isinit-scale-"))
  const etcd = await startEtcd({ name: "isinit-scale", tls: undefined })
  const raw = new Etcd3({ hosts: etcd.url })
  let nodes: Started[] = []
  try {
    const tab = join(root, "isinittab")
    // Two entries that run, and 18 of another group never told: a status the size of a real isinittab's.
    const spare = Array.from({ length: 18 }, (_, i) => `spare:spare-${i + 1}:9:respawn:exec sleep 3600\n`).join("")
    writeFileSync(tab, `web:web-a:1:respawn:exec sleep 3600\nweb:web-b:2:respawn:exec sleep 3600\n${spare}`)
    await must(etcd.url, ["config", "push", tab])
    const started = await startAll(root, etcd.url, tab, raw)
    nodes = started.nodes
    await must(etcd.url, ["tell", "web", "1", "--wait", "--timeout", "300"])
    const r = await measure(etcd.url, raw, nodes)
    process.stderr.write(`${JSON.stringify(r, null, 2)}\n`)
    process.stdout.write(`\n${report(r, started.seconds)}\n`)
  } finally {
    raw.close()
    await cleanup(nodes, root)
    await etcd.destroy()
  }
}

await main()
