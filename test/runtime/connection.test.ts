/**
 * A connection's state machine (runtime/connection.ts): each transition, and the property the
 * server's limits rest on: applying the change of slot of every transition to the counters, as
 * the server does, leaves them equal to the slots the connections hold, and at zero once every
 * connection is closed, whatever order the inputs come in.
 */
import { fc, test as fcTest } from "@fast-check/vitest"
import { describe, expect, it } from "vitest"
import type { Connection, ConnectionInput, Slot } from "../../src/runtime/connection.ts"
import { nextConnection, reading, slotOf } from "../../src/runtime/connection.ts"

const run = (inputs: readonly ConnectionInput[]): Connection => inputs.reduce(nextConnection, reading)

const request = (slot: "Active" | "Waiting"): ConnectionInput => ({ _tag: "Request", slot })
const refuse: ConnectionInput = { _tag: "Refuse" }
const answer: ConnectionInput = { _tag: "Answer" }
const close: ConnectionInput = { _tag: "Close" }

describe("a connection", () => {
  it("holds an active slot while reading, while handled and while its answer lingers, until it closes", () => {
    expect(slotOf(reading)).toBe("Active")
    expect(run([request("Active")])).toEqual({ _tag: "Handling", slot: "Active", peer: "Open" })
    expect(run([request("Active"), answer])).toEqual({ _tag: "Answered", slot: "Active" })
    expect(run([request("Active"), answer, close])).toEqual({ _tag: "Closed" })
  })

  it("a waiting tell gives its active slot up for a waiting one, and that one back with its answer", () => {
    expect(slotOf(run([request("Waiting")]))).toBe("Waiting")
    expect(run([request("Waiting"), answer])).toEqual({ _tag: "Answered", slot: "None" })
  })

  it("keeps its slot while its handler runs after the peer left, and frees it with the answer", () => {
    expect(run([request("Active"), close])).toEqual({ _tag: "Handling", slot: "Active", peer: "Gone" })
    expect(run([request("Waiting"), close, answer])).toEqual({ _tag: "Closed" })
  })

  it("a refused line is answered at once and lingers on its active slot", () => {
    expect(run([refuse])).toEqual({ _tag: "Answered", slot: "Active" })
    expect(run([close])).toEqual({ _tag: "Closed" })
  })

  it("ignores what cannot happen in a state: a second request, an answer without a handler, anything once closed", () => {
    expect(run([request("Active"), request("Waiting")])).toEqual({ _tag: "Handling", slot: "Active", peer: "Open" })
    expect(run([answer])).toBe(reading)
    expect(run([refuse, refuse, answer])).toEqual({ _tag: "Answered", slot: "Active" })
    expect(run([close, request("Active"), answer])).toEqual({ _tag: "Closed" })
  })

  const inputArb: fc.Arbitrary<ConnectionInput> = fc.oneof(
    fc.constantFrom("Active" as const, "Waiting" as const).map(request),
    fc.constant(refuse),
    fc.constant(answer),
    fc.constant(close),
  )

  fcTest.prop([fc.array(fc.tuple(fc.nat(4), inputArb), { maxLength: 60 })])(
    "counters kept by applying each transition's change of slot equal the slots held, and reach zero once all close and are answered",
    (steps) => {
      const conns: Connection[] = Array.from({ length: 5 }, () => reading)
      const counts: Record<Slot, number> = { Active: 5, Waiting: 0, None: 0 }
      const apply = (i: number, input: ConnectionInput): void => {
        const before = conns[i] ?? reading
        const after = nextConnection(before, input)
        counts[slotOf(before)] -= 1
        counts[slotOf(after)] += 1
        conns[i] = after
      }
      for (const [i, input] of steps) apply(i, input)
      const held = (slot: Slot): number => conns.filter((c) => slotOf(c) === slot).length
      expect(counts.Active).toBe(held("Active"))
      expect(counts.Waiting).toBe(held("Waiting"))
      // Every handler answers and every peer closes, in either order: nothing is held any more.
      for (let i = 0; i < conns.length; i++) {
        apply(i, answer)
        apply(i, close)
      }
      expect(conns.every((c) => c._tag === "Closed")).toBe(true)
      expect([counts.Active, counts.Waiting]).toEqual([0, 0])
    },
  )
})
