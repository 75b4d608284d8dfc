/**
 * What isinitd's imports cost in memory: fresh node processes import growing sets of modules
 * (each set includes the previous ones), then settle, force two full GCs and read /proc/self.
 * The forced GC removes the garbage of loading, so the differences are what each set keeps.
 */
import { spawn } from "node:child_process"
import { repoRoot } from "./peers.ts"

export interface ImportCost {
  readonly label: string
  readonly rssMb: number
  readonly anonMb: number
  readonly fileMb: number
  readonly heapUsedMb: number
}

const builtins = ["node:child_process", "node:net", "node:fs", "node:fs/promises", "node:path", "node:util", "node:os"]
const effectModules = ["effect/Effect", "effect/Queue", "effect/Ref", "effect/Exit", "effect/Context", "effect/Layer", "effect/HashMap", "effect/Data", "effect/Cause"]
const codecModules = ["fp-ts/lib/Either.js", "fp-ts/lib/function.js", "io-ts", "io-ts/lib/PathReporter.js"]
const coreModules = ["reducer", "inittab", "status", "report", "plan"].map((m) => `./dist/core/${m}.js`)
const daemonModules = ["./dist/runtime/daemon.js", "./dist/runtime/log.js"]

/** Cumulative sets, in the order isinitd's layers depend on each other. */
export const importSets: ReadonlyArray<{ readonly label: string; readonly modules: readonly string[] }> = [
  { label: "bare node", modules: [] },
  { label: "+ node built-ins (child_process, net, fs, ...)", modules: builtins },
  { label: "+ effect modules the runtime uses", modules: [...builtins, ...effectModules] },
  { label: "+ io-ts and fp-ts (socket protocol codec)", modules: [...builtins, ...effectModules, ...codecModules] },
  { label: "+ the pure core (reducer, parser, status)", modules: [...builtins, ...effectModules, ...codecModules, ...coreModules] },
  { label: "+ the runtime and daemon wiring (all of isinitd)", modules: [...builtins, ...effectModules, ...codecModules, ...coreModules, ...daemonModules] },
]

const probe = `
const modules = JSON.parse(process.argv[1])
for (const m of modules) await import(m)
const settle = () => new Promise((r) => setTimeout(r, 400))
await settle(); globalThis.gc(); await settle(); globalThis.gc(); await settle()
const status = (await import("node:fs")).readFileSync("/proc/self/status", "utf8")
const kb = (k) => Number(new RegExp("^" + k + ":\\\\s+(\\\\d+)", "m").exec(status)[1])
console.log(JSON.stringify({ rss: kb("VmRSS"), anon: kb("RssAnon"), file: kb("RssFile"), heapUsed: process.memoryUsage().heapUsed }))
`

const measureOnce = (modules: readonly string[], flags: readonly string[]): Promise<{ rss: number; anon: number; file: number; heapUsed: number }> =>
  new Promise((resolveCost, reject) => {
    const child = spawn(process.execPath, [...flags, "--expose-gc", "--input-type=module", "-e", probe, JSON.stringify(modules)], {
      cwd: repoRoot,
      stdio: ["ignore", "pipe", "pipe"],
    })
    let out = ""
    let err = ""
    child.stdout.on("data", (c: Buffer) => (out += c.toString()))
    child.stderr.on("data", (c: Buffer) => (err += c.toString()))
    child.once("exit", (code) => {
      if (code !== 0) return reject(new Error(`import probe failed (${code}): ${err.slice(0, 500)}`))
      resolveCost(JSON.parse(out) as { rss: number; anon: number; file: number; heapUsed: number })
    })
  })

const median = (xs: readonly number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN

/** Median of `samples` fresh processes per set; sets are measured one after another. */
export const measureImports = async (flags: readonly string[], samples = 3): Promise<ImportCost[]> => {
  const out: ImportCost[] = []
  for (const set of importSets) {
    const runs = await Promise.all(Array.from({ length: samples }, () => measureOnce(set.modules, flags)))
    out.push({
      label: set.label,
      rssMb: median(runs.map((r) => r.rss)) / 1024,
      anonMb: median(runs.map((r) => r.anon)) / 1024,
      fileMb: median(runs.map((r) => r.file)) / 1024,
      heapUsedMb: median(runs.map((r) => r.heapUsed)) / 2 ** 20,
    })
  }
  return out
}
