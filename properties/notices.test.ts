/**
 * The notices that feed the event hooks and the status page (core/notices.ts), over any run of the
 * simulator (seeded swarms: tells, crashes, leader exits, config edits, time, stopall):
 *
 * - a group's notices are found by looking only at the groups a step touched, and are exactly
 *   what a diff of every group before and after the step gives (so the cheap way misses nothing);
 * - every run the reducer learned started gives one `started` notice with its pid, and every
 *   reported exit of a run it knew one `exited` notice with its outcome; nothing else does.
 */
import { fc, test } from "@fast-check/vitest"
import { expect } from "vitest"
import { describeOutcome } from "../src/core/events.ts"
import type { Notice } from "../src/core/notices.ts"
import { groupNotices, noticesOf } from "../src/core/notices.ts"
import { knownGroups, lookup } from "../src/core/state.ts"
import type { Invariant, Violation } from "../src/sim/invariants.ts"
import { allInvariants } from "../src/sim/invariants.ts"
import { perform } from "../src/sim/scenario.ts"
import { swarm } from "../src/sim/swarm.ts"
import type { SimStep as Step } from "../src/sim/world.ts"
import { World } from "../src/sim/world.ts"

const groupEvents = (notices: readonly Notice[]): string[] =>
  notices.filter((n) => n.event.startsWith("group-")).map((n) => `${n.group ?? ""} ${n.event} ${n.level ?? ""}`).sort()

const violation = (step: Step, message: string): Violation => ({ at: step.record.at, step: step.record.index, invariant: "notices", message })

/** A diff of every group the state knows, before or after: what the touched groups must equal. */
const fullDiff = (step: Step): string[] => {
  const names = new Set([...knownGroups(step.before), ...knownGroups(step.after)])
  const notices = [...names].flatMap((name) => groupNotices({ ...step, event: step.record.event, effects: step.record.effects }, name, lookup(step.before.groups, name), lookup(step.after.groups, name)))
  return groupEvents(notices)
}

/** The process notices a step must give, from the event and the state before it. */
const expectedProcessNotices = (step: Step): string[] => {
  const event = step.record.event
  if (event._tag !== "Started" && event._tag !== "ChildExit") return []
  const was = lookup(step.before.entries, event.tag)?.proc
  const known = was !== undefined && was._tag !== "Idle" && was.run === event.run
  if (event._tag === "Started") return known && was.pid === undefined ? [`started ${event.tag} ${event.pid}`] : []
  return known ? [`exited ${event.tag} ${describeOutcome(event.outcome)}`] : []
}

const noticesAgree: Invariant = (_world, step) => {
  const notices = noticesOf({ event: step.record.event, before: step.before, after: step.after, effects: step.record.effects })
  const out: Violation[] = []
  const cheap = groupEvents(notices)
  const full = fullDiff(step)
  if (JSON.stringify(cheap) !== JSON.stringify(full)) out.push(violation(step, `${step.record.event._tag}: group notices ${JSON.stringify(cheap)}, a full diff gives ${JSON.stringify(full)}`))
  const processes = notices
    .filter((n) => n.event === "started" || n.event === "exited")
    .filter((n) => !(n.event === "exited" && step.record.event._tag === "Restore"))
    .map((n) => (n.event === "started" ? `started ${n.tag ?? ""} ${n.pid ?? ""}` : `exited ${n.tag ?? ""} ${n.outcome ?? ""}`))
  const expected = expectedProcessNotices(step)
  if (JSON.stringify(processes) !== JSON.stringify(expected)) out.push(violation(step, `${step.record.event._tag}: process notices ${JSON.stringify(processes)}, expected ${JSON.stringify(expected)}`))
  return out
}

test.prop([fc.integer({ min: 0, max: 2 ** 31 })], { numRuns: 150 })(
  "rule 23: a group's notices, found in the groups a step touched, equal a diff of every group; one started per start, one exited per exit",
  (seed) => {
    const s = swarm(seed, { actions: 40 }).scenario
    const w = new World({ ...(s.config === undefined ? {} : { config: s.config }), behaviours: s.behaviours, invariants: [...allInvariants, noticesAgree] })
    for (const a of s.actions) {
      w.advanceTo(a.at)
      perform(w, a.action)
    }
    w.advance(120_000)
    expect(w.violations).toEqual([])
  },
)
