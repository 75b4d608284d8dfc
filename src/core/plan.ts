import type { Parsed } from "./config.ts"
import type { Effect, Rejection } from "./effects.ts"
import { rejectionOf } from "./effects.ts"
import type { Event, Outcome } from "./events.ts"
import { childExit, tell } from "./events.ts"
import { reduce } from "./reducer.ts"
import type { State } from "./state.ts"

/**
 * A dry run: what a tell would do, computed by the same reducer the daemon runs. Stopped processes
 * are assumed to end at their SIGTERM and barriers to succeed at once (each wait/test exits 0), so
 * the plan lists the whole transition in the order the daemon takes it: a group's stops before its
 * starts (rule 15), then its entries in file order. What time adds (SIGKILL after the grace,
 * jails) is what `isinit simulate` shows.
 */
export type Plan =
  | { readonly _tag: "Accepted"; readonly effects: readonly Effect[] }
  | { readonly _tag: "Rejected"; readonly rejection: Rejection }

export const plan = (state: State, group: string, level: string, parsed: Parsed, now: number): Plan => {
  const [told, first] = reduce(state, tell(group, level, parsed, now))
  const rejection = rejectionOf(first)
  if (rejection !== undefined) return { _tag: "Rejected", rejection }
  const effects = [...first]
  const ended = new Set<string>()
  let current = told
  // Each round ends what the last one waits for; every run ends once, and a barrier releases at
  // most the rest of its group, so this ends within the size of the config.
  for (let awaited = endsOf(first, ended, now); awaited.length > 0; ) {
    const next: Effect[] = []
    for (const exit of awaited) {
      const [after, more] = reduce(current, exit)
      current = after
      next.push(...more)
    }
    effects.push(...next)
    awaited = endsOf(next, ended, now)
  }
  return { _tag: "Accepted", effects }
}

/** The exits the plan assumes for these effects: a stop ends at its SIGTERM, a barrier exits 0. */
const endsOf = (effects: readonly Effect[], ended: Set<string>, now: number): Event[] =>
  effects.flatMap((effect) => {
    const assumed = assumedEnd(effect)
    if (assumed === undefined || ended.has(assumed.key)) return []
    ended.add(assumed.key)
    return [childExit(assumed.tag, assumed.run, assumed.outcome, now)]
  })

const assumedEnd = (effect: Effect): { key: string; tag: string; run: number; outcome: Outcome } | undefined => {
  if (effect._tag !== "RunSync" && effect._tag !== "Kill") return undefined
  const outcome: Outcome = effect._tag === "RunSync" ? { _tag: "Exited", code: 0 } : { _tag: "Signaled", signal: effect.signal }
  return { key: `${effect.tag}#${effect.run}`, tag: effect.tag, run: effect.run, outcome }
}
