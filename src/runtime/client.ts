/**
 * The client side of the socket protocol: connect, send one request, read one answer.
 */
import * as net from "node:net"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import type { Request, Response } from "../codec/protocol.ts"
import { decodeResponseLine, encodeRequest } from "../codec/protocol.ts"

/** Nobody listens on the socket (ENOENT: no file; ECONNREFUSED: a stale socket). */
export class NoDaemon extends Data.TaggedError("NoDaemon")<{ readonly path: string; readonly code: string }> {
  override get message(): string {
    return `no daemon on ${this.path} (${this.code})`
  }
}

/** The daemon did not answer in time. */
export class ClientTimeout extends Data.TaggedError("ClientTimeout")<{ readonly path: string; readonly timeoutMs: number }> {
  override get message(): string {
    return `no answer from the daemon on ${this.path} within ${Math.round(this.timeoutMs / 1000)} s`
  }
}

/** The daemon answered something this client cannot read, or closed without answering. */
export class BadAnswer extends Data.TaggedError("BadAnswer")<{ readonly path: string; readonly reason: string }> {
  override get message(): string {
    return `bad answer from the daemon on ${this.path}: ${this.reason}`
  }
}

/** Any other failure to talk to the socket (EACCES, ENOTSOCK...). */
export class ConnectionFailed extends Data.TaggedError("ConnectionFailed")<{ readonly path: string; readonly reason: string }> {
  override get message(): string {
    return `cannot talk to ${this.path}: ${this.reason}`
  }
}

export type ClientError = NoDaemon | ClientTimeout | BadAnswer | ConnectionFailed

export interface RequestOptions {
  /** Bound on the whole exchange, connection included; default 10 s. */
  readonly timeoutMs?: number
}

const maxAnswerBytes = 64 * 1024 * 1024

const errnoOf = (error: unknown): string | undefined =>
  typeof error === "object" && error !== null && "code" in error && typeof error.code === "string" ? error.code : undefined

/** Sends `request` to the daemon on `path` and reads its one-line answer. */
export const request = (path: string, req: Request, options: RequestOptions = {}): Effect.Effect<Response, ClientError> => {
  const timeoutMs = options.timeoutMs ?? 10_000
  return Effect.callback<Response, ClientError>((resume) => {
    const socket = net.createConnection({ path, allowHalfOpen: true })
    const chunks: Buffer[] = []
    let size = 0
    let settled = false
    const settle = (result: Effect.Effect<Response, ClientError>): void => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      socket.destroy()
      resume(result)
    }
    const finishLine = (): void => {
      const text = Buffer.concat(chunks, size).toString("utf8")
      if (text.length === 0) {
        settle(Effect.fail(new BadAnswer({ path, reason: "the daemon closed the connection without answering" })))
        return
      }
      const decoded = decodeResponseLine(text)
      settle(decoded._tag === "Right" ? Effect.succeed(decoded.right) : Effect.fail(new BadAnswer({ path, reason: decoded.left })))
    }
    const timer = setTimeout(() => settle(Effect.fail(new ClientTimeout({ path, timeoutMs }))), timeoutMs)
    socket.once("connect", () => socket.write(encodeRequest(req)))
    socket.on("data", (chunk: Buffer) => {
      const newline = chunk.indexOf(10)
      const end = newline < 0 ? chunk.length : newline
      chunks.push(chunk.subarray(0, end))
      size += end
      if (newline >= 0) finishLine()
      else if (size > maxAnswerBytes) settle(Effect.fail(new BadAnswer({ path, reason: "answer too long" })))
    })
    socket.once("end", finishLine)
    socket.once("error", (error) => {
      const code = errnoOf(error)
      if (code === "ENOENT" || code === "ECONNREFUSED") settle(Effect.fail(new NoDaemon({ path, code })))
      else if (size > 0) finishLine()
      else settle(Effect.fail(new ConnectionFailed({ path, reason: error.message })))
    })
    return Effect.sync(() => {
      settled = true
      clearTimeout(timer)
      socket.destroy()
    })
  })
}
