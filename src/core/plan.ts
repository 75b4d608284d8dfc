import type { Parsed } from "./config.ts"
import type { Effect } from "./effects.ts"
import { tell } from "./events.ts"
import { reduce } from "./reducer.ts"
import type { State } from "./state.ts"

/**
 * A dry run: what a tell would do now, computed by the same reducer the daemon runs. Only the
 * immediate effects are listed; what follows later (barriers releasing the next entries, SIGKILL
 * after the grace) is what `isinit simulate` shows over virtual time.
 */
export interface Plan {
  readonly accepted: boolean
  readonly effects: readonly Effect[]
}

export const plan = (state: State, group: string, level: string, parsed: Parsed, now: number): Plan => {
  const [, effects] = reduce(state, tell(group, level, parsed, now))
  return { accepted: !effects.some((e) => e._tag === "Log" && e.entry.what === "rejected"), effects }
}
