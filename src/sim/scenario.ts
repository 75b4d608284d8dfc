import type { Parsed } from "../core/config.ts"
import type { StatusReport } from "../core/report.ts"
import type { Behaviour } from "./behaviour.ts"
import { exitsAfter, failsToSpawn, leaderExitsAfter, neverReady, readyAfter, runsForever, unhealthyAfter } from "./behaviour.ts"
import type { Invariant, Violation } from "./invariants.ts"
import type { TimelineEntry } from "./world.ts"
import { formatMs, World } from "./world.ts"

/**
 * Scenarios: the text that `isinit simulate FILE` runs. Line based; `#` starts a comment line;
 * blank lines are skipped. Times are `250ms`, `1.5s`, `2m`, `1h`, or a bare number of ms.
 *
 *   config <<EOF            the isinittab at time 0, up to a line holding only the marker
 *   web:db:2:respawn:db-server
 *   EOF
 *   behave NAME CLAUSE...   how processes of a tag (or of a command, or its first word) behave:
 *                             runs-forever | exits CODE after TIME | crashes-every TIME |
 *                             fails-to-spawn [REASON] | ignores-sigterm | stops-after TIME |
 *                             leader-exits CODE after TIME (the rest of its group lives on) |
 *                             ready-after TIME | never-ready (its `ready` probe; default: at once) |
 *                             unhealthy-after TIME (its `health` probe fails from then on)
 *   sigterm-delay TIME      how long a process that honours SIGTERM takes to exit (default 10ms)
 *   at TIME tell GROUP LEVEL
 *   at TIME stopall
 *   at TIME reload          re-read the current isinittab without a tell
 *   at TIME crash TAG [CODE|SIGNAL]   end the live run from outside (default SIGKILL)
 *   at TIME config <<EOF    replace the isinittab; the next tell or reload reads it
 *   run TIME                stop the simulation at that time (default: when nothing is pending)
 *
 * Defaults: respawn and once processes run until stopped; wait and test jobs exit 0 after 100ms.
 */

export type ScenarioAction =
  | { readonly _tag: "Tell"; readonly group: string; readonly level: string }
  | { readonly _tag: "StopAll" }
  | { readonly _tag: "Reload" }
  | { readonly _tag: "Crash"; readonly tag: string; readonly how: number | string }
  | { readonly _tag: "EditConfig"; readonly text: string }

export interface TimedAction {
  readonly at: number
  readonly line: number
  readonly action: ScenarioAction
}

export interface Scenario {
  readonly config: string | undefined
  readonly behaviours: readonly (readonly [string, Behaviour])[]
  readonly sigtermDelayMs: number | undefined
  /** In time order (stable: same time keeps file order). */
  readonly actions: readonly TimedAction[]
  readonly endMs: number | undefined
}

export interface ScenarioError {
  readonly line: number
  readonly message: string
}

export interface ParsedScenario {
  readonly scenario: Scenario
  readonly errors: readonly ScenarioError[]
}

const units: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }

/** `1.5s` → 1500; undefined when it is not a duration. */
export const parseDuration = (text: string): number | undefined => {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text)
  if (m === null) return undefined
  const scale = units[m[2] ?? "ms"] ?? 1
  const ms = Math.round(Number(m[1]) * scale)
  // Virtual time is exact integer milliseconds: beyond 2^53 it is not.
  return Number.isSafeInteger(ms) ? ms : undefined
}

type Clause = { readonly ok: true; readonly behaviour: Behaviour; readonly rest: readonly string[] } | { readonly ok: false; readonly message: string }

const clause = (words: readonly string[], base: Behaviour): Clause => {
  const [word, ...rest] = words
  const duration = (text: string | undefined, what: string): number | string => {
    const ms = text === undefined ? undefined : parseDuration(text)
    return ms ?? `${what} needs a time such as 500ms or 2s, got '${text ?? ""}'`
  }
  switch (word) {
    case "runs-forever":
      return { ok: true, behaviour: { ...base, life: runsForever().life }, rest }
    case "ignores-sigterm":
      return { ok: true, behaviour: { ...base, ignoresSigterm: true }, rest }
    case "fails-to-spawn":
      return { ok: true, behaviour: { ...base, life: failsToSpawn(rest.join(" ") || "ENOENT").life }, rest: [] }
    case "crashes-every": {
      const ms = duration(rest[0], "crashes-every")
      return typeof ms === "string" ? { ok: false, message: ms } : { ok: true, behaviour: { ...base, life: exitsAfter(ms, 1).life }, rest: rest.slice(1) }
    }
    case "stops-after": {
      const ms = duration(rest[0], "stops-after")
      return typeof ms === "string" ? { ok: false, message: ms } : { ok: true, behaviour: { ...base, sigtermDelayMs: ms }, rest: rest.slice(1) }
    }
    case "exits":
    case "leader-exits": {
      const [code, after, time] = rest
      if (code === undefined || !/^\d+$/.test(code) || after !== "after")
        return { ok: false, message: `expected '${word} CODE after TIME'` }
      const ms = duration(time, `${word} CODE after`)
      if (typeof ms === "string") return { ok: false, message: ms }
      const life = word === "exits" ? exitsAfter(ms, Number(code)).life : leaderExitsAfter(ms, Number(code)).life
      return { ok: true, behaviour: { ...base, life }, rest: rest.slice(3) }
    }
    default:
      return probeClause(word, rest, base) ?? {
        ok: false,
        message: `unknown behaviour '${word ?? ""}' (runs-forever, exits CODE after TIME, crashes-every TIME, fails-to-spawn, ignores-sigterm, stops-after TIME, leader-exits CODE after TIME, ready-after TIME, never-ready, unhealthy-after TIME)`,
      }
  }
}

/** Rules 20-22: how the process answers its `ready` and `health` probes. */
const probeClause = (word: string | undefined, rest: readonly string[], base: Behaviour): Clause | undefined => {
  if (word === "never-ready") return { ok: true, behaviour: neverReady(base), rest }
  if (word !== "ready-after" && word !== "unhealthy-after") return undefined
  const ms = rest[0] === undefined ? undefined : parseDuration(rest[0])
  if (ms === undefined) return { ok: false, message: `${word} needs a time such as 500ms or 2s, got '${rest[0] ?? ""}'` }
  return { ok: true, behaviour: word === "ready-after" ? readyAfter(ms, base) : unhealthyAfter(ms, base), rest: rest.slice(1) }
}

const parseBehaviour = (words: readonly string[], base: Behaviour): Behaviour | string => {
  let behaviour = base
  let rest = words
  if (rest.length === 0) return "behave NAME needs at least one behaviour"
  while (rest.length > 0) {
    const result = clause(rest, behaviour)
    if (!result.ok) return result.message
    behaviour = result.behaviour
    rest = result.rest
  }
  return behaviour
}

const parseAction = (words: readonly string[], heredoc: () => string | ScenarioError): ScenarioAction | string => {
  const [verb, ...args] = words
  switch (verb) {
    case "tell": {
      const [group, level, ...extra] = args
      if (group === undefined || level === undefined || extra.length > 0) return "expected 'tell GROUP LEVEL'"
      return { _tag: "Tell", group, level }
    }
    case "stopall":
      return args.length === 0 ? { _tag: "StopAll" } : "stopall takes no arguments"
    case "reload":
      return args.length === 0 ? { _tag: "Reload" } : "reload takes no arguments"
    case "crash": {
      const [tag, how, ...extra] = args
      if (tag === undefined || extra.length > 0) return "expected 'crash TAG [CODE|SIGNAL]'"
      if (how === undefined) return { _tag: "Crash", tag, how: "SIGKILL" }
      if (/^\d+$/.test(how)) return { _tag: "Crash", tag, how: Number(how) }
      if (/^SIG[A-Z0-9]+$/.test(how)) return { _tag: "Crash", tag, how }
      return `crash takes an exit code or a signal name such as SIGKILL, got '${how}'`
    }
    case "config": {
      const text = heredoc()
      return typeof text === "string" ? { _tag: "EditConfig", text } : text.message
    }
    default:
      return `unknown action '${verb ?? ""}' (tell, stopall, reload, crash, config)`
  }
}

/** What parsing collects, line by line. */
interface Reading {
  readonly lines: readonly string[]
  /** The line being read (0-based); a config block moves it to its closing marker. */
  i: number
  readonly errors: ScenarioError[]
  readonly behaviours: Map<string, Behaviour>
  readonly actions: TimedAction[]
  config: string | undefined
  sigtermDelayMs: number | undefined
  endMs: number | undefined
}

const fail = (r: Reading, line: number, message: string): void => void r.errors.push({ line, message })

/** Reads the `<<MARK` block that starts after the current line, leaving the reading on its closing marker. */
const heredocFor = (r: Reading, words: readonly string[], at: number) => (): string | ScenarioError => {
  const marker = /^<<(\S+)$/.exec(words[words.length - 1] ?? "")?.[1]
  if (marker === undefined || words.length !== 2) return { line: at, message: "expected 'config <<MARKER', then the isinittab, then MARKER alone on a line" }
  const body: string[] = []
  for (r.i = r.i + 1; r.i < r.lines.length; r.i++) {
    const line = r.lines[r.i] ?? ""
    if (line.trim() === marker) return body.map((l) => l + "\n").join("")
    body.push(line)
  }
  return { line: at, message: `no closing '${marker}' for the config block` }
}

/** One reader per kind of line: the line's words after the first, and its number. */
type LineReader = (r: Reading, words: readonly string[], at: number) => void

const lineReaders: { readonly [head: string]: LineReader } = {
  config: (r, words, at) => {
    const body = heredocFor(r, ["config", ...words], at)()
    if (typeof body !== "string") fail(r, body.line, body.message)
    else if (r.config !== undefined) fail(r, at, "a second initial config; use 'at TIME config <<EOF' to edit it later")
    else r.config = body
  },
  behave: (r, [name, ...spec], at) => {
    if (name === undefined) return fail(r, at, "expected 'behave NAME BEHAVIOUR...'")
    const behaviour = parseBehaviour(spec, r.behaviours.get(name) ?? runsForever())
    if (typeof behaviour === "string") fail(r, at, behaviour)
    else r.behaviours.set(name, behaviour)
  },
  "sigterm-delay": (r, words, at) => {
    const ms = words.length === 1 ? parseDuration(words[0] ?? "") : undefined
    if (ms === undefined) fail(r, at, "expected 'sigterm-delay TIME'")
    else r.sigtermDelayMs = ms
  },
  run: (r, words, at) => {
    const ms = words.length === 1 ? parseDuration(words[0] ?? "") : undefined
    if (ms === undefined) fail(r, at, "expected 'run TIME', e.g. 'run 90s'")
    else if (r.endMs !== undefined) fail(r, at, "a second 'run' line")
    else r.endMs = ms
  },
  at: (r, [time, ...action], at) => {
    const ms = time === undefined ? undefined : parseDuration(time)
    if (ms === undefined) return fail(r, at, `expected 'at TIME ACTION', with TIME such as 0, 500ms or 2s; got '${time ?? ""}'`)
    const parsed = parseAction(action, heredocFor(r, action, at))
    if (typeof parsed === "string") fail(r, at, parsed)
    else r.actions.push({ at: ms, line: at, action: parsed })
  },
}

/** Parse a scenario; every problem is reported with its line, and parsing never throws. */
export const parseScenario = (text: string): ParsedScenario => {
  const r: Reading = { lines: text.split(/\r?\n/), i: 0, errors: [], behaviours: new Map(), actions: [], config: undefined, sigtermDelayMs: undefined, endMs: undefined }
  for (; r.i < r.lines.length; r.i++) {
    const at = r.i + 1
    const trimmed = (r.lines[r.i] ?? "").trim()
    if (trimmed === "" || trimmed.startsWith("#")) continue
    const [head = "", ...rest] = trimmed.split(/\s+/)
    const reader = Object.hasOwn(lineReaders, head) ? lineReaders[head] : undefined
    if (reader === undefined) fail(r, at, `unknown line '${head}' (config, behave, sigterm-delay, at, run)`)
    else reader(r, rest, at)
  }
  const sorted = r.actions.map((a, index) => ({ a, index })).sort((x, y) => x.a.at - y.a.at || x.index - y.index)
  const endMs = r.endMs
  if (endMs !== undefined) {
    for (const { a } of sorted) if (a.at > endMs) fail(r, a.line, `action at ${formatMs(a.at)} is after the end of the run (${formatMs(endMs)})`)
  }
  return {
    scenario: { config: r.config, behaviours: [...r.behaviours], sigtermDelayMs: r.sigtermDelayMs, actions: sorted.map(({ a }) => a), endMs },
    errors: r.errors,
  }
}

/**
 * Events a scenario may cost before it is stopped: a runaway (a respawn loop without end, a long
 * `run` over a fast crash loop) would otherwise take minutes and gigabytes. 100,000 events take
 * about 5 s and 200 MB here; the example scenarios need a few hundred.
 */
export const defaultMaxEvents = 100_000

export interface RunOptions {
  readonly parse?: (text: string) => Parsed
  readonly invariants?: readonly Invariant[]
  /** Without a `run` line: how long to wait for the world to go idle after the last action. */
  readonly idleLimitMs?: number
  /** Stop after this many events (default `defaultMaxEvents`). */
  readonly maxEvents?: number
}

/** Why a scenario stopped before its end: it used up its events at virtual time `at`. */
export interface OutOfEvents {
  readonly maxEvents: number
  readonly at: number
}

export interface ScenarioResult {
  readonly timeline: readonly TimelineEntry[]
  readonly violations: readonly Violation[]
  readonly report: StatusReport
  readonly endMs: number
  /** Whether nothing was pending at the end (no exits scheduled, no deadline). */
  readonly idle: boolean
  /** Set when the scenario was stopped by the bound on events, before its end. */
  readonly outOfEvents: OutOfEvents | undefined
  readonly world: World
}

export const perform = (world: World, action: ScenarioAction): void => {
  switch (action._tag) {
    case "Tell":
      world.tell(action.group, action.level)
      return
    case "StopAll":
      world.stopAll()
      return
    case "Reload":
      world.reload()
      return
    case "Crash":
      world.crash(action.tag, action.how)
      return
    case "EditConfig":
      world.editConfig(action.text)
      return
  }
}

/** Run a scenario in a fresh world. */
export const runScenario = (scenario: Scenario, options: RunOptions = {}): ScenarioResult => {
  const maxEvents = options.maxEvents ?? defaultMaxEvents
  const world = new World({
    ...(scenario.config === undefined ? {} : { config: scenario.config }),
    ...(options.parse === undefined ? {} : { parse: options.parse }),
    ...(options.invariants === undefined ? {} : { invariants: options.invariants }),
    ...(scenario.sigtermDelayMs === undefined ? {} : { sigtermDelayMs: scenario.sigtermDelayMs }),
    behaviours: scenario.behaviours,
    maxSteps: maxEvents,
  })
  for (const { at, action } of scenario.actions) {
    world.advanceTo(at)
    if (world.exhausted) break
    perform(world, action)
  }
  if (scenario.endMs !== undefined) world.advanceTo(scenario.endMs)
  else world.runUntilIdle(options.idleLimitMs ?? 600_000)
  const outOfEvents = world.exhausted ? { maxEvents, at: world.now } : undefined
  return { timeline: world.timeline, violations: world.violations, report: world.report(), endMs: world.now, idle: world.isIdle(), outOfEvents, world }
}

export type TimelineFormat = "text" | "json"

const subjectOf = (e: TimelineEntry): string => {
  if (e.group !== undefined && e.tag !== undefined) return `${e.group}/${e.tag}`
  return e.group ?? e.tag ?? "*"
}

/**
 * The timeline as aligned text lines (`  12.000s  web/db  jailed until ...`) or as a JSON array.
 * Text leaves out the reducer's group log lines (the `state` lines say the same) unless verbose.
 */
export const renderTimeline = (all: readonly TimelineEntry[], format: TimelineFormat = "text", verbose = false): string => {
  if (format === "json") return JSON.stringify(all.map((e) => ({ ...e })), null, 2)
  const timeline = verbose ? all : all.filter((e) => !(e.kind === "log" && e.what === "group"))
  const width = Math.min(24, Math.max(0, ...timeline.map((e) => subjectOf(e).length)))
  return timeline.map((e) => `${formatMs(e.at).padStart(9)}  ${subjectOf(e).padEnd(width)}  ${e.detail}`).join("\n") + (timeline.length > 0 ? "\n" : "")
}

const behaviourClauses = (b: Behaviour): string => {
  const term = [b.ignoresSigterm ? "ignores-sigterm" : "", b.sigtermDelayMs === undefined ? "" : `stops-after ${b.sigtermDelayMs}ms`]
  const life =
    b.life._tag === "RunsForever"
      ? "runs-forever"
      : b.life._tag === "ExitsAfter"
        ? `exits ${b.life.code} after ${b.life.ms}ms`
        : b.life._tag === "LeaderExitsAfter"
          ? `leader-exits ${b.life.code} after ${b.life.ms}ms`
          : `fails-to-spawn ${b.life.reason}`
  return [...term, life].filter((w) => w !== "").join(" ")
}

const heredoc = (head: string, text: string): string => {
  let marker = "EOF"
  const lines = new Set(text.split("\n").map((l) => l.trim()))
  while (lines.has(marker)) marker += "_"
  return `${head} <<${marker}\n${text.endsWith("\n") || text === "" ? text : text + "\n"}${marker}\n`
}

const actionText = (a: ScenarioAction): string => {
  switch (a._tag) {
    case "Tell":
      return `tell ${a.group} ${a.level}`
    case "StopAll":
      return "stopall"
    case "Reload":
      return "reload"
    case "Crash":
      return `crash ${a.tag} ${a.how}`
    case "EditConfig":
      return "config"
  }
}

/** A scenario as text that `parseScenario` reads back to the same scenario (for replaying swarms). */
export const scenarioText = (s: Scenario): string => {
  const out: string[] = []
  if (s.config !== undefined) out.push(heredoc("config", s.config))
  for (const [name, b] of s.behaviours) out.push(`behave ${name} ${behaviourClauses(b)}\n`)
  if (s.sigtermDelayMs !== undefined) out.push(`sigterm-delay ${s.sigtermDelayMs}ms\n`)
  for (const { at, action } of s.actions) {
    out.push(action._tag === "EditConfig" ? heredoc(`at ${at}ms config`, action.text) : `at ${at}ms ${actionText(action)}\n`)
  }
  if (s.endMs !== undefined) out.push(`run ${s.endMs}ms\n`)
  return out.join("")
}
