/**
 * The daemon's UNIX socket: one request line per connection, one answer, then close.
 *
 * Bad input never hurts the daemon: every connection is bounded in size (`maxLineBytes`), in time
 * until its request line is complete (`idleTimeoutMs`) and in number (`maxConnections`; the
 * excess get `error: busy`). A peer that sends its line and closes without reading (the original
 * IS::Init client does exactly that, even without a newline) is served anyway: end-of-stream ends
 * the line, and a failed write of the answer is ignored. Handler failures become error answers.
 *
 * The socket file is created with mode 0600, so only its owner (normally root) may talk to the
 * daemon; `options.mode` (isinitd's `--socket-mode`, e.g. 0660 with a shared group owning the
 * directory) widens it. The mode is applied both through the umask at bind time (no window in
 * which the socket is wider) and by a chmod right after.
 */
import * as fs from "node:fs"
import * as net from "node:net"
import * as nodePath from "node:path"
import * as Cause from "effect/Cause"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import * as FiberSet from "effect/FiberSet"
import type * as Scope from "effect/Scope"
import type { Framing, Request, Response } from "../codec/protocol.ts"
import { decodeRequestLine, encodeResponseFor, failure, framingOf, maxLineBytes as protocolMaxLineBytes } from "../codec/protocol.ts"
import type { Connection, ConnectionInput } from "./connection.ts"
import { nextConnection, reading, slotOf } from "./connection.ts"
import type { Peer } from "./peer.ts"
import type { SocketPathTooLong } from "./socketPath.ts"
import { socketPathProblem } from "./socketPath.ts"
import { errnoOf, messageOf } from "./errors.ts"

export interface ServeOptions {
  /** Permission bits of the socket file; default 0o600 (owner only). */
  readonly mode?: number
  /** A connection must deliver its whole request line within this time; default 5000 ms. */
  readonly idleTimeoutMs?: number
  /** Connections served at once (including those waiting for a handler); default 256. */
  readonly maxConnections?: number
  /**
   * Tells waiting for their transition (`"wait":true`), counted apart from `maxConnections` so
   * that waiters, even abandoned ones behind a barrier that never ends, cannot lock out a
   * `stopall`; default 256.
   */
  readonly maxWaiting?: number
  /** Longest request line, newline excluded; default 4096 bytes. */
  readonly maxLineBytes?: number
  /** Pending connections the kernel queues before the daemon accepts them; default 1024. */
  readonly backlog?: number
  /** Told about every request refused before reaching the handler, and every handler failure. */
  readonly onReject?: (reason: string) => void
  /** Who connected (peer.ts), handed to the handler with the request; none by default. */
  readonly peerOf?: (socket: net.Socket) => Peer
  /** Told once a handled request's answer is out (written to the peer, or the peer was gone). */
  readonly onAnswered?: (request: Request, response: Response) => void
}

export interface Server {
  readonly path: string
  /** Connections open or still being answered. */
  readonly activeConnections: () => number
}

/** Answers a request; `peer` is who sent it, when the server was asked to find out (peer.ts). */
export type Handler = (request: Request, peer?: Peer) => Effect.Effect<Response>

/** A daemon already answers on the socket: refuse to start a second one. */
export class SocketInUse extends Data.TaggedError("SocketInUse")<{ readonly path: string }> {
  override get message(): string {
    return `a daemon already answers on ${this.path}: stop it first (isinit -s ${this.path} stopall), or use another socket with -s`
  }
}

/** The socket path cannot be used (not a socket, no permission, bad directory...). */
export class SocketUnusable extends Data.TaggedError("SocketUnusable")<{ readonly path: string; readonly reason: string }> {
  override get message(): string {
    return `cannot use socket ${this.path}: ${this.reason}`
  }
}

export type ServeError = SocketInUse | SocketUnusable | SocketPathTooLong

export type ProbeResult = "live" | "stale" | "absent" | "unreachable"


/**
 * What is at the socket path: a listening daemon (`live`), a socket nobody listens on (`stale`),
 * nothing (`absent`), or something we may not connect to (`unreachable`, e.g. EACCES).
 * The probe connects and closes without sending anything, which the server ignores.
 */
export const probeSocket = (path: string, timeoutMs = 2000): Effect.Effect<ProbeResult> =>
  Effect.callback<ProbeResult>((resume) => {
    const socket = net.createConnection({ path })
    const finish = (result: ProbeResult): void => {
      clearTimeout(timer)
      socket.destroy()
      resume(Effect.succeed(result))
    }
    // Connecting that takes this long means a listener with a full backlog: someone is there.
    const timer = setTimeout(() => finish("live"), timeoutMs)
    socket.once("connect", () => finish("live"))
    socket.once("error", (error) => {
      const code = errnoOf(error)
      finish(code === "ENOENT" ? "absent" : code === "ECONNREFUSED" ? "stale" : code === "EAGAIN" ? "live" : "unreachable")
    })
    return Effect.sync(() => {
      clearTimeout(timer)
      socket.destroy()
    })
  })

/** Whether a live daemon answers on `path`. */
export const probe = (path: string): Effect.Effect<boolean> => Effect.map(probeSocket(path), (result) => result === "live")

/**
 * Makes `path` ready to bind: creates missing parent directories, removes a stale socket, and
 * refuses when a daemon is alive there, the path is something other than a socket, or it is too
 * long to bind (checked first, before anything is created).
 */
export const claimSocketPath = (path: string): Effect.Effect<void, ServeError> =>
  Effect.gen(function* () {
    const tooLong = socketPathProblem(path)
    if (tooLong !== undefined) return yield* Effect.fail(tooLong)
    yield* Effect.try({
      try: () => fs.mkdirSync(nodePath.dirname(path), { recursive: true }),
      catch: (error) => new SocketUnusable({ path, reason: `cannot create its directory: ${messageOf(error)}` }),
    })
    const stat = yield* Effect.try({
      try: () => fs.lstatSync(path, { throwIfNoEntry: false }),
      catch: (error) => new SocketUnusable({ path, reason: messageOf(error) }),
    })
    if (stat === undefined) return
    if (!stat.isSocket()) {
      return yield* new SocketUnusable({ path, reason: "it exists and is not a socket; remove it or choose another path with -s" })
    }
    const state = yield* probeSocket(path)
    if (state === "live") return yield* new SocketInUse({ path })
    if (state === "unreachable") return yield* new SocketUnusable({ path, reason: "it exists and cannot be probed (permission?)" })
    yield* Effect.try({
      try: () => fs.rmSync(path, { force: true }),
      catch: (error) => new SocketUnusable({ path, reason: `cannot remove the stale socket: ${messageOf(error)}` }),
    })
  })

/** The server's bounds and hooks, settled from `ServeOptions`. */
interface ServerLimits {
  readonly idleTimeoutMs: number
  readonly maxConnections: number
  readonly maxWaiting: number
  readonly maxLineBytes: number
  readonly reject: (reason: string) => void
  readonly peerOf: ((socket: net.Socket) => Peer) | undefined
  readonly answered: (request: Request, response: Response) => void
}

/** A listening server: its sockets, the slots its connections hold (connection.ts), its busy reports. */
interface ServerState {
  readonly server: net.Server
  readonly sockets: Set<net.Socket>
  /** Runs each handler in a fiber of the server's `FiberSet`: closing the server interrupts them all. */
  readonly run: (effect: Effect.Effect<Response>) => Fiber.Fiber<Response>
  readonly slots: { Active: number; Waiting: number }
  /** Busy refusals not yet reported, and when the last report went out (one per second at most). */
  busyUnreported: number
  busyReportedAt: number
  /** Reports the refusals of a window when it ends; armed only while some are unreported. */
  busyTimer: NodeJS.Timeout | undefined
}

const busyWindowMs = 1000

const flushBusy = (state: ServerState, limits: ServerLimits): void => {
  if (state.busyTimer !== undefined) clearTimeout(state.busyTimer)
  state.busyTimer = undefined
  if (state.busyUnreported === 0) return
  limits.reject(`busy: refused ${state.busyUnreported} connection(s) over the limit of ${limits.maxConnections}`)
  state.busyUnreported = 0
  state.busyReportedAt = Date.now()
}

/**
 * A flood of connections must not become a flood of log lines: one summary per second. The
 * refusals that come within a second of the last summary are reported when that second ends, so
 * the summaries add up to every refusal, also when the flood stops.
 */
const reportBusy = (state: ServerState, limits: ServerLimits): void => {
  state.busyUnreported += 1
  const sinceLastMs = Date.now() - state.busyReportedAt
  if (sinceLastMs >= busyWindowMs) return flushBusy(state, limits)
  state.busyTimer ??= setTimeout(() => flushBusy(state, limits), busyWindowMs - sinceLastMs)
}

/** How long an answered connection may stay open for its peer to read the answer and close. */
const lingerMs = 2000

/**
 * Sends the answer and closes; a peer that is gone makes this a no-op. Whatever the peer still
 * sends is read and dropped until it closes (or `lingerMs` passes): closing a UNIX socket with
 * unread input resets the peer, which could then lose the answer (e.g. `busy`) before reading it.
 */
const answer = (socket: net.Socket, framing: Framing, response: Response): void => {
  if (socket.destroyed || !socket.writable) {
    socket.destroy()
    return
  }
  socket.removeAllListeners("data")
  socket.resume()
  const linger = setTimeout(() => socket.destroy(), lingerMs)
  socket.once("close", () => clearTimeout(linger))
  socket.end(encodeResponseFor(framing, response))
}

const textDecoder = new TextDecoder("utf-8", { fatal: true })

const decodeBytes = (bytes: Buffer): string | undefined => {
  try {
    return textDecoder.decode(bytes)
  } catch {
    return undefined
  }
}

/** Runs the handler in the server's fiber set; its answer, failure or interruption becomes the response. */
const runHandler = (state: ServerState, handler: Handler, request: Request, peer: Peer | undefined, limits: ServerLimits, onAnswer: (response: Response) => void): void => {
  let effect: Effect.Effect<Response>
  try {
    effect = handler(request, peer)
  } catch (error) {
    limits.reject(`handler threw on ${request.op}: ${messageOf(error)}`)
    onAnswer(failure(`internal error: ${messageOf(error)}`))
    return
  }
  state.run(effect).addObserver((exit) => {
    if (Exit.isSuccess(exit)) return onAnswer(exit.value)
    if (Cause.hasInterruptsOnly(exit.cause)) return onAnswer(failure("the daemon is shutting down"))
    limits.reject(`handler failed on ${request.op}: ${Cause.pretty(exit.cause)}`)
    onAnswer(failure(`internal error: ${messageOf(Cause.squash(exit.cause))}`))
  })
}

/** What a complete request line asks for: a request for the handler, or the reason to refuse it. */
type Line = { readonly _tag: "Request"; readonly request: Request; readonly framing: Framing } | { readonly _tag: "Refused"; readonly reason: string; readonly framing: Framing }

const lineOf = (bytes: Buffer): Line => {
  const text = decodeBytes(bytes)
  if (text === undefined) return { _tag: "Refused", reason: "binary data in the request: expected one line of UTF-8 text", framing: "line" }
  const framing = framingOf(text)
  const decoded = decodeRequestLine(text)
  return decoded._tag === "Left" ? { _tag: "Refused", reason: decoded.left, framing } : { _tag: "Request", request: decoded.right, framing }
}

/**
 * One connection: its request line read (bounded in size and time), handled, answered. Its state
 * is one `Connection` (connection.ts); every change of it goes through `move`, which keeps the
 * server's slot counts in step.
 */
const serveConnection = (state: ServerState, handler: Handler, limits: ServerLimits, socket: net.Socket): void => {
  let conn: Connection = reading
  state.slots.Active += 1
  state.sockets.add(socket)
  const move = (input: ConnectionInput): void => {
    const before = slotOf(conn)
    conn = nextConnection(conn, input)
    const after = slotOf(conn)
    if (before !== "None") state.slots[before] -= 1
    if (after !== "None") state.slots[after] += 1
  }
  const refuse = (framing: Framing, reason: string): void => {
    clearTimeout(timer)
    move({ _tag: "Refuse" })
    limits.reject(reason)
    answer(socket, framing, failure(reason))
  }
  const handleLine = (bytes: Buffer): void => {
    clearTimeout(timer)
    socket.removeListener("data", onData)
    socket.pause()
    const line = lineOf(bytes)
    if (line._tag === "Refused") return refuse(line.framing, line.reason)
    // A waiting tell leaves the connection count for the waiters' own: however many wait, and
    // for however long, the other requests (stopall among them) still get a slot.
    const slot = line.request.op === "tell" && line.request.wait ? "Waiting" : "Active"
    if (slot === "Waiting" && state.slots.Waiting >= limits.maxWaiting) return refuse(line.framing, `busy: ${limits.maxWaiting} clients already waiting for transitions, try again`)
    move({ _tag: "Request", slot })
    runHandler(state, handler, line.request, limits.peerOf?.(socket), limits, (response) => {
      move({ _tag: "Answer" })
      answer(socket, line.framing, response)
      limits.answered(line.request, response)
    })
  }
  const reader = makeLineReader(limits.maxLineBytes)
  const onData = (chunk: Buffer): void => {
    if (conn._tag !== "Reading") return
    const read = reader.add(chunk)
    if (read._tag === "TooLong") {
      socket.removeListener("data", onData)
      return refuse("line", `request longer than ${limits.maxLineBytes} bytes`)
    }
    if (read._tag === "Line") handleLine(read.bytes)
  }
  socket.on("data", onData)
  // The original client writes "stopall" without a newline and closes: end-of-stream ends the line.
  socket.once("end", () => {
    if (conn._tag !== "Reading") return
    if (reader.size() > 0) return handleLine(reader.rest())
    clearTimeout(timer)
    move({ _tag: "Refuse" })
    socket.destroy()
  })
  socket.once("close", () => {
    clearTimeout(timer)
    state.sockets.delete(socket)
    move({ _tag: "Close" })
  })
  const timer = setTimeout(() => {
    if (conn._tag !== "Reading") return
    socket.removeListener("data", onData)
    refuse("line", `no complete request line within ${limits.idleTimeoutMs} ms`)
  }, limits.idleTimeoutMs)
}

/** A new connection: served, or refused as busy when every slot is taken. */
const accept = (state: ServerState, handler: Handler, limits: ServerLimits, socket: net.Socket): void => {
  // EPIPE and ECONNRESET from peers that do not read their answer are expected and harmless.
  socket.on("error", () => socket.destroy())
  if (state.slots.Active < limits.maxConnections) return serveConnection(state, handler, limits, socket)
  reportBusy(state, limits)
  answer(socket, "line", failure(`busy: ${limits.maxConnections} connections already open, try again`))
}

/** Collects a request line from chunks: up to its newline, at most `maxBytes`. */
const makeLineReader = (maxBytes: number) => {
  const chunks: Buffer[] = []
  let size = 0
  return {
    add: (chunk: Buffer): { readonly _tag: "Partial" } | { readonly _tag: "TooLong" } | { readonly _tag: "Line"; readonly bytes: Buffer } => {
      const newline = chunk.indexOf(10)
      const end = newline < 0 ? chunk.length : newline
      chunks.push(chunk.subarray(0, end))
      size += end
      if (size > maxBytes) return { _tag: "TooLong" }
      return newline >= 0 ? { _tag: "Line", bytes: Buffer.concat(chunks, size) } : { _tag: "Partial" }
    },
    size: (): number => size,
    /** What came before end-of-stream, without a newline. */
    rest: (): Buffer => Buffer.concat(chunks, size),
  }
}

/** Binds with the umask narrowed to `mode`, so the socket never exists with wider permissions. */
const bindWithMode = (server: net.Server, path: string, mode: number, backlog: number): void => {
  let previous: number | undefined
  try {
    previous = process.umask(0o777 & ~mode)
  } catch {
    // Worker threads cannot change the umask; the chmod after binding still applies the mode.
  }
  try {
    server.listen({ path, backlog })
  } finally {
    if (previous !== undefined) process.umask(previous)
  }
}

const listen = (
  path: string,
  handler: Handler,
  mode: number,
  backlog: number,
  limits: ServerLimits,
  run: ServerState["run"],
): Effect.Effect<ServerState, ServeError> =>
  Effect.callback<ServerState, ServeError>((resume) => {
    const server = net.createServer({ allowHalfOpen: true })
    const state: ServerState = { server, sockets: new Set(), run, slots: { Active: 0, Waiting: 0 }, busyUnreported: 0, busyReportedAt: 0, busyTimer: undefined }
    server.on("connection", (socket) => accept(state, handler, limits, socket))
    server.once("error", (error) => resume(Effect.fail(new SocketUnusable({ path, reason: messageOf(error) }))))
    server.once("listening", () => {
      server.removeAllListeners("error")
      // Accept failures (EMFILE...) must not crash the daemon: they drop one connection.
      server.on("error", (error) => limits.reject(`accept failed: ${messageOf(error)}`))
      try {
        fs.chmodSync(path, mode)
      } catch (error) {
        server.close()
        resume(Effect.fail(new SocketUnusable({ path, reason: `cannot set its mode: ${messageOf(error)}` })))
        return
      }
      resume(Effect.succeed(state))
    })
    bindWithMode(server, path, mode, backlog)
  })

/** Handlers interrupted first (their waiters answered "shutting down"), then every socket dropped and the file removed. */
const shutdown = (path: string, state: ServerState, handlers: FiberSet.FiberSet<Response>, inode: number | undefined): Effect.Effect<void> =>
  Effect.andThen(
    FiberSet.clear(handlers),
    Effect.callback<void>((resume) => {
      if (state.busyTimer !== undefined) clearTimeout(state.busyTimer)
      for (const socket of state.sockets) socket.destroy()
      state.server.close(() => {
      // Remove the file only if it is still ours (never a successor's socket).
      try {
        if (inode !== undefined && fs.statSync(path, { throwIfNoEntry: false })?.ino === inode) fs.rmSync(path, { force: true })
      } catch {
          // Nothing more to do: the next daemon replaces a stale socket anyway.
        }
        resume(Effect.void)
      })
    }),
  )

/**
 * Serves `handler` on a UNIX stream socket at `path` for the lifetime of the scope. Claims the
 * path first (see `claimSocketPath`): fails with `SocketInUse` when a daemon answers there.
 * Closing the scope stops accepting, drops open connections, interrupts running handlers and
 * removes the socket file.
 */
export const serve = (path: string, handler: Handler, options: ServeOptions = {}): Effect.Effect<Server, ServeError, Scope.Scope> => {
  const limits: ServerLimits = {
    idleTimeoutMs: options.idleTimeoutMs ?? 5000,
    maxConnections: options.maxConnections ?? 256,
    maxWaiting: options.maxWaiting ?? 256,
    maxLineBytes: options.maxLineBytes ?? protocolMaxLineBytes,
    reject: options.onReject ?? (() => undefined),
    peerOf: options.peerOf,
    answered: options.onAnswered ?? (() => undefined),
  }
  const mode = options.mode ?? 0o600
  return Effect.gen(function* () {
    const handlers = yield* FiberSet.make<Response>()
    const run = yield* FiberSet.runtime(handlers)()
    const { state } = yield* Effect.acquireRelease(
      Effect.flatMap(claimSocketPath(path), () =>
        Effect.map(listen(path, handler, mode, options.backlog ?? 1024, limits, run), (listening) => ({
          state: listening,
          inode: fs.statSync(path, { throwIfNoEntry: false })?.ino,
        })),
      ),
      ({ state: listening, inode }) => shutdown(path, listening, handlers, inode),
    )
    return { path, activeConnections: () => state.slots.Active }
  })
}
