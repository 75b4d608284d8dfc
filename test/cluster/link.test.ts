/** The watch link's state machine (store/link.ts): backoff between losses in a row, one outage per run. */
import { describe, expect, it } from "vitest"
import type { Link, LinkEvent, Resync } from "../../src/cluster/store/link.ts"
import { initialLink, nextLink } from "../../src/cluster/store/link.ts"

const backoff = { initialMs: 100, maxMs: 1_000 }

/** Feeds events; returns the resyncs asked for, in order. */
const resyncs = (events: readonly LinkEvent[], from: Link = initialLink): Resync[] => {
  let link = from
  const out: Resync[] = []
  for (const event of events) {
    const [next, resync] = nextLink(link, event, backoff)
    link = next
    if (resync !== undefined) out.push(resync)
  }
  return out
}

const lostAt = (now: number): LinkEvent[] => [{ _tag: "Lost", now }, { _tag: "Opened" }]

describe("watch link", () => {
  it("resyncs at once after the first loss, then backs off while sessions keep being lost before they are stable", () => {
    const burst = resyncs([0, 10, 20, 30, 40, 50, 60].flatMap(lostAt))
    expect(burst.map((r) => r.outage)).toEqual(["New", "Continued", "Continued", "Continued", "Continued", "Continued", "Continued"])
    expect(burst.map((r) => r.delayMs)).toEqual([0, 100, 200, 400, 800, 1_000, 1_000])
  })

  it("counts sessions confirmed but lost before they were stable as the same outage", () => {
    const flapping = resyncs([...lostAt(0), { _tag: "Confirmed", now: 100 }, ...lostAt(1_099)])
    expect(flapping).toEqual([{ outage: "New", delayMs: 0 }, { outage: "Continued", delayMs: 100 }])
  })

  it("starts a new outage after a session that stayed up as long as the longest pause", () => {
    const after = resyncs([...lostAt(0), ...lostAt(10), { _tag: "Confirmed", now: 1_000 }, ...lostAt(2_000)])
    expect(after).toEqual([{ outage: "New", delayMs: 0 }, { outage: "Continued", delayMs: 100 }, { outage: "New", delayMs: 0 }])
  })
})
