/** `isinit simulate`: a scenario run in the simulator, in virtual time. Loaded only for this command. */
import { readFileSync } from "node:fs"
import { parseScenario, renderTimeline, runScenario } from "../sim/scenario.ts"
import { renderStatus } from "./format.ts"
import type { CommandOf } from "./invocation.ts"
import type { Io } from "./io.ts"
import { readError } from "./io.ts"

export const simulate = async (io: Io, command: CommandOf<"Simulate">): Promise<number> => {
  let text: string
  try {
    text = readFileSync(command.file, "utf8")
  } catch (error) {
    io.err(`isinit: cannot read the scenario ${command.file}: ${readError(error)}\n`)
    return 1
  }
  const parsed = parseScenario(text)
  if (parsed.errors.length > 0) {
    for (const e of parsed.errors) io.err(`${command.file}:${e.line}: error: ${e.message}\n`)
    return 1
  }
  const result = runScenario(parsed.scenario, command.maxEvents === undefined ? {} : { maxEvents: command.maxEvents })
  const { timeline, violations, report, endMs, idle, outOfEvents } = result
  if (command.json) {
    io.out(`${JSON.stringify({ timeline, violations, report, endMs, idle, outOfEvents: outOfEvents ?? null }, null, 2)}\n`)
  } else {
    io.out(renderTimeline(timeline))
    io.out(`\n${outOfEvents === undefined ? "at the end" : "where it stopped"} (${(endMs / 1000).toFixed(3)}s${idle ? ", idle" : ""}):\n`)
    io.out(renderStatus(report, endMs))
    for (const v of violations) io.err(`isinit: invariant ${v.invariant} broken at ${v.at} ms: ${v.message}\n`)
  }
  if (outOfEvents !== undefined) {
    io.err(
      `isinit: simulate stopped after ${outOfEvents.maxEvents} events, at ${(outOfEvents.at / 1000).toFixed(3)}s of virtual time, before the scenario's end: ` +
        `a respawn loop without end, or a long run? What happened until then is shown; --max-events N raises the bound\n`,
    )
  }
  return violations.length > 0 || outOfEvents !== undefined ? 1 : 0
}
