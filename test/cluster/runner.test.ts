/**
 * The node reducer's runner fails fast: a reducer that throws, or a shell that fails on an event,
 * ends it with a `ClusterBug` (logged), which the daemon turns into exit 70 as it does a bug of
 * its own loop; it never drops the event and goes on with a view of etcd out of step with etcd.
 */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import { describe, expect, it } from "vitest"
import { startNode } from "../../src/cluster/node/reduce.ts"
import type { Perform } from "../../src/cluster/shell/runner.ts"
import { makeRunner } from "../../src/cluster/shell/runner.ts"
import { initialStateWith } from "../../src/core/state.ts"
import type { LogLine } from "../../src/log.ts"
import { storedConfig } from "../../properties/node.ts"

const config = storedConfig("g:a:1:respawn:sleep 1\n", 1, 1)

const runWith = async (reduce: Parameters<typeof makeRunner>[0]["reduce"], perform: Perform) => {
  const lines: LogLine[] = []
  const [initial, startCommands] = startNode({ node: "n1", instance: "i", presenceTtlMs: 10_000, running: { _tag: "Etcd", config }, snapshot: undefined, core: initialStateWith(config.parsed.config), now: 0 })
  const exit = await Effect.runPromiseExit(
    Effect.flatMap(makeRunner({ initial, startCommands, now: () => 0, log: { line: (l) => void lines.push(l) }, ...(reduce === undefined ? {} : { reduce }) }), (runner) => {
      runner.offer((now) => ({ _tag: "Tick", now }))
      return runner.run(perform)
    }).pipe(Effect.timeout("5 seconds")),
  )
  return { exit, lines }
}

describe("the cluster node's runner", () => {
  it("ends with a ClusterBug, logged, when the node reducer throws", async () => {
    const { exit, lines } = await runWith(() => {
      throw new Error("a planted bug")
    }, () => Effect.succeed(undefined))
    expect(Exit.isFailure(exit) && JSON.stringify(exit.cause)).toMatch(/ClusterBug/)
    expect(lines.some((l) => l.what === "bug" && /the cluster node reducer threw on Tick: Error: a planted bug/.test(l.message ?? ""))).toBe(true)
  })

  it("ends with a ClusterBug when an answer carries a defect (an etcd operation that died in its own fiber)", async () => {
    const lines: LogLine[] = []
    const [initial, startCommands] = startNode({ node: "n1", instance: "i", presenceTtlMs: 10_000, running: { _tag: "Etcd", config }, snapshot: undefined, core: initialStateWith(config.parsed.config), now: 0 })
    const exit = await Effect.runPromiseExit(
      Effect.flatMap(makeRunner({ initial, startCommands, now: () => 0, log: { line: (l) => void lines.push(l) } }), (runner) => {
        runner.offer(() => {
          throw new Error("a defect in a watch")
        })
        return runner.run(() => Effect.succeed(undefined))
      }).pipe(Effect.timeout("5 seconds")),
    )
    expect(Exit.isFailure(exit) && JSON.stringify(exit.cause)).toMatch(/ClusterBug/)
    expect(lines.some((l) => l.what === "bug" && /a defect in a watch/.test(l.message ?? ""))).toBe(true)
  })

  it("ends with a ClusterBug when performing a command dies of a defect", async () => {
    const { exit, lines } = await runWith(undefined, () => Effect.die(new Error("a planted shell bug")))
    expect(Exit.isFailure(exit) && JSON.stringify(exit.cause)).toMatch(/ClusterBug/)
    expect(lines.some((l) => l.what === "bug" && /the cluster shell failed on (an event|its start commands): Error: a planted shell bug/.test(l.message ?? ""))).toBe(true)
  })
})
