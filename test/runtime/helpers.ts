import { execFileSync } from "node:child_process"
import { readFileSync } from "node:fs"
import { join, resolve } from "node:path"
import type { ProcessReport, ProcessTable, ProcessesOptions } from "../../src/runtime/processes.ts"
import { makeProcessTable } from "../../src/runtime/processes.ts"
import { livePgids } from "../../src/runtime/procfs.ts"

/** Poll until `check` returns a value other than undefined/false, or fail after `timeoutMs`. */
export const until = async <A>(what: string, check: () => A | undefined | false | Promise<A | undefined | false>, timeoutMs = 20_000): Promise<A> => {
  const deadline = Date.now() + timeoutMs
  let delay = 10
  for (;;) {
    const value = await check()
    if (value !== undefined && value !== false) return value
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await sleep(delay)
    delay = Math.min(200, delay * 2)
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

export interface ProcStat {
  readonly pid: number
  readonly comm: string
  readonly state: string
  readonly ppid: number
  readonly pgrp: number
  readonly session: number
}

export const procStat = (pid: number): ProcStat | undefined => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "latin1")
    const close = stat.lastIndexOf(")")
    const fields = stat.slice(close + 2).split(" ")
    return {
      pid,
      comm: stat.slice(stat.indexOf("(") + 1, close),
      state: fields[0] ?? "?",
      ppid: Number(fields[1]),
      pgrp: Number(fields[2]),
      session: Number(fields[3]),
    }
  } catch {
    return undefined
  }
}

export const cmdline = (pid: number): readonly string[] | undefined => {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "latin1").split("\0").slice(0, -1)
  } catch {
    return undefined
  }
}

export const groupAlive = (pgid: number): boolean => livePgids().has(pgid)

/** SIGKILL whole groups; for cleanup after tests, whatever state they are in. */
export const killGroups = (pgids: Iterable<number>): void => {
  for (const pgid of pgids) {
    try {
      process.kill(-pgid, "SIGKILL")
    } catch {
      // gone already
    }
  }
}

/**
 * Process tables for one test file. Each records its reports; `cleanup` (for afterEach) stops
 * every table and SIGKILLs every process group they started or the test registered in `pgids`.
 */
export const processTableLab = () => {
  const pgids = new Set<number>()
  let tables: ProcessTable[] = []
  const cleanup = (): void => {
    killGroups(pgids)
    pgids.clear()
    for (const table of tables) table.stop()
    tables = []
  }
  const make = (options: ProcessesOptions = {}) => {
    const reports: ProcessReport[] = []
    const table = makeProcessTable((r) => {
      reports.push(r)
      if (r._tag === "Started") pgids.add(r.pid)
    }, options)
    tables.push(table)
    const started = (tag: string) =>
      until(`${tag} started`, () => {
        const r = reports.find((x) => x._tag === "Started" && x.tag === tag)
        return r?._tag === "Started" ? r.pid : undefined
      })
    const exited = (tag: string, timeoutMs?: number) =>
      until(`${tag} reported gone`, () => reports.find((x) => x._tag === "ChildExit" && x.tag === tag), timeoutMs)
    return { reports, table, started, exited }
  }
  return { pgids, cleanup, make }
}

/**
 * Why a test cannot run isinit as nobody (uid 65534) here, or undefined when it can: it needs root
 * (to switch), setpriv, and a checkout nobody can read (a clone under `mktemp -d`, 0700, is not).
 */
const cannotRunAsNobody = (): string | undefined => {
  if (process.getuid?.() !== 0) return "needs root to run isinit as nobody"
  const checkout = resolve(import.meta.dirname, "../..")
  try {
    execFileSync("setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", "test", "-r", join(checkout, "node_modules", "tsx", "package.json")])
    return undefined
  } catch {
    return `nobody cannot read the checkout at ${checkout} (a parent directory is private), or setpriv is missing`
  }
}

/** Skips the running test, saying why, where it cannot run isinit as nobody (`cannotRunAsNobody`). */
export const skipUnlessNobodyCanRun = (ctx: { readonly skip: (note?: string) => never }): void => {
  const cannot = cannotRunAsNobody()
  if (cannot === undefined) return
  console.log(`skipped: ${cannot}`)
  ctx.skip(cannot)
}
