import type { Parsed } from "./config.ts"
import type { Effect, Rejection } from "./effects.ts"
import { rejectionOf } from "./effects.ts"
import type { Event, Outcome } from "./events.ts"
import { childExit, probeResult, tell, tick } from "./events.ts"
import { reduce } from "./reducer.ts"
import type { State } from "./state.ts"

/**
 * A dry run: what a tell would do, computed by the same reducer the daemon runs. Stopped processes
 * are assumed to end at their SIGTERM and barriers to succeed at once (each wait/test exits 0, each
 * `ready` probe passes at the entry's start), so
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
  for (let pending: readonly Effect[] = first; ; ) {
    // Rule 20: a ready-checked entry just started is probed at once (a timer due now).
    const [ticked, probes] = startsProbed(current, pending) ? reduce(current, tick(now)) : [current, []]
    current = ticked
    effects.push(...probes)
    const awaited = endsOf([...pending, ...probes], ended, now)
    if (awaited.length === 0) break
    const next: Effect[] = []
    for (const event of awaited) {
      const [after, more] = reduce(current, event)
      current = after
      next.push(...more)
    }
    effects.push(...next)
    pending = next
  }
  return { _tag: "Accepted", effects }
}

const startsProbed = (state: State, effects: readonly Effect[]): boolean =>
  effects.some((effect) => effect._tag === "Spawn" && state.config.byTag.get(effect.tag)?.options.ready !== undefined)

/** The exits the plan assumes for these effects: a stop ends at its SIGTERM, a barrier exits 0. */
const endsOf = (effects: readonly Effect[], ended: Set<string>, now: number): Event[] =>
  effects.flatMap((effect) => {
    // Rule 20: a ready probe is assumed to pass at once, as a barrier is assumed to succeed.
    if (effect._tag === "Probe") return effect.purpose === "ready" ? [probeResult(effect.tag, effect.run, effect.attempt, { _tag: "Passed" }, now)] : []
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
