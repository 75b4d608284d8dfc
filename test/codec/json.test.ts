/** The one JSON reader: parse, decode, and one sentence per problem with the field's path. */
import * as t from "io-ts"
import { describe, expect, it } from "vitest"
import { decodeJson } from "../../src/codec/json.ts"

const level = new t.Type<string, string, unknown>(
  "level",
  (u): u is string => typeof u === "string",
  (u, c) => (typeof u === "string" && u !== "" ? t.success(u) : t.failure(u, c, "level must be a non-empty string")),
  t.identity,
)
const codec = t.intersection([
  t.type({ level, groups: t.array(t.type({ name: t.string, seq: t.number })) }),
  t.partial({ by: t.string, at: level }),
])

const problem = (text: string): string => {
  const decoded = decodeJson(codec, text)
  return decoded._tag === "Left" ? decoded.left : "decoded"
}

describe("decodeJson", () => {
  it("decodes what fits", () => {
    expect(decodeJson(codec, '{"level":"2","groups":[]}')).toEqual({ _tag: "Right", right: { level: "2", groups: [] } })
  })

  it("says why text is not JSON", () => {
    expect(problem("{")).toMatch(/^not JSON: /)
  })

  it("names missing fields and wrong types by their path, without io-ts's member indices", () => {
    expect(problem('{"groups":[]}')).toBe('missing field "level"')
    expect(problem('{"level":"2","groups":[{"name":"web","seq":"x"}]}')).toBe('field "groups.0.seq" must be number')
  })

  it("keeps a codec's own sentence, prefixed with the path unless it starts with it", () => {
    expect(problem('{"level":"","groups":[]}')).toBe("level must be a non-empty string")
    expect(problem('{"level":"2","groups":[],"at":""}')).toBe("at: level must be a non-empty string")
  })

  it("lists every distinct problem once", () => {
    expect(problem('{"level":"","groups":{}}')).toBe('level must be a non-empty string; field "groups" must be Array<{ name: string, seq: number }>')
  })
})
