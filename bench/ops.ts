/**
 * What `--metrics` and `--http` cost isinitd: the built daemon supervising 100 sleepers, its CPU
 * time, wake-ups and memory over one window, with both flags off, both on and idle, both on and
 * /metrics scraped every second, and both on, scraped every second, with a live stream of the
 * status page open (its browser would be on screen). Every scenario is a fresh daemon, in rounds
 * whose order rotates, so a noisy machine weighs on all alike; medians are reported.
 *
 * Then the exposition writer against prom-client (when installed: `npm i --no-save prom-client`)
 * on the same series, each in a fresh node process: load time, the time to render the series and
 * the memory kept (the measurement the README's choice rests on).
 *
 * Run `npm run bench:ops` (it builds first). Prints Markdown; `BENCH_OUT=FILE` also writes it to
 * FILE. Knobs: BENCH_OPS_ROUNDS (3), BENCH_OPS_S (20, the window), BENCH_OPS_N (100 programs),
 * BENCH_OPS_SERIES_ENTRIES (1000, for the writer comparison).
 */
import { spawnSync } from "node:child_process"
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { request } from "node:http"
import { createServer } from "node:net"
import { cpus, loadavg, release, tmpdir } from "node:os"
import { join } from "node:path"
import type { Program, Session } from "./lib/peers.ts"
import { askDaemon, isinitdPeer, repoRoot, runMarker } from "./lib/peers.ts"
import { entryStates } from "../src/runtime/metrics.ts"
import { envInt } from "./lib/env.ts"
import { cleanUpOnExit, cpuMs, killAllWithEnv, memoryOf, wakeups } from "./lib/proc.ts"

const cfg = {
  rounds: envInt("BENCH_OPS_ROUNDS", 3),
  windowS: envInt("BENCH_OPS_S", 20),
  programs: envInt("BENCH_OPS_N", 100),
  seriesEntries: envInt("BENCH_OPS_SERIES_ENTRIES", 1000),
  out: process.env["BENCH_OUT"],
}

const sleepMs = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))
const progress = (text: string): void => void process.stderr.write(`bench:ops: ${text}\n`)
const median = (xs: readonly number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN

const root = mkdtempSync(join(tmpdir(), "isinit-bench-ops-"))
const cleanupSync = cleanUpOnExit(() => {
  killAllWithEnv(runMarker)
  rmSync(root, { recursive: true, force: true })
})

const freePort = (): Promise<number> =>
  new Promise((resolve) => {
    const probe = createServer().listen(0, "127.0.0.1", () => {
      const address = probe.address()
      probe.close(() => resolve(typeof address === "object" && address !== null ? address.port : 0))
    })
  })

let nextMarker = 0
const sleepers = (count: number): Program[] =>
  Array.from({ length: count }, () => {
    const marker = `74${String(process.pid % 1000).padStart(3, "0")}${String(nextMarker++).padStart(6, "0")}`
    return { marker, command: `sleep ${marker}`, shell: false }
  })

type Load = "none" | "scrape" | "scrape and stream"

interface Scenario {
  readonly name: string
  readonly on: boolean
  readonly load: Load
}

const scenarios: readonly Scenario[] = [
  { name: "both off", on: false, load: "none" },
  { name: "both on, idle", on: true, load: "none" },
  { name: "both on, /metrics scraped every 1 s", on: true, load: "scrape" },
  { name: "both on, scraped every 1 s, a live stream open", on: true, load: "scrape and stream" },
]

interface Sample {
  readonly cpuMs: number
  readonly wakeups: number
  readonly rssMb: number
  readonly pssMb: number
}

const get = (url: string): Promise<number> =>
  new Promise((resolve, reject) => {
    const req = request(url, (res) => {
      let bytes = 0
      res.on("data", (c: Buffer) => (bytes += c.length))
      res.on("end", () => resolve(bytes))
    })
    req.on("error", reject)
    req.end()
  })

/** Starts the load; returns how to stop it. */
const startLoad = (load: Load, base: string): (() => void) => {
  if (load === "none") return () => undefined
  const scrapes = setInterval(() => void get(`${base}/metrics`).catch(() => undefined), 1_000)
  const stream = load === "scrape and stream" ? request(`${base}/events`, (res) => res.resume()) : undefined
  stream?.on("error", () => undefined)
  stream?.end()
  return () => {
    clearInterval(scrapes)
    stream?.destroy()
  }
}

const waitAllRunning = async (socket: string, count: number): Promise<void> => {
  for (let i = 0; i < 600; i++) {
    const answer = await askDaemon(socket, { op: "status" })
    const groups = (answer["report"] as { groups: { entries: { state: string }[] }[] } | undefined)?.groups ?? []
    if (groups.flatMap((g) => g.entries).filter((e) => e.state === "running").length === count) return
    await sleepMs(100)
  }
  throw new Error(`not all ${count} programs came up`)
}

const runScenario = async (scenario: Scenario, round: number): Promise<Sample> => {
  const port = await freePort()
  const address = `127.0.0.1:${port}`
  const flags = scenario.on ? ["--metrics", address, "--http", address] : []
  const dir = join(root, `${round}-${scenario.name.replace(/\W+/g, "-")}`)
  const programs = sleepers(cfg.programs)
  mkdirSync(dir, { recursive: true })
  let session: Session | undefined
  try {
    session = await isinitdPeer("isinitd", [], flags).open(dir, { programs })
    await session.start()
    await waitAllRunning(join(dir, "run/init.s"), cfg.programs)
    const [pid] = session.supervisorPids()
    if (pid === undefined) throw new Error("no daemon pid")
    const stop = startLoad(scenario.load, `http://${address}`)
    await sleepMs(3_000) // the first scrape loads the metrics module; the page's stream opens
    const cpu0 = cpuMs(pid)
    const wakes0 = wakeups(pid)
    await sleepMs(cfg.windowS * 1_000)
    const sample = { cpuMs: cpuMs(pid) - cpu0, wakeups: wakeups(pid) - wakes0, rssMb: memoryOf(pid).rssKb / 1024, pssMb: memoryOf(pid).pssKb / 1024 }
    stop()
    return sample
  } finally {
    await session?.close()
  }
}

const daemonCosts = async (): Promise<string> => {
  const samples = new Map<string, Sample[]>(scenarios.map((s) => [s.name, []]))
  for (let round = 0; round < cfg.rounds; round++) {
    const order = scenarios.map((_, i) => scenarios[(i + round) % scenarios.length]).filter((s): s is Scenario => s !== undefined)
    for (const scenario of order) {
      progress(`round ${round + 1} of ${cfg.rounds}: ${scenario.name}`)
      samples.get(scenario.name)?.push(await runScenario(scenario, round))
    }
  }
  const rows = scenarios.map((s) => {
    const xs = samples.get(s.name) ?? []
    const cpu = median(xs.map((x) => x.cpuMs))
    return `| ${s.name} | ${cpu.toFixed(0)} ms (${((cpu / (cfg.windowS * 1000)) * 100).toFixed(2)} %) | ${median(xs.map((x) => x.wakeups)).toFixed(0)} | ${median(xs.map((x) => x.rssMb)).toFixed(1)} MB | ${median(xs.map((x) => x.pssMb)).toFixed(1)} MB | ${xs.map((x) => x.cpuMs.toFixed(0)).join(", ")} |`
  })
  return [
    `isinitd with ${cfg.programs} sleepers, CPU and wake-ups over ${cfg.windowS} s, memory at its end; medians of ${cfg.rounds} rounds:`,
    "",
    "| scenario | CPU (share of one core) | wake-ups | RSS | PSS | CPU per round |",
    "|---|---:|---:|---:|---:|---|",
    ...rows,
  ].join("\n")
}

/** Runs one measurement of the writers in a fresh node process (prints one JSON line). */
const writerProbe = `
const [which, entries] = [process.argv[1], Number(process.argv[2])]
const states = ${JSON.stringify(entryStates)}
const settled = () => { globalThis.gc(); globalThis.gc(); return process.memoryUsage.rss() }
const heap = () => { globalThis.gc(); globalThis.gc(); return process.memoryUsage().heapUsed }
const rss0 = settled()
const heap0 = heap()
const t0 = performance.now()
let render
if (which === "hand-written") {
  const { exposition } = await import("./dist/runtime/exposition.js")
  render = () => exposition([{ name: "isinit_entry_state", help: "h", type: "gauge", samples: Array.from({ length: entries }, (_, i) => states.map((state) => ({ labels: { group: "g" + (i % 10), tag: "t" + i, mode: "respawn", state }, value: state === "running" ? 1 : 0 }))).flat() }])
} else {
  const p = await import("prom-client")
  const registry = new p.Registry()
  const gauge = new p.Gauge({ name: "isinit_entry_state", help: "h", labelNames: ["group", "tag", "mode", "state"], registers: [registry] })
  render = () => { for (let i = 0; i < entries; i++) for (const state of states) gauge.set({ group: "g" + (i % 10), tag: "t" + i, mode: "respawn", state }, state === "running" ? 1 : 0); return registry.metrics() }
}
const loadMs = performance.now() - t0
const rssLoaded = settled()
const times = []
for (let k = 0; k < 15; k++) { const a = performance.now(); await render(); times.push(performance.now() - a) }
times.sort((a, b) => a - b)
console.log(JSON.stringify({ loadMs, renderMs: times[7], loadMb: (rssLoaded - rss0) / 1048576, keptMb: (heap() - heap0) / 1048576 }))
`

const writerCosts = (): string => {
  const probe = (which: string): { loadMs: number; renderMs: number; loadMb: number; keptMb: number } | string => {
    const runs = Array.from({ length: 3 }, () => spawnSync(process.execPath, ["--expose-gc", "--input-type=module", "-e", writerProbe, which, String(cfg.seriesEntries)], { cwd: repoRoot, encoding: "utf8" }))
    const failed = runs.find((r) => r.status !== 0)
    if (failed !== undefined) return (failed.stderr.includes("Cannot find package") ? "not installed (npm i --no-save prom-client)" : failed.stderr.split("\n").slice(0, 3).join(" "))
    const parsed = runs.map((r) => JSON.parse(r.stdout) as { loadMs: number; renderMs: number; loadMb: number; keptMb: number })
    return { loadMs: median(parsed.map((p) => p.loadMs)), renderMs: median(parsed.map((p) => p.renderMs)), loadMb: median(parsed.map((p) => p.loadMb)), keptMb: median(parsed.map((p) => p.keptMb)) }
  }
  const row = (which: string): string => {
    const r = probe(which)
    return typeof r === "string" ? `| ${which} | ${r} | | | |` : `| ${which} | ${r.loadMs.toFixed(1)} ms | ${r.loadMb.toFixed(1)} MB | ${r.renderMs.toFixed(1)} ms | ${r.keptMb.toFixed(1)} MB |`
  }
  return [
    `The exposition of ${cfg.seriesEntries * entryStates.length} series (${cfg.seriesEntries} entries x ${entryStates.length} states), fresh node process each, medians of 3 (render: median of 15; memory measured after two forced GCs, against the process before loading):`,
    "",
    "| writer | load | RSS added by loading | render | heap kept after 15 renders |",
    "|---|---:|---:|---:|---:|",
    row("hand-written"),
    row("prom-client"),
  ].join("\n")
}

try {
  const header = `Run of ${new Date().toISOString().slice(0, 10)}: ${cpus().length} cores (${cpus()[0]?.model ?? "?"}), Linux ${release()}, Node ${process.version}, load average ${loadavg()[0]?.toFixed(1) ?? "?"} at start.`
  const report = [header, "", await daemonCosts(), "", writerCosts(), ""].join("\n")
  process.stdout.write(report)
  if (cfg.out !== undefined) writeFileSync(cfg.out, report)
} finally {
  cleanupSync()
}
