import { readdirSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { fc, test } from "@fast-check/vitest"
import { describe, expect, it } from "vitest"
import { exitsAfter, ignoresSigterm, runsForever } from "../../src/sim/behaviour.ts"
import { defaultMaxEvents, parseDuration, parseScenario, renderTimeline, runScenario, scenarioText } from "../../src/sim/scenario.ts"
import { swarm } from "../../src/sim/swarm.ts"

const brief = `# the example of the brief
config <<EOF
web:db:2:respawn:db-server
web:check:2:test:check
EOF
behave db-server crashes-every 1s
behave check exits 1 after 200ms
at 0 tell web 2
at 5s crash db
at 10s tell web 3
at 12s stopall
run 90s
`

describe("parseScenario", () => {
  it("reads config blocks, behaviours, timed actions and the end", () => {
    const { scenario, errors } = parseScenario(brief)
    expect(errors).toEqual([])
    expect(scenario.config).toBe("web:db:2:respawn:db-server\nweb:check:2:test:check\n")
    expect(scenario.behaviours).toEqual([
      ["db-server", exitsAfter(1000, 1)],
      ["check", exitsAfter(200, 1)],
    ])
    expect(scenario.actions.map((a) => [a.at, a.line, a.action._tag])).toEqual([
      [0, 8, "Tell"],
      [5000, 9, "Crash"],
      [10_000, 10, "Tell"],
      [12_000, 11, "StopAll"],
    ])
    expect(scenario.endMs).toBe(90_000)
  })

  it("combines clauses on one behave line and across lines", () => {
    const { scenario, errors } = parseScenario("behave p ignores-sigterm\nbehave p exits 3 after 2.5s\nbehave q stops-after 1m runs-forever\n")
    expect(errors).toEqual([])
    expect(scenario.behaviours).toEqual([
      ["p", { ...ignoresSigterm(), life: { _tag: "ExitsAfter", ms: 2500, code: 3 } }],
      ["q", { ...runsForever(), sigtermDelayMs: 60_000 }],
    ])
  })

  it("reports every bad line with its number and keeps going", () => {
    const text = [
      "bogus line", // 1
      "at soon tell web 2", // 2
      "at 1s tell web", // 3
      "behave x explodes", // 4
      "at 2s crash db maybe", // 5
      "run forever", // 6
      "at 3s config <<EOF", // 7
      "web:a:1:once:a", // 8
    ].join("\n")
    const { errors } = parseScenario(text)
    expect(errors.map((e) => e.line)).toEqual([1, 2, 3, 4, 5, 6, 7])
    expect(errors[6]?.message).toContain("no closing 'EOF'")
  })

  it("rejects actions after the end of the run", () => {
    expect(parseScenario("at 10s stopall\nrun 5s\n").errors).toEqual([{ line: 1, message: expect.stringContaining("after the end") }])
  })

  it("reads durations with units; a bare number is milliseconds", () => {
    expect([parseDuration("0"), parseDuration("250"), parseDuration("250ms"), parseDuration("1.5s"), parseDuration("2m"), parseDuration("1h")]).toEqual([
      0, 250, 250, 1500, 120_000, 3_600_000,
    ])
    expect(parseDuration("-1s")).toBeUndefined()
    expect(parseDuration("1 s")).toBeUndefined()
  })

  test.prop([fc.string({ maxLength: 400 })])("never throws, whatever the text", (text) => {
    const { errors } = parseScenario(text)
    for (const e of errors) expect(e.line).toBeGreaterThanOrEqual(1)
  })

  test.prop([fc.array(fc.constantFrom("config <<EOF", "EOF", "at 1s config <<X", "X", "behave a exits 1 after 1s", "at 0 tell g 1", "run 5s", "# c", "", "at", "behave"), { maxLength: 30 })])(
    "never throws on near-miss lines either",
    (lines) => {
      expect(() => parseScenario(lines.join("\n"))).not.toThrow()
    },
  )
})

describe("runScenario and renderTimeline", () => {
  it("runs the brief's example: the crash loop is jailed and the timeline says until when", () => {
    const result = runScenario(parseScenario(brief).scenario)
    expect(result.violations).toEqual([])
    expect(result.endMs).toBe(90_000)
    const jailed = result.timeline.filter((e) => e.kind === "jailed")
    expect(jailed.map((e) => [e.at, e.group, e.tag])).toEqual([[5_000, "web", "db"]])
    const text = renderTimeline(result.timeline)
    expect(text).toMatch(/^ {3}5\.000s {2}web\/db {5}jailed until 65\.000s \(/m)
    expect(text).toMatch(/^ {2}12\.000s {2}\* +stopall$/m)
    expect(result.report.groups.map((g) => [g.group, g.state])).toEqual([["web", "stopped"]])
    expect(result.world.state.lifecycle).toBe("halted")
  })

  it("renders JSON that parses back to the timeline", () => {
    const result = runScenario(parseScenario(brief).scenario)
    expect(JSON.parse(renderTimeline(result.timeline, "json"))).toEqual(JSON.parse(JSON.stringify(result.timeline)))
  })

  it("hides the reducer's group log lines in text unless verbose", () => {
    const { timeline } = runScenario(parseScenario(brief).scenario)
    expect(renderTimeline(timeline)).not.toContain("entering level")
    expect(renderTimeline(timeline, "text", true)).toContain("entering level 2")
  })

  it("without a run line, stops when nothing is pending", () => {
    const result = runScenario(parseScenario("config <<EOF\ng:w:1:wait:w\nEOF\nat 1s tell g 1\n").scenario)
    expect(result.idle).toBe(true)
    expect(result.endMs).toBe(1_100)
  })

  it("the example scenarios parse cleanly and run without a violation", () => {
    const dir = join(import.meta.dirname, "../../examples/scenarios")
    const files = readdirSync(dir).filter((f) => f.endsWith(".scn"))
    expect(files.length).toBeGreaterThanOrEqual(2)
    for (const file of files) {
      const parsed = parseScenario(readFileSync(join(dir, file), "utf8"))
      expect({ file, errors: parsed.errors }).toEqual({ file, errors: [] })
      const result = runScenario(parsed.scenario)
      expect({ file, violations: result.violations }).toEqual({ file, violations: [] })
    }
  })
})

describe("a scenario that runs away", () => {
  // A respawn loop without end: 1000 starts allowed per 1 ms, then a 1 ms jail, for an hour.
  const runaway = (end: string, later = "at 30m tell g 2") => {
    const parsed = parseScenario(
      ["config <<EOF", ":::respawn-limit:1000/1ms", ":::jail:1ms", "g:loop:1:respawn:spin", "EOF", "behave spin crashes-every 1ms", "at 0 tell g 1", later, `run ${end}`, ""].join("\n"),
    )
    expect(parsed.errors).toEqual([])
    return parsed.scenario
  }

  it("stops after the bound on events, saying where and when, without the actions after it", () => {
    const result = runScenario(runaway("1h"), { maxEvents: 5_000 })
    expect(result.world.steps).toBe(5_000)
    expect(result.outOfEvents).toEqual({ maxEvents: 5_000, at: result.endMs })
    expect(result.endMs).toBeGreaterThan(0)
    expect(result.endMs).toBeLessThan(60_000)
    expect(result.timeline.some((e) => e.kind === "tell" && e.detail === "tell g 2")).toBe(false)
    expect(result.violations).toEqual([])
  })

  it(`is bounded by default (${defaultMaxEvents} events), in seconds, not minutes`, () => {
    const result = runScenario(runaway("1000h"))
    expect(result.outOfEvents?.maxEvents).toBe(defaultMaxEvents)
    expect(result.world.steps).toBe(defaultMaxEvents)
  }, 120_000)

  it("a scenario within the bound is not marked", () => {
    const result = runScenario(runaway("50ms", ""), { maxEvents: 5_000 })
    expect(result.outOfEvents).toBeUndefined()
    expect(result.endMs).toBe(50)
  })

  it("times beyond exact milliseconds are refused", () => {
    expect(parseDuration("9007199254740991")).toBe(9_007_199_254_740_991)
    expect(parseDuration("9007199254740992")).toBeUndefined()
    expect(parseDuration(`${"9".repeat(400)}h`)).toBeUndefined()
  })
})

describe("scenarioText", () => {
  const withoutLines = (s: ReturnType<typeof swarm>["scenario"]) => ({ ...s, actions: s.actions.map(({ at, action }) => ({ at, action })) })

  test.prop([fc.integer({ min: 0, max: 2 ** 31 })], { numRuns: 50 })("writes a swarm scenario that parses back to the same scenario", (seed) => {
    const s = swarm(seed).scenario
    const back = parseScenario(scenarioText(s))
    expect(back.errors).toEqual([])
    expect(withoutLines(back.scenario)).toEqual(withoutLines(s))
  })

  it("picks a heredoc marker the config does not contain", () => {
    const s = { config: "EOF\n", behaviours: [], sigtermDelayMs: undefined, actions: [], endMs: undefined }
    expect(parseScenario(scenarioText(s)).scenario.config).toBe("EOF\n")
  })
})
