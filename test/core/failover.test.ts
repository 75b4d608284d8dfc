/**
 * The `:::failover` directives as `isinit check` sees them (line numbers, the timing rule), and
 * the core's part of failover: a failover group runs only under a hold, stops by itself when the
 * hold runs out, refuses local tells, and hands its epoch to its children.
 */
import { fc, test as fcTest } from "@fast-check/vitest"
import { describe, expect, it } from "vitest"
import type { Parsed } from "../../src/core/config.ts"
import type { Effect } from "../../src/core/effects.ts"
import { driftBound, reapSlackMs, standbyLevel, stretch, timingFor, timingProblems, worstStopMs } from "../../src/core/failover.ts"
import { childExit, hold, release, tell, tick } from "../../src/core/events.ts"
import { parseInittab } from "../../src/core/inittab.ts"
import { reduce } from "../../src/core/reducer.ts"
import type { State } from "../../src/core/state.ts"
import { groupOf, initialStateWith } from "../../src/core/state.ts"

const errors = (parsed: Parsed): string[] => parsed.problems.filter((p) => p.severity === "error").map((p) => `${p.line}: ${p.message}`)
const warnings = (parsed: Parsed): string[] => parsed.problems.filter((p) => p.severity === "warning").map((p) => `${p.line}: ${p.message}`)

const web = "web:w:on,:respawn:server\nweb:t:on,:test:check\n"

describe("failover directives", () => {
  it("declares a group with its level and preferred nodes, and the timing with its defaults", () => {
    const parsed = parseInittab(`:::failover:web:on:n1,n2\n${web}`)
    expect(parsed.problems).toEqual([])
    expect(parsed.config.failover.groups.get("web")).toEqual({ group: "web", level: "on", nodes: ["n1", "n2"], line: 1 })
    expect(parsed.config.failover.timing).toEqual({ ttlMs: 10_000, renewDeadlineMs: 6_000, killGraceMs: 3_000, takeoverDelayMs: 1_000, banMs: 300_000 })
    expect(parseInittab(`:::failover:web:on\n${web}`).config.failover.groups.get("web")?.nodes).toEqual([])
  })

  it("derives the defaults from the TTL and takes explicit values, 0 allowed only for the takeover delay", () => {
    const parsed = parseInittab(`:::failover:web:on\n:::failover-ttl:3s\n:::failover-kill-grace:500ms\n:::failover-takeover-delay:0\n:::failover-ban:2m\n${web}`)
    expect(errors(parsed)).toEqual([])
    expect(parsed.config.failover.timing).toEqual({ ttlMs: 3_000, renewDeadlineMs: 1_800, killGraceMs: 500, takeoverDelayMs: 0, banMs: 120_000 })
    expect(errors(parseInittab(`:::failover:web:on\n:::failover-kill-grace:0\n${web}`))).toEqual([
      '2: directive "failover-kill-grace": bad value "0": expected DURATION (e.g. 500ms, 10s, 2m; bare means seconds), positive',
    ])
  })

  it("refuses bad declarations, each on its line", () => {
    const text = [":::failover:web", ":::failover::on", ":::failover:web:standby", ":::failover:web:on:n1,,n2", ":::failover:web:on:n1,n1", ":::failover:web:on:a:b", ":::failover:nosuch:on", ":::failover:web:on", ":::failover:web:on", web].join("\n")
    expect(errors(parseInittab(text))).toEqual([
      '1: directive "failover": level is empty: write :::failover:GROUP:LEVEL or :::failover:GROUP:LEVEL:NODE,NODE,...',
      '2: directive "failover": group is empty: write :::failover:GROUP:LEVEL or :::failover:GROUP:LEVEL:NODE,NODE,...',
      '3: directive "failover": the level "standby" is where the group waits on nodes that do not hold it; choose another',
      '4: directive "failover": node is empty in the node list "n1,,n2"',
      '5: directive "failover": node "n1" is listed twice',
      '6: directive "failover": too many fields in "web:on:a:b": write :::failover:GROUP:LEVEL or :::failover:GROUP:LEVEL:NODE,NODE,...',
      '9: directive "failover": group "web" is already a failover group (line 8)',
      '7: directive "failover": unknown group "nosuch": no entry of the isinittab belongs to it',
    ])
  })

  it("refuses an entry of a failover group at the standby level, and warns when the holder would run nothing", () => {
    const parsed = parseInittab(`:::failover:web:off\nweb:w:on,standby:respawn:server\n`)
    expect(errors(parsed)).toEqual(['2: entry "w" of failover group "web" lists the level "standby", where the group must run nothing'])
    expect(warnings(parsed)).toEqual(['1: failover group "web": no entry lists level off, so its holder runs nothing'])
  })

  it("refuses a timing that cannot be safe, on the line of the last timing directive, saying what to raise", () => {
    const parsed = parseInittab(`:::failover:web:on\n:::failover-ttl:3s\n:::failover-renew-deadline:2s\n:::failover-kill-grace:2s\n:::failover-takeover-delay:1s\n${web}`)
    expect(errors(parsed)).toEqual([
      "5: failover timing cannot be safe: (renew deadline 2s + kill grace 2s) × 1.0202 + reap slack 0.253s = 4.333s exceeds TTL 3s + takeover delay 1s; raise :::failover-takeover-delay to at least 1.334s, or lower the renew deadline or the kill grace",
    ])
    expect(errors(parseInittab(`:::failover:web:on\n:::failover-ttl:1s\n${web}`))[0]).toBe("2: failover TTL 1s is below etcd's minimum lease of 2s")
    expect(errors(parseInittab(`:::failover:web:on\n:::failover-renew-deadline:10s\n${web}`))[0]).toMatch(/^2: renew deadline 10s must stay below the TTL 10s/)
  })

  it("warns about timing directives without a failover group, and about repeated ones", () => {
    expect(warnings(parseInittab(`:::failover-ttl:3s\n:::failover-ttl:4s\n${web}`))).toEqual([
      '2: directive "failover-ttl" repeated: this line replaces line 1',
      "2: failover timing directives without any :::failover group have no effect",
    ])
  })

  fcTest.prop([fc.integer({ min: 2_000, max: 600_000 })])("the defaults are safe for every TTL from 2 s", (ttlMs) => {
    expect(timingProblems(timingFor(ttlMs))).toEqual([])
  })

  fcTest.prop([fc.integer({ min: 2_000, max: 60_000 }), fc.integer({ min: 1, max: 60_000 }), fc.integer({ min: 1, max: 60_000 }), fc.integer({ min: 0, max: 60_000 })])(
    "check accepts a timing exactly when the rule holds",
    (ttlMs, renewDeadlineMs, killGraceMs, takeoverDelayMs) => {
      const t = { ttlMs, renewDeadlineMs, killGraceMs, takeoverDelayMs, banMs: 1 }
      const holds = renewDeadlineMs * stretch < ttlMs && (renewDeadlineMs + killGraceMs) * stretch + reapSlackMs * (1 + driftBound) <= ttlMs + takeoverDelayMs
      expect(timingProblems(t).length === 0).toBe(holds)
      expect(worstStopMs(t) <= ttlMs + takeoverDelayMs).toBe((renewDeadlineMs + killGraceMs) * stretch + reapSlackMs * (1 + driftBound) <= ttlMs + takeoverDelayMs)
    },
  )
})

// ---------------------------------------------------------------------------------------------

const config = parseInittab(`:::failover:web:on\n:::failover-kill-grace:2s\nweb:t:on,:test:check\nweb:w:on,:respawn:server\nother:o:1:respawn:o\n`)

const step = (state: State, event: Parameters<typeof reduce>[1]): [State, readonly Effect[]] => {
  const [after, effects] = reduce(state, event)
  return [after, effects]
}

const spawns = (effects: readonly Effect[]) => effects.flatMap((e) => (e._tag === "Spawn" || e._tag === "RunSync" ? [e] : []))

describe("the core's part of failover", () => {
  it("refuses a local tell of a failover group, naming the move command", () => {
    const [, effects] = step(initialStateWith(config.config), tell("web", "on", config, 0))
    expect(effects).toEqual([{ _tag: "Rejected", event: "Tell", subject: "tell web on", group: "web", reason: '"web" is a failover group: it runs where its lease is held; move it with isinit --etcd URLS move web NODE' }])
  })

  it("runs the group at its level only under a hold, and its processes carry the epoch and the deadline", () => {
    const [held, effects] = step(initialStateWith(config.config), hold("web", 42, 5_000, 0))
    expect(groupOf(held, "web").level).toBe("on")
    expect(spawns(effects)).toEqual([{ _tag: "RunSync", tag: "t", run: 1, group: "web", command: "check", hold: { epoch: 42, until: 5_000 } }])
    const [, later] = step(held, childExit("t", 1, { _tag: "Exited", code: 0 }, 100))
    expect(spawns(later)).toEqual([{ _tag: "Spawn", tag: "w", run: 2, group: "web", command: "server", hold: { epoch: 42, until: 5_000 } }])
  })

  it("stops the group by itself when the hold is not renewed, with the failover kill grace, and starts nothing after", () => {
    let [state] = step(initialStateWith(config.config), hold("web", 42, 5_000, 0))
    ;[state] = step(state, childExit("t", 1, { _tag: "Exited", code: 0 }, 100))
    const [renewed] = step(state, hold("web", 42, 8_000, 3_000))
    expect(groupOf(renewed, "web").hold).toEqual({ epoch: 42, until: 8_000 })
    const [fenced, effects] = step(renewed, tick(8_000))
    expect(groupOf(fenced, "web").level).toBe(standbyLevel)
    expect(effects.filter((e) => e._tag === "Kill")).toEqual([{ _tag: "Kill", tag: "w", run: 2, signal: "SIGTERM" }])
    const [, killed] = step(fenced, tick(10_000))
    expect(killed.filter((e) => e._tag === "Kill")).toEqual([{ _tag: "Kill", tag: "w", run: 2, signal: "SIGKILL" }])
  })

  it("starts nothing when an exit is handled after the deadline, before the tick (a daemon that stalled)", () => {
    let [state] = step(initialStateWith(config.config), hold("web", 42, 5_000, 0))
    ;[state] = step(state, childExit("t", 1, { _tag: "Exited", code: 0 }, 100))
    const [, effects] = step(state, childExit("w", 2, { _tag: "Signaled", signal: "SIGKILL" }, 9_000))
    expect(spawns(effects)).toEqual([])
    expect(effects.some((e) => e._tag === "Log" && e.entry.what === "fenced")).toBe(true)
  })

  it("re-enters the level under a new epoch or after the hold ran out; a release goes to standby; ordinary groups are untouched", () => {
    let [state] = step(initialStateWith(config.config), hold("web", 42, 5_000, 0))
    const [renewedSeq] = step(state, hold("web", 42, 6_000, 1_000))
    expect(groupOf(renewedSeq, "web").seq).toBe(groupOf(state, "web").seq)
    const [newEpoch] = step(state, hold("web", 43, 6_000, 1_000))
    expect(groupOf(newEpoch, "web").seq).toBe(groupOf(state, "web").seq + 1)
    ;[state] = step(state, release("web", 2_000))
    expect(groupOf(state, "web").level).toBe(standbyLevel)
    expect(groupOf(state, "web").hold).toBeUndefined()
    const [, late] = step(state, hold("web", 43, 1_000, 3_000))
    expect(late).toEqual([{ _tag: "Rejected", event: "Hold", subject: "hold of web (epoch 43)", group: "web", reason: "its deadline has passed" }])
    const [other, otherFx] = step(state, tell("other", "1", config, 3_000))
    expect(spawns(otherFx)).toEqual([{ _tag: "Spawn", tag: "o", run: 2, group: "other", command: "o" }])
    expect(groupOf(other, "other").hold).toBeUndefined()
  })
})
