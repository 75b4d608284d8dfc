/**
 * The core's side of node commands, shared by the daemon's shell (src/cluster/shell/commands.ts)
 * and the simulator (src/sim/cluster.ts), so both submit the same events and read the same outcome.
 */
import type { Parsed } from "../../core/config.ts"
import type { Effect as CoreEffect } from "../../core/effects.ts"
import { rejectionOf } from "../../core/effects.ts"
import type { Event as CoreEvent } from "../../core/events.ts"
import { hold, release, reload, tell } from "../../core/events.ts"
import type { CoreCommand, CoreOutcome } from "./types.ts"

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
