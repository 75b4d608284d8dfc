/**
 * Cluster mode latency: the time from a cluster-wide tell (the desired level written to etcd,
 * as `isinit --etcd URLS tell` does, from an open client) until every node has published the new
 * level as `run` with the tell's revision taken, seen through an etcd watch on the node statuses.
 * A local etcd and real `isinitd --etcd` daemons on this machine: 3 nodes, then 10.
 * Each tell switches group `web` between levels 1 and 2: one `sleep` stops, another starts.
 * Target (issue 5): median under 500 ms with three nodes. Run: `npx tsx bench/cluster.ts [ROUNDS]`.
 * Prints a Markdown table.
 */
import { readFileSync } from "node:fs"
import { performance } from "node:perf_hooks"
import { Etcd3 } from "etcd3"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import { decodeNodeStatus } from "../src/cluster/codecs.ts"
import { nodeStatusPrefix } from "../src/cluster/keys.ts"
import type { ClusterStore } from "../src/cluster/store.ts"
import { makeClusterStore } from "../src/cluster/store.ts"
import { eventually, startEtcd } from "../test/cluster/etcd-harness.ts"
import { makeLab } from "../test/cluster/nodes.ts"

const rounds = Number(process.argv[2] ?? 20)
const warmup = 3

const quantile = (xs: readonly number[], q: number): number => {
  const sorted = [...xs].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * q))] ?? Number.NaN
}

interface Seen {
  readonly level: string
  readonly state: string
  readonly revision: number
}

interface Result {
  readonly nodes: number
  readonly samples: readonly number[]
  readonly startMs: number
}

const measure = async (etcdUrl: string, count: number): Promise<Result> => {
  const cluster = `bench${count}`
  const lab = makeLab(etcdUrl, cluster)
  const scope = await Effect.runPromise(Scope.make())
  const raw = new Etcd3({ hosts: etcdUrl })
  try {
    const store: ClusterStore = await Effect.runPromise(makeClusterStore({ hosts: etcdUrl, cluster }).pipe(Scope.provide(scope)))
    const tab = lab.write("isinittab", "web:web-a:1:respawn:sleep 3600\nweb:web-b:2:respawn:sleep 3600\n")
    await Effect.runPromise(store.pushConfig(readFileSync(tab, "utf8")))
    const names = Array.from({ length: count }, (_, i) => `n${i + 1}`)
    const startedAt = performance.now()
    const nodes = names.map((name) => lab.node(name, { tab, leaseTtlSeconds: 10 }))
    await Promise.all(nodes.map((n) => n.start()))
    const startMs = performance.now() - startedAt

    // What each node last published, kept current by a watch.
    const seen = new Map<string, Seen>()
    let onUpdate: () => void = () => undefined
    const watcher = await raw.watch().prefix(nodeStatusPrefix(cluster)).create()
    watcher.on("put", (kv) => {
      const decoded = decodeNodeStatus(kv.value.toString("utf8"))
      if (decoded._tag === "Left") return
      const s = decoded.right
      const web = s.report.groups.find((g) => g.group === "web")
      seen.set(s.node, { level: web?.level ?? "", state: web?.state ?? "", revision: s.desired["web"]?.revision ?? 0 })
      onUpdate()
    })
    await eventually(`${count} live nodes`, async () => (await Effect.runPromise(store.liveNodes())).length === count, 60_000)

    const allAt = (level: string, revision: number): boolean =>
      names.every((n) => {
        const s = seen.get(n)
        return s !== undefined && s.level === level && s.state === "run" && s.revision >= revision
      })

    const samples: number[] = []
    for (let round = 0; round < warmup + rounds; round++) {
      const level = round % 2 === 0 ? "1" : "2"
      const t0 = performance.now()
      const done = new Promise<number>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`round ${round}: not every node reached ${level} within 30 s`)), 30_000)
        let revision = Number.POSITIVE_INFINITY
        onUpdate = () => {
          if (!allAt(level, revision)) return
          clearTimeout(timer)
          resolve(performance.now() - t0)
        }
        void Effect.runPromise(store.setDesired("web", level)).then((r) => {
          revision = r.revision
          onUpdate()
        }, reject)
      })
      const ms = await done
      if (round >= warmup) samples.push(ms)
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
    await watcher.cancel()
    return { nodes: count, samples, startMs }
  } finally {
    raw.close()
    await Effect.runPromise(Scope.close(scope, Exit.void))
    await lab.cleanup()
  }
}

const main = async (): Promise<void> => {
  const etcd = await startEtcd({ name: "isinit-bench" })
  try {
    const results: Result[] = []
    for (const count of [3, 10]) {
      process.stderr.write(`measuring ${count} nodes (${rounds} tells after ${warmup} warm-up)...\n`)
      results.push(await measure(etcd.url, count))
    }
    const base = quantile(results[0]?.samples ?? [], 0.5)
    const f = (ms: number): string => ms.toFixed(1)
    const lines = [
      "| nodes | tells | median ms | p90 ms | min ms | max ms | median vs 3 nodes | daemons up in |",
      "|---:|---:|---:|---:|---:|---:|---:|---:|",
      ...results.map((r) => {
        const median = quantile(r.samples, 0.5)
        return `| ${r.nodes} | ${r.samples.length} | ${f(median)} | ${f(quantile(r.samples, 0.9))} | ${f(Math.min(...r.samples))} | ${f(Math.max(...r.samples))} | ${(median / base).toFixed(2)}x | ${(r.startMs / 1000).toFixed(1)} s |`
      }),
    ]
    process.stdout.write(`\nCluster-wide tell until every node reports run (local etcd, real isinitd daemons; target: median under 500 ms with 3 nodes)\n\n${lines.join("\n")}\n`)
  } finally {
    await etcd.destroy()
  }
}

await main()
