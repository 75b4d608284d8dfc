/**
 * Real `isinitd --etcd` processes as cluster nodes on this machine: each with its own name,
 * socket, status file and state, all in one temporary directory. Every process they start carries
 * a marker in its environment, so `cleanup` kills them all (daemons and children), even after a
 * failed test. Also runs `isinit` in-process with its output captured.
 */
import type { ChildProcess } from "node:child_process"
import { spawn } from "node:child_process"
import { randomUUID } from "node:crypto"
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join, resolve } from "node:path"
import { main } from "../../src/cli/isinit.ts"
import { killMarked } from "../runtime/daemonHarness.ts"
import { clientEnv, eventually } from "./etcd-harness.ts"

const repoRoot = resolve(import.meta.dirname, "../..")
const isinitdEntry = join(repoRoot, "src/cli/isinitd.ts")

export interface Node {
  readonly name: string
  readonly socket: string
  readonly log: () => string
  readonly child: () => ChildProcess
  /** Starts the daemon (again), and resolves once it logged that it is ready. */
  readonly start: () => Promise<void>
  readonly kill: (signal: NodeJS.Signals) => Promise<void>
  readonly running: () => boolean
}

export interface NodeOptions {
  readonly tab: string
  /** The etcd URLs this node uses (e.g. through a proxy the test can sever); the lab's by default. */
  readonly etcd?: string
  readonly leaseTtlSeconds?: number
  /** More isinitd arguments (e.g. credentials). */
  readonly args?: readonly string[]
  /** More environment (over the suite's TLS settings, clientEnv). */
  readonly env?: Record<string, string>
}

export interface Lab {
  readonly dir: string
  readonly path: (name: string) => string
  readonly write: (name: string, text: string) => string
  readonly node: (name: string, options: NodeOptions) => Node
  readonly cleanup: () => Promise<void>
}

export const makeLab = (etcdUrl: string, cluster: string): Lab => {
  const dir = mkdtempSync(join(tmpdir(), "isinit-cluster-"))
  const marker = `ISINIT_CLUSTER_TEST_MARK=${randomUUID()}`
  const [markKey, markValue] = marker.split("=") as [string, string]
  const path = (name: string): string => join(dir, name)
  const children = new Set<ChildProcess>()

  const node = (name: string, options: NodeOptions): Node => {
    const home = path(name)
    mkdirSync(home, { recursive: true })
    const socket = join(home, "init.s")
    let output = ""
    let current: ChildProcess | undefined
    let exited: Promise<void> = Promise.resolve()

    const start = async (): Promise<void> => {
      if (current !== undefined) throw new Error(`${name} is already running`)
      const args = [
        "--import", "tsx", isinitdEntry,
        "--etcd", options.etcd ?? etcdUrl, "--cluster", cluster, "--node", name,
        "--lease-ttl", String(options.leaseTtlSeconds ?? 2),
        "-c", options.tab, "-s", socket, "--initstat", join(home, "initstat"),
      ]
      const env = { ...process.env, ...clientEnv(), ...options.env, [markKey]: markValue }
      const child = spawn(process.execPath, [...args, ...(options.args ?? [])], { cwd: repoRoot, env, stdio: ["ignore", "ignore", "pipe"] })
      current = child
      children.add(child)
      const from = output.length
      child.stderr?.setEncoding("utf8").on("data", (chunk: string) => (output += chunk))
      exited = new Promise((resolveExit) =>
        child.once("exit", () => {
          if (current === child) current = undefined
          children.delete(child)
          resolveExit()
        }),
      )
      await eventually(`${name} ready`, () => {
        if (current !== child) throw new Error(`${name} exited before it was ready:\n${output.slice(from)}`)
        return / ready /.test(output.slice(from))
      }, 30_000)
    }

    const kill = async (signal: NodeJS.Signals): Promise<void> => {
      current?.kill(signal)
      await exited
    }

    return {
      name,
      socket,
      log: () => output,
      child: () => {
        if (current === undefined) throw new Error(`${name} is not running`)
        return current
      },
      start,
      kill,
      running: () => current !== undefined,
    }
  }

  const cleanup = async (): Promise<void> => {
    for (const child of children) child.kill("SIGKILL")
    await killMarked(marker)
    await eventually("every daemon reported gone", () => children.size === 0, 20_000)
    rmSync(dir, { recursive: true, force: true })
  }

  const write = (name: string, text: string): string => {
    writeFileSync(path(name), text)
    return path(name)
  }

  return { dir, path, write, node, cleanup }
}

export interface Run {
  readonly code: number
  readonly out: string
  readonly err: string
}

/** `isinit ARGS`, in this process; its environment holds the suite's TLS settings (clientEnv), and `env`. */
export const isinit = async (args: readonly string[], env: Record<string, string> = {}): Promise<Run> => {
  let out = ""
  let err = ""
  const code = await main(args, { out: (t) => void (out += t), err: (t) => void (err += t), env: { ...clientEnv(), ...env } })
  return { code, out, err }
}

/** Lines of a file, none if it does not exist. */
export const linesOf = (file: string): string[] => {
  try {
    return readFileSync(file, "utf8").split("\n").filter((l) => l !== "")
  } catch {
    return []
  }
}
