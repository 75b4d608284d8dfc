/**
 * A group's phase, as one small state machine (h11's transition table): the only changes the
 * reducer may make, each with the rule that makes it. `Step.setGroup` asserts every change
 * against it; anything else is a bug (assert.ts). Staying in a phase is always allowed.
 */
import { assert } from "./assert.ts"
import type { GroupPhase } from "./enums.ts"

export const phaseChanges: { readonly [from in GroupPhase]: readonly GroupPhase[] } = {
  // A tell, reload, restore or hold enters a level (rule 8); stopall stops a told group (rule 8).
  stopped: ["start", "stopping"],
  // The transition is over (rule 8: `run`, or `fail` if a test failed); another level supersedes
  // it; a config without the group drops it (rule 18); stopall.
  start: ["run", "fail", "stopped", "stopping"],
  // A tell or reload enters a level again (rules 16, 17); the group is dropped; stopall.
  run: ["start", "stopped", "stopping"],
  fail: ["start", "stopped", "stopping"],
  // Every process gone after stopall: halted (rule 8). Nothing else leaves `stopping`.
  stopping: ["stopped"],
}

export const isPhaseChange = (from: GroupPhase, to: GroupPhase): boolean => from === to || phaseChanges[from].includes(to)

export const assertPhaseChange = (group: string, from: GroupPhase, to: GroupPhase): void =>
  assert(isPhaseChange(from, to), () => `group ${group} may not go from ${from} to ${to}`)
