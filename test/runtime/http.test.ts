/**
 * The read-only HTTP server of `--metrics` and `--http` (runtime/http.ts) never stops the daemon:
 * here, a connection it cannot accept once it listens (Node emits 'error' for a failed accept, as
 * with EMFILE) is logged, and it goes on serving, instead of listening again from a timer, which
 * throws ERR_SERVER_ALREADY_LISTEN.
 */
import type { AddressInfo } from "node:net"
import * as Effect from "effect/Effect"
import { afterEach, expect, it, vi } from "vitest"
import { serveHttp } from "../../src/runtime/http.ts"
import { memoryLog } from "../../src/runtime/log.ts"
import { until } from "./helpers.ts"

afterEach(() => void vi.useRealTimers())

it("a failed accept while listening is logged, once per 5 s, and the server goes on serving", async () => {
  const log = memoryLog()
  const routes = new Map([["/ping", (_: unknown, response: import("node:http").ServerResponse) => void response.end("pong")]])
  await Effect.runPromise(
    Effect.scoped(
      Effect.flatMap(serveHttp({ address: { host: "127.0.0.1", port: 0, loopback: true }, routes, log, what: "/ping" }), (server) =>
        Effect.promise(async () => {
          await until("listening", () => server.listening)
          vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] })
          const acceptFailed = Object.assign(new Error("accept EMFILE"), { code: "EMFILE", errno: -24, syscall: "accept" })
          server.emit("error", acceptFailed)
          server.emit("error", acceptFailed)
          vi.advanceTimersByTime(6_000)
          vi.useRealTimers()
          expect(server.listening).toBe(true)
          expect(log.lines.filter((l) => l.includes("cannot accept"))).toEqual([expect.stringMatching(/\/ping: cannot accept a connection \(EMFILE\); still serving/)])
          const { port } = server.address() as AddressInfo
          expect(await (await fetch(`http://127.0.0.1:${port}/ping`)).text()).toBe("pong")
        }),
      ),
    ),
  )
})
