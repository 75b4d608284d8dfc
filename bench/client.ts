/**
 * The cost of one `isinit` call: `isinit --version`, `isinit status` and a tell of the level a
 * group is at (rule 17: it reruns nothing), against a bare `node -e 0` and against the clients of
 * the peers, `supervisorctl status` and `sv status`, in the same run. `isinit` is called from
 * scripts, health checks and deploy loops, and pays its start-up on every call.
 *
 * Run `npm run bench:client` (it builds first, then runs `tsx bench/client.ts`): the BUILT client (`node dist/cli/isinit.js`)
 * against a built isinitd, a supervisord and a runsvdir, each supervising the same few `sleep`
 * programs in a temporary directory (bench/lib/peers.ts). The commands run in rounds, one of each
 * per round in a rotating order, so that a noisy machine weighs on all of them alike. Wall time
 * is measured around each call; CPU time (user + system, of the command and its children) is read
 * from /proc/self/stat's children times, summed over all the calls and divided.
 *
 * Targets: every `isinit` command within 2x a bare `node -e 0` (median wall time), and
 * `isinit status` faster than `supervisorctl status`. Prints Markdown; `BENCH_OUT=FILE` also
 * writes it to FILE. Knobs: BENCH_CLIENT_REPS (40), BENCH_CLIENT_PROGRAMS (5),
 * BENCH_PEERS (isinitd,runit,supervisord).
 */
import { spawnSync } from "node:child_process"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { cpus, loadavg, release, tmpdir } from "node:os"
import { join } from "node:path"
import type { Peer, Session } from "./lib/peers.ts"
import { isinitdFiles, isinitdPeer, repoRoot, runMarker, runitPeer, runitServiceDir, supervisordConfPath, supervisordPeer } from "./lib/peers.ts"
import { envInt } from "./lib/env.ts"
import { cleanUpOnExit, killAllWithEnv, statFields } from "./lib/proc.ts"

const cfg = {
  reps: envInt("BENCH_CLIENT_REPS", 40),
  programs: envInt("BENCH_CLIENT_PROGRAMS", 5),
  peers: (process.env["BENCH_PEERS"] ?? "isinitd,runit,supervisord").split(",").map((s) => s.trim()),
  out: process.env["BENCH_OUT"],
}

// ---------------------------------------------------------------------------------------------
// cleanup, whatever happens

const dir = mkdtempSync(join(tmpdir(), "isinit-bench-client-"))
cleanUpOnExit(() => {
  killAllWithEnv(runMarker)
  rmSync(dir, { recursive: true, force: true })
})

const progress = (text: string): void => void process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${text}\n`)

// ---------------------------------------------------------------------------------------------
// the commands

interface Command {
  readonly label: string
  readonly argv: readonly string[]
  /** Whether the output shows every program running (checked once before timing). */
  readonly ready?: (out: string) => boolean
  readonly isinit?: boolean
}

const isinitBin = join(repoRoot, "dist/cli/isinit.js")
const node = process.execPath

const commandsFor = (opened: ReadonlyMap<string, string>): Command[] => {
  const commands: Command[] = [{ label: "node -e 0", argv: [node, "-e", "0"] }]
  const isinitDir = opened.get("isinitd")
  if (isinitDir !== undefined) {
    const { tab, socket } = isinitdFiles(isinitDir)
    const isinit = (...args: string[]): string[] => [node, isinitBin, "-c", tab, "-s", socket, ...args]
    commands.push(
      { label: "isinit --version", argv: [node, isinitBin, "--version"], isinit: true },
      { label: "isinit status", argv: isinit("status"), isinit: true, ready: (out) => (out.match(/ running /g) ?? []).length === cfg.programs },
      { label: "isinit b run (the level b is at)", argv: isinit("b", "run"), isinit: true },
    )
  }
  const supervisordDir = opened.get("supervisord")
  if (supervisordDir !== undefined) {
    const ready = (out: string): boolean => (out.match(/RUNNING/g) ?? []).length === cfg.programs
    commands.push({ label: "supervisorctl status", argv: ["supervisorctl", "-c", supervisordConfPath(supervisordDir), "status"], ready })
  }
  const runitDir = opened.get("runit")
  if (runitDir !== undefined) {
    const services = Array.from({ length: cfg.programs }, (_, i) => runitServiceDir(runitDir, i))
    commands.push({ label: "sv status", argv: ["sv", "status", ...services], ready: (out) => (out.match(/^run: /gm) ?? []).length === cfg.programs })
  }
  return commands
}

/** CPU time of this process's waited-for children so far (/proc/self/stat cutime + cstime), in ms. */
const childrenCpuMs = (): number => {
  const f = statFields("self")
  return (Number(f?.[13] ?? 0) + Number(f?.[14] ?? 0)) * 10
}

const [markerName, markerValue] = runMarker.split("=") as [string, string]
/** The commands carry the run's marker too, so that the exit handler finds anything they leave. */
const commandEnv = { ...process.env, [markerName]: markerValue }

const run = (command: Command): { readonly ms: number; readonly out: string } => {
  const [file, ...args] = command.argv
  const t0 = performance.now()
  const result = spawnSync(file ?? node, args, { encoding: "utf8", env: commandEnv })
  const ms = performance.now() - t0
  if (result.status !== 0) throw new Error(`${command.argv.join(" ")} exited ${result.status ?? result.signal}:\n${result.stdout}${result.stderr}`)
  return { ms, out: result.stdout }
}

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b)
  const mid = Math.floor(s.length / 2)
  return s.length === 0 ? Number.NaN : s.length % 2 === 1 ? (s[mid] ?? Number.NaN) : ((s[mid - 1] ?? 0) + (s[mid] ?? 0)) / 2
}

interface Measured {
  readonly command: Command
  readonly wall: number[]
  cpuMs: number
}

/** Every command `reps` times, in rounds, rotating the order; after warm-up calls. */
const measure = (commands: readonly Command[]): Measured[] => {
  const measured = commands.map((command): Measured => ({ command, wall: [], cpuMs: 0 }))
  for (const m of measured) for (let i = 0; i < 3; i++) run(m.command)
  for (let round = 0; round < cfg.reps; round++) {
    for (let k = 0; k < measured.length; k++) {
      const m = measured[(round + k) % measured.length]
      if (m === undefined) continue
      const cpu0 = childrenCpuMs()
      m.wall.push(run(m.command).ms)
      m.cpuMs += childrenCpuMs() - cpu0
    }
  }
  return measured
}

// ---------------------------------------------------------------------------------------------
// the sessions

const peersByName: Record<string, Peer> = { isinitd: isinitdPeer("isinitd"), runit: runitPeer, supervisord: supervisordPeer }

const openAll = async (): Promise<{ readonly sessions: Session[]; readonly dirs: Map<string, string>; readonly skipped: string[] }> => {
  const sessions: Session[] = []
  const dirs = new Map<string, string>()
  const skipped: string[] = []
  const programs = Array.from({ length: cfg.programs }, (_, i) => ({ marker: `8${String(i).padStart(9, "0")}`, command: `sleep 8${String(i).padStart(9, "0")}`, shell: false }))
  for (const name of cfg.peers) {
    const peer = peersByName[name]
    if (peer === undefined) throw new Error(`BENCH_PEERS: unknown "${name}" (isinitd, runit, supervisord)`)
    const missing = peer.missing()
    if (missing !== undefined) {
      skipped.push(`${name}: ${missing}`)
      continue
    }
    const peerDir = mkdtempSync(join(dir, `${name}-`))
    const session = await peer.open(peerDir, { programs })
    sessions.push(session)
    await session.start()
    dirs.set(name, peerDir)
  }
  return { sessions, dirs, skipped }
}

const untilReady = async (commands: readonly Command[]): Promise<void> => {
  const deadline = performance.now() + 30_000
  for (const command of commands) {
    const ready = command.ready
    if (ready === undefined) continue
    for (;;) {
      if (ready(run(command).out)) break
      if (performance.now() > deadline) throw new Error(`${command.label}: not every program is running after 30 s`)
      await new Promise((r) => setTimeout(r, 100))
    }
  }
}

// ---------------------------------------------------------------------------------------------
// the report

const fmt = (ms: number): string => (ms >= 100 ? ms.toFixed(0) : ms.toFixed(1))
const x = (a: number, b: number): string => `×${(a / b).toFixed(2)}`

const render = (measured: readonly Measured[], skipped: readonly string[], started: Date, load: readonly number[]): string => {
  const base = measured[0]
  if (base === undefined) return "nothing measured\n"
  const baseWall = median(base.wall)
  const baseCpu = base.cpuMs / cfg.reps
  const supervisorctl = measured.find((m) => m.command.label === "supervisorctl status")
  const rows = measured.map((m) => {
    const wall = median(m.wall)
    const cpu = m.cpuMs / cfg.reps
    const targets: string[] = []
    if (m.command.isinit === true) targets.push(`≤ ×2 node: ${wall <= 2 * baseWall ? "yes" : "**no**"}`)
    if (m.command.label === "isinit status" && supervisorctl !== undefined) targets.push(`< supervisorctl status: ${wall < median(supervisorctl.wall) ? "yes" : "**no**"}`)
    return `| ${m.command.label} | ${fmt(Math.min(...m.wall))} | ${fmt(wall)} | ${x(wall, baseWall)} | ${fmt(cpu)} | ${x(cpu, baseCpu)} | ${targets.join("; ") || "–"} |`
  })
  const cpu = cpus()[0]?.model ?? "unknown CPU"
  return [
    `## isinit's client against node -e 0, supervisorctl and sv (${started.toISOString().slice(0, 16).replace("T", " ")} UTC)`,
    "",
    `- ${cpus().length} × ${cpu}, Linux ${release()}, Node ${process.version}; load average at start ${load.map((l) => l.toFixed(2)).join(" ")}`,
    `- ${cfg.reps} calls of each command in rotating rounds after 3 warm-up calls; ${cfg.programs} \`sleep\` programs per supervisor`,
    ...skipped.map((s) => `- skipped ${s}`),
    "",
    "| command | min ms | median ms | median ÷ node -e 0 | CPU ms (mean) | CPU ÷ node -e 0 | target met |",
    "|---|---:|---:|---:|---:|---:|---|",
    ...rows,
    "",
  ].join("\n")
}

const main = async (): Promise<void> => {
  const started = new Date()
  const load = loadavg()
  progress("starting the supervisors")
  const { sessions, dirs, skipped } = await openAll()
  try {
    const commands = commandsFor(dirs)
    await untilReady(commands)
    progress(`timing ${commands.length} commands, ${cfg.reps} rounds`)
    const report = render(measure(commands), skipped, started, load)
    process.stdout.write(report)
    if (cfg.out !== undefined) writeFileSync(cfg.out, report)
  } finally {
    for (const session of sessions) await session.close()
  }
}

await main()
