/**
 * The core's side of node commands, shared by the daemon's shell (src/cluster/shell/commands.ts)
 * and the simulator (src/sim/cluster.ts), so both submit the same events and read the same outcome.
 */
import type { Parsed } from "../../core/config.ts"
import type { Effect as CoreEffect } from "../../core/effects.ts"
import { rejectionOf } from "../../core/effects.ts"
import type { Event as CoreEvent } from "../../core/events.ts"
import { hold, release, reload, tell } from "../../core/events.ts"
import type { CoreCommand, CoreOutcome, NodeCommand } from "./types.ts"

/** Every core command's tag: a Record, so that a new core command fails to type-check until listed here. */
const coreCommandTags: Readonly<Record<CoreCommand["_tag"], true>> = { TellCore: true, ReloadCore: true, HoldCore: true, ReleaseCore: true }

/** Whether a node command goes to the core (and is answered by `CoreAnswered`). */
export const isCoreCommand = (command: NodeCommand): command is CoreCommand => Object.hasOwn(coreCommandTags, command._tag)

/** The core event a node command stands for; a tell runs under `parsed`, the config that runs. */
export const coreEventOf = (command: CoreCommand, parsed: Parsed, now: number): CoreEvent => {
  switch (command._tag) {
    case "TellCore":
      return tell(command.group, command.level, parsed, now)
    case "ReloadCore":
      return reload(command.config.parsed, now)
    case "HoldCore":
      return hold(command.group, command.epoch, command.until, now)
    case "ReleaseCore":
      return release(command.group, now)
  }
}

/** The core's answer to a command: its `Rejected` effect's reason, or applied. */
export const coreOutcomeOf = (effects: readonly CoreEffect[]): CoreOutcome => {
  const rejection = rejectionOf(effects)
  return rejection === undefined ? { _tag: "Applied" } : { _tag: "Rejected", reason: rejection.reason }
}
