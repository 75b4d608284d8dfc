import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as nodePath from "node:path"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import { afterEach, beforeEach, describe, expect, it } from "vitest"
import type { Request, Response } from "../../src/codec/protocol.ts"
import type { ClientError, RequestOptions } from "../../src/runtime/client.ts"
import { isClientError, request } from "../../src/runtime/client.ts"
import type { Peer } from "../../src/runtime/peer.ts"
import { peerOf } from "../../src/runtime/peer.ts"
import type { Handler, ServeOptions } from "../../src/runtime/server.ts"
import { claimSocketPath, probe, probeSocket, serve } from "../../src/runtime/server.ts"

let dir: string
let socketPath: string
let scopes: Scope.Closeable[] = []
let seen: Request[] = []
let rejects: string[] = []

const answerFor = (req: Request): Response => {
  switch (req.op) {
    case "ping":
      return { ok: true, op: "ping", pid: process.pid, version: "test" }
    case "tell":
      if (req.group === "nope") return { ok: false, error: "unknown group nope" }
      return { ok: true, op: "tell", group: req.group, level: req.level, seq: seen.length }
    case "stopall":
      return { ok: true, op: "stopall" }
    default:
      return { ok: false, error: `not in this test: ${req.op}` }
  }
}
const fakeHandler: Handler = (req) =>
  Effect.sync(() => {
    seen.push(req)
    return answerFor(req)
  })

const start = async (handler: Handler = fakeHandler, options: ServeOptions = {}, path = socketPath): Promise<Scope.Closeable> => {
  const scope = await Effect.runPromise(Scope.make())
  scopes.push(scope)
  await Effect.runPromise(Scope.provide(serve(path, handler, { onReject: (r) => rejects.push(r), ...options }), scope))
  return scope
}

/** Sends raw bytes, optionally half-closes, and collects everything until the server closes. */
const raw = (data: string | Uint8Array, opts: { readonly end?: boolean; readonly path?: string } = {}): Promise<string> =>
  new Promise((resolve) => {
    let out = ""
    const socket = net.createConnection({ path: opts.path ?? socketPath, allowHalfOpen: true }, () => {
      socket.write(data)
      if (opts.end ?? true) socket.end()
    })
    socket.on("data", (d) => (out += d.toString()))
    // Only a full listen backlog (EAGAIN) may refuse a connection in these tests.
    socket.on("error", (e: NodeJS.ErrnoException) => (out += e.code === "EAGAIN" ? "<backlog full>" : `<${e.code}>`))
    socket.on("end", () => socket.end())
    socket.on("close", () => resolve(out))
  })

const until = async (condition: () => boolean, what: string, ms = 20_000): Promise<void> => {
  const deadline = Date.now() + ms
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

/** The daemon's answer; a failure to get one fails the test. */
const answer = async (path: string, req: Request, options?: RequestOptions): Promise<Response> => {
  const result = await request(path, req, options)
  if (isClientError(result)) throw result
  return result
}
/** Why the client got no answer; an answer fails the test. */
const failureOf = async (path: string, req: Request, options?: RequestOptions): Promise<ClientError> => {
  const result = await request(path, req, options)
  if (!isClientError(result)) throw new Error(`expected no answer, got ${JSON.stringify(result)}`)
  return result
}
const ping = (path = socketPath) => answer(path, { op: "ping" })

beforeEach(() => {
  dir = fs.mkdtempSync(nodePath.join(os.tmpdir(), "isinit-server-"))
  socketPath = nodePath.join(dir, "run", "init.s")
  seen = []
  rejects = []
})
afterEach(async () => {
  for (const scope of scopes) await Effect.runPromise(Scope.close(scope, Exit.void))
  scopes = []
  fs.rmSync(dir, { recursive: true, force: true })
})

describe("the socket file", () => {
  it("is created with mode 0600 (parents created), widened by the mode option, and removed on close", async () => {
    const scope = await start()
    expect(fs.statSync(socketPath).isSocket()).toBe(true)
    expect(fs.statSync(socketPath).mode & 0o777).toBe(0o600)
    await Effect.runPromise(Scope.close(scope, Exit.void))
    expect(fs.existsSync(socketPath)).toBe(false)
    await start(fakeHandler, { mode: 0o660 })
    expect(fs.statSync(socketPath).mode & 0o777).toBe(0o660)
  })
  it("refuses a second server while one answers, and replaces a stale socket", async () => {
    await start()
    expect(await Effect.runPromise(probe(socketPath))).toBe(true)
    const second = await Effect.runPromise(Effect.exit(Effect.scoped(serve(socketPath, fakeHandler))))
    expect(Exit.isFailure(second)).toBe(true)
    expect(JSON.stringify(second)).toMatch(/SocketInUse/)
    expect((await ping()).ok).toBe(true)

    // A stale socket: its server was killed before it could remove it.
    const stalePath = nodePath.join(dir, "stale.s")
    const old = spawn(process.execPath, ["-e", `require("net").createServer().listen(${JSON.stringify(stalePath)})`], { stdio: "ignore" })
    await until(() => fs.existsSync(stalePath), "the doomed server to listen")
    old.kill("SIGKILL")
    await new Promise((r) => old.once("exit", r))
    expect(await Effect.runPromise(probeSocket(stalePath))).toBe("stale")
    await start(fakeHandler, {}, stalePath)
    expect((await ping(stalePath)).ok).toBe(true)
  })
  it("refuses to replace a file that is not a socket", async () => {
    const filePath = nodePath.join(dir, "plain")
    fs.writeFileSync(filePath, "keep me")
    const exit = await Effect.runPromise(Effect.exit(claimSocketPath(filePath)))
    expect(JSON.stringify(exit)).toMatch(/not a socket/)
    expect(fs.readFileSync(filePath, "utf8")).toBe("keep me")
    expect(await Effect.runPromise(probeSocket(nodePath.join(dir, "absent")))).toBe("absent")
  })
})

describe("the original line protocol", () => {
  it("serves GROUP LEVEL with a newline and answers ok", async () => {
    await start()
    expect(await raw("web 2\n")).toBe("ok\n")
    expect(seen).toEqual([{ op: "tell", group: "web", level: "2", wait: false }])
  })
  it("serves stopall sent without a newline by a client that closes without reading", async () => {
    await start()
    // Exactly what the original does: print $socket "stopall"; close.
    await new Promise<void>((resolve) => {
      const socket = net.createConnection(socketPath, () => {
        socket.end("stopall")
        socket.destroy()
        resolve()
      })
    })
    await until(() => seen.length === 1, "the stopall to reach the handler")
    expect(seen).toEqual([{ op: "stopall" }])
    expect(await raw("web 3")).toBe("ok\n")
    expect((await ping()).ok).toBe(true)
  })
  it("answers errors of the handler and of decoding in plain text", async () => {
    await start()
    expect(await raw("nope 2\n")).toBe("error: unknown group nope\n")
    expect(await raw("dance\n")).toMatch(/^error: unknown verb "dance"/)
  })
})

describe("the JSON protocol", () => {
  it("answers each request with one JSON line", async () => {
    await start()
    expect(JSON.parse(await raw('{"op":"tell","group":"web","level":"2"}\n'))).toEqual({
      ok: true, op: "tell", group: "web", level: "2", seq: 1,
    })
    expect(JSON.parse(await raw('{"op":"dance"}\n'))).toEqual({
      ok: false, error: 'unknown op "dance": expected one of tell, stopall, status, plan, ping, reload, handover',
    })
    expect(await answer(socketPath, { op: "tell", group: "nope", level: "1", wait: false })).toEqual({
      ok: false, error: "unknown group nope",
    })
  })
  it("turns handler defects and throws into error answers and keeps serving", async () => {
    await start((req) => (req.op === "status" ? Effect.die(new Error("boom")) : req.op === "reload" ? (() => { throw new Error("thrown") })() : fakeHandler(req)))
    expect(await answer(socketPath, { op: "status" })).toEqual({ ok: false, error: "internal error: boom" })
    expect(await answer(socketPath, { op: "reload" })).toEqual({ ok: false, error: "internal error: thrown" })
    expect((await ping()).ok).toBe(true)
    expect(rejects.some((r) => r.includes("boom"))).toBe(true)
  })
  it("keeps serving others while a handler takes long (a --wait)", async () => {
    let release: () => void = () => undefined
    const gate = new Promise<void>((r) => (release = r))
    await start((req) => (req.op === "tell" ? Effect.promise(() => gate.then(() => answerFor(req))) : fakeHandler(req)))
    const waiting = answer(socketPath, { op: "tell", group: "g", level: "2", wait: true })
    expect((await ping()).ok).toBe(true)
    release()
    expect(await waiting).toMatchObject({ ok: true, op: "tell" })
  })
})

describe("bad input", () => {
  it("refuses a request line over 4 KiB with an error and closes", async () => {
    await start()
    expect(await raw(`web ${"x".repeat(5000)}\n`)).toBe("error: request longer than 4096 bytes\n")
    expect(await raw("x".repeat(100_000), { end: false })).toBe("error: request longer than 4096 bytes\n")
    expect(seen).toEqual([])
    expect((await ping()).ok).toBe(true)
  })
  it("answers binary garbage with an error", async () => {
    await start()
    expect(await raw(Buffer.from([0xff, 0xfe, 0x00, 0x01, 0x0a]))).toMatch(/^error: binary data/)
    expect(await raw(Buffer.from([0x01, 0x02, 0x03, 0x0a]))).toMatch(/^error: binary data/)
    expect(seen).toEqual([])
    expect((await ping()).ok).toBe(true)
  })
  it("closes an idle connection and a half-sent line after the timeout", async () => {
    await start(fakeHandler, { idleTimeoutMs: 300 })
    const idle = raw("", { end: false })
    const partial = raw("web", { end: false })
    expect(await idle).toBe("error: no complete request line within 300 ms\n")
    expect(await partial).toBe("error: no complete request line within 300 ms\n")
    expect(seen).toEqual([])
    expect((await ping()).ok).toBe(true)
  })
  it("treats an empty connection (a probe) as nothing", async () => {
    await start()
    expect(await raw("")).toBe("")
    expect(seen).toEqual([])
  })
  it("survives 1,000 concurrent connections, refusing the excess as busy, then still answers", async () => {
    await start(fakeHandler, { maxConnections: 64, idleTimeoutMs: 20_000 })
    // Hold 64 half-open connections so every later one is over the limit.
    const held: net.Socket[] = []
    for (let i = 0; i < 64; i++) {
      const socket = net.createConnection(socketPath)
      socket.on("error", () => undefined)
      held.push(socket)
    }
    await Promise.all(held.map((s) => new Promise((r) => s.once("connect", r))))
    const answers = await Promise.all(Array.from({ length: 1000 }, (_, i) => raw(`g ${i}\n`)))
    const busy = answers.filter((a) => a.startsWith("error: busy: 64 connections already open")).length
    const queuedOut = answers.filter((a) => a === "<backlog full>").length
    expect(busy + queuedOut).toBe(1000)
    // How many the kernel's listen queue refuses outright depends on the host (somaxconn, load).
    expect(busy).toBeGreaterThan(0)
    // One log line per second at most, not one per refused connection.
    expect(rejects.filter((r) => r.startsWith("busy")).length).toBeLessThan(20)
    expect(seen).toEqual([])
    for (const socket of held) socket.destroy()
    // Once the held connections are gone the server serves again.
    let pong: Response | undefined
    const deadline = Date.now() + 20_000
    while (pong?.ok !== true && Date.now() < deadline) {
      pong = await ping()
      if (!pong.ok) await new Promise((r) => setTimeout(r, 50))
    }
    expect(pong).toMatchObject({ ok: true, op: "ping" })
  })
  it("reports every busy refusal: the summaries of a burst add up to the refusals, also after the burst ends", async () => {
    await start(fakeHandler, { maxConnections: 2, idleTimeoutMs: 20_000 })
    const held = [net.createConnection(socketPath), net.createConnection(socketPath)]
    for (const socket of held) socket.on("error", () => undefined)
    await Promise.all(held.map((s) => new Promise((r) => s.once("connect", r))))
    // A burst well inside one second: the first refusal is reported at once, the rest when the second ends.
    const answers = await Promise.all(Array.from({ length: 40 }, (_, i) => raw(`g ${i}\n`)))
    const refused = answers.filter((a) => a.startsWith("error: busy")).length
    expect(refused).toBeGreaterThan(1)
    const reported = (): number =>
      rejects.reduce((sum, r) => sum + Number(/^busy: refused (\d+) connection/.exec(r)?.[1] ?? 0), 0)
    await until(() => reported() === refused, `busy summaries adding up to ${refused} (so far ${reported()})`)
    expect(rejects.filter((r) => r.startsWith("busy")).length).toBeLessThanOrEqual(3)
    for (const socket of held) socket.destroy()
  })
  it("counts clients waiting for a transition apart, so waiters (even abandoned ones) never lock out other requests", async () => {
    let waiting = 0
    // Waits never end here: a barrier that never exits, and clients that never give up.
    const waitsForever: Handler = (req) =>
      req.op === "tell" && req.wait ? Effect.andThen(Effect.sync(() => (waiting += 1)), Effect.never) : fakeHandler(req)
    await start(waitsForever, { maxConnections: 4, maxWaiting: 8 })
    const wait = JSON.stringify({ op: "tell", group: "g", level: "1", wait: true }) + "\n"
    const waiters = Array.from({ length: 8 }, () => {
      const socket = net.createConnection(socketPath, () => socket.write(wait))
      socket.on("error", () => undefined)
      return socket
    })
    await until(() => waiting === 8, "8 waits under way")
    // Twice the connection limit is waiting, yet requests are served...
    for (let i = 0; i < 6; i++) expect((await ping()).ok).toBe(true)
    expect(await raw("stopall")).toBe("ok\n")
    // ...and one waiter more than the waiting limit is refused.
    expect(await raw(wait)).toContain('"error":"busy: 8 clients already waiting for transitions, try again"')
    for (const socket of waiters) socket.destroy()
  })
  it("serves 1,000 concurrent well-formed requests within the limit's queue", async () => {
    await start()
    const answers = await Promise.all(Array.from({ length: 1000 }, (_, i) => raw(`g ${i}\n`)))
    const served = answers.filter((a) => a === "ok\n").length
    const busy = answers.filter((a) => a.startsWith("error: busy") || a === "<backlog full>").length
    expect(served + busy).toBe(1000)
    expect(served).toBe(seen.length)
    expect(served).toBeGreaterThan(0)
    expect((await ping()).ok).toBe(true)
  })
})

describe("the client", () => {
  it("says NoDaemon when there is no socket file or only a stale one", async () => {
    const missing = await failureOf(nodePath.join(dir, "missing.s"), { op: "ping" })
    expect(missing).toMatchObject({ _tag: "NoDaemon", code: "ENOENT" })
    const stalePath = nodePath.join(dir, "stale.s")
    const old = spawn(process.execPath, ["-e", `require("net").createServer().listen(${JSON.stringify(stalePath)})`], { stdio: "ignore" })
    await until(() => fs.existsSync(stalePath), "the doomed server to listen")
    old.kill("SIGKILL")
    await new Promise((r) => old.once("exit", r))
    const stale = await failureOf(stalePath, { op: "ping" })
    expect(stale).toMatchObject({ _tag: "NoDaemon", code: "ECONNREFUSED" })
    expect(stale.message).toContain(stalePath)
  })
  it("times out when the daemon does not answer", async () => {
    await start((req) => (req.op === "status" ? Effect.never : fakeHandler(req)))
    const error = await failureOf(socketPath, { op: "status" }, { timeoutMs: 300 })
    expect(error).toMatchObject({ _tag: "ClientTimeout", timeoutMs: 300 })
    expect((await ping()).ok).toBe(true)
  })
  it("says BadAnswer for an answer it cannot read or none at all", async () => {
    const rogue = net.createServer((socket) => socket.end("hello\n"))
    const rogueSilent = net.createServer((socket) => socket.end())
    const rogueSilentPath = nodePath.join(dir, "silent.s")
    const roguePath = nodePath.join(dir, "rogue.s")
    await new Promise<void>((r) => rogue.listen(roguePath, r))
    await new Promise<void>((r) => rogueSilent.listen(rogueSilentPath, r))
    try {
      expect(await failureOf(roguePath, { op: "ping" })).toMatchObject({
        _tag: "BadAnswer", reason: 'not a JSON answer: "hello"',
      })
      expect(await failureOf(rogueSilentPath, { op: "ping" })).toMatchObject({
        _tag: "BadAnswer", reason: "the daemon closed the connection without answering",
      })
    } finally {
      rogue.close()
      rogueSilent.close()
    }
  })
})

describe("the peer of a request", () => {
  it("is the connecting process's pid, uid and gid as the kernel reports them (SO_PEERCRED)", async () => {
    const peers: (Peer | undefined)[] = []
    await start((req, peer) => Effect.sync(() => {
      peers.push(peer)
      return answerFor(req)
    }), { peerOf })
    expect(await answer(socketPath, { op: "stopall" })).toMatchObject({ ok: true })
    // This test process connected: the kernel names it, whatever the request says.
    expect(peers).toEqual(
      process.platform === "linux"
        ? [{ _tag: "Known", pid: process.pid, uid: process.getuid?.(), gid: process.getgid?.() }]
        : [{ _tag: "Unknown", reason: expect.any(String) as string }],
    )
    // Without peerOf the handler is told nothing.
    const other = nodePath.join(dir, "other.s")
    await start((req, peer) => Effect.sync(() => {
      peers.push(peer)
      return answerFor(req)
    }), {}, other)
    await answer(other, { op: "stopall" })
    expect(peers[1]).toBeUndefined()
  })
})
