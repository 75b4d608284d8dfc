/**
 * One small read-only HTTP server (node:http) for `--metrics` and `--http`: GET and HEAD only
 * (nothing on it changes anything: control stays on the socket, with its rights), a route table,
 * and the limits a daemon needs against bad or slow clients: 64 connections, 10 s for a request,
 * headers within 5 s. On a loopback address it answers only requests whose Host names loopback
 * (address.ts: DNS rebinding).
 *
 * It never stops the daemon: an address that cannot be had (in use, not ours) is logged and
 * tried again every 5 s, for the life of the scope; a connection it cannot accept (out of file
 * descriptors) is logged, at most every 5 s; closing the scope closes every connection.
 */
import type { IncomingMessage, Server, ServerResponse } from "node:http"
import { createServer } from "node:http"
import type { AddressInfo } from "node:net"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type { LogService } from "../log.ts"
import type { ListenAddress } from "./address.ts"
import { addressText, hostAllowed } from "./address.ts"
import { codeOf, stackOf } from "./errors.ts"

/** Answers a request; may answer later (a promise), and must answer: a throw or a rejection is answered 500 and logged. */
export type Route = (request: IncomingMessage, response: ServerResponse) => void | Promise<void>

export interface HttpOptions {
  readonly address: ListenAddress
  /** By path (the query string is ignored). */
  readonly routes: ReadonlyMap<string, Route>
  readonly log: LogService
  /** For the log: what is served, e.g. "/metrics". */
  readonly what: string
}

const maxConnections = 64
const retryMs = 5_000

/** Headers of every answer: nothing cached, nothing sniffed, never framed, no referrer. */
export const baseHeaders: Readonly<Record<string, string>> = {
  "cache-control": "no-store",
  "x-content-type-options": "nosniff",
  "x-frame-options": "DENY",
  "referrer-policy": "no-referrer",
}

export const answer = (response: ServerResponse, status: number, contentType: string, body: string, headers: Readonly<Record<string, string>> = {}): void => {
  response.writeHead(status, { ...baseHeaders, ...headers, "content-type": contentType, "content-length": Buffer.byteLength(body) })
  response.end(response.req.method === "HEAD" ? undefined : body)
}

const handle = (options: HttpOptions) => (request: IncomingMessage, response: ServerResponse): void => {
  if (!hostAllowed(request.headers.host, options.address)) return answer(response, 403, "text/plain; charset=utf-8", "this server answers only to a loopback host name (localhost, 127.0.0.1, [::1])\n")
  if (request.method !== "GET" && request.method !== "HEAD") return answer(response, 405, "text/plain; charset=utf-8", "read-only: GET and HEAD only\n", { allow: "GET, HEAD" })
  const path = (request.url ?? "/").split("?")[0] ?? "/"
  const route = options.routes.get(path)
  if (route === undefined) return answer(response, 404, "text/plain; charset=utf-8", `not found: ${[...options.routes.keys()].join(", ")}\n`)
  const failed = (error: unknown): void => {
    options.log.line({ what: "bug", message: `http ${path}: ${stackOf(error)}` })
    if (!response.headersSent) answer(response, 500, "text/plain; charset=utf-8", "internal error (logged)\n")
    else response.destroy()
  }
  try {
    const answered = route(request, response)
    if (answered instanceof Promise) answered.catch(failed)
  } catch (error) {
    failed(error)
  }
}

/** Listens until it has the address (logging the first failure and the success), for the life of the scope. */
export const serveHttp = (options: HttpOptions): Effect.Effect<Server, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const server = createServer({ requestTimeout: 10_000, headersTimeout: 5_000, keepAliveTimeout: 5_000 }, handle(options))
      server.maxConnections = maxConnections
      const { host, port } = options.address
      let failures = 0
      let retry: NodeJS.Timeout | undefined
      const listen = (): void => void server.listen({ host, port })
      let acceptLoggedAt = -Infinity
      server.on("error", (error) => {
        // Once listening, an error is a failed accept (EMFILE, ENFILE): Node goes on accepting,
        // and listening again would throw ERR_SERVER_ALREADY_LISTEN from the timer, ending isinitd.
        if (server.listening) {
          if (performance.now() - acceptLoggedAt < retryMs) return
          acceptLoggedAt = performance.now()
          options.log.line({ what: "http", message: `${options.what}: cannot accept a connection (${codeOf(error)}); still serving` })
          return
        }
        if (failures++ === 0) options.log.line({ what: "http", message: `cannot serve ${options.what} on ${addressText(host, port)} (${codeOf(error)}); trying again every ${retryMs / 1000} s` })
        retry = setTimeout(listen, retryMs)
        retry.unref()
      })
      server.on("listening", () => {
        const bound = server.address() as AddressInfo
        options.log.line({ what: "http", message: `serving ${options.what} on http://${addressText(bound.address, bound.port)}/ (read-only)` })
      })
      server.on("close", () => clearTimeout(retry))
      listen()
      return server
    }),
    (server) =>
      Effect.sync(() => {
        server.close()
        server.closeAllConnections()
      }),
  )
