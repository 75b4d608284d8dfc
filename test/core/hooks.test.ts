/**
 * Event hooks, the pure half: the `:::hook` directives as `isinit check` sees them (line numbers),
 * and the notices a step of the real reducer gives (core/notices.ts), which the hooks run on.
 */
import { describe, expect, it } from "vitest"
import type { Parsed } from "../../src/core/config.ts"
import type { Event } from "../../src/core/events.ts"
import { childExit, hold, release, started, stopAll, tell, tick } from "../../src/core/events.ts"
import { defaultHookConfig, hookEvents, runsOn } from "../../src/core/hooks.ts"
import { hookEnvironment } from "../../src/core/notices.ts"
import { directives, parseInittab } from "../../src/core/inittab.ts"
import type { Notice } from "../../src/core/notices.ts"
import { noticesOf } from "../../src/core/notices.ts"
import { reduce } from "../../src/core/reducer.ts"
import type { State } from "../../src/core/state.ts"
import { maxRespawnCount } from "../../src/core/units.ts"
import { initialStateWith } from "../../src/core/state.ts"

const errors = (parsed: Parsed): string[] => parsed.problems.filter((p) => p.severity === "error").map((p) => `${p.line}: ${p.message}`)

describe("hook directives", () => {
  it("reads events, commands with colons, the timeout and the limit; defaults 30s and 10/10s", () => {
    const parsed = parseInittab(":::hook:exited,jailed:/usr/local/bin/page --to ops:oncall\n:::hook:*:logger isinit\n:::hook-timeout:2s\n:::hook-limit:3/1m\ng:t:1:once:x\n")
    expect(parsed.problems).toEqual([])
    expect(parsed.config.hooks).toEqual({
      hooks: [
        { on: { _tag: "Some", events: ["exited", "jailed"] }, command: "/usr/local/bin/page --to ops:oncall", line: 1 },
        { on: { _tag: "Every" }, command: "logger isinit", line: 2 },
      ],
      timeoutMs: 2_000,
      limit: { max: 3, windowMs: 60_000 },
    })
    expect(parseInittab("g:t:1:once:x\n").config.hooks).toEqual(defaultHookConfig)
    expect(defaultHookConfig).toMatchObject({ timeoutMs: 30_000, limit: { max: 10, windowMs: 10_000 } })
  })

  it("refuses an unknown event, a missing or empty command and bad values, each on its line", () => {
    const text = [":::hook:exitted:true", ":::hook:started", ":::hook:started:  ", ":::hook:started,nope,*:x", ":::hook-timeout:0", ":::hook-limit:ten", "g:t:1:once:x"].join("\n")
    expect(errors(parseInittab(text))).toEqual([
      `1: directive "hook": unknown event "exitted" (events: ${hookEvents.join(", ")}, or * for all)`,
      '2: directive "hook": no command in "started": write :::hook:EVENT:COMMAND',
      '3: directive "hook": the command is empty: write :::hook:EVENT:COMMAND',
      `4: directive "hook": unknown events "nope", "*" (events: ${hookEvents.join(", ")}, or * for all)`,
      `5: directive "hook-timeout": bad value "0": expected DURATION, an integer with unit ms, s or m (e.g. 500ms, 10s, 2m; bare means seconds), positive, at most 2147483647ms`,
      `6: directive "hook-limit": bad value "ten": expected N/DURATION with N from 1 to ${maxRespawnCount} and DURATION an integer with unit ms, s or m (e.g. 500ms, 10s, 2m; bare means seconds), positive, at most 2147483647ms`,
    ])
  })

  it("are listed for the README, and the original's skipped ::: lines stay directives", () => {
    expect(directives.map((d) => d.syntax.split(":")[3]).slice(-3)).toEqual(["hook", "hook-timeout", "hook-limit"])
    expect(parseInittab(":::hook:started:x\ng:t:1:once:x\n").config.entries.map((e) => e.tag)).toEqual(["t"])
  })

  it("a hook runs on its events, or on every one", () => {
    const [some, every] = parseInittab(":::hook:exited,jailed:x\n:::hook:*:y\ng:t:1:once:x\n").config.hooks.hooks
    if (some === undefined || every === undefined) throw new Error("two hooks expected")
    expect(hookEvents.filter((e) => runsOn(some, e))).toEqual(["exited", "jailed"])
    expect(hookEvents.filter((e) => runsOn(every, e))).toEqual(hookEvents)
  })

  it("gives every variable, empty when the event has no such field", () => {
    const [hook] = parseInittab(":::hook:*:x\ng:t:1:once:x\n").config.hooks.hooks
    if (hook === undefined) throw new Error("a hook expected")
    const notice: Notice = { event: "exited", now: 5, group: "web", tag: "srv", pid: 42, run: 3, outcome: "exit 1", level: "2" }
    expect(hookEnvironment(notice, hook, { node: "n1", cluster: "prod" }, "2026-01-01T00:00:00.000Z")).toEqual({
      ISINIT_EVENT: "exited", ISINIT_GROUP: "web", ISINIT_TAG: "srv", ISINIT_PID: "42", ISINIT_RUN: "3", ISINIT_OUTCOME: "exit 1",
      ISINIT_LEVEL: "2", ISINIT_EPOCH: "", ISINIT_MESSAGE: "", ISINIT_TIME: "2026-01-01T00:00:00.000Z", ISINIT_NODE: "n1",
      ISINIT_CLUSTER: "prod", ISINIT_HOOK_LINE: "1",
    })
  })
})

/** Folds events through the real reducer, collecting the notices of every step. */
const play = (parsed: Parsed, events: readonly ((state: State) => Event)[], from: State = initialStateWith(parsed.config)): { state: State; notices: Notice[] } => {
  let state = from
  const notices: Notice[] = []
  for (const make of events) {
    const event = make(state)
    const [after, effects] = reduce(state, event)
    notices.push(...noticesOf({ event, before: state, after, effects }))
    state = after
  }
  return { state, notices }
}

const brief = (n: Notice): string => [n.event, n.group, n.tag, n.pid, n.outcome].filter((x) => x !== undefined).join(" ")

describe("notices of the reducer's steps", () => {
  const parsed = parseInittab(":::respawn-limit:2/10s\n:::jail:5s\nweb:srv:1:respawn:server\nweb:chk:1:test:check\n")

  it("a tell: the transition begins, processes start, the test fails, the group is fail", () => {
    const { notices } = play(parsed, [
      () => tell("web", "1", parsed, 0),
      () => started("srv", 1, 100, 1),
      () => started("chk", 2, 101, 1),
      () => childExit("chk", 2, { _tag: "Exited", code: 3 }, 2),
    ])
    expect(notices.map(brief)).toEqual(["group-start web start", "started web srv 100", "started web chk 101", "exited web chk 101 exit 3", "group-fail web fail"])
    expect(notices[0]).toMatchObject({ level: "1", now: 0 })
  })

  it("a respawn entry crashing: exited, restarting, started; then restarting into the jail, released by a tick", () => {
    const crash = (run: number, at: number) => () => childExit("srv", run, { _tag: "Signaled", signal: "SIGKILL" }, at)
    const { notices } = play(parsed, [
      () => tell("web", "1", parsed, 0),
      () => started("srv", 1, 100, 1),
      crash(1, 2),
      () => started("srv", 3, 102, 3),
      crash(3, 4),
      () => tick(10_001),
    ])
    // The reducer logs the restart it decides, then the jail that holds it back (one jailing, rule 6).
    expect(notices.map((n) => n.event)).toEqual(["group-start", "started", "exited", "restarting", "started", "exited", "restarting", "jailed", "released"])
    expect(notices.find((n) => n.event === "jailed")).toMatchObject({ group: "web", tag: "srv", message: expect.stringMatching(/respawning too rapidly/) as unknown })
  })

  it("never tells of a run the state does not know: a late or duplicate exit, a duplicate start", () => {
    const { state } = play(parsed, [() => tell("web", "1", parsed, 0), () => started("srv", 1, 100, 1)])
    const { notices } = play(parsed, [() => childExit("srv", 9, { _tag: "Exited", code: 0 }, 2), () => started("srv", 1, 100, 2), () => started("nosuch", 1, 5, 2)], state)
    expect(notices).toEqual([])
  })

  it("stopall: every group stopping, the exits, then stopped", () => {
    const two = parseInittab("a:x:1:respawn:x\nb:y:1:respawn:y\n")
    const { notices } = play(two, [
      () => tell("a", "1", two, 0),
      () => tell("b", "1", two, 0),
      () => stopAll(1),
      () => childExit("x", 1, { _tag: "Signaled", signal: "SIGTERM" }, 2),
      () => childExit("y", 2, { _tag: "Signaled", signal: "SIGTERM" }, 3),
    ])
    // Every group stays `stopping` until the last process is gone (rule 8), then all are `stopped` at once.
    expect(notices.map(brief).slice(4)).toEqual(["group-stopping a stopping", "group-stopping b stopping", "exited a x signal SIGTERM", "exited b y signal SIGTERM", "group-stopped a stopped", "group-stopped b stopped"])
  })

  it("a failover hold gained, renewed (nothing), and lost by a release or by running out", () => {
    const fo = parseInittab(":::failover:web:on\nweb:w:on,:respawn:server\n")
    const moved = (events: readonly ((s: State) => Event)[]) => play(fo, events).notices.filter((n) => n.event === "failover-moved").map((n) => `${n.outcome} ${n.epoch}`)
    expect(moved([() => hold("web", 7, 5_000, 0), () => hold("web", 7, 8_000, 3_000), () => release("web", 4_000)])).toEqual(["acquired 7", "released 7"])
    expect(moved([() => hold("web", 7, 5_000, 0), () => hold("web", 8, 9_000, 1_000), () => tick(9_000)])).toEqual(["acquired 7", "acquired 8", "expired 8"])
  })
})
