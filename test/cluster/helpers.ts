/** Running the cluster store from async tests: open in a scope, watch into an array, close. */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Scope from "effect/Scope"
import type { StatusReport } from "../../src/core/report.ts"
import type { WatchEvent } from "../../src/cluster/desired.ts"
import type { ClusterOptions, ClusterStore, StatusInput } from "../../src/cluster/store.ts"
import { makeClusterStore } from "../../src/cluster/store.ts"
import { memoryLog } from "../../src/runtime/log.ts"
import { clientSecurity } from "./etcd-harness.ts"

export const run = <A, E>(effect: Effect.Effect<A, E>): Promise<A> => Effect.runPromise(effect)

/** The typed failure of an effect that must fail (rejects if it succeeds). */
export const failure = <A, E>(effect: Effect.Effect<A, E>): Promise<E> => Effect.runPromise(Effect.flip(effect))

export interface OpenStore {
  readonly store: ClusterStore
  readonly log: ReturnType<typeof memoryLog>
  readonly close: () => Promise<void>
}

export const openStore = async (url: string, options: Partial<ClusterOptions> = {}): Promise<OpenStore> => {
  const scope = await run(Scope.make())
  const log = memoryLog()
  const store = await run(
    makeClusterStore({ hosts: url, cluster: "t", callTimeoutMs: 3_000, backoff: { initialMs: 100, maxMs: 1_000 }, log, security: clientSecurity(), ...options }).pipe(
      Scope.provide(scope),
    ),
  )
  return { store, log, close: () => run(Scope.close(scope, Exit.void)) }
}

export interface Watching {
  readonly events: WatchEvent[]
  readonly stop: () => Promise<void>
}

export const watch = (store: ClusterStore, fromRevision: number): Watching => {
  const events: WatchEvent[] = []
  const fiber = Effect.runFork(store.watchDesired(fromRevision, (event) => Effect.sync(() => void events.push(event))))
  return { events, stop: () => run(Fiber.interrupt(fiber)) }
}

export const report = (groups: readonly { readonly group: string; readonly level: string; readonly state: "run" | "start" | "fail" }[]): StatusReport => ({
  lifecycle: "running",
  groups: groups.map((g) => ({ group: g.group, state: g.state, level: g.level, seq: 1, entries: [] })),
})

export const statusInput = (level: string): StatusInput => ({
  configSha256: null,
  configSeq: null,
  desired: { web: { level, revision: 1, source: "cluster" } },
  report: report([{ group: "web", level, state: "run" }]),
})

export const inittab = (lines: readonly string[]): string => `${lines.join("\n")}\n`

export const goodConfig = inittab([
  "web:web-server:3,:respawn:sleep 3600",
  "web:web-check:3,:test:true",
  "db:db-server:2,3:respawn:sleep 3600",
])
