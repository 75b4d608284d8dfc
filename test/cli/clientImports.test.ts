/**
 * What `isinit` loads before it runs a command: the static import graph of its entry, and of the
 * module of the daemon commands (status, tell, ...), read from the sources. `isinit` is called from
 * scripts, health checks and deploy loops, and pays for every module on every call
 * (bench/client.ts): `--version` loads nothing but the argument parsing, and the daemon commands
 * load neither effect, nor the daemon's runtime, nor cluster mode, nor the simulator, nor the
 * core's state (effect's HashMap). Type-only imports cost nothing and are skipped; dynamic
 * `import()`s are where a command loads more, on demand. io-ts comes through `require`
 * (src/lib/ioTs.ts), outside the ES module graph.
 */
import { readFileSync } from "node:fs"
import { dirname, join, relative, resolve } from "node:path"
import { describe, expect, it } from "vitest"

const root = resolve(import.meta.dirname, "../..")

/** Static value imports and re-exports of a module: `import x from`, `import { a } from`, `export * from`, `import "x"`. */
const importsOf = (file: string): string[] => {
  const text = readFileSync(file, "utf8")
  const found: string[] = []
  for (const m of text.matchAll(/^(?:import|export)\s+(?!type\b)(?:[^;"]*?\s+from\s+)?"([^"]+)"/gm)) if (m[1] !== undefined) found.push(m[1])
  return found
}

/** Every module reachable from `entry` by static imports: repository files relative to the root, packages by name. */
const graphOf = (entry: string): ReadonlySet<string> => {
  const seen = new Set<string>()
  const visit = (file: string): void => {
    const name = relative(root, file)
    if (seen.has(name)) return
    seen.add(name)
    for (const spec of importsOf(file)) {
      if (spec.startsWith("node:")) continue
      if (spec.startsWith(".")) visit(join(dirname(file), spec))
      else seen.add(spec)
    }
  }
  visit(join(root, entry))
  return seen
}

describe("the client's imports", () => {
  it("--version and --help load the argument parsing only", () => {
    expect([...graphOf("src/cli/isinit.ts")].sort()).toEqual(
      ["src/cli/args.ts", "src/cli/invocation.ts", "src/cli/isinit.ts", "src/codec/limits.ts", "src/paths.ts"].sort(),
    )
  })

  it("status, tell and the other daemon commands load no effect, daemon runtime, cluster mode, simulator or core state", () => {
    const graph = [...graphOf("src/cli/local.ts")]
    expect(graph.filter((m) => !m.startsWith("src/"))).toEqual([])
    const allowedRuntime = new Set(["src/runtime/client.ts", "src/runtime/errors.ts", "src/runtime/procfs.ts", "src/runtime/socketPath.ts", "src/runtime/strictModes.ts"])
    expect(graph.filter((m) => m.startsWith("src/runtime/") && !allowedRuntime.has(m))).toEqual([])
    expect(graph.filter((m) => /^src\/(cluster|sim)\//.test(m))).toEqual([])
    expect(graph.filter((m) => /^src\/core\/(state|reducer|snapshot|report|status|plan|timers)\.ts$/.test(m))).toEqual([])
  })
})

describe("the daemon's imports", () => {
  it("without --metrics and --http, isinitd loads none of the metrics, the HTTP server or the page", () => {
    // isinitd loads the daemon's runtime (daemon.ts) with a dynamic import after its flags; what
    // --metrics and --http need comes through runtime/ops.ts, imported only when they are given.
    const graph = new Set([...graphOf("src/cli/isinitd.ts"), ...graphOf("src/runtime/daemon.ts")])
    const onDemand = ["src/runtime/ops.ts", "src/runtime/metrics.ts", "src/runtime/exposition.ts", "src/runtime/http.ts", "src/runtime/address.ts", "src/runtime/statusPage.ts", "src/web/page.ts", "src/cluster/table.ts"]
    expect(onDemand.filter((m) => graph.has(m))).toEqual([])
    expect(graph.has("src/runtime/daemon.ts")).toBe(true)
    // Node's own modules are not followed (node:http is loaded anyway, by the http probes); prom-client is.
    expect([...graph].filter((m) => m === "prom-client")).toEqual([])
  })
})
