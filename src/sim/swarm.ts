import type { Mode } from "../core/config.ts"
import type { Behaviour } from "./behaviour.ts"
import { crashesEvery, exitsAfter, failsToSpawn, ignoresSigterm, leaderExitsAfter, runsForever, stopsAfter } from "./behaviour.ts"
import type { Rng } from "./random.ts"
import { makeRng } from "./random.ts"
import type { RunOptions, Scenario, ScenarioAction, ScenarioResult, TimedAction } from "./scenario.ts"
import { runScenario } from "./scenario.ts"

/**
 * Swarm testing in the manner of TigerBeetle's VOPR: one seed derives the swarm's own knobs
 * (how often things crash, how time moves, how often the config is edited), then a random
 * config, behaviours and event script. The result is an ordinary scenario, so a failing seed can be
 * written out with `scenarioText` and replayed with `isinit simulate`.
 */

export interface SwarmOptions {
  /** Number of actions (tells, crashes, edits, reloads, stopall). */
  readonly actions?: number
  readonly maxEntries?: number
  readonly maxGroups?: number
  readonly levels?: readonly [string, ...string[]]
}

/** The knobs one seed picks; reported so a failure says what kind of swarm it was. */
export interface SwarmParams {
  readonly tellWeight: number
  readonly crashWeight: number
  readonly editWeight: number
  readonly reloadWeight: number
  readonly stopAllChance: number
  readonly crashyChance: number
  readonly brokenEditChance: number
  readonly meanStepMs: number
}

export interface SwarmEntry {
  readonly group: string
  readonly tag: string
  readonly levels: readonly string[]
  readonly mode: Mode
  readonly command: string
}

export interface Swarm {
  readonly seed: number
  readonly params: SwarmParams
  readonly scenario: Scenario
}

/** Durations that sit on the rules' edges (window, jail, grace) as well as ordinary ones. */
const boundaryMs = [0, 1, 9_999, 10_000, 10_001, 29_999, 30_000, 30_001, 59_999, 60_000, 60_001] as const

const stepMs = (rng: Rng, params: SwarmParams): number =>
  rng.weighted<() => number>([
    [5, () => rng.int(0, params.meanStepMs * 2)],
    [2, () => rng.pick(boundaryMs)],
    [1, () => rng.int(0, 90_000)],
  ])()

const lifeMs = (rng: Rng): number => rng.pick([0, 50, 500, 1_000, 1_999, 2_000, 2_001, 5_000, 10_000, 30_000] as const)

const behaviourFor = (rng: Rng, mode: Mode, params: SwarmParams): Behaviour => {
  if (mode === "wait" || mode === "test") {
    const code = rng.chance(0.3) ? 1 : 0
    if (rng.chance(0.05)) return leaderExitsAfter(lifeMs(rng), code) // a job that left a child behind
    return rng.chance(0.05) ? failsToSpawn("ENOENT") : exitsAfter(lifeMs(rng), code)
  }
  const base = rng.weighted<() => Behaviour>([
    [params.crashyChance * 10, () => crashesEvery(Math.max(1, lifeMs(rng)))],
    [1, () => exitsAfter(lifeMs(rng), 0)],
    [0.5, () => leaderExitsAfter(lifeMs(rng), rng.chance(0.5) ? 0 : 1)], // a shell whose child outlives it
    [0.3, () => failsToSpawn("EACCES")],
    [10, () => runsForever()],
  ])()
  return rng.weighted<Behaviour>([
    [8, base],
    [1, ignoresSigterm(base)],
    [1, stopsAfter(rng.pick([1, 100, 29_999, 30_000, 31_000] as const), base)],
  ])
}

const randomLevels = (rng: Rng, levels: readonly [string, ...string[]]): readonly string[] => {
  const chosen = levels.filter(() => rng.chance(0.5))
  return chosen.length > 0 ? chosen : [rng.pick(levels)]
}

const modesWeighted: readonly (readonly [number, Mode])[] = [
  [5, "respawn"],
  [2, "once"],
  [2, "wait"],
  [2, "test"],
  [1, "off"],
]

/** A line of the isinittab; levels with more than one character each are written with commas. */
export const entryLine = (e: SwarmEntry): string => {
  const levels = e.levels.some((l) => l.length !== 1) ? e.levels.join(",") + (e.levels.length === 1 ? "," : "") : e.levels.join("")
  return `${e.group}:${e.tag}:${levels}:${e.mode}:${e.command}`
}

export const configText = (entries: readonly SwarmEntry[]): string => entries.map((e) => entryLine(e) + "\n").join("")

const edit = (rng: Rng, entries: readonly SwarmEntry[], groups: readonly [string, ...string[]], levels: readonly [string, ...string[]], fresh: () => string): SwarmEntry[] => {
  const next = [...entries]
  const index = rng.int(0, Math.max(0, next.length - 1))
  const target = next[index]
  const kind = target === undefined ? "add" : rng.pick(["command", "mode", "levels", "remove", "add", "off"] as const)
  if (kind === "add" || target === undefined) {
    const tag = fresh()
    next.splice(rng.int(0, next.length), 0, { group: rng.pick(groups), tag, levels: randomLevels(rng, levels), mode: rng.weighted(modesWeighted), command: `run-${tag}` })
  } else if (kind === "command") next[index] = { ...target, command: `${target.command} --v${rng.int(2, 9)}` }
  else if (kind === "mode") next[index] = { ...target, mode: rng.weighted(modesWeighted) }
  else if (kind === "levels") next[index] = { ...target, levels: randomLevels(rng, levels) }
  else if (kind === "off") next[index] = { ...target, mode: "off" }
  else next.splice(index, 1)
  return next
}

/** Build a swarm scenario from a seed; the same seed and options always give the same scenario. */
export const swarm = (seed: number, options: SwarmOptions = {}): Swarm => {
  const rng = makeRng(seed)
  const levels = options.levels ?? ["1", "2", "3"]
  const params: SwarmParams = {
    tellWeight: rng.int(2, 8),
    crashWeight: rng.int(0, 6),
    editWeight: rng.int(0, 3),
    reloadWeight: rng.int(0, 1),
    stopAllChance: rng.pick([0, 0.02, 0.1] as const),
    crashyChance: rng.pick([0, 0.2, 0.6] as const),
    brokenEditChance: rng.pick([0, 0.1] as const),
    meanStepMs: rng.pick([100, 1_000, 5_000, 20_000] as const),
  }
  const groupCount = rng.int(1, options.maxGroups ?? 3)
  const groups = Array.from({ length: groupCount }, (_, i) => `g${i + 1}`) as [string, ...string[]]
  let counter = 0
  const fresh = (): string => `t${++counter}`
  let entries: SwarmEntry[] = Array.from({ length: rng.int(1, options.maxEntries ?? 8) }, () => {
    const tag = fresh()
    return { group: rng.pick(groups), tag, levels: randomLevels(rng, levels), mode: rng.weighted(modesWeighted), command: `run-${tag}` }
  })
  const config = configText(entries)
  const behaviours = new Map<string, Behaviour>()
  const behave = (e: SwarmEntry): void => {
    if (!behaviours.has(e.tag)) behaviours.set(e.tag, behaviourFor(rng, e.mode, params))
  }
  entries.forEach(behave)
  const actions: TimedAction[] = []
  let now = 0
  const push = (action: ScenarioAction): void => {
    actions.push({ at: now, line: 0, action })
  }
  const count = options.actions ?? 40
  for (let i = 0; i < count; i++) {
    if (i > 0) now += stepMs(rng, params)
    if (rng.chance(params.stopAllChance)) {
      push({ _tag: "StopAll" })
      continue
    }
    const kind = rng.weighted<"tell" | "crash" | "edit" | "reload">([
      [params.tellWeight, "tell"],
      [params.crashWeight, "crash"],
      [params.editWeight, "edit"],
      [params.reloadWeight, "reload"],
    ])
    if (kind === "tell") {
      const group = rng.chance(0.05) ? "nosuchgroup" : rng.pick(groups)
      push({ _tag: "Tell", group, level: rng.chance(0.05) ? "." : rng.pick(levels) })
    } else if (kind === "crash") {
      const target = entries[rng.int(0, Math.max(0, entries.length - 1))]
      if (target !== undefined) push({ _tag: "Crash", tag: target.tag, how: rng.pick<number | string>([1, 0, "SIGKILL", "SIGSEGV"]) })
    } else if (kind === "edit") {
      if (rng.chance(params.brokenEditChance)) {
        push({ _tag: "EditConfig", text: configText(entries) + `${groups[0]}:broken:1:sometimes:oops\n` })
      } else {
        entries = edit(rng, entries, groups, levels, fresh)
        entries.forEach(behave)
        push({ _tag: "EditConfig", text: configText(entries) })
      }
    } else push({ _tag: "Reload" })
  }
  const endMs = now + rng.pick([0, 10_000, 61_000, 120_000] as const)
  return { seed, params, scenario: { config, behaviours: [...behaviours], sigtermDelayMs: rng.pick([0, 10, 1_000] as const), actions, endMs } }
}

export interface SwarmResult extends ScenarioResult {
  readonly swarm: Swarm
}

/** Generate and run one swarm; `violations` empty means every invariant held at every step. */
export const runSwarm = (seed: number, options: SwarmOptions = {}, run: RunOptions = {}): SwarmResult => {
  const s = swarm(seed, options)
  return { ...runScenario(s.scenario, run), swarm: s }
}
