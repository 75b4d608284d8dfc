/**
 * A throwaway etcd for tests: 127.0.0.1, free client and peer ports, a temporary data directory,
 * its own process group. `start` waits (bounded) until /health answers; `stop` ends it and may
 * be followed by `start` again on the same ports and data (the outage tests); `destroy` stops it
 * and removes the directory, and runs from afterAll even when a test failed.
 *
 * Without an etcd binary the suites skip with the reason, unless ISINIT_REQUIRE_ETCD is set (CI),
 * in which case they fail loudly.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process"
import { existsSync, mkdtempSync, rmSync } from "node:fs"
import { createServer } from "node:net"
import { tmpdir } from "node:os"
import { delimiter, join } from "node:path"

export type EtcdBinary =
  | { readonly _tag: "Found"; readonly path: string; readonly version: string }
  | { readonly _tag: "Missing"; readonly reason: string }

const onPath = (name: string): string | undefined =>
  (process.env["PATH"] ?? "")
    .split(delimiter)
    .filter((dir) => dir !== "")
    .map((dir) => join(dir, name))
    .find((candidate) => existsSync(candidate))

export const findEtcd = (): EtcdBinary => {
  const explicit = process.env["ISINIT_ETCD"]
  const path = explicit !== undefined && explicit !== "" ? explicit : onPath("etcd")
  if (path === undefined) return { _tag: "Missing", reason: "no etcd binary on PATH (install it with scripts/install-etcd.sh)" }
  const probe = spawnSync(path, ["--version"], { encoding: "utf8", timeout: 10_000 })
  if (probe.status !== 0) return { _tag: "Missing", reason: `${path} --version failed: ${probe.stderr || String(probe.error)}` }
  return { _tag: "Found", path, version: probe.stdout.split("\n")[0] ?? "" }
}

export const etcdRequired = (): boolean => {
  const flag = process.env["ISINIT_REQUIRE_ETCD"]
  return flag !== undefined && flag !== "" && flag !== "0"
}

/**
 * Whether the etcd suites should skip. When etcd is required but missing this throws, so the
 * test file fails instead of passing silently.
 */
export const skipWithoutEtcd = (): boolean => {
  const binary = findEtcd()
  if (binary._tag === "Found") return false
  if (etcdRequired()) throw new Error(`ISINIT_REQUIRE_ETCD is set but etcd is unusable: ${binary.reason}`)
  console.warn(`cluster tests skipped: ${binary.reason}; set ISINIT_REQUIRE_ETCD=1 to make this an error`)
  return true
}

const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      server.close(() => (port > 0 ? resolve(port) : reject(new Error("no free port"))))
    })
  })

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** Polls `check` until it returns true, up to `timeoutMs`; then throws with `what`. */
export const eventually = async (what: string, check: () => boolean | Promise<boolean>, timeoutMs = 20_000): Promise<void> => {
  const deadline = Date.now() + timeoutMs
  let lastError: unknown
  while (Date.now() < deadline) {
    try {
      if (await check()) return
    } catch (error) {
      lastError = error
    }
    await sleep(100)
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError instanceof Error ? `: ${lastError.message}` : ""}`)
}

export interface EtcdServer {
  /** `http://127.0.0.1:PORT`, for the client. */
  readonly url: string
  readonly dataDir: string
  readonly log: () => string
  readonly start: () => Promise<void>
  readonly stop: () => Promise<void>
  readonly destroy: () => Promise<void>
  readonly running: () => boolean
}

const healthy = async (url: string): Promise<boolean> => {
  try {
    const response = await fetch(`${url}/health`, { signal: AbortSignal.timeout(2_000) })
    const body = (await response.json()) as { readonly health?: unknown }
    return body.health === "true"
  } catch {
    return false
  }
}

const exited = (child: ChildProcess): Promise<void> =>
  child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : new Promise((resolve) => child.once("exit", () => resolve()))

const killGroup = (child: ChildProcess, signal: NodeJS.Signals): void => {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return
  try {
    process.kill(-child.pid, signal)
  } catch {
    // Already gone.
  }
}

/** Every etcd still running in this test process, killed at exit if a test forgot. */
const live = new Set<ChildProcess>()
process.once("exit", () => {
  for (const child of live) killGroup(child, "SIGKILL")
})

export const startEtcd = async (options: { readonly name?: string } = {}): Promise<EtcdServer> => {
  const binary = findEtcd()
  if (binary._tag === "Missing") throw new Error(binary.reason)
  const name = options.name ?? "isinit-test"
  const root = mkdtempSync(join(tmpdir(), "isinit-etcd-"))
  const dataDir = join(root, "data")
  const clientPort = await freePort()
  let peerPort = await freePort()
  while (peerPort === clientPort) peerPort = await freePort()
  const url = `http://127.0.0.1:${clientPort}`
  const peerUrl = `http://127.0.0.1:${peerPort}`
  const args = [
    "--name", name,
    "--data-dir", dataDir,
    "--listen-client-urls", url,
    "--advertise-client-urls", url,
    "--listen-peer-urls", peerUrl,
    "--initial-advertise-peer-urls", peerUrl,
    "--initial-cluster", `${name}=${peerUrl}`,
    "--initial-cluster-state", "new",
    "--initial-cluster-token", `isinit-${clientPort}`,
  ]
  let output = ""
  // Held in an array (at most one element): the running etcd, if any.
  const current: ChildProcess[] = []

  const start = async (): Promise<void> => {
    if (current.length > 0) throw new Error("etcd is already running")
    const spawned = spawn(binary.path, args, { detached: true, stdio: ["ignore", "pipe", "pipe"] })
    current.push(spawned)
    live.add(spawned)
    const collect = (chunk: Buffer): void => {
      output = (output + chunk.toString("utf8")).slice(-20_000)
    }
    spawned.stdout?.on("data", collect)
    spawned.stderr?.on("data", collect)
    spawned.once("exit", () => live.delete(spawned))
    const deadline = Date.now() + 30_000
    while (!(await healthy(url))) {
      if (spawned.exitCode !== null || spawned.signalCode !== null) {
        current.length = 0
        throw new Error(`etcd exited during start (${spawned.exitCode ?? spawned.signalCode}):\n${output}`)
      }
      if (Date.now() > deadline) {
        await stop()
        throw new Error(`etcd not healthy after 30 s:\n${output}`)
      }
      await sleep(100)
    }
  }

  const stop = async (): Promise<void> => {
    const running = current.pop()
    if (running === undefined) return
    killGroup(running, "SIGTERM")
    const grace = setTimeout(() => killGroup(running, "SIGKILL"), 10_000)
    await exited(running)
    clearTimeout(grace)
  }

  const destroy = async (): Promise<void> => {
    await stop()
    rmSync(root, { recursive: true, force: true })
  }

  try {
    await start()
  } catch (error) {
    await destroy()
    throw error
  }
  return { url, dataDir, log: () => output, start, stop, destroy, running: () => current.length > 0 }
}
