import { fc, test } from "@fast-check/vitest"
import { expect, it } from "vitest"
import { parseStatusFile, renderStatusFile, statusRows } from "../src/core/status.ts"
import { perform } from "../src/sim/scenario.ts"
import { swarm } from "../src/sim/swarm.ts"
import { World } from "../src/sim/world.ts"

/** The original writer, transcribed: `printf("%-15s %-15s %-15s\n", ...)` per sorted group (ASCII names). */
const perlStatus = (id: string, groups: readonly (readonly [string, string, string])[]): string =>
  `!startid ${id}\n` +
  [...groups]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([g, s, l]) => `${g.padEnd(15)} ${s.padEnd(15)} ${l.padEnd(15)}\n`)
    .join("") +
  `!endid ${id}\n`

const worldAt = (seed: number, cut: number): World => {
  const s = swarm(seed, { actions: 30 }).scenario
  const w = new World({ ...(s.config === undefined ? {} : { config: s.config }), behaviours: s.behaviours })
  for (const a of s.actions.slice(0, cut)) {
    w.advanceTo(a.at)
    perform(w, a.action)
  }
  return w
}

test.prop([fc.integer({ min: 0, max: 2 ** 31 }), fc.integer({ min: 0, max: 30 }), fc.stringMatching(/^[0-9.]{1,20}$/)], { numRuns: 150 })(
  "rule 10: the status file is byte-compatible with the original: every group of the isinittab, sorted, never-told ones `stopped` with an empty level",
  (seed, cut, id) => {
    const w = worldAt(seed, cut)
    const groups = new Set<string>(w.state.config.byGroup.keys())
    // Told groups and their levels from the world's record: an accepted tell logs its entry into the level.
    const levels = new Map<string, string>()
    for (const step of w.history) {
      const e = step.event
      if (e._tag === "Tell" && step.effects.some((x) => x._tag === "Log" && x.entry.what === "group")) levels.set(e.group, e.level)
    }
    for (const g of levels.keys()) groups.add(g)
    const phases = new Map(w.report().groups.map((g) => [g.group, g.state]))
    const expected = perlStatus(
      id,
      [...groups].map((g) => [g, levels.has(g) ? (phases.get(g) ?? "?") : "stopped", levels.get(g) ?? ""] as const),
    )
    const text = renderStatusFile(statusRows(w.state), id)
    expect(text).toBe(expected)
    expect(renderStatusFile([...statusRows(w.state)].reverse(), id)).toBe(expected) // the writer sorts, whatever it is given
    const read = parseStatusFile(text)
    expect(read.complete).toBe(true)
    expect(read.rows.map((r) => [r.group, r.state, r.level])).toEqual(statusRows(w.state).map((r) => [r.group, r.state, r.level]))
  },
)

test.prop([fc.integer({ min: 0, max: 2 ** 31 }), fc.integer({ min: 0, max: 30 })], { numRuns: 100 })(
  "rule 10: the status reader's group and level filters give what the original's `status` gives",
  (seed, cut) => {
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
    "!startid 1\n" + "db              stopped                        \n" + "web             run             0              \n" + "!endid 1\n",
  )
})
