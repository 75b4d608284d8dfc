/**
 * The client side of the socket protocol: connect, send one request, read one answer; and wait
 * for a daemon to be gone after a stopall or a hand-over.
 *
 * Plain Node and Promises, without effect: `isinit` pays for every module it loads on every call
 * (scripts, health checks, deploy loops; see bench/client.ts), and this is all it needs to talk to
 * the daemon. Failures are values, tagged like the daemon's errors, never thrown.
 */
import * as net from "node:net"
import type { DaemonProcess, Request, Response } from "../codec/protocol.ts"
import { decodeResponseLine, encodeRequest } from "../codec/protocol.ts"
import { statFields } from "./procfs.ts"
import type { SocketPathTooLong } from "./socketPath.ts"
import { socketPathProblem } from "./socketPath.ts"
import { errnoOf } from "./errors.ts"

/** Nobody listens on the socket (ENOENT: no file; ECONNREFUSED: a stale socket). */
export class NoDaemon extends Error {
  readonly _tag = "NoDaemon"
  readonly path: string
  readonly code: string
  constructor(fields: { readonly path: string; readonly code: string }) {
    super(`no daemon on ${fields.path} (${fields.code})`)
    this.path = fields.path
    this.code = fields.code
  }
}

/**
 * The daemon did not answer in time. `stage` says whether the request had reached the socket
 * (a stopped or stuck daemon accepts connections in the kernel, so it may still apply the request
 * when it resumes) or not even the connection was made.
 */
export class ClientTimeout extends Error {
  readonly _tag = "ClientTimeout"
  readonly path: string
  readonly timeoutMs: number
  readonly stage: "connecting" | "delivered"
  constructor(fields: { readonly path: string; readonly timeoutMs: number; readonly stage: "connecting" | "delivered" }) {
    super(`no answer from the daemon on ${fields.path} within ${formatSeconds(fields.timeoutMs)}`)
    this.path = fields.path
    this.timeoutMs = fields.timeoutMs
    this.stage = fields.stage
  }
}

/** `10 s`, `1.5 s`: a timeout as the user gave it. */
export const formatSeconds = (ms: number): string => `${Number((ms / 1000).toFixed(3))} s`

/** The daemon answered something this client cannot read, or closed without answering. */
export class BadAnswer extends Error {
  readonly _tag = "BadAnswer"
  readonly path: string
  readonly reason: string
  constructor(fields: { readonly path: string; readonly reason: string }) {
    super(`bad answer from the daemon on ${fields.path}: ${fields.reason}`)
    this.path = fields.path
    this.reason = fields.reason
  }
}

/** Any other failure to talk to the socket (EACCES, ENOTSOCK...). */
export class ConnectionFailed extends Error {
  readonly _tag = "ConnectionFailed"
  readonly path: string
  readonly reason: string
  constructor(fields: { readonly path: string; readonly reason: string }) {
    super(`cannot talk to ${fields.path}: ${fields.reason}`)
    this.path = fields.path
    this.reason = fields.reason
  }
}

export type ClientError = NoDaemon | ClientTimeout | BadAnswer | ConnectionFailed | SocketPathTooLong

/** Whether `request` failed (answers, even refusals, carry no `_tag`). */
export const isClientError = (value: Response | ClientError): value is ClientError => "_tag" in value

export interface RequestOptions {
  /** Bound on the whole exchange, connection included; default 10 s. */
  readonly timeoutMs?: number
}

const maxAnswerBytes = 64 * 1024 * 1024


/** Sends `request` to the daemon on `path` and reads its one-line answer, or says why it could not. */
export const request = (path: string, req: Request, options: RequestOptions = {}): Promise<Response | ClientError> => {
  const timeoutMs = options.timeoutMs ?? 10_000
  // Node would connect to the path cut at 107 bytes: a different socket, maybe another daemon's.
  const tooLong = socketPathProblem(path)
  if (tooLong !== undefined) return Promise.resolve(tooLong)
  return new Promise((resolveAnswer) => {
    const socket = net.createConnection({ path, allowHalfOpen: true })
    const chunks: Buffer[] = []
    let size = 0
    let settled = false
    const settle = (result: Response | ClientError): void => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      socket.destroy()
      resolveAnswer(result)
    }
    const finishLine = (): void => {
      const text = Buffer.concat(chunks, size).toString("utf8")
      if (text.length === 0) return settle(new BadAnswer({ path, reason: "the daemon closed the connection without answering" }))
      const decoded = decodeResponseLine(text)
      settle(decoded._tag === "Right" ? decoded.right : new BadAnswer({ path, reason: decoded.left }))
    }
    let stage: ClientTimeout["stage"] = "connecting"
    const timer = setTimeout(() => settle(new ClientTimeout({ path, timeoutMs, stage })), timeoutMs)
    socket.once("connect", () => {
      stage = "delivered"
      socket.write(encodeRequest(req))
    })
    socket.on("data", (chunk: Buffer) => {
      const newline = chunk.indexOf(10)
      const end = newline < 0 ? chunk.length : newline
      chunks.push(chunk.subarray(0, end))
      size += end
      if (newline >= 0) finishLine()
      else if (size > maxAnswerBytes) settle(new BadAnswer({ path, reason: "answer too long" }))
    })
    socket.once("end", finishLine)
    socket.once("error", (error) => {
      const code = errnoOf(error)
      if (code === "ENOENT" || code === "ECONNREFUSED") settle(new NoDaemon({ path, code }))
      else if (size > 0) finishLine()
      else settle(new ConnectionFailed({ path, reason: error.message }))
    })
  })
}

/** Whether a daemon still listens on `path`: a connection that is taken (then closed unused). */
const listening = (path: string): Promise<boolean> =>
  new Promise((resolve) => {
    const socket = net.createConnection({ path })
    const done = (answer: boolean): void => {
      clearTimeout(timer)
      socket.destroy()
      resolve(answer)
    }
    // A connection the kernel holds this long belongs to a daemon whose backlog is full: it is there.
    const timer = setTimeout(() => done(true), 2000)
    socket.once("connect", () => done(true))
    socket.once("error", (error) => {
      const code = errnoOf(error)
      done(!(code === "ENOENT" || code === "ECONNREFUSED"))
    })
  })

/** Whether that process has exited (gone, a zombie, or its pid now names another process). */
const exited = (daemon: DaemonProcess | undefined): boolean => {
  if (daemon === undefined) return true
  const fields = statFields(daemon.pid)
  return fields === undefined || fields[19] !== daemon.identity || fields[0] === "Z" || fields[0] === "X"
}

const pause = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * Resolves `"gone"` once no daemon listens on `path` (its socket removed or refusing, the last
 * thing isinitd does before it exits) and, when its answer named the process, that process has
 * exited too; `"running"` if that has not happened within `timeoutMs`. The process check keeps
 * a successor from finding its predecessor still alive in the state file.
 */
export const awaitDaemonGone = async (path: string, daemon: DaemonProcess | undefined, timeoutMs: number): Promise<"gone" | "running"> => {
  const deadline = Date.now() + timeoutMs
  let delayMs = 10
  for (;;) {
    if (!(await listening(path)) && exited(daemon)) return "gone"
    if (Date.now() >= deadline) return "running"
    await pause(Math.min(delayMs, Math.max(1, deadline - Date.now())))
    delayMs = Math.min(200, delayMs * 2)
  }
}
