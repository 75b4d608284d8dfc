/**
 * The cluster's node × group table for the status page of a daemon in cluster mode
 * (`isinitd --etcd URLS --http ADDR`): the same rows as `isinit --etcd status` (view.ts's
 * `clusterRows`: lagging, drift), plus the holder of each failover group (the node that runs it at
 * its failover level, from the nodes' published reports), read from etcd when the page asks
 * (at most every 5 s, statusPage.ts).
 *
 * Through a store of its own, opened with the daemon's settings and used only to read (it never
 * grants a lease: presence is the agent's): one more etcd connection per daemon with --http,
 * rather than a change to the agent, whose store the failover wiring is replacing. Once that is
 * merged, this reader can take the agent's store instead (the lead's follow-up).
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type { Failover } from "../core/failover.ts"
import type { ClusterCell, ClusterTable, ClusterView } from "../web/page.ts"
import type { Row } from "./view.ts"
import { clusterRows } from "./view.ts"
import type { ClusterOptions } from "./store.ts"
import { makeClusterStore } from "./store.ts"

const holderOf = (failover: Failover | undefined, group: string, state: string, level: string): boolean => {
  const declared = failover?.groups.get(group)
  return declared !== undefined && declared.level === level && (state === "start" || state === "run" || state === "fail")
}

/** view.ts's rows as the page shows them. */
export const tableOf = (cluster: string, rows: readonly Row[], missing: readonly string[], configSeq: number | null, failover: Failover | undefined): ClusterTable => ({
  cluster,
  groups: [...new Set(rows.flatMap((r) => [...r.cells.keys()]))].sort(),
  rows: rows.map((r) => ({
    node: r.node,
    drift: r.drift,
    cells: new Map(
      [...r.cells].map(([group, c]): [string, ClusterCell] => [
        group,
        { state: c.state, level: c.level, wanted: c.wanted?.level, lagging: c.lagging, holder: holderOf(failover, group, c.state, c.level) },
      ]),
    ),
  })),
  missing,
  configSeq,
})

/** A reader of the table for the life of the scope; a failed read is the view's `Unreadable`, never an error. */
export const makeClusterTableReader = (options: ClusterOptions): Effect.Effect<() => Effect.Effect<ClusterView>, string, Scope.Scope> =>
  Effect.map(
    Effect.mapError(makeClusterStore({ ...options, callTimeoutMs: options.callTimeoutMs ?? 2_000 }), (e) => `--cluster: ${e.reason}`),
    (store) => () =>
      Effect.match(
        Effect.gen(function* () {
          const { obeyed } = yield* store.readDesired()
          const nodes = yield* store.nodes()
          const config = obeyed.config
          return tableOf(store.cluster, clusterRows(obeyed, nodes.live), nodes.missing.map((m) => m.node), config?.value.seq ?? null, config?.parsed.config.failover)
        }),
        {
          onFailure: (e): ClusterView => ({ _tag: "Unreadable", reason: e.message }),
          onSuccess: (table): ClusterView => ({ _tag: "Table", table }),
        },
      ),
  )
