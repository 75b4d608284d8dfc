/**
 * The re-read guard (src/core/reread.ts): a tell or reload whose re-read isinittab would stop more
 * than the file's `:::removal-guard:` share (50% by default) of the entries that run now, because
 * their lines are gone, is refused and changes nothing; confirmed (no guard), it applies.
 */
import { fc, test } from "@fast-check/vitest"
import { describe, expect, it } from "vitest"
import { hasErrors } from "../src/core/config.ts"
import { reload, tell } from "../src/core/events.ts"
import { parseInittab } from "../src/core/inittab.ts"
import { exceedsGuard, removalOf, removalRefusal } from "../src/core/reread.ts"
import { runsForever } from "../src/sim/behaviour.ts"
import type { EntrySpec } from "./helpers.ts"
import { configText, entriesArb, liveTags, makeWorld, rejections } from "./helpers.ts"

/** Every entry running: respawn and once entries of g and h at level 1. */
const runningWorld = (entries: readonly EntrySpec[], header: string) => {
  const w = makeWorld(entries.map((e) => ({ ...e, levels: ["1"] })), entries.map((e) => [e.tag, runsForever()]), { sigtermDelayMs: 10 }, header)
  w.tell("g", "1")
  w.tell("h", "1")
  w.advance(5)
  return w
}

const guardArb = fc.constantFrom("", ":::removal-guard:50%\n", ":::removal-guard:0%\n", ":::removal-guard:75%\n", ":::removal-guard:100%\n", ":::removal-guard:off\n")
const howArb = fc.constantFrom<"tell" | "reload">("tell", "reload")

test.prop([entriesArb({ modes: ["respawn", "once"], groups: ["g", "h"], min: 1, max: 8 }), fc.array(fc.boolean(), { minLength: 8, maxLength: 8 }), guardArb, howArb])(
  "a guarded re-read that would stop more than the share of what runs is refused and changes nothing; otherwise it applies",
  (entries, kept, guard, how) => {
    // Anchors keep both groups defined (a tell of a group the file lost is refused for that reason).
    const anchors = "g:anchor-g:9:once:a\nh:anchor-h:9:once:a\n"
    const w = runningWorld(entries, guard + anchors)
    const running = liveTags(w)
    expect(running).toEqual(entries.map((e) => e.tag).sort())
    const remaining = entries.filter((_, i) => kept[i] === true).map((e) => ({ ...e, levels: ["1"] }))
    const parsed = parseInittab(guard + anchors + configText(remaining))
    expect(hasErrors(parsed)).toBe(false)
    const removed = running.length - remaining.length
    const share = guard.includes("off") ? 100 : Number(/(\d+)%/.exec(guard)?.[1] ?? 50)
    const refused = removed * 100 > share * running.length
    expect(removalRefusal(w.state, parsed.config) !== undefined).toBe(refused)
    const before = w.state
    w.inject(how === "tell" ? tell("g", "1", parsed, w.now, "removals") : reload(parsed, w.now, "removals"))
    const last = w.history.at(-1)
    if (refused) {
      expect(w.state).toBe(before)
      expect(last?.effects).toHaveLength(1)
      expect(rejections(last?.effects ?? [])).toBe(1)
      const reason = w.timeline.filter((e) => e.kind === "rejected").at(-1)?.detail ?? ""
      expect(reason).toMatch(new RegExp(`would stop ${removed} of the ${running.length} running entries .*more than the ${share}%.*--force`))
    } else {
      expect(rejections(last?.effects ?? [])).toBe(0)
      w.advance(50)
      expect(liveTags(w)).toEqual(remaining.map((e) => e.tag).sort())
    }
    expect(w.violations).toEqual([])
  },
)

test.prop([entriesArb({ modes: ["respawn", "once"], groups: ["g", "h"], min: 1, max: 8 }), fc.integer({ min: 0, max: 7 }), howArb])(
  "without the guard (the operator confirmed, or etcd's config), the same re-read applies: what is gone stops",
  (entries, cut, how) => {
    const anchors = "g:anchor-g:9:once:a\nh:anchor-h:9:once:a\n"
    const w = runningWorld(entries, anchors)
    const remaining = entries.slice(0, cut).map((e) => ({ ...e, levels: ["1"] }))
    const parsed = parseInittab(anchors + configText(remaining))
    w.inject(how === "tell" ? tell("g", "1", parsed, w.now) : reload(parsed, w.now))
    w.advance(50)
    expect(liveTags(w)).toEqual(remaining.map((e) => e.tag).sort())
    expect(w.violations).toEqual([])
  },
)

describe("the share, at its edges", () => {
  const config = (guard: string, tags: readonly string[]) => parseInittab(guard + tags.map((t) => `g:${t}:1:once:x\n`).join("")).config
  const cases: ReadonlyArray<readonly [string, readonly string[], readonly string[], boolean]> = [
    // guard, running, still in the file, refused
    ["", ["a", "b"], ["a"], false], // 1 of 2 is 50%: not more than half
    ["", ["a", "b", "c"], ["a"], true], // 2 of 3
    ["", ["a"], ["z"], true], // the only service: 100%
    ["", ["a", "b", "c", "d"], ["a", "b"], false],
    ["", ["a", "b", "c", "d"], ["a"], true],
    ["", [], ["a"], false], // nothing runs: nothing to stop
    [":::removal-guard:0%\n", ["a", "b", "c", "d"], ["a", "b", "c"], true], // any removal
    [":::removal-guard:0%\n", ["a", "b"], ["a", "b"], false],
    [":::removal-guard:75%\n", ["a", "b", "c", "d"], ["a"], false], // 75% is not more than 75%
    [":::removal-guard:75%\n", ["a", "b", "c", "d"], ["z"], true],
    [":::removal-guard:100%\n", ["a", "b"], ["z"], false],
    [":::removal-guard:off\n", ["a", "b"], ["z"], false],
  ]
  for (const [guard, running, kept, refused] of cases) {
    it(`${guard.trim() || "default 50%"}: ${running.length - kept.filter((t) => running.includes(t)).length} of ${running.length} removed: ${refused ? "refused" : "applied"}`, () => {
      const next = config(guard, kept)
      expect(exceedsGuard(removalOf(running, next), next)).toBe(refused)
    })
  }

  it("only removed lines count: entries set to off or moved to another level are edits, not cuts", () => {
    const w = runningWorld([1, 2, 3, 4].map((i) => ({ group: "g", tag: `t${i}`, levels: ["1"], mode: "respawn" as const, command: `c${i}` })), "h:anchor-h:9:once:a\n")
    const edited = parseInittab("h:anchor-h:9:once:a\ng:t1:1:off:c1\ng:t2:1:off:c2\ng:t3:2:respawn:c3\ng:t4:1:respawn:changed\n")
    expect(removalRefusal(w.state, edited.config)).toBeUndefined()
  })

  it("names what would stop, the share, and how to confirm", () => {
    const w = runningWorld([1, 2, 3, 4, 5, 6, 7].map((i) => ({ group: "g", tag: `t${i}`, levels: ["1"], mode: "respawn" as const, command: `c${i}` })), "h:anchor-h:9:once:a\n")
    const reason = removalRefusal(w.state, parseInittab("g:t1:1:respawn:c1\n").config)
    expect(reason).toBe(
      "the isinittab as read now would stop 6 of the 7 running entries (t2, t3, t4, t5, t6 and 1 more): their lines are gone, " +
        "more than the 50% a re-read may stop unconfirmed, as when a file is read while being rewritten; nothing was changed. " +
        "If you meant it, run isinit reload --force (or the tell with --force); :::removal-guard: sets the share. " +
        "Replace the file atomically (write, then rename)",
    )
  })
})
