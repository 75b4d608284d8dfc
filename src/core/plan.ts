import type { Parsed } from "./config.ts"
import type { Effect } from "./effects.ts"
import { childExit, tell } from "./events.ts"
import { reduce } from "./reducer.ts"
import type { State } from "./state.ts"

/**
 * A dry run: what a tell would do, computed by the same reducer the daemon runs. Barriers are
 * assumed to succeed at once (each wait/test exits 0), so the plan lists the whole order of the
 * transition; what time adds (SIGKILL after the grace, jails) is what `isinit simulate` shows.
 */
export interface Plan {
  readonly accepted: boolean
  readonly effects: readonly Effect[]
}

export const plan = (state: State, group: string, level: string, parsed: Parsed, now: number): Plan => {
  const [told, first] = reduce(state, tell(group, level, parsed, now))
  const effects = [...first]
  let current = told
  // Each barrier releases at most the rest of the group, so this ends within the group's size.
  for (let barriers = first.filter(isBarrier); barriers.length > 0; ) {
    const next: Effect[] = []
    for (const barrier of barriers) {
      const [after, more] = reduce(current, childExit(barrier.tag, barrier.run, { _tag: "Exited", code: 0 }, now))
      current = after
      next.push(...more)
    }
    effects.push(...next)
    barriers = next.filter(isBarrier)
  }
  return { accepted: !first.some((e) => e._tag === "Log" && e.entry.what === "rejected"), effects }
}

const isBarrier = (effect: Effect): effect is Extract<Effect, { readonly _tag: "RunSync" }> => effect._tag === "RunSync"
