import { fc, test } from "@fast-check/vitest"
import { expect, it } from "vitest"
import { rejectionOf } from "../src/core/effects.ts"
import { parseStatusFile, renderStatusFile, statusRows } from "../src/core/status.ts"
import { World } from "../src/sim/world.ts"
import { swarmStateArb, worldAt } from "./helpers.ts"

/** The original writer, transcribed: `printf("%-15s %-15s %-15s\n", ...)` per sorted group (ASCII names). */
const perlStatus = (id: string, groups: readonly (readonly [string, string, string])[]): string =>
  `!startid ${id}\n` +
  [...groups]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([g, s, l]) => `${g.padEnd(15)} ${s.padEnd(15)} ${l.padEnd(15)}\n`)
    .join("") +
  `!endid ${id}\n`


/** The status file's id: anything without a newline (here, what a pid and a random number give). */
const statusIdArb = fc.stringMatching(/^[0-9.]{1,20}$/)

/**
 * The level each group was last told, from the world's record: an accepted tell logs its entry
 * into the level; a config that no longer defines a group forgets its level (rule 18).
 */
const toldLevels = (w: World): Map<string, string> => {
  const levels = new Map<string, string>()
  for (const step of w.history) {
    const e = step.event
    if (e._tag !== "Tell" && e._tag !== "Reload") continue
    // A rejected one says so; a halted daemon takes nothing (and says nothing).
    if (step.effects.length === 0 || rejectionOf(step.effects) !== undefined) continue
    for (const g of levels.keys()) if (!e.parsed.config.byGroup.has(g)) levels.delete(g)
    if (e._tag === "Tell") levels.set(e.group, e.level)
  }
  return levels
}

test.prop([swarmStateArb, statusIdArb], { numRuns: 150 })(
  "rule 10: the status file is byte-compatible with the original: every group of the isinittab, sorted, " +
    "never-told ones `stopped` with an empty level (rule 18: a removed group only while its processes go)",
  ({ seed, cut }, id) => {
    const w = worldAt(seed, cut)
    const levels = toldLevels(w)
    const phases = new Map(w.report().groups.map((g) => [g.group, g.state]))
    const stateOf = (g: string): string => (levels.has(g) ? (phases.get(g) ?? "?") : "stopped")
    const rows = [...w.state.config.byGroup.keys()].map((g) => [g, stateOf(g), levels.get(g) ?? ""] as const)
    const going = new Set([...w.processes.values()].map((p) => p.group).filter((g) => !w.state.config.byGroup.has(g)))
    const expected = perlStatus(id, [...rows, ...[...going].map((g) => [g, "stopped", ""] as const)])
    const text = renderStatusFile(statusRows(w.state), id)
    expect(text).toBe(expected)
    // The writer sorts, whatever it is given.
    expect(renderStatusFile([...statusRows(w.state)].reverse(), id)).toBe(expected)
    const read = parseStatusFile(text)
    expect(read.complete).toBe(true)
    const cells = (r: { group: string; state: string; level: string }) => [r.group, r.state, r.level]
    expect(read.rows.map(cells)).toEqual(statusRows(w.state).map(cells))
  },
)

test.prop([swarmStateArb], { numRuns: 100 })(
  "rule 10: the status reader's group and level filters give what the original's `status` gives",
  ({ seed, cut }) => {
    const w = worldAt(seed, cut)
    const rows = statusRows(w.state)
    const text = renderStatusFile(rows, "7")
    for (const row of rows) {
      const byGroup = parseStatusFile(text, { group: row.group })
      expect(byGroup.rows).toHaveLength(1)
      // `s/^\S+\s+(.*?)\s*$/$1/` then chomp: state and level columns with inner padding, no trailing blanks
      expect(byGroup.text).toBe(`${row.state.padEnd(15)} ${row.level}`.trimEnd())
      if (row.level !== "") {
        const byLevel = parseStatusFile(text, { level: row.level })
        expect(byLevel.lines).toEqual(rows.filter((r) => r.level === row.level).map((r) => r.group))
      }
    }
  },
)

it("rule 10 and 11: a level 0 is shown in the status file (the original's `|| \"\"` hid it)", () => {
  const w = new World({ config: "web:a:0:respawn:a\ndb:b:1:respawn:b\n" })
  w.tell("web", "0")
  expect(renderStatusFile(statusRows(w.state), "1")).toBe(
    "!startid 1\n" +
      "db              stopped                        \n" +
      "web             run             0              \n" +
      "!endid 1\n",
  )
})

it("rule 18: a group removed from the isinittab shows `stopped` while its processes go, then is gone", () => {
  const w = new World({ config: "web:a:1:respawn:a\ndb:b:1:respawn:b\n", sigtermDelayMs: 1_000 })
  w.tell("web", "1")
  w.tell("db", "1")
  w.editConfig("web:a:1:respawn:a\n")
  w.advanceTo(10)
  w.tell("web", "1")
  const rows = () => statusRows(w.state).map((r) => [r.group, r.state, r.level])
  expect(rows()).toEqual([["db", "stopped", ""], ["web", "run", "1"]])
  const db = w.report().groups.find((g) => g.group === "db")
  expect(db?.entries.map((e) => [e.tag, e.state])).toEqual([["b", "stopping"]])
  w.advanceTo(1_009)
  expect(rows()).toEqual([["db", "stopped", ""], ["web", "run", "1"]])
  w.advanceTo(1_010)
  expect(rows()).toEqual([["web", "run", "1"]])
  expect(w.report().groups.map((g) => g.group)).toEqual(["web"])
  expect(w.violations).toEqual([])
})
