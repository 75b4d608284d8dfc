/**
 * Runs the real isinitd (`node --import tsx src/cli/isinitd.ts`) in a temporary directory and
 * talks to it over its socket with a raw client. Every process the daemon starts inherits a
 * marker in its environment, so cleanup finds and kills them all, even if the daemon died.
 */
import type { ChildProcess, StdioNull, StdioPipe } from "node:child_process"
import { spawn } from "node:child_process"
import { randomUUID } from "node:crypto"
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs"
import * as net from "node:net"
import { tmpdir } from "node:os"
import { afterEach } from "vitest"
import { join, resolve } from "node:path"
import { until } from "./helpers.ts"

export const repoRoot = resolve(import.meta.dirname, "../..")
export const isinitdEntry = join(repoRoot, "src/cli/isinitd.ts")
export const isinitEntry = join(repoRoot, "src/cli/isinit.ts")
/** The TypeScript loader by its full URL: the client may run in any directory (`--import tsx` resolves from the working directory). */
const tsxLoader = import.meta.resolve("tsx")

/**
 * Pids of live (non-zombie) processes whose environment holds `marker`, or (with `orCommandLine`)
 * whose command line does: an auto-started isinitd gets a clean environment, but its command line
 * names the lab's files, and its children's ISINIT_INSTANCE names the lab's state file.
 */
export const markedPids = (marker: string, orCommandLine?: string): number[] => {
  const out: number[] = []
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue
    try {
      const environ = readFileSync(`/proc/${name}/environ`, "latin1")
      const named = orCommandLine !== undefined && (environ.includes(orCommandLine) || readFileSync(`/proc/${name}/cmdline`, "latin1").includes(orCommandLine))
      if (!environ.includes(marker) && !named) continue
      const stat = readFileSync(`/proc/${name}/stat`, "latin1")
      if (stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z")) continue
      out.push(Number(name))
    } catch {
      // gone, or not ours to read
    }
  }
  return out
}

/**
 * SIGKILLs every marked process and its group, again and again until none is left (bounded). Once
 * is not enough: a daemon still alive while its child is killed respawns it (pids wrap, so /proc's
 * order does not put the daemon first), and a fork in flight when /proc was read is missed.
 */
export const killMarked = async (marker: string, orCommandLine?: string): Promise<void> => {
  await until(
    "every marked process to be gone",
    () => {
      const left = markedPids(marker, orCommandLine)
      for (const pid of left) {
        for (const target of [-pid, pid]) {
          try {
            process.kill(target, "SIGKILL")
          } catch {
            // gone, or not a group leader
          }
        }
      }
      return left.length === 0
    },
    20_000,
  )
}

export interface Daemon {
  readonly dir: string
  readonly tab: string
  readonly socket: string
  readonly initstat: string
  readonly child: ChildProcess
  readonly marker: string
  /** Everything the daemon wrote to stderr so far. */
  readonly log: () => string
  readonly exited: () => Promise<number | null>
  readonly exitCode: () => number | null | undefined
}

export interface StartOptions {
  readonly args?: readonly string[]
  readonly waitReady?: boolean
  /** A command that execs the daemon, e.g. ["setpriv", "--reuid=65534", ...] (it must exec, keeping the pid). */
  readonly prefix?: readonly string[]
  /** Where the daemon's stderr goes; a pipe read by the test (`log()`) by default. */
  readonly stderr?: StdioNull | StdioPipe | number
  /** Node options after the TypeScript loader's, e.g. `--import` of a module loader hook (a seam). */
  readonly nodeArgs?: readonly string[]
}

export interface CliRun {
  readonly code: number | null
  readonly out: string
  readonly err: string
}

export interface CliOptions {
  readonly env?: NodeJS.ProcessEnv
  readonly cwd?: string
  readonly prefix?: readonly string[]
  readonly timeoutMs?: number
}

export interface Lab {
  readonly dir: string
  readonly path: (name: string) => string
  readonly writeTab: (text: string) => string
  readonly start: (options?: StartOptions) => Promise<Daemon>
  /** Runs `isinit -c TAB -s SOCKET ARGS...` (the lab's files), marked like the daemon. */
  readonly isinit: (args: readonly string[], options?: CliOptions) => Promise<CliRun>
  readonly socket: string
  readonly cleanup: () => Promise<void>
}

/** Runs the `isinit` client to its end and collects its output. */
export const runIsinit = (args: readonly string[], options: CliOptions = {}): Promise<CliRun> =>
  new Promise((resolveRun, reject) => {
    const [program, ...prefixArgs] = [...(options.prefix ?? []), process.execPath]
    const child = spawn(program ?? process.execPath, [...prefixArgs, "--import", tsxLoader, isinitEntry, ...args], {
      cwd: options.cwd ?? repoRoot,
      env: options.env ?? process.env,
      stdio: ["ignore", "pipe", "pipe"],
    })
    let out = ""
    let err = ""
    child.stdout.setEncoding("utf8").on("data", (c: string) => (out += c))
    child.stderr.setEncoding("utf8").on("data", (c: string) => (err += c))
    const timeoutMs = options.timeoutMs ?? 60_000
    const timer = setTimeout(() => {
      child.kill("SIGKILL")
      reject(new Error(`isinit ${args.join(" ")} did not finish within ${timeoutMs} ms; so far:\n${out}\n${err}`))
    }, timeoutMs)
    // Output may still be in the pipes when 'exit' fires: 'close' comes once they are drained.
    child.once("close", (code) => {
      clearTimeout(timer)
      resolveRun({ code, out, err })
    })
  })

export const makeLab = (): Lab => {
  const dir = mkdtempSync(join(tmpdir(), "isinitd-"))
  const marker = `ISINIT_TEST_MARK=${randomUUID()}`
  const daemons: Daemon[] = []
  const path = (name: string): string => join(dir, name)
  const tab = path("isinittab")
  const writeTab = (text: string): string => {
    writeFileSync(tab, text)
    return tab
  }

  const socket = path("run/init.s")
  const start = async (options: StartOptions = {}): Promise<Daemon> => {
    const initstat = path("run/initstat")
    const args = options.args ?? ["-c", tab, "-s", socket, "--initstat", initstat]
    const [key, value] = marker.split("=") as [string, string]
    const [program, ...prefixArgs] = [...(options.prefix ?? []), process.execPath]
    const child = spawn(program ?? process.execPath, [...prefixArgs, "--import", "tsx", ...(options.nodeArgs ?? []), isinitdEntry, ...args], {
      cwd: repoRoot,
      env: { ...process.env, [key]: value },
      stdio: ["ignore", "ignore", options.stderr ?? "pipe"],
    })
    let stderr = ""
    child.stderr?.setEncoding("utf8")
    child.stderr?.on("data", (chunk: string) => {
      stderr += chunk
    })
    let code: number | null | undefined
    const exited = new Promise<number | null>((resolveExit) => {
      child.once("exit", (c) => {
        code = c
        resolveExit(c)
      })
    })
    const daemon: Daemon = { dir, tab, socket, initstat, child, marker, log: () => stderr, exited: () => exited, exitCode: () => code }
    daemons.push(daemon)
    if (options.waitReady ?? true) {
      await until("the daemon to be ready", () => {
        if (code !== undefined) throw new Error(`isinitd exited with ${code} before it was ready:\n${stderr}`)
        return / ready /.test(stderr)
      }, 30_000)
    }
    return daemon
  }

  const cleanup = async (): Promise<void> => {
    for (const d of daemons) if (d.exitCode() === undefined) d.child.kill("SIGKILL")
    await killMarked(marker, dir)
    await Promise.all(daemons.map((d) => d.exited()))
    rmSync(dir, { recursive: true, force: true })
  }

  const isinit = (args: readonly string[], options: CliOptions = {}): Promise<CliRun> => {
    const [key, value] = marker.split("=") as [string, string]
    return runIsinit(["-c", tab, "-s", socket, ...args], { ...options, env: { ...(options.env ?? process.env), [key]: value } })
  }

  return { dir, path, writeTab, start, isinit, socket, cleanup }
}

/** A fresh lab per test (call at the top of a test file): each `fresh()` is cleaned up after its test. */
export const labPerTest = (): (() => Lab) => {
  let lab: Lab | undefined
  afterEach(async () => {
    await lab?.cleanup()
    lab = undefined
  })
  return () => (lab = makeLab())
}

/** Sends one request line, half-closes, and reads the whole answer (the server closes after it). */
export const ask = (socket: string, line: string, timeoutMs = 30_000): Promise<string> =>
  new Promise((resolveAnswer, reject) => {
    const s = net.createConnection({ path: socket, allowHalfOpen: true })
    let answer = ""
    const timer = setTimeout(() => {
      s.destroy()
      reject(new Error(`no answer to ${JSON.stringify(line)} within ${timeoutMs} ms`))
    }, timeoutMs)
    s.setEncoding("utf8")
    s.on("connect", () => s.end(line))
    s.on("data", (chunk: string) => {
      answer += chunk
    })
    s.on("end", () => {
      clearTimeout(timer)
      resolveAnswer(answer)
    })
    s.on("error", (e) => {
      clearTimeout(timer)
      reject(e)
    })
  })

/** The original client: writes the line and closes without reading. */
export const fireAndForget = (socket: string, line: string): Promise<void> =>
  new Promise((resolveSent, reject) => {
    const s = net.createConnection({ path: socket })
    s.on("connect", () => s.end(line, () => resolveSent()))
    s.on("error", reject)
  })

export const askJson = async (socket: string, request: object, timeoutMs?: number): Promise<Record<string, unknown>> => {
  const answer = await ask(socket, `${JSON.stringify(request)}\n`, timeoutMs)
  return JSON.parse(answer) as Record<string, unknown>
}

export interface EntryView {
  readonly tag: string
  readonly state: string
  readonly pid: number | null
  readonly restarts: number
  readonly jailedUntil: number | null
  readonly lastExit: string | null
}
export interface GroupView {
  readonly group: string
  readonly state: string
  readonly level: string
  readonly seq: number
  readonly entries: readonly EntryView[]
}

export const statusOf = async (socket: string): Promise<{ readonly lifecycle: string; readonly groups: readonly GroupView[] }> => {
  const answer = await askJson(socket, { op: "status" })
  if (answer["ok"] !== true) throw new Error(`status failed: ${JSON.stringify(answer)}`)
  return answer["report"] as { readonly lifecycle: string; readonly groups: readonly GroupView[] }
}

export const entryOf = async (socket: string, tag: string): Promise<EntryView | undefined> => {
  for (const g of (await statusOf(socket)).groups) for (const e of g.entries) if (e.tag === tag) return e
  return undefined
}

/** The pid of `tag` once it is running (and, if given, different from `not`). */
export const runningPid = (socket: string, tag: string, not?: number): Promise<number> =>
  until(`${tag} running${not === undefined ? "" : ` with a pid other than ${not}`}`, async () => {
    const e = await entryOf(socket, tag)
    return e?.state === "running" && e.pid !== null && e.pid !== not ? e.pid : undefined
  })

export const lines = (file: string): string[] => {
  try {
    return readFileSync(file, "utf8").split("\n").filter((l) => l !== "")
  } catch {
    return []
  }
}
