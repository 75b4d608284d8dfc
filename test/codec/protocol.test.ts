import * as E from "fp-ts/lib/Either.js"
import { describe, expect, it } from "vitest"
import type { Request, Response } from "../../src/codec/protocol.ts"
import {
  decodeRequestLine,
  decodeResponseLine,
  encodeOriginalRequest,
  encodeOriginalResponse,
  encodeRequest,
  encodeResponse,
  framingOf,
  maxLineBytes,
  maxNameLength,
  planAnswer,
} from "../../src/codec/protocol.ts"

const ok = (line: string): Request => {
  const decoded = decodeRequestLine(line)
  if (E.isLeft(decoded)) throw new Error(`expected ${JSON.stringify(line)} to decode, got: ${decoded.left}`)
  return decoded.right
}
const error = (line: string): string => {
  const decoded = decodeRequestLine(line)
  if (E.isRight(decoded)) throw new Error(`expected ${JSON.stringify(line)} to be refused, got ${JSON.stringify(decoded.right)}`)
  return decoded.left
}

describe("the original line protocol", () => {
  it("reads GROUP LEVEL as a tell, with or without newline, split like Perl's split(' ')", () => {
    const tell = { op: "tell", group: "web", level: "2", wait: false }
    expect(ok("web 2\n")).toEqual(tell)
    expect(ok("web 2")).toEqual(tell)
    expect(ok("  web\t 2 \r\n")).toEqual(tell)
    expect(ok("web 0")).toEqual({ ...tell, level: "0" })
  })
  it("reads a line starting with stopall as stopall only, never also as a tell", () => {
    expect(ok("stopall")).toEqual({ op: "stopall" })
    expect(ok("stopall\n")).toEqual({ op: "stopall" })
    expect(ok("stopall now")).toEqual({ op: "stopall" })
  })
  it("refuses an empty line, one word, and more than two words", () => {
    expect(error("")).toMatch(/empty request/)
    expect(error("   \n")).toMatch(/empty request/)
    expect(error("status")).toMatch(/unknown verb "status"/)
    expect(error("web 2 extra")).toMatch(/too many words \(3\)/)
  })
  it("refuses names over 256 characters and control characters", () => {
    expect(ok(`${"g".repeat(maxNameLength)} 2`)).toMatchObject({ op: "tell" })
    expect(error(`${"g".repeat(maxNameLength + 1)} 2`)).toMatch(/group is longer than 256/)
    expect(error(`web ${"l".repeat(maxNameLength + 1)}`)).toMatch(/level is longer than 256/)
    expect(error("web\u0000 2")).toMatch(/binary data/)
    expect(error("web 2\u0085")).toMatch(/control characters in the request/)
  })
  it("refuses lines over the limit", () => {
    expect(error(`web ${"x".repeat(maxLineBytes)}`)).toMatch(/longer than 4096 bytes/)
  })
})

describe("the JSON protocol", () => {
  it("decodes every request kind", () => {
    expect(ok('{"op":"tell","group":"g","level":"2"}')).toEqual({ op: "tell", group: "g", level: "2", wait: false })
    expect(ok('{"op":"tell","group":"g","level":"2","wait":true,"timeoutMs":30000}\n')).toEqual({
      op: "tell", group: "g", level: "2", wait: true, timeoutMs: 30000,
    })
    expect(ok('{"op":"stopall"}')).toEqual({ op: "stopall" })
    expect(ok('{"op":"status"}')).toEqual({ op: "status" })
    expect(ok('{"op":"plan","group":"g","level":"2"}')).toEqual({ op: "plan", group: "g", level: "2" })
    expect(ok('{"op":"ping"}')).toEqual({ op: "ping" })
    expect(ok(' {"op":"reload"}')).toEqual({ op: "reload" })
  })
  it("carries the operator's confirmation of a re-read that stops most of what runs (force)", () => {
    expect(ok('{"op":"tell","group":"g","level":"2","force":true}')).toEqual({ op: "tell", group: "g", level: "2", wait: false, force: true })
    expect(ok('{"op":"tell","group":"g","level":"2","force":false}')).toEqual({ op: "tell", group: "g", level: "2", wait: false })
    expect(ok('{"op":"reload","force":true}')).toEqual({ op: "reload", force: true })
    expect(ok('{"op":"reload","force":false}')).toEqual({ op: "reload" })
    expect(error('{"op":"reload","force":"yes"}')).toBe('reload: field "force" must be boolean')
  })
  it("says what is wrong: bad JSON, not an object, missing op, unknown op", () => {
    expect(error('{"op":"tell"')).toMatch(/^not JSON: /)
    expect(error("{}")).toMatch(/missing field "op": expected one of tell, stopall, status, plan, ping, reload, handover/)
    expect(error('{"op":"dance"}')).toMatch(/unknown op "dance"/)
    expect(error('{"op":7}')).toMatch(/unknown op 7/)
    expect(framingOf("[1]")).toBe("line")
    expect(framingOf(' {"op":"x"}')).toBe("json")
  })
  it("names missing and mistyped fields", () => {
    expect(error('{"op":"tell","level":"2"}')).toBe('tell: missing field "group"')
    expect(error('{"op":"plan","group":"g"}')).toBe('plan: missing field "level"')
    expect(error('{"op":"tell","group":"g","level":2}')).toBe("tell: level must be a string")
    expect(error('{"op":"tell","group":"g","level":"2","wait":"yes"}')).toBe('tell: field "wait" must be boolean')
    expect(error('{"op":"tell","group":"g","level":"2","timeoutMs":-1}')).toMatch(/timeoutMs must be a whole number/)
    expect(error('{"op":"tell","group":"g","level":"2","timeoutMs":1.5}')).toMatch(/timeoutMs must be a whole number/)
  })
  it("validates group and level names as the line protocol does", () => {
    expect(error('{"op":"tell","group":"","level":"2"}')).toBe("tell: group is empty")
    expect(error('{"op":"tell","group":"a b","level":"2"}')).toBe("tell: group contains whitespace")
    expect(error('{"op":"plan","group":"g","level":"\\u0001"}')).toBe("plan: level contains a control character")
    expect(error(JSON.stringify({ op: "tell", group: "g".repeat(257), level: "2" }))).toBe("tell: group is longer than 256 characters")
  })
})

describe("encoding", () => {
  const requests: readonly Request[] = [
    { op: "tell", group: "g", level: "2", wait: false },
    { op: "tell", group: "g", level: "0", wait: true, timeoutMs: 5 },
    { op: "stopall" },
    { op: "status" },
    { op: "plan", group: "g", level: "x" },
    { op: "ping" },
    { op: "reload" },
    { op: "reload", force: true },
    { op: "tell", group: "g", level: "2", wait: true, force: true },
    { op: "handover" },
  ]
  it("round-trips every request through one JSON line", () => {
    for (const request of requests) {
      const line = encodeRequest(request)
      expect(line.endsWith("\n")).toBe(true)
      expect(line.slice(0, -1)).not.toContain("\n")
      expect(ok(line)).toEqual(request)
    }
  })
  it("writes the original protocol where it exists", () => {
    expect(encodeOriginalRequest({ op: "tell", group: "g", level: "2", wait: false })).toBe("g 2\n")
    expect(encodeOriginalRequest({ op: "stopall" })).toBe("stopall\n")
    expect(encodeOriginalRequest({ op: "status" })).toBeUndefined()
  })
  it("answers the line protocol in plain text, on one line", () => {
    expect(encodeOriginalResponse({ ok: true, op: "stopall" })).toBe("ok\n")
    expect(encodeOriginalResponse({ ok: false, error: "no group\nnamed x" })).toBe("error: no group named x\n")
  })
  const responses: readonly Response[] = [
    { ok: true, op: "tell", group: "g", level: "2", seq: 3 },
    { ok: true, op: "tell", group: "g", level: "2", seq: 3, outcome: "fail", message: "test t exited 1" },
    { ok: true, op: "stopall" },
    { ok: true, op: "stopall", daemon: { pid: 7, identity: "123456" } },
    { ok: true, op: "handover", processes: 3, daemon: { pid: 7, identity: "123456" } },
    {
      ok: true,
      op: "status",
      now: 1234,
      report: {
        lifecycle: "running",
        groups: [
          {
            group: "g", state: "run", level: "2", seq: 1,
            entries: [
              { tag: "a", mode: "respawn", levels: ["2"], state: "jailed", pid: null, run: null, restarts: 5, jailedUntil: 61_000, lastExit: "exit 1" },
            ],
          },
        ],
      },
    },
    {
      ok: true, op: "plan", group: "g", level: "2", accepted: true,
      effects: [
        { _tag: "Spawn", tag: "a", run: 1, group: "g", command: "sleep 9" },
        { _tag: "RunSync", tag: "b", run: 2, group: "g", command: "true" },
        { _tag: "Kill", tag: "c", run: 3, signal: "SIGTERM" },
        { _tag: "WriteStatus" },
        { _tag: "Log", entry: { what: "started", group: "g", message: "x" } },
      ],
    },
    { ok: true, op: "ping", pid: 42, version: "0.1.0" },
    { ok: true, op: "reload" },
    { ok: false, error: "unknown group x" },
  ]
  it("round-trips every response", () => {
    for (const response of responses) expect(decodeResponseLine(encodeResponse(response))).toEqual(E.right(response))
  })
  it("reads a plain-text error (e.g. busy) as a failure and refuses malformed answers", () => {
    expect(decodeResponseLine("error: busy\n")).toEqual(E.right({ ok: false, error: "busy" }))
    expect(decodeResponseLine("nonsense")).toEqual(E.left('not a JSON answer: "nonsense"'))
    expect(decodeResponseLine('{"ok":true,"op":"tell"}')).toMatchObject({ _tag: "Left" })
    expect(decodeResponseLine('{"ok":true,"op":"status","now":1,"report":{"lifecycle":"running","groups":[{"group":"g"}]}}')).toMatchObject({
      _tag: "Left",
    })
    expect(decodeResponseLine('{"ok":false}')).toEqual(E.right({ ok: false, error: "the daemon reported an error without a reason" }))
  })
})

describe("the plan answer", () => {
  it("carries the wire's own steps, converted from the core's effects: no hold, the fields it always had", () => {
    const answer = planAnswer("g", "2", {
      _tag: "Accepted",
      effects: [
        { _tag: "Spawn", tag: "a", run: 1, group: "g", command: "sleep 9", hold: { epoch: 3, until: 9 } },
        { _tag: "Kill", tag: "c", run: 3, signal: "SIGTERM" },
        { _tag: "Log", entry: { what: "group", group: "g", message: "entering level 2 (1 entries)" } },
      ],
    })
    expect(answer).toEqual({
      op: "plan", group: "g", level: "2", accepted: true,
      effects: [
        { _tag: "Spawn", tag: "a", run: 1, group: "g", command: "sleep 9" },
        { _tag: "Kill", tag: "c", run: 3, signal: "SIGTERM" },
        { _tag: "Log", entry: { what: "group", group: "g", message: "entering level 2 (1 entries)" } },
      ],
    })
    const line = encodeResponse({ ok: true, ...answer })
    expect(decodeResponseLine(line)).toEqual(E.right({ ok: true, ...answer }))
  })
  it("gives a refusal's reason, and the `rejected` log step older clients read", () => {
    const answer = planAnswer("nope", "1", {
      _tag: "Rejected",
      rejection: { _tag: "Rejected", event: "Tell", subject: "tell nope 1", group: "nope", reason: 'unknown group "nope"' },
    })
    expect(answer).toEqual({
      op: "plan", group: "nope", level: "1", accepted: false, reason: 'unknown group "nope"',
      effects: [{ _tag: "Log", entry: { what: "rejected", group: "nope", message: 'tell nope 1: unknown group "nope"' } }],
    })
    expect(decodeResponseLine(encodeResponse({ ok: true, ...answer }))).toEqual(E.right({ ok: true, ...answer }))
  })
})
