/**
 * Shared generators and helpers of the specification. Every property drives the real reducer
 * through the simulator (`src/sim`), in virtual time, and asserts facts from the world's record.
 */
import { fc } from "@fast-check/vitest"
import type { Mode } from "../src/core/config.ts"
import type { Effect } from "../src/core/effects.ts"
import type { Outcome } from "../src/core/events.ts"
import type { Plan } from "../src/core/plan.ts"
import { lookup } from "../src/core/state.ts"
import type { Behaviour } from "../src/sim/behaviour.ts"
import { exitsAfter, runsForever } from "../src/sim/behaviour.ts"
import { perform } from "../src/sim/scenario.ts"
import type { SwarmEntry } from "../src/sim/swarm.ts"
import { configText, swarm } from "../src/sim/swarm.ts"
import type { WorldOptions } from "../src/sim/world.ts"
import { World } from "../src/sim/world.ts"

export { configText }
export type { SwarmEntry as EntrySpec }

export const levelsUniverse = ["1", "2", "3"] as const

/** A non-empty subset of the levels, in a stable order. */
export const levelsArb = fc.subarray([...levelsUniverse], { minLength: 1 })

export const modeArb = (modes: readonly Mode[]): fc.Arbitrary<Mode> => fc.constantFrom(...modes)

/** Entries of the given groups, tagged t1..tn in file order. */
export const entriesArb = (options: {
  readonly modes: readonly Mode[]
  readonly groups?: readonly string[]
  readonly min?: number
  readonly max?: number
}): fc.Arbitrary<SwarmEntry[]> =>
  fc
    .array(
      fc.record({
        group: fc.constantFrom(...(options.groups ?? ["g"])),
        levels: levelsArb,
        mode: modeArb(options.modes),
      }),
      { minLength: options.min ?? 1, maxLength: options.max ?? 6 },
    )
    .map((specs) => specs.map((s, i) => ({ ...s, tag: `t${i + 1}`, command: `cmd-t${i + 1}` })))

/** Durations biased to sit on an edge (edge-1, edge, edge+1) as often as anywhere else. */
export const nearArb = (edges: readonly number[], max: number): fc.Arbitrary<number> =>
  fc.oneof(
    fc.integer({ min: 0, max }),
    fc.constantFrom(...edges.flatMap((e) => [e - 1, e, e + 1]).filter((x) => x >= 0)),
  )

/** The i-th entry (from 0) of group g: tag `t{i+1}`, command `c{i+1}`. */
export const entrySpec = (i: number, mode: Mode, levels: readonly string[] = ["1"]): SwarmEntry => ({
  group: "g",
  tag: `t${i + 1}`,
  levels,
  mode,
  command: `c${i + 1}`,
})

/** `wait` and `test` entries are jobs that run to completion; `respawn` and `once` run until stopped. */
export const isJob = (mode: Mode): boolean => mode === "wait" || mode === "test"

/** Jobs succeed after 50 ms; the others run until stopped. */
export const plainBehaviours = (entries: readonly SwarmEntry[]): [string, Behaviour][] =>
  entries.map((e) => [e.tag, isJob(e.mode) ? exitsAfter(50, 0) : runsForever()])

export const makeWorld = (
  entries: readonly SwarmEntry[],
  behaviours: readonly (readonly [string, Behaviour])[] = [],
  options: WorldOptions = {},
  header = "",
): World => new World({ ...options, config: header + configText(entries), behaviours })

/** Effects of the whole run with their time and step index. */
export const effects = (w: World): { readonly at: number; readonly step: number; readonly effect: Effect }[] =>
  w.history.flatMap((s) => s.effects.map((effect) => ({ at: s.at, step: s.index, effect })))

export const kills = (w: World, tag?: string) =>
  effects(w).flatMap(({ at, step, effect }) =>
    effect._tag === "Kill" && (tag === undefined || effect.tag === tag)
      ? [{ at, step, signal: effect.signal, run: effect.run, tag: effect.tag }]
      : [],
  )

export interface ExitRecord {
  readonly at: number
  readonly step: number
  readonly tag: string
  readonly outcome: Outcome
}

export const exits = (w: World, tag?: string): ExitRecord[] =>
  w.history.flatMap((s) =>
    s.event._tag === "ChildExit" && (tag === undefined || s.event.tag === tag)
      ? [{ at: s.at, step: s.index, tag: s.event.tag, outcome: s.event.outcome }]
      : [],
  )

export const phaseOf = (w: World, group: string): string | undefined => lookup(w.state.groups, group)?.phase

export const isLive = (w: World, tag: string): boolean => w.liveRuns(tag).length > 0

export const liveTags = (w: World): string[] =>
  [...new Set([...w.processes.values()].filter((p) => p.pid !== undefined).map((p) => p.tag))].sort()

/** How many refusals (`Rejected` effects) a step's effects hold. */
export const rejections = (fx: readonly Effect[]): number => fx.filter((e) => e._tag === "Rejected").length

/** The effects of a plan the reducer accepted (a property that plans an accepted tell fails otherwise). */
export const acceptedEffects = (p: Plan): readonly Effect[] => {
  if (p._tag === "Rejected") throw new Error(`plan rejected: ${p.rejection.reason}`)
  return p.effects
}

/** A swarm's seed and how many of its actions to play: any state a daemon can reach. */
export const swarmStateArb = fc.record({
  seed: fc.integer({ min: 0, max: 2 ** 31 }),
  cut: fc.integer({ min: 0, max: 30 }),
})

/** The world after the first `cut` actions of the swarm of `seed`. */
export const worldAt = (seed: number, cut: number): World => {
  const s = swarm(seed, { actions: 30 }).scenario
  const w = new World({ ...(s.config === undefined ? {} : { config: s.config }), behaviours: s.behaviours })
  for (const a of s.actions.slice(0, cut)) {
    w.advanceTo(a.at)
    perform(w, a.action)
  }
  return w
}
