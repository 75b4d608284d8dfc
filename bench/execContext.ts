/**
 * What an entry's execution context costs per start (issue 11): the process table starts
 * `true` under each set of options, one at a time, start to reported exit, against runit's
 * `chpst` doing the same work (user, limits, env) in the same run, each run in rounds.
 * Run: `npx tsx bench/execContext.ts` (as root for the user rows; chpst from Debian's runit,
 * skipped when not installed). Knobs: BENCH_N (200 starts per row and round), BENCH_REPS (3).
 * Prints a Markdown table of medians.
 */
import { spawn, spawnSync } from "node:child_process"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { performance } from "node:perf_hooks"
import { parseInittab } from "../src/core/inittab.ts"
import type { EntryOptions } from "../src/core/options.ts"
import type { ProcessReport } from "../src/runtime/processes.ts"
import { makeProcessTable } from "../src/runtime/processes.ts"
import { envInt } from "./lib/env.ts"

const n = envInt("BENCH_N", 200)
const reps = envInt("BENCH_REPS", 3)
const isRoot = process.getuid?.() === 0
const hasChpst = spawnSync("chpst", ["-v"]).error === undefined

const dir = mkdtempSync(join(tmpdir(), "isinit-bench-exec-"))
const envFile = join(dir, "app.env")
writeFileSync(envFile, "A=1\nB=2\nC=3\n")

const optionsOf = (lines: readonly string[]): EntryOptions => {
  const parsed = parseInittab(["g:t:1:respawn:true", ...lines.map((l) => `:::option:t:${l}`)].join("\n"))
  if (parsed.problems.length > 0) throw new Error(parsed.problems.map((p) => p.message).join("; "))
  return parsed.config.byTag.get("t")?.options ?? {}
}

interface Row {
  readonly name: string
  readonly lines: readonly string[]
  readonly chpst?: readonly string[]
  readonly root?: true
}

const rows: readonly Row[] = [
  { name: "no options", lines: [], chpst: [] },
  { name: "cwd, env, env-file", lines: [`cwd=${dir}`, "env=X=1", `env-file=${envFile}`] },
  { name: "umask", lines: ["umask=027"] },
  { name: "nofile", lines: ["nofile=1024:4096"], chpst: ["-o", "1024"] },
  { name: "user (nobody)", lines: ["user=nobody"], chpst: ["-u", "nobody"], root: true },
  { name: "user, nofile, umask, env", lines: ["user=nobody", "nofile=1024", "umask=027", "env=X=1"], chpst: ["-u", "nobody", "-o", "1024"], root: true },
]

/** `count` starts of `true` with `options`, one after another: ms per start, start to reported exit. */
const isinitStarts = async (options: EntryOptions, count: number): Promise<number> => {
  let done: (() => void) | undefined
  const table = makeProcessTable((r: ProcessReport) => {
    if (r._tag === "ChildExit") done?.()
  })
  const began = performance.now()
  for (let run = 1; run <= count; run++) {
    const exited = new Promise<void>((resolve) => (done = resolve))
    table.spawn({ tag: "t", run, command: "true", options })
    await exited
  }
  table.stop()
  return (performance.now() - began) / count
}

/** The same through chpst (runit's context setter), spawned by Node the same way. */
const chpstStarts = async (args: readonly string[], count: number): Promise<number> => {
  const began = performance.now()
  for (let i = 0; i < count; i++) {
    await new Promise<void>((resolve) => spawn("chpst", [...args, "true"], { detached: true, stdio: "ignore" }).once("exit", () => resolve()))
  }
  return (performance.now() - began) / count
}

const median = (xs: readonly number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN

const main = async (): Promise<void> => {
  // The process table unrefs its children: something must keep Node running while they live.
  const keepAlive = setInterval(() => undefined, 60_000)
  const out: string[] = ["| options | isinit ms/start | chpst ms/start | isinit ÷ chpst |", "|---|---:|---:|---:|"]
  for (const row of rows) {
    if (row.root === true && !isRoot) continue
    const options = optionsOf(row.lines)
    const ours: number[] = []
    const theirs: number[] = []
    for (let r = 0; r < reps; r++) {
      ours.push(await isinitStarts(options, n))
      if (row.chpst !== undefined && hasChpst) theirs.push(await chpstStarts(row.chpst, n))
    }
    const a = median(ours)
    const b = theirs.length > 0 ? median(theirs) : undefined
    out.push(`| ${row.name} | ${a.toFixed(2)} | ${b === undefined ? "" : b.toFixed(2)} | ${b === undefined ? "" : `×${(a / b).toFixed(2)}`} |`)
  }
  clearInterval(keepAlive)
  console.log(`${n} starts of \`true\` per row and round, ${reps} rounds, medians\n\n${out.join("\n")}`)
}

main()
  .catch((error: unknown) => {
    console.error(error)
    process.exitCode = 1
  })
  .finally(() => rmSync(dir, { recursive: true, force: true }))
