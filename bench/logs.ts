/**
 * Log throughput and footprint (issue 11): `npm run bench:logs`.
 *
 * 1. N programs (100) each write M MiB (10) of 100-byte lines as fast as they can, then sleep.
 *    isinitd (children write straight to their files, rotated past 10M, 5 kept), runit (a
 *    `./log/run` svlogd per service, the same size and count) and supervisord (its pipes and
 *    `stdout_logfile`, the same size and backups) in the same run. Measured: the supervisor's CPU
 *    (the daemon; for runit its runsvdir, runsv and svlogd processes) per MiB logged, and the time
 *    from the start request until every byte is in the log files (written, not fsync'ed: what a
 *    reader sees); then the supervisor's wake-ups over 10 s, 20 s after everything was written.
 * 2. isinitd with 1,000 entries that have logged a line: its RSS, PSS and open descriptors (by
 *    kind), against the same daemon's after part 1 (100 entries).
 *
 * Environment: BENCH_LOG_N (100), BENCH_LOG_MB (10), BENCH_LOG_BIG (1000), BENCH_PEERS
 * (isinitd,runit,supervisord), BENCH_OUT (a file for the table). Needs `npm run build` first.
 */
import { mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { Peer, Program, Session } from "./lib/peers.ts"
import { isinitdPeer, leftovers, peerLogDir, runMarker, runitPeer, supervisordPeer } from "./lib/peers.ts"
import { childrenOf, cleanUpOnExit, cpuMs, killAllWithEnv, memoryOf, wakeups } from "./lib/proc.ts"
import { envNumber } from "./lib/env.ts"


const cfg = {
  n: envNumber("BENCH_LOG_N", 100),
  mb: envNumber("BENCH_LOG_MB", 10),
  big: envNumber("BENCH_LOG_BIG", 1000),
  peers: (process.env["BENCH_PEERS"] ?? "isinitd,runit,supervisord").split(","),
  out: process.env["BENCH_OUT"],
}
const mib = 1024 * 1024
const rotation = { maxBytes: 10 * mib, keep: 5 }
const idleSeconds = 10
const settleSeconds = 20

const progress = (text: string): void => void process.stderr.write(`[bench:logs] ${text}\n`)
const sleepMs = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

const markerPrefix = `8${String(Math.floor(Math.random() * 1000)).padStart(3, "0")}`
let nextMarker = 0
const newMarker = (): string => `${markerPrefix}${String(nextMarker++).padStart(6, "0")}`

/** Whole 100-byte lines (99 characters and a newline) per writer: svlogd keeps a cut last line back, so none is cut. */
const linesPerWriter = (mb: number): number => Math.floor((mb * mib) / 100)

/** `linesPerWriter` lines, then a sleep that marks the program. No single quotes: runit wraps the script in them. */
const writers = (count: number, mb: number): Program[] =>
  Array.from({ length: count }, () => {
    const marker = newMarker()
    const line = "log line of the benchmark ".padEnd(99, "x")
    return { marker, command: `yes "${line}" | head -n ${linesPerWriter(mb)}; exec sleep ${marker}`, shell: true }
  })

/** One line, then a sleep: 1,000 entries that have logged. */
const oneLiners = (count: number): Program[] =>
  Array.from({ length: count }, () => {
    const marker = newMarker()
    return { marker, command: `echo started ${marker}; exec sleep ${marker}`, shell: true }
  })

/** Bytes in every log file under `dir` (svlogd's `current` and `@...` files; not its config/lock/state). */
const loggedBytes = (dir: string): number => {
  let total = 0
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile() || ["config", "lock", "state", "newstate"].includes(entry.name)) continue
    try {
      total += statSync(join(entry.parentPath, entry.name)).size
    } catch {
      // rotated away meanwhile: counted in its new name
    }
  }
  return total
}

const commOf = (pid: number): string => {
  try {
    return readFileSync(`/proc/${pid}/comm`, "latin1").trim()
  } catch {
    return ""
  }
}

/** The supervisor's processes: the session's own, and for runit the svlogd loggers (runsv's other children are the programs). */
const supervisorPids = (peer: Peer, session: Session): number[] => {
  const own = session.supervisorPids()
  if (peer.name !== "runit") return own
  return [...own, ...own.flatMap(childrenOf).filter((pid) => commOf(pid) === "svlogd")]
}

interface Throughput {
  readonly peer: string
  readonly seconds: number
  readonly cpuMs: number
  readonly mib: number
  readonly idleWakeups: number
  readonly fds?: number
}

const fdsOf = (pid: number): string[] => {
  try {
    return readdirSync(`/proc/${pid}/fd`).map((fd) => {
      try {
        return readlinkSync(`/proc/${pid}/fd/${fd}`)
      } catch {
        return "?"
      }
    })
  } catch {
    return []
  }
}

/** `socket:[..]` 3, `pipe:[..]` 2, `/dev/null` 1, ...: descriptors by kind. */
const fdKinds = (targets: readonly string[]): string => {
  const kinds = new Map<string, number>()
  for (const t of targets) {
    const kind = t.replace(/\[\d+\]$/, "").replace(/^\/.*\/(run\/log\/).*/, "$1*")
    kinds.set(kind, (kinds.get(kind) ?? 0) + 1)
  }
  return [...kinds].map(([k, n]) => `${k} ${n}`).join(", ")
}

const throughput = async (peer: Peer): Promise<Throughput> => {
  const dir = mkdtempSync(join(tmpdir(), `bench-logs-${peer.name}-`))
  const session = await peer.open(dir, { programs: writers(cfg.n, cfg.mb), logs: rotation })
  try {
    const logDir = peerLogDir(peer.name, dir)
    const total = cfg.n * linesPerWriter(cfg.mb) * 100
    const cpu0 = supervisorPids(peer, session).reduce((a, p) => a + cpuMs(p), 0)
    const t0 = performance.now()
    await session.start()
    const deadline = t0 + 600_000
    let pids: number[] = []
    for (;;) {
      pids = supervisorPids(peer, session)
      if (loggedBytesOrZero(logDir) >= total) break
      if (performance.now() > deadline) throw new Error(`${peer.name}: ${loggedBytesOrZero(logDir)} of ${total} bytes after 600 s`)
      await sleepMs(50)
    }
    const seconds = (performance.now() - t0) / 1000
    const cpu = pids.reduce((a, p) => a + cpuMs(p), 0) - cpu0
    // The first seconds after a bring-up hold the daemons' own settling (status and state writes, GC): measure after them.
    await sleepMs(settleSeconds * 1000)
    const w0 = pids.reduce((a, p) => a + wakeups(p), 0)
    await sleepMs(idleSeconds * 1000)
    const idleWakeups = pids.reduce((a, p) => a + wakeups(p), 0) - w0
    const daemon = session.supervisorPids()[0]
    const fds = peer.name === "isinitd" && daemon !== undefined ? fdsOf(daemon).length : undefined
    return { peer: peer.name, seconds, cpuMs: cpu, mib: total / mib, idleWakeups, ...(fds === undefined ? {} : { fds }) }
  } finally {
    await session.close()
    rmSync(dir, { recursive: true, force: true })
  }
}

const loggedBytesOrZero = (dir: string): number => {
  try {
    return loggedBytes(dir)
  } catch {
    return 0
  }
}

interface Footprint {
  readonly entries: number
  readonly rssMb: number
  readonly pssMb: number
  readonly fds: number
  readonly kinds: string
}

const footprint = async (count: number): Promise<Footprint> => {
  const dir = mkdtempSync(join(tmpdir(), "bench-logs-footprint-"))
  const session = await isinitdPeer("isinitd").open(dir, { programs: oneLiners(count) })
  try {
    await session.start()
    const logDir = peerLogDir("isinitd", dir)
    const deadline = performance.now() + 300_000
    for (;;) {
      const logged = loggedBytesOrZero(logDir) >= count * "started 8000000000\n".length
      if (logged) break
      if (performance.now() > deadline) throw new Error(`only ${loggedBytesOrZero(logDir)} bytes logged by ${count} entries after 300 s`)
      await sleepMs(200)
    }
    await sleepMs(3_000)
    const pid = session.supervisorPids()[0] ?? 0
    const mem = memoryOf(pid)
    const fds = fdsOf(pid)
    return { entries: count, rssMb: mem.rssKb / 1024, pssMb: mem.pssKb / 1024, fds: fds.length, kinds: fdKinds(fds) }
  } finally {
    await session.close()
    rmSync(dir, { recursive: true, force: true })
  }
}

const render = (rows: readonly Throughput[], big: Footprint | undefined, small: Footprint | undefined): string => {
  const base = rows.find((r) => r.peer === "isinitd")
  const lines = [
    `### Logs (${cfg.n} programs × ${cfg.mb} MiB of 100-byte lines, rotated past 10M, 5 kept; ${new Date().toISOString()}, load ${readFileSync("/proc/loadavg", "latin1").split(" ").slice(0, 3).join(" ")})`,
    "",
    "| supervisor | CPU | CPU per MiB | until every byte is in the files | wake-ups in 10 s, idle, 20 s after | CPU ÷ isinitd's |",
    "|---|---:|---:|---:|---:|---:|",
  ]
  for (const r of rows) {
    const ratio = base === undefined || base.cpuMs === 0 ? "" : `×${(r.cpuMs / base.cpuMs).toFixed(0)}`
    lines.push(`| ${r.peer} | ${r.cpuMs.toFixed(0)} ms | ${(r.cpuMs / r.mib).toFixed(3)} ms | ${r.seconds.toFixed(2)} s | ${r.idleWakeups} | ${r.peer === "isinitd" ? "" : ratio} |`)
  }
  for (const f of [small, big]) {
    if (f === undefined) continue
    lines.push("", `isinitd with ${f.entries} entries that logged: RSS ${f.rssMb.toFixed(1)} MB, PSS ${f.pssMb.toFixed(1)} MB, ${f.fds} open descriptors (${f.kinds})`)
  }
  return lines.join("\n")
}

const main = async (): Promise<void> => {
  const peers = [isinitdPeer("isinitd"), runitPeer, supervisordPeer].filter((p) => {
    if (!cfg.peers.includes(p.name)) return false
    const missing = p.missing()
    if (missing !== undefined) progress(`skipping ${p.name}: ${missing}`)
    return missing === undefined
  })
  const rows: Throughput[] = []
  for (const peer of peers) {
    progress(`${peer.name}: ${cfg.n} × ${cfg.mb} MiB`)
    rows.push(await throughput(peer))
  }
  progress(`isinitd: 100 and ${cfg.big} entries that logged a line`)
  const small = await footprint(100)
  const big = await footprint(cfg.big)
  const text = render(rows, big, small)
  process.stdout.write(`${text}\n`)
  if (cfg.out !== undefined) writeFileSync(cfg.out, `${text}\n`)
  const left = leftovers()
  if (left.length > 0) progress(`processes left behind (killed now): ${left.join(" ")}`)
}

const cleanupSync = cleanUpOnExit(() => void killAllWithEnv(runMarker))
try {
  await main()
} finally {
  cleanupSync()
}
