/**
 * A bug in cluster mode stops the daemon like a bug of its own loop: `ClusterPort.start` gives back
 * what fails when the node's runner dies of one (test/cluster/runner.test.ts), and the daemon ends
 * with that `ClusterBug` (cli/isinitd.ts turns it into exit 70), its processes left running for the
 * next isinitd to adopt. Here the port is a fake whose node fails at once; the daemon is the real one.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import { afterEach, describe, expect, it } from "vitest"
import { parseInittab } from "../../src/core/inittab.ts"
import { daemon } from "../../src/runtime/daemon.ts"
import type { ClusterPort } from "../../src/runtime/ports.ts"
import { ClusterBug } from "../../src/runtime/ports.ts"

const dirs: string[] = []
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true })
})

const tab = "g:a:1:respawn:sleep 300\n"

const failingPort = (): ClusterPort => ({
  initialConfig: parseInittab(tab),
  currentConfig: () => Effect.succeed(parseInittab(tab)),
  start: () => Effect.succeed(Effect.fail(new ClusterBug({ what: "the cluster node reducer threw on Tick", error: new Error("a planted bug") }))),
  recordLocalTell: () => Effect.succeed("applied here"),
  info: () => ({ cluster: "c", node: "n1", etcd: "http://127.0.0.1:1", connected: false, since: new Date(0).toISOString(), configSource: "file", configSeq: null, configSha256: null, pendingOverrides: [] }),
  failoverEnvironment: () => ({}),
  stop: () => Effect.void,
})

describe("a bug in cluster mode", () => {
  it("ends the daemon with the ClusterBug (exit 70 in isinitd), not a hang or a clean exit", async () => {
    const dir = mkdtempSync(join(tmpdir(), "isinit-clusterbug-"))
    dirs.push(dir)
    writeFileSync(join(dir, "isinittab"), tab)
    const lines: string[] = []
    const run = daemon({
      configPath: join(dir, "isinittab"),
      socketPath: join(dir, "init.s"),
      initstatPath: join(dir, "initstat"),
      statePath: join(dir, "isinitd.state"),
      output: "ignore",
      log: { line: (l) => void lines.push(`${l.what} ${l.message ?? ""}`) },
      cluster: failingPort(),
    })
    const exit = await Effect.runPromiseExit(Effect.scoped(run).pipe(Effect.timeout("20 seconds")))
    expect(Exit.isFailure(exit) && JSON.stringify(exit.cause)).toMatch(/"_tag":"ClusterBug"/)
  }, 30_000)
})
