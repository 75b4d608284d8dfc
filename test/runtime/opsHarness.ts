/**
 * The real isinitd with `--metrics` and/or `--http` on free ports (port 0: the log names them),
 * and small HTTP helpers for the tests of the metrics and the status page.
 */
import { request } from "node:http"
import type { Daemon, Lab } from "./daemonHarness.ts"
import { until } from "./helpers.ts"

export interface Served {
  readonly daemon: Daemon
  /** `http://127.0.0.1:PORT` of each server, as the log names it. */
  readonly metrics: string | undefined
  readonly page: string | undefined
}

const servedAt = (log: string, what: string): string | undefined => new RegExp(`serving ${what} on (http://[^/ ]+)/`).exec(log)?.[1]

/** Starts the lab's daemon with these ops flags and waits for every server it asked for. */
export const startServed = async (lab: Lab, flags: readonly string[]): Promise<Served> => {
  const daemon = await lab.start({ args: ["-c", lab.path("isinittab"), "-s", lab.socket, "--initstat", lab.path("run/initstat"), ...flags] })
  const wants = (flag: string) => flags.includes(flag)
  const same = wants("--metrics") && wants("--http") && flags[flags.indexOf("--metrics") + 1] === flags[flags.indexOf("--http") + 1] && !flags[flags.indexOf("--http") + 1]?.endsWith(":0")
  await until("the servers to listen", () => {
    const log = daemon.log()
    if (same) return servedAt(log, "/metrics and the status page") !== undefined
    return (!wants("--metrics") || servedAt(log, "/metrics") !== undefined) && (!wants("--http") || servedAt(log, "the status page") !== undefined)
  })
  const log = daemon.log()
  const both = servedAt(log, "/metrics and the status page")
  return { daemon, metrics: both ?? servedAt(log, "/metrics"), page: both ?? servedAt(log, "the status page") }
}

export interface HttpAnswer {
  readonly status: number
  readonly headers: Readonly<Record<string, string | string[] | undefined>>
  readonly body: string
}

/** One request; resolves with the whole answer. */
export const fetchText = (url: string, options: { readonly method?: string; readonly headers?: Record<string, string> } = {}): Promise<HttpAnswer> =>
  new Promise((resolve, reject) => {
    const req = request(url, { method: options.method ?? "GET", headers: options.headers ?? {}, timeout: 20_000 }, (res) => {
      let body = ""
      res.setEncoding("utf8")
      res.on("data", (chunk: string) => (body += chunk))
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }))
    })
    req.on("timeout", () => req.destroy(new Error(`no answer from ${url} within 20 s`)))
    req.on("error", reject)
    req.end()
  })

/** Reads a server-sent event stream until `done` says so (or 30 s); returns the events seen. */
export const readEvents = (url: string, done: (events: readonly { readonly event: string; readonly data: string }[]) => boolean): Promise<{ readonly event: string; readonly data: string }[]> =>
  new Promise((resolve, reject) => {
    const events: { event: string; data: string }[] = []
    let buffer = ""
    const timer = setTimeout(() => {
      req.destroy()
      reject(new Error(`the stream ${url} did not give what was waited for within 30 s; got ${JSON.stringify(events.map((e) => e.event))}`))
    }, 30_000)
    const req = request(url, (res) => {
      res.setEncoding("utf8")
      res.on("data", (chunk: string) => {
        buffer += chunk
        for (let end = buffer.indexOf("\n\n"); end >= 0; end = buffer.indexOf("\n\n")) {
          const block = buffer.slice(0, end)
          buffer = buffer.slice(end + 2)
          const lines = block.split("\n")
          const event = lines.find((l) => l.startsWith("event: "))?.slice(7)
          if (event === undefined) continue
          events.push({ event, data: lines.filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)).join("\n") })
        }
        if (done(events)) {
          clearTimeout(timer)
          req.destroy()
          resolve(events)
        }
      })
    })
    req.on("error", (error) => {
      if (!done(events)) reject(error)
    })
    req.end()
  })
