/**
 * `isinitd --http ADDR`: the status page's routes. `/` is the page (web/page.ts), whole without
 * JavaScript; `/events` is its live stream (server-sent events): `state` (the groups, re-rendered
 * at most every 100 ms while the state changes), `notice` (each event as it happens), and in
 * cluster mode `cluster` (the node × group table, read from etcd at most every 5 s).
 *
 * Costs: the last 100 notices are kept (for the page's recent events) from the start of the
 * daemon. While no stream is open no timer runs; while one is, one 5 s timer sends a keep-alive
 * comment (a dead reader is found) and refreshes the cluster table. At most 32 streams at once
 * (a 33rd is answered 503); a stream whose reader does not keep up (1 MiB unsent) is closed.
 * Loaded only with `--http` (runtime/ops.ts).
 */
import { createHash } from "node:crypto"
import { hostname } from "node:os"
import type { ServerResponse } from "node:http"
import * as Effect from "effect/Effect"
import * as Ref from "effect/Ref"
import type * as Scope from "effect/Scope"
import type { State } from "../core/state.ts"
import { report } from "../core/report.ts"
import type { ClusterView, RecentNotice } from "../web/page.ts"
import { pageScript, pageStyle, renderCluster, renderGroups, renderNotice, renderPage } from "../web/page.ts"
import type { Route } from "./http.ts"
import { answer, baseHeaders } from "./http.ts"
import type { DaemonView } from "./observe.ts"

const recentKept = 100
const maxStreams = 32
const stateEveryMs = 100
/** While a stream is open: a keep-alive comment (a dead reader is found) and the cluster's refresh. */
const tickMs = 5_000
const maxUnsentBytes = 1024 * 1024

/** Reads the cluster's node × group table (cluster mode; cluster/table.ts, filled by the composition root). */
export type ClusterReader = () => Effect.Effect<ClusterView>

const hashOf = (text: string): string => `'sha256-${createHash("sha256").update(text).digest("base64")}'`

/** Exactly the inline style and script of the page, and the stream of the same origin; nothing else. */
const contentSecurityPolicy = `default-src 'none'; style-src ${hashOf(pageStyle)}; script-src ${hashOf(pageScript)}; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'`

/** One server-sent event; every line of `data` its own `data:` line (a name holding a CR or LF cannot forge a field). */
export const sseMessage = (event: string, data: string): string => `event: ${event}\n${data.split(/\r\n|\r|\n/).map((line) => `data: ${line}`).join("\n")}\n\n`

/** The open streams, and one timer (a keep-alive comment, the cluster's refresh) that runs only while any is open. */
interface Streams {
  readonly open: Set<ServerResponse>
  readonly send: (event: string, data: string) => void
  readonly add: (response: ServerResponse) => void
  readonly closeAll: () => void
}

const makeStreams = (everyWhileOpen: () => void): Streams => {
  const open = new Set<ServerResponse>()
  let timer: NodeJS.Timeout | undefined
  const write = (text: string): void => {
    for (const response of open) {
      if (response.writableLength > maxUnsentBytes) response.destroy()
      else response.write(text)
    }
  }
  const remove = (response: ServerResponse): void => {
    open.delete(response)
    if (open.size > 0 || timer === undefined) return
    clearInterval(timer)
    timer = undefined
  }
  return {
    open,
    send: (event, data) => write(sseMessage(event, data)),
    add: (response) => {
      open.add(response)
      response.on("close", () => remove(response))
      timer ??= setInterval(() => {
        write(": keep-alive\n\n")
        everyWhileOpen()
      }, tickMs)
    },
    closeAll: () => {
      for (const response of open) response.end()
      open.clear()
      clearInterval(timer)
      timer = undefined
    },
  }
}

/** The cluster table, read at most every 5 s (one read at a time), for the page and the streams. */
const makeClusterCache = (reader: ClusterReader | undefined) => {
  let view: ClusterView | undefined
  let readAtMs = Number.NEGATIVE_INFINITY
  let reading: Promise<void> | undefined
  const fresh = (): Promise<void> => {
    if (reader === undefined || Date.now() - readAtMs < tickMs) return Promise.resolve()
    // The reader answers Unreadable rather than fail; a defect is said the same way, never thrown here.
    reading ??= Effect.runPromise(reader())
      .catch((error: unknown): ClusterView => ({ _tag: "Unreadable", reason: String(error) }))
      .then((read) => {
        view = read
        readAtMs = Date.now()
        reading = undefined
      })
    return reading
  }
  return { fresh, view: () => view }
}

export interface StatusPage {
  readonly routes: ReadonlyMap<string, Route>
}

/** Keeps the last notices, and sends each to the open streams. */
const keepRecent = (view: DaemonView, streams: Streams): Effect.Effect<readonly RecentNotice[], never, Scope.Scope> =>
  Effect.gen(function* () {
    const recent: RecentNotice[] = []
    const unsubscribe = view.notices.subscribe((notice) => {
      const item = { at: new Date().toISOString(), notice }
      recent.push(item)
      if (recent.length > recentKept) recent.shift()
      if (streams.open.size > 0) streams.send("notice", renderNotice(item))
    })
    yield* Effect.addFinalizer(() => Effect.sync(unsubscribe))
    return recent
  })

/**
 * The groups after every change of the state, at most every 100 ms, while a stream is open; with
 * none open the fiber waits on the loop and renders nothing.
 */
const sendChanges = (view: DaemonView, streams: Streams, groupsNow: () => string): Effect.Effect<void, never, Scope.Scope> => {
  let last = Ref.getUnsafe(view.loop.state)
  return Effect.asVoid(
    Effect.forkScoped(
      Effect.forever(
        Effect.gen(function* () {
          last = (yield* view.loop.waitFor((s) => s !== last)) ?? last
          if (streams.open.size > 0) streams.send("state", groupsNow())
          yield* Effect.sleep(stateEveryMs)
        }),
      ),
    ),
  )
}

/** The page's routes for the life of the scope (the notices it keeps, the streams it feeds). */
export const makeStatusPage = (view: DaemonView, reader: ClusterReader | undefined): Effect.Effect<StatusPage, never, Scope.Scope> =>
  Effect.gen(function* () {
    const host = view.cluster?.().node ?? hostname()
    const cluster = makeClusterCache(view.cluster === undefined ? undefined : reader)
    const stateNow = (): State => Ref.getUnsafe(view.loop.state)
    const groupsNow = (): string => renderGroups(report(stateNow()), view.loop.now())
    const clusterNow = (): string | undefined => (view.cluster === undefined ? undefined : renderCluster(view.cluster(), cluster.view()))
    const refreshCluster = (): void => {
      void cluster.fresh().then(() => {
        const section = clusterNow()
        if (section !== undefined) streams.send("cluster", section)
      })
    }
    const streams = makeStreams(refreshCluster)
    yield* Effect.addFinalizer(() => Effect.sync(streams.closeAll))
    const recent = yield* keepRecent(view, streams)
    yield* sendChanges(view, streams, groupsNow)

    const page: Route = (_request, response) =>
      cluster.fresh().then(() => {
        const info = view.cluster?.()
        const data = { host, version: view.version, pid: view.pid, startedAt: new Date(view.startedAt).toISOString(), report: report(stateNow()), now: view.loop.now(), recent }
        const body = renderPage({ ...data, cluster: info === undefined ? undefined : { info, view: cluster.view() } })
        answer(response, 200, "text/html; charset=utf-8", body, { "content-security-policy": contentSecurityPolicy })
      })
    const events: Route = (_request, response) => {
      if (streams.open.size >= maxStreams) return answer(response, 503, "text/plain; charset=utf-8", `at most ${maxStreams} live streams at once\n`, { "retry-after": "10" })
      response.writeHead(200, { ...baseHeaders, "content-type": "text/event-stream; charset=utf-8" })
      response.write(`retry: 2000\n\n${sseMessage("state", groupsNow())}`)
      const section = clusterNow()
      if (section !== undefined) response.write(sseMessage("cluster", section))
      streams.add(response)
    }
    return { routes: new Map([["/", page], ["/events", events]]) }
  })
