/**
 * isinitd against runit and supervisord on the same work, in the same run, state on disk and on
 * tmpfs. Run `npm run build && npx tsx bench/daemon.ts`: it drives the BUILT daemon
 * (`node dist/cli/isinitd.js`, with the node flags of its shebang), so the numbers are
 * production numbers. Peers that are not installed are skipped. Prints Markdown (method, machine,
 * tables with ratios, raw samples); `BENCH_OUT=FILE` also writes it to FILE.
 *
 * Every program is `sleep MARKER` (or a shell script naming MARKER) and is timed through /proc:
 * "alive" is a process with the marker in its argv that is not a zombie; "gone" is its identity
 * (pid and start time) no longer alive. Every process the bench starts carries an environment
 * marker; the exit handler kills whatever still carries it, even after a failure or ^C.
 *
 * Knobs (environment): BENCH_REPS (5), BENCH_N (500), BENCH_N_BIG (1000), BENCH_KILLS (50),
 * BENCH_SUPERVISORD_KILLS (10, each costs about 1 s), BENCH_TERM_N (100), BENCH_TERM_REPS (3),
 * BENCH_GRACE_S (2), BENCH_IDLE_N (100), BENCH_IDLE_S (30), BENCH_FS (disk,tmpfs),
 * BENCH_PEERS (isinitd,runit,supervisord), BENCH_FOOTPRINT (1), BENCH_OUT,
 * BENCH_ISINITD_VARIANTS ("name=node flags;name2=flags": extra isinitd columns run with those
 * node flags added, to weigh V8 flags against every figure).
 */
import { execFileSync } from "node:child_process"
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { cpus, loadavg, release, tmpdir } from "node:os"
import { join } from "node:path"
import type { ImportCost } from "./lib/footprint.ts"
import { measureImports } from "./lib/footprint.ts"
import type { Peer, Program, Session, Workload } from "./lib/peers.ts"
import { isinitdPeer, leftovers, runMarker, runitPeer, shebangFlags, supervisordPeer } from "./lib/peers.ts"
import type { Identity, Memory } from "./lib/proc.ts"
import { cleanUpOnExit, cpuMs, isAlive, killAllWithEnv, makeScanner, memoryOf, pause, sumMemory, wakeups } from "./lib/proc.ts"
import { envNumber } from "./lib/env.ts"

// ---------------------------------------------------------------------------------------------
// configuration

const envList = (name: string, fallback: readonly string[]): string[] =>
  (process.env[name] ?? fallback.join(","))
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "")

const cfg = {
  reps: envNumber("BENCH_REPS", 5),
  n: envNumber("BENCH_N", 500),
  nBig: envNumber("BENCH_N_BIG", 1000),
  kills: envNumber("BENCH_KILLS", 50),
  supervisordKills: envNumber("BENCH_SUPERVISORD_KILLS", 10),
  termN: envNumber("BENCH_TERM_N", 100),
  termReps: envNumber("BENCH_TERM_REPS", 3),
  graceS: envNumber("BENCH_GRACE_S", 2),
  idleN: envNumber("BENCH_IDLE_N", 100),
  idleS: envNumber("BENCH_IDLE_S", 30),
  fs: envList("BENCH_FS", ["disk", "tmpfs"]),
  peers: envList("BENCH_PEERS", ["isinitd", "runit", "supervisord"]),
  footprint: envNumber("BENCH_FOOTPRINT", 1) !== 0,
  out: process.env["BENCH_OUT"],
  variants: (process.env["BENCH_ISINITD_VARIANTS"] ?? "")
    .split(";")
    .map((s) => s.trim())
    .filter((s) => s !== "")
    .map((s) => {
      const eq = s.indexOf("=")
      if (eq <= 0) throw new Error(`BENCH_ISINITD_VARIANTS: "${s}" is not name=flags`)
      return { name: `isinitd ${s.slice(0, eq).trim()}`, flags: s.slice(eq + 1).trim().split(/\s+/).filter((f) => f !== "") }
    }),
}

const fsRoots: Record<string, string> = { disk: tmpdir(), tmpfs: "/dev/shm" }
for (const f of cfg.fs) if (fsRoots[f] === undefined) throw new Error(`BENCH_FS: unknown "${f}" (disk, tmpfs)`)

// ---------------------------------------------------------------------------------------------
// cleanup, whatever happens

const tempDirs: string[] = []
const openSessions = new Set<Session>()
const cleanupSync = cleanUpOnExit(() => {
  killAllWithEnv(runMarker)
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true })
})

const stateDir = (fs: string, label: string): string => {
  const dir = mkdtempSync(join(fsRoots[fs] ?? tmpdir(), `isinit-bench-${label}-`))
  tempDirs.push(dir)
  return dir
}

// ---------------------------------------------------------------------------------------------
// programs and markers

const markerPrefix = `7${String(Math.floor(Math.random() * 1000)).padStart(3, "0")}`
let nextMarker = 0
const newMarker = (): string => `${markerPrefix}${String(nextMarker++).padStart(6, "0")}`

const sleepers = (count: number): Program[] =>
  Array.from({ length: count }, () => {
    const marker = newMarker()
    return { marker, command: `sleep ${marker}`, shell: false }
  })

/** Ignores SIGTERM: `exec sleep` would restore the default action, so the shell itself loops. */
const termIgnorers = (count: number): Program[] =>
  Array.from({ length: count }, () => {
    const marker = newMarker()
    return { marker, command: `: ${marker}; trap "" TERM; while :; do sleep 1; done`, shell: true }
  })

// ---------------------------------------------------------------------------------------------
// timing

const sleepMs = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))
const progress = (text: string): void => void process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${text}\n`)

type Scanner = ReturnType<typeof makeScanner>

/** Every program alive (one identity per marker), polled every few ms; elapsed since `t0`. */
const untilAlive = async (scanner: Scanner, markers: readonly string[], t0: number, timeoutMs = 60_000): Promise<{ ms: number; ids: Identity[] }> => {
  for (;;) {
    const found = scanner.scan()
    const ids: Identity[] = []
    for (const m of markers) {
      const id = found.get(m)?.[0]
      if (id !== undefined) ids.push(id)
    }
    const now = performance.now()
    if (ids.length === markers.length) return { ms: now - t0, ids }
    if (now - t0 > timeoutMs) throw new Error(`only ${ids.length} of ${markers.length} programs alive after ${timeoutMs} ms`)
    await sleepMs(3)
  }
}

/** Every identity gone (exited, or a zombie), polled every few ms; elapsed since `t0`. */
const untilGone = async (ids: readonly Identity[], t0: number, timeoutMs = 60_000): Promise<number> => {
  let alive = [...ids]
  for (;;) {
    alive = alive.filter(isAlive)
    const now = performance.now()
    if (alive.length === 0) return now - t0
    if (now - t0 > timeoutMs) throw new Error(`${alive.length} of ${ids.length} programs still alive after ${timeoutMs} ms`)
    await sleepMs(3)
  }
}

const median = (xs: readonly number[]): number => {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b)
  if (s.length === 0) return Number.NaN
  const mid = Math.floor(s.length / 2)
  return s.length % 2 === 1 ? (s[mid] ?? Number.NaN) : ((s[mid - 1] ?? 0) + (s[mid] ?? 0)) / 2
}
const percentile = (xs: readonly number[], p: number): number => {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.floor(p * s.length))] ?? Number.NaN
}

// ---------------------------------------------------------------------------------------------
// results

/** results[measure][fs][peer] = samples */
const results = new Map<string, Map<string, Map<string, number[]>>>()
const record = (measure: string, fs: string, peer: string, value: number): void => {
  const byFs = results.get(measure) ?? new Map<string, Map<string, number[]>>()
  results.set(measure, byFs)
  const byPeer = byFs.get(fs) ?? new Map<string, number[]>()
  byFs.set(fs, byPeer)
  const list = byPeer.get(peer) ?? []
  byPeer.set(peer, list)
  list.push(value)
}
const samples = (measure: string, fs: string, peer: string): number[] => results.get(measure)?.get(fs)?.get(peer) ?? []
const failures: string[] = []

const withSession = async <A>(peer: Peer, dir: string, work: Workload, use: (s: Session) => Promise<A>): Promise<A> => {
  const session = await peer.open(dir, work)
  openSessions.add(session)
  try {
    return await use(session)
  } finally {
    await session.close()
    openSessions.delete(session)
  }
}

const memoryOfPeer = (session: Session): Memory => sumMemory(session.supervisorPids().map(memoryOf))
/** CPU time of the supervisor's processes now (pids taken now: runit's runsv processes come and go). */
const cpuOfPeer = (session: Session): number => session.supervisorPids().reduce((a, p) => a + cpuMs(p), 0)

// ---------------------------------------------------------------------------------------------
// scenarios

/** Bring-up then stop of `count` sleepers; the supervisor's memory once they are all up. */
const upAndDown = async (peer: Peer, fs: string, count: number, tag: string): Promise<void> => {
  const programs = sleepers(count)
  const markers = programs.map((p) => p.marker)
  await withSession(peer, stateDir(fs, peer.name.replace(/\W+/g, "-")), { programs }, async (session) => {
    const scanner = makeScanner(markerPrefix)
    const cpu0 = cpuOfPeer(session)
    const t0 = performance.now()
    await session.start()
    const up = await untilAlive(scanner, markers, t0)
    record(`up${tag}`, fs, peer.name, up.ms)
    record(`cpuUp${tag}`, fs, peer.name, cpuOfPeer(session) - cpu0)
    await sleepMs(500)
    const mem = memoryOfPeer(session)
    record(`rss${tag}`, fs, peer.name, mem.rssKb / 1024)
    record(`pss${tag}`, fs, peer.name, mem.pssKb / 1024)
    record(`anon${tag}`, fs, peer.name, mem.anonKb / 1024)
    await session.settle()
    const cpu1 = cpuOfPeer(session)
    const t1 = performance.now()
    await session.stop()
    record(`stop${tag}`, fs, peer.name, await untilGone(up.ids, t1))
    record(`cpuStop${tag}`, fs, peer.name, cpuOfPeer(session) - cpu1)
    await session.settle()
  })
}

/** Starts the session and waits until every program is alive and the supervisor has settled. */
const startAll = async (session: Session, programs: readonly { readonly marker: string }[]): Promise<{ scanner: Scanner; up: { ms: number; ids: Identity[] } }> => {
  const scanner = makeScanner(markerPrefix)
  await session.start()
  const up = await untilAlive(
    scanner,
    programs.map((p) => p.marker),
    performance.now(),
  )
  await session.settle()
  return { scanner, up }
}

/** SIGKILL one program at a time (each once, so no restart limit applies) until its replacement is alive. */
const respawns = async (peer: Peer, fs: string, kills: number): Promise<void> => {
  if (kills === 0) return
  const programs = sleepers(kills)
  await withSession(peer, stateDir(fs, peer.name.replace(/\W+/g, "-")), { programs }, async (session) => {
    const { scanner, up } = await startAll(session, programs)
    // runit waits a second before restarting a service that ran for less than a second.
    await sleepMs(1_200)
    for (const [i, program] of programs.entries()) {
      const old = up.ids[i]
      if (old === undefined) continue
      process.kill(old.pid, "SIGKILL")
      const t0 = performance.now()
      let latency = Number.NaN
      // A tight synchronous poll: the bench has nothing else to do meanwhile.
      while (performance.now() - t0 < 10_000) {
        const ids = scanner.scan().get(program.marker) ?? []
        if (ids.some((id) => id.pid !== old.pid || id.start !== old.start)) {
          latency = performance.now() - t0
          break
        }
        pause(0.5)
      }
      if (Number.isNaN(latency)) failures.push(`${peer.name} (${fs}): no replacement for ${program.marker} within 10 s`)
      record("respawn", fs, peer.name, latency)
      await sleepMs(100)
    }
  })
}

/** Programs that ignore SIGTERM, stopped with a grace: until the last is gone. */
const termIgnoring = async (peer: Peer, fs: string): Promise<void> => {
  const programs = termIgnorers(cfg.termN)
  await withSession(peer, stateDir(fs, peer.name.replace(/\W+/g, "-")), { programs, graceSeconds: cfg.graceS }, async (session) => {
    const { up } = await startAll(session, programs)
    await sleepMs(500) // every shell has run its `trap` by now
    const t0 = performance.now()
    await session.stop()
    record("term", fs, peer.name, await untilGone(up.ids, t0))
    await session.settle()
  })
}

/** Every peer at once (they are idle: they do not disturb each other), `idleN` programs each. */
const idle = async (peers: readonly Peer[], fs: string): Promise<void> => {
  const sessions: Array<{ peer: Peer; session: Session }> = []
  try {
    for (const peer of peers) {
      const programs = sleepers(cfg.idleN)
      const session = await peer.open(stateDir(fs, `idle-${peer.name.replace(/\W+/g, "-")}`), { programs })
      openSessions.add(session)
      sessions.push({ peer, session })
      await startAll(session, programs)
    }
    await sleepMs(3_000) // supervisord's startsecs, runit's first status writes
    // Three equal windows: V8 may still collect garbage in the first seconds after a burst of work.
    const sample = () =>
      sessions.map(({ session }) => {
        const pids = session.supervisorPids()
        return { cpu: pids.reduce((a, p) => a + cpuMs(p), 0), wakes: pids.reduce((a, p) => a + wakeups(p), 0) }
      })
    const marks = [sample()]
    for (let third = 1; third <= 3; third++) {
      progress(`idle: ${(third * cfg.idleS) / 3} of ${cfg.idleS} s`)
      await sleepMs((cfg.idleS * 1000) / 3)
      marks.push(sample())
    }
    sessions.forEach(({ peer }, i) => {
      const at = (k: number) => marks[k]?.[i] ?? { cpu: Number.NaN, wakes: Number.NaN }
      record("idleCpu", fs, peer.name, at(3).cpu - at(0).cpu)
      record("idleWakeups", fs, peer.name, at(3).wakes - at(0).wakes)
      record("idleCpuLast", fs, peer.name, at(3).cpu - at(2).cpu)
      record("idleWakeupsLast", fs, peer.name, at(3).wakes - at(2).wakes)
    })
  } finally {
    for (const { session } of sessions) {
      await session.close()
      openSessions.delete(session)
    }
  }
}

const attempt = async (what: string, run: () => Promise<void>): Promise<void> => {
  try {
    await run()
  } catch (e) {
    const message = `${what}: ${e instanceof Error ? e.message : String(e)}`
    failures.push(message)
    progress(`FAILED ${message}`)
  }
}

// ---------------------------------------------------------------------------------------------
// report

const fmtMs = (ms: number): string =>
  !Number.isFinite(ms) ? "–" : ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : ms >= 10 ? `${ms.toFixed(0)} ms` : `${ms.toFixed(1)} ms`
const fmtMb = (mb: number): string => (!Number.isFinite(mb) ? "–" : `${mb.toFixed(0)} MB`)
const fmtCpu = (ms: number): string => (!Number.isFinite(ms) ? "–" : ms >= 10 ? `${ms.toFixed(0)} ms` : `${ms.toFixed(1)} ms`)
const fmtCount = (n: number): string => (!Number.isFinite(n) ? "–" : n.toFixed(0))
const ratio = (peer: number, base: number): string => (!Number.isFinite(peer) || !Number.isFinite(base) || base === 0 ? "–" : `×${(peer / base).toFixed(peer / base >= 10 ? 0 : 1)}`)

interface Row {
  readonly label: string
  readonly measure: string
  readonly fmt: (x: number) => string
  /** A row that only isinitd runs (1,000 entries). */
  readonly isinitdOnly?: boolean
  readonly target?: (isinitd: number, fs: string) => string
}

const machine = (): string[] => {
  const cpu = cpus()[0]?.model ?? "unknown CPU"
  const version = (cmd: string, args: string[]): string => {
    try {
      return execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }).trim().split("\n")[0] ?? "?"
    } catch {
      return "not installed"
    }
  }
  const dpkgVersion = (pkg: string): string => version("dpkg-query", ["-W", "-f=${Version}", pkg])
  const fsType = (path: string): string => {
    try {
      return execFileSync("findmnt", ["-n", "-o", "FSTYPE", "--target", path], { encoding: "utf8" }).trim().split("\n")[0] ?? "?"
    } catch {
      return "?"
    }
  }
  return [
    `- ${cpus().length} × ${cpu}, Linux ${release()}, ${Math.round(Number(readFileSync("/proc/meminfo", "latin1").match(/MemTotal:\s+(\d+)/)?.[1] ?? 0) / 1024 / 1024)} GB RAM`,
    `- Node ${process.version}; isinitd node flags (from its shebang): ${shebangFlags().join(" ") || "none"}`,
    `- runit ${dpkgVersion("runit")}, supervisord ${version("supervisord", ["--version"])}`,
    `- state on disk: ${tmpdir()} (${fsType(tmpdir())}); on tmpfs: /dev/shm (${fsType("/dev/shm")})`,
  ]
}

const render = (peers: readonly Peer[], imports: ImportCost[] | undefined, started: Date, loadStart: number[]): string => {
  const names = peers.map((p) => p.name)
  const base = names[0] ?? "isinitd"
  const others = names.filter((n) => n !== base && !n.startsWith("isinitd"))
  const variants = names.filter((n) => n !== base && n.startsWith("isinitd"))
  const grace = cfg.graceS * 1000
  const rows: Row[] = [
    { label: `bring-up of ${cfg.n} (tell until all alive)`, measure: "up", fmt: fmtMs, target: (x, fs) => targetVs(x, "up", fs, "runit", "faster than runit") },
    { label: `bring-up of ${cfg.n}, best run`, measure: "upBest", fmt: fmtMs },
    { label: `bring-up of ${cfg.nBig}`, measure: `up${cfg.nBig}`, fmt: fmtMs, isinitdOnly: true, target: (x) => mark(x < 2000, "< 2 s") },
    { label: `bring-up of ${cfg.nBig}, best run`, measure: `up${cfg.nBig}Best`, fmt: fmtMs, isinitdOnly: true },
    { label: `supervisor CPU for that bring-up`, measure: "cpuUp", fmt: fmtCpu },
    { label: `supervisor CPU for bring-up of ${cfg.nBig}`, measure: `cpuUp${cfg.nBig}`, fmt: fmtCpu, isinitdOnly: true },
    { label: `stop of ${cfg.n} (until all gone)`, measure: "stop", fmt: fmtMs, target: (x, fs) => targetVs(x, "stop", fs, "supervisord", "faster than supervisord") },
    { label: `supervisor CPU for that stop`, measure: "cpuStop", fmt: fmtCpu },
    { label: `stop of ${cfg.nBig}`, measure: `stop${cfg.nBig}`, fmt: fmtMs, isinitdOnly: true },
    { label: "respawn after SIGKILL (median)", measure: "respawn", fmt: fmtMs, target: (x) => mark(x < 10, "< 10 ms") },
    { label: "respawn after SIGKILL (90th percentile)", measure: "respawnP90", fmt: fmtMs },
    {
      label: `${cfg.termN} ignoring SIGTERM, ${cfg.graceS} s grace, until all gone`,
      measure: "term",
      fmt: (x) => (Number.isFinite(x) ? `${fmtMs(x)} (grace + ${fmtMs(x - grace)})` : "–"),
      target: (x) => mark(x - grace < 100, "grace + < 100 ms"),
    },
    { label: `idle CPU over ${cfg.idleS} s, ${cfg.idleN} programs`, measure: "idleCpu", fmt: fmtCpu },
    { label: `idle wake-ups over ${cfg.idleS} s (all threads)`, measure: "idleWakeups", fmt: fmtCount },
    { label: `idle CPU, last ${cfg.idleS / 3} s of those`, measure: "idleCpuLast", fmt: fmtCpu, target: (x) => mark(x < 1, "0 (< 1 ms)") },
    { label: `idle wake-ups, last ${cfg.idleS / 3} s`, measure: "idleWakeupsLast", fmt: fmtCount },
    { label: `supervisor RSS with ${cfg.n} programs`, measure: "rss", fmt: fmtMb },
    { label: `supervisor PSS with ${cfg.n} programs`, measure: "pss", fmt: fmtMb },
    { label: `isinitd RSS with ${cfg.nBig} children`, measure: `rss${cfg.nBig}`, fmt: fmtMb, isinitdOnly: true, target: (x) => mark(x < 64, "< 64 MB") },
    { label: `isinitd PSS with ${cfg.nBig} children`, measure: `pss${cfg.nBig}`, fmt: fmtMb, isinitdOnly: true },
  ]
  function mark(ok: boolean, text: string): string {
    return `${text} ${ok ? "✅" : "❌"}`
  }
  function targetVs(x: number, measure: string, fs: string, peer: string, text: string): string {
    const other = median(samples(measure, fs, peer))
    return Number.isFinite(other) ? mark(x < other, text) : `${text} (${peer} not measured)`
  }
  for (const fs of cfg.fs) {
    for (const name of names) {
      const r = samples("respawn", fs, name)
      if (r.length > 0) record("respawnP90", fs, name, percentile(r, 0.9))
      // Other work on the machine only ever slows a run down: the best run shows what the supervisor itself costs.
      for (const measure of ["up", `up${cfg.nBig}`]) {
        const xs = samples(measure, fs, name)
        if (xs.length > 0) record(`${measure}Best`, fs, name, Math.min(...xs))
      }
    }
  }
  const lines: string[] = []
  const ended = new Date()
  lines.push(`### Results (${started.toISOString().slice(0, 16).replace("T", " ")} UTC, ${((ended.getTime() - started.getTime()) / 60000).toFixed(1)} min)`, "")
  lines.push(...machine())
  lines.push(`- load average (1 min) at start ${loadStart[0]?.toFixed(2)}, at end ${loadavg()[0]?.toFixed(2)}: other work on the machine shares its ${cpus().length} cores`)
  lines.push(
    `- medians of ${cfg.reps} runs (bring-up, stop), ${cfg.termReps} runs (SIGTERM-ignoring), ${cfg.kills} kills (${cfg.supervisordKills} for supervisord); idle over one ${cfg.idleS} s window`,
    "",
  )
  const header = ["measure", "state", base, ...others, ...others.map((o) => `${o} ÷ ${base}`), `${base} target`]
  lines.push(`| ${header.join(" | ")} |`, `|${header.map((_, i) => (i < 2 ? "---" : "---:")).join("|")}|`)
  for (const row of rows) {
    for (const fs of cfg.fs) {
      const b = median(samples(row.measure, fs, base))
      const vals = others.map((o) => median(samples(row.measure, fs, o)))
      if (!Number.isFinite(b) && vals.every((v) => !Number.isFinite(v))) continue
      const cells = [row.label, fs, row.fmt(b), ...vals.map((v) => (row.isinitdOnly === true ? "" : row.fmt(v))), ...vals.map((v) => (row.isinitdOnly === true ? "" : ratio(v, b))), row.target?.(b, fs) ?? ""]
      lines.push(`| ${cells.join(" | ")} |`)
    }
  }
  lines.push("", `Ratios are peer ÷ ${base}: above 1 means ${base} is faster (or smaller).`)
  if (variants.length > 0) {
    lines.push("", `#### ${base} with extra node flags (same run)`, "")
    const vh = ["measure", "state", base, ...variants]
    lines.push(`| ${vh.join(" | ")} |`, `|${vh.map((_, i) => (i < 2 ? "---" : "---:")).join("|")}|`)
    for (const row of rows) {
      for (const fs of cfg.fs) {
        const vals = [base, ...variants].map((v) => median(samples(row.measure, fs, v)))
        if (vals.every((v) => !Number.isFinite(v))) continue
        lines.push(`| ${[row.label, fs, ...vals.map(row.fmt)].join(" | ")} |`)
      }
    }
    lines.push("", ...cfg.variants.map((v) => `- ${v.name}: \`node ${[...shebangFlags(), ...v.flags].join(" ")} dist/cli/isinitd.js\``))
  }
  if (imports !== undefined) {
    lines.push("", `#### What isinitd's imports keep in memory (node ${shebangFlags().join(" ") || "without flags"}, after two forced GCs, median of 3 processes)`, "")
    lines.push("| modules loaded (cumulative) | RSS | of which anonymous | of which file-backed | V8 heap used |", "|---|---:|---:|---:|---:|")
    for (const c of imports) lines.push(`| ${c.label} | ${c.rssMb.toFixed(1)} MB | ${c.anonMb.toFixed(1)} MB | ${c.fileMb.toFixed(1)} MB | ${c.heapUsedMb.toFixed(1)} MB |`)
  }
  lines.push("", "<details><summary>Raw samples</summary>", "", "```")
  for (const [measure, byFs] of results) {
    for (const [fs, byPeer] of byFs) {
      for (const [peer, xs] of byPeer) lines.push(`${measure} ${fs} ${peer}: ${xs.map((x) => (Number.isInteger(x) ? String(x) : x.toFixed(1))).join(" ")}`)
    }
  }
  lines.push("```", "</details>")
  if (failures.length > 0) lines.push("", "**Failures:**", ...failures.map((f) => `- ${f}`))
  return lines.join("\n")
}

// ---------------------------------------------------------------------------------------------
// main

const main = async (): Promise<void> => {
  const started = new Date()
  const loadStart = loadavg()
  const all: Peer[] = [isinitdPeer("isinitd"), ...cfg.variants.map((v) => isinitdPeer(v.name, v.flags)), runitPeer, supervisordPeer]
  const peers = all.filter((p) => {
    if (!cfg.peers.some((name) => p.name === name || p.name.startsWith(`${name} `))) return false
    const missing = p.missing()
    if (missing !== undefined) progress(`skipping ${p.name}: ${missing}`)
    return missing === undefined
  })
  if (!peers.some((p) => p.name === "isinitd")) throw new Error("isinitd is not available: run npm run build first")
  const isinitds = peers.filter((p) => p.name.startsWith("isinitd"))

  for (const fs of cfg.fs) {
    for (let rep = 1; rep <= cfg.reps; rep++) {
      for (const peer of peers) {
        progress(`${fs} rep ${rep}/${cfg.reps}: ${peer.name} up/down ${cfg.n}`)
        await attempt(`${peer.name} up/down ${cfg.n} (${fs})`, () => upAndDown(peer, fs, cfg.n, ""))
      }
      for (const peer of isinitds) {
        progress(`${fs} rep ${rep}/${cfg.reps}: ${peer.name} up/down ${cfg.nBig}`)
        await attempt(`${peer.name} up/down ${cfg.nBig} (${fs})`, () => upAndDown(peer, fs, cfg.nBig, String(cfg.nBig)))
      }
    }
    for (const peer of peers) {
      const kills = peer.name === "supervisord" ? cfg.supervisordKills : cfg.kills
      progress(`${fs}: ${peer.name} respawn × ${kills}`)
      await attempt(`${peer.name} respawn (${fs})`, () => respawns(peer, fs, kills))
    }
    for (let rep = 1; rep <= cfg.termReps; rep++) {
      for (const peer of peers) {
        progress(`${fs} rep ${rep}/${cfg.termReps}: ${peer.name} ${cfg.termN} ignoring SIGTERM`)
        await attempt(`${peer.name} SIGTERM-ignoring (${fs})`, () => termIgnoring(peer, fs))
      }
    }
  }
  const idleFs = cfg.fs[0] ?? "disk"
  if (cfg.idleS > 0) {
    progress(`idle: ${cfg.idleN} programs under each supervisor`)
    await attempt("idle", () => idle(peers, idleFs))
  }
  let imports: ImportCost[] | undefined
  if (cfg.footprint) {
    progress("imports: measuring what each layer of isinitd keeps in memory")
    try {
      imports = await measureImports(shebangFlags())
    } catch (e) {
      failures.push(`imports: ${String(e)}`)
    }
  }
  const left = leftovers()
  if (left.length > 0) failures.push(`processes left behind before cleanup (killed now): ${left.join(" ")}`)
  const text = render(peers, imports, started, loadStart)
  process.stdout.write(`${text}\n`)
  if (cfg.out !== undefined) writeFileSync(cfg.out, `${text}\n`)
}

try {
  await main()
} finally {
  for (const s of openSessions) await s.close().catch(() => undefined)
  cleanupSync()
}
