/**
 * `isinitd --metrics ADDR` and `--http ADDR`, put together: the `OperationsPort` the daemon starts
 * once it serves (observe.ts). The composition root imports this module only when one of the
 * flags is given, and this module imports the metrics and the page only when theirs is: without
 * the flags, none of it is loaded and nothing runs.
 *
 * One server when both flags name the same address (`/metrics`, `/` and `/events` side by side),
 * else one per address: Prometheus may scrape on an address the page is not on.
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type { LogService } from "../log.ts"
import type { ListenAddress } from "./address.ts"
import { sameAddress } from "./address.ts"
import type { Route } from "./http.ts"
import { serveHttp } from "./http.ts"
import type { DaemonView, OperationsPort } from "./observe.ts"
import type { ClusterReader } from "./statusPage.ts"

export interface OperationsOptions {
  readonly metrics: ListenAddress | undefined
  readonly http: ListenAddress | undefined
  readonly log: LogService
  /** Cluster mode with --http: reads the node × group table from etcd (cluster/table.ts). */
  readonly clusterReader?: ClusterReader | undefined
}

const metricsRoutes = (view: DaemonView): Effect.Effect<ReadonlyMap<string, Route>> =>
  Effect.map(
    Effect.promise(() => import("./metrics.ts")),
    ({ metricsRoute }) => new Map([["/metrics", metricsRoute(view)]]),
  )

const pageRoutes = (view: DaemonView, reader: ClusterReader | undefined): Effect.Effect<ReadonlyMap<string, Route>, never, Scope.Scope> =>
  Effect.flatMap(
    Effect.promise(() => import("./statusPage.ts")),
    ({ makeStatusPage }) => Effect.map(makeStatusPage(view, reader), (page) => page.routes),
  )

/** The port the composition root hands the daemon. */
export const operationsPort = (options: OperationsOptions): OperationsPort => ({
  start: (view) =>
    Effect.gen(function* () {
      const { log, metrics, http } = options
      // Each served thing with its address, or nothing when its flag is not given.
      const forMetrics = metrics === undefined ? undefined : { address: metrics, routes: yield* metricsRoutes(view) }
      const forPage = http === undefined ? undefined : { address: http, routes: yield* pageRoutes(view, options.clusterReader) }
      if (forMetrics !== undefined && forPage !== undefined && sameAddress(forMetrics.address, forPage.address)) {
        yield* serveHttp({ address: forMetrics.address, routes: new Map([...forMetrics.routes, ...forPage.routes]), log, what: "/metrics and the status page" })
        return
      }
      if (forMetrics !== undefined) yield* serveHttp({ ...forMetrics, log, what: "/metrics" })
      if (forPage !== undefined) yield* serveHttp({ ...forPage, log, what: "the status page" })
    }),
})
