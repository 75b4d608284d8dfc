/**
 * A `ready=tcp` bring-up (issue 11): N servers (socat listening on a port each, `BENCH_N`, 100)
 * in one group, each with `ready=tcp:127.0.0.1:PORT`, so each is a barrier of the group's
 * transition. Measured: the time from the tell until the group is `run` (every server accepts).
 * Beside it, in the same run: the same N entries without `ready` (isinitd forks them all at once;
 * the bench then polls every port every 5 ms until all accept: how fast the servers themselves
 * come up, in parallel), and a hand-written serial loop (start one server, poll its port every
 * 5 ms, start the next: the floor of any one-at-a-time bring-up). systemd (`Type=notify` with
 * ordering) is not installable here; supervisord, runit and s6 have no readiness barrier for a TCP
 * port. Run `npm run build && npx tsx bench/ready.ts` (the BUILT daemon). Knobs: BENCH_N (100),
 * BENCH_REPS (3), BENCH_OUT (also write the Markdown there).
 */
import type { ChildProcess } from "node:child_process"
import { execFileSync, spawn } from "node:child_process"
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import type { AddressInfo } from "node:net"
import { connect, createServer } from "node:net"
import { cpus, tmpdir } from "node:os"
import { join } from "node:path"
import { askDaemon, isinitdBin, isinitdFiles, runMarker, runMarkerName, shebangFlags } from "./lib/peers.ts"
import { cleanUpOnExit, killAllWithEnv } from "./lib/proc.ts"
import { envInt } from "./lib/env.ts"

const n = envInt("BENCH_N", 100)
const reps = envInt("BENCH_REPS", 3)
const markerValue = runMarker.slice(runMarkerName.length + 1)
const env = { ...process.env, [runMarkerName]: markerValue }
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

const freePorts = async (count: number): Promise<number[]> => {
  const servers = await Promise.all(
    Array.from({ length: count }, () => new Promise<ReturnType<typeof createServer>>((resolve) => {
      const server = createServer()
      server.listen(0, "127.0.0.1", () => resolve(server))
    })),
  )
  const ports = servers.map((s) => (s.address() as AddressInfo).port)
  await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))))
  return ports
}

const serverCommand = (port: number): string => `socat TCP-LISTEN:${port},bind=127.0.0.1,reuseaddr,fork /dev/null`

const accepts = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const socket = connect({ host: "127.0.0.1", port })
    socket.once("connect", () => {
      socket.destroy()
      resolve(true)
    })
    socket.once("error", () => resolve(false))
  })

const untilAccepts = async (ports: readonly number[]): Promise<void> => {
  let waiting = [...ports]
  while (waiting.length > 0) {
    const results = await Promise.all(waiting.map(accepts))
    waiting = waiting.filter((_, i) => results[i] !== true)
    if (waiting.length > 0) await sleep(5)
  }
}

/** isinitd on a tab of N socat servers, with or without `ready`; ms from the tell to `run`, and to every port accepting. */
const isinitdRun = async (withReady: "ready" | "plain"): Promise<{ readonly runMs: number; readonly acceptMs: number }> => {
  const dir = mkdtempSync(join(tmpdir(), "isinit-bench-ready-"))
  const { tab, socket, initstat } = isinitdFiles(dir)
  mkdirSync(join(dir, "run"), { recursive: true })
  const ports = await freePorts(n)
  const lines = ports.flatMap((port, i) => [`b:s${i}:run,:respawn:${serverCommand(port)}`, ...(withReady === "ready" ? [`:::option:s${i}:ready=tcp:127.0.0.1:${port}`] : [])])
  writeFileSync(tab, `${lines.join("\n")}\n`)
  const daemon = spawn(process.execPath, [...shebangFlags(), isinitdBin, "-c", tab, "-s", socket, "--initstat", initstat], { env, stdio: "ignore" })
  try {
    while (!existsSync(socket) || (await askDaemon(socket, { op: "ping" }, 5_000).catch(() => ({ ok: false })))["ok"] !== true) await sleep(20)
    const started = performance.now()
    const answer = await askDaemon(socket, { op: "tell", group: "b", level: "run", wait: true, timeoutMs: 600_000 }, 600_000)
    const runMs = performance.now() - started
    if (answer["outcome"] !== "run") throw new Error(`tell ended ${JSON.stringify(answer)}`)
    await untilAccepts(ports)
    return { runMs, acceptMs: performance.now() - started }
  } finally {
    await askDaemon(socket, { op: "stopall" }, 10_000).catch(() => undefined)
    await stopped(daemon)
    rmSync(dir, { recursive: true, force: true })
  }
}

const stopped = async (child: ChildProcess): Promise<void> => {
  for (let i = 0; i < 200 && child.exitCode === null && child.signalCode === null; i++) await sleep(50)
  killAllWithEnv(runMarker)
}

/** The floor of a serial bring-up: start one server, poll its port every 5 ms, then the next. */
const serialByHand = async (): Promise<number> => {
  const ports = await freePorts(n)
  const children: ChildProcess[] = []
  const started = performance.now()
  for (const port of ports) {
    children.push(spawn("/bin/sh", ["-c", `exec ${serverCommand(port)}`], { env, stdio: "ignore" }))
    await untilAccepts([port])
  }
  const ms = performance.now() - started
  for (const child of children) child.kill("SIGKILL")
  killAllWithEnv(runMarker)
  return ms
}

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)] ?? Number.NaN
}

const main = async (): Promise<void> => {
  if (!existsSync(isinitdBin)) throw new Error(`${isinitdBin} is missing: run npm run build`)
  execFileSync("socat", ["-V"], { stdio: "ignore" })
  cleanUpOnExit(() => killAllWithEnv(runMarker))
  const ready: number[] = []
  const plainRun: number[] = []
  const plainAccept: number[] = []
  const serial: number[] = []
  for (let rep = 0; rep < reps; rep++) {
    ready.push((await isinitdRun("ready")).runMs)
    const plain = await isinitdRun("plain")
    plainRun.push(plain.runMs)
    plainAccept.push(plain.acceptMs)
    serial.push(await serialByHand())
  }
  const f = (ms: number): string => `${ms.toFixed(0)} ms`
  const out = [
    `## ready=tcp bring-up: ${n} socat servers, ${reps} reps (median), ${cpus().length} CPUs, Node ${process.version}`,
    "",
    "| bring-up | median | per server | samples (ms) |",
    "|---|---|---|---|",
    `| isinitd, \`ready=tcp\` on each (a barrier each): tell to \`run\` | ${f(median(ready))} | ${f(median(ready) / n)} | ${ready.map((x) => x.toFixed(0)).join(", ")} |`,
    `| by hand, serial: start one, poll its port every 5 ms, next | ${f(median(serial))} | ${f(median(serial) / n)} | ${serial.map((x) => x.toFixed(0)).join(", ")} |`,
    `| isinitd without \`ready\`: tell to \`run\` (forked, not ready) | ${f(median(plainRun))} | | ${plainRun.map((x) => x.toFixed(0)).join(", ")} |`,
    `| isinitd without \`ready\`: tell to every port accepting (parallel) | ${f(median(plainAccept))} | | ${plainAccept.map((x) => x.toFixed(0)).join(", ")} |`,
    "",
    `isinitd with readiness / serial by hand: ${(median(ready) / median(serial)).toFixed(2)}x`,
  ].join("\n")
  console.log(out)
  if (process.env["BENCH_OUT"] !== undefined) writeFileSync(process.env["BENCH_OUT"], `${out}\n`)
}

await main()
