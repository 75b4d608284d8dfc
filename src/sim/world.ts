import * as HashMap from "effect/HashMap"
import type { Parsed } from "../core/config.ts"
import { emptyParsed, hasErrors } from "../core/config.ts"
import type { Effect, LogEntry, Signal } from "../core/effects.ts"
import { describeRejection, rejectionOf } from "../core/effects.ts"
import type { Event, Outcome, ProbeOutcome } from "../core/events.ts"
import { probeResult, childExit, describeOutcome, leaderExited, reload, started, stopAll, tell, tick } from "../core/events.ts"
import { parseInittab } from "../core/inittab.ts"
import { nextDeadline, reduce } from "../core/reducer.ts"
import type { StatusReport } from "../core/report.ts"
import { report } from "../core/report.ts"
import type { State } from "../core/state.ts"
import { groupOf, initialState, initialStateWith, lookup } from "../core/state.ts"
import { insertByTime } from "./agenda.ts"
import type { SimProcess, SimStep, StartRecord, StepRecord, TimelineEntry, TimelineKind } from "./records.ts"
import type { Behaviour } from "./behaviour.ts"
import { defaultForRunSync, defaultForSpawn, probePasses } from "./behaviour.ts"
import type { Invariant, Violation } from "./invariants.ts"
import { allInvariants } from "./invariants.ts"

/**
 * A deterministic world of virtual processes and a virtual clock around the real reducer.
 *
 * The world interprets the reducer's effects the way the runtime does (spawn, signal), feeds back
 * what only the world knows (`Started`, `ChildExit`) and delivers a `Tick` at every `nextDeadline`.
 * Everything happens on an agenda ordered by (time, insertion), so a run is a pure function of the
 * calls made on the world. A process stays in the table until its exit has been delivered: that is
 * the moment it is reaped, after which no signal may be aimed at it.
 */

export type { SimProcess, StartRecord, TimelineKind, TimelineEntry, StepRecord, SimStep } from "./records.ts"

export interface WorldOptions {
  /** The isinittab in force at the start (text or already parsed). */
  readonly config?: string | Parsed
  readonly parse?: (text: string) => Parsed
  /** Behaviours by tag or by command (tag wins; then the whole command; then its first word). */
  readonly behaviours?: Iterable<readonly [string, Behaviour]>
  /** How long a process that honours SIGTERM takes to exit after it; default 10 ms. */
  readonly sigtermDelayMs?: number
  readonly firstPid?: number
  /** Checks run after every step; default all of `invariants.ts`. */
  readonly invariants?: readonly Invariant[]
  /** How long a probe takes to answer (rules 20-22); default 0: at the same instant, after the step that sent it. */
  readonly probeLatencyMs?: number
  /** Guard against a reducer that keeps asking for ticks without time moving. */
  readonly maxStepsPerInstant?: number
  /**
   * Stop once this many events have been handled (default: no bound). `isinit simulate` sets one,
   * so that a scenario that runs away (a respawn loop without end, a long run) ends with a message.
   */
  readonly maxSteps?: number
  /** Keep the whole step history (events and effects); default true. */
  readonly keepHistory?: boolean
}

type Action =
  | { readonly _tag: "Started"; readonly key: string }
  | { readonly _tag: "Exit"; readonly key: string; readonly id: number }
  | { readonly _tag: "LeaderExit"; readonly key: string; readonly outcome: Outcome }
  | { readonly _tag: "ProbeAnswer"; readonly tag: string; readonly run: number; readonly attempt: number; readonly result: ProbeOutcome }

interface AgendaItem {
  readonly at: number
  readonly seq: number
  readonly action: Action
}

const keyOf = (tag: string, run: number): string => `${tag}#${run}`

export class World {
  #state: State
  #now = 0
  #parsed: Parsed
  readonly #parse: (text: string) => Parsed
  readonly #behaviours = new Map<string, Behaviour>()
  readonly #sigtermDelayMs: number
  readonly #probeLatencyMs: number
  #probes = 0
  readonly #invariants: readonly Invariant[]
  readonly #maxStepsPerInstant: number
  readonly #maxSteps: number
  readonly #keepHistory: boolean
  readonly #processes = new Map<string, SimProcess>()
  readonly #agenda: AgendaItem[] = []
  #seq = 0
  #exitIds = 0
  #nextPid: number
  #deadline: number | undefined = undefined
  #stepsAtInstant = 0
  #instant = 0
  #stuck = false
  #exhausted = false
  #stepCount = 0
  #statusWrites = 0
  readonly #timeline: TimelineEntry[] = []
  readonly #history: StepRecord[] = []
  readonly #violations: Violation[] = []
  readonly #starts: StartRecord[] = []
  readonly #startsByTag = new Map<string, StartRecord[]>()
  readonly #countReset = new Map<string, number>()

  constructor(options: WorldOptions = {}) {
    this.#parse = options.parse ?? parseInittab
    const config = options.config
    this.#parsed = config === undefined ? emptyParsed : typeof config === "string" ? this.#parse(config) : config
    this.#state = hasErrors(this.#parsed) ? initialState : initialStateWith(this.#parsed.config)
    for (const [name, behaviour] of options.behaviours ?? []) this.#behaviours.set(name, behaviour)
    this.#sigtermDelayMs = options.sigtermDelayMs ?? 10
    this.#probeLatencyMs = options.probeLatencyMs ?? 0
    this.#nextPid = options.firstPid ?? 1000
    this.#invariants = options.invariants ?? allInvariants
    this.#maxStepsPerInstant = options.maxStepsPerInstant ?? 10_000
    this.#maxSteps = options.maxSteps ?? Number.POSITIVE_INFINITY
    this.#keepHistory = options.keepHistory ?? true
  }

  get now(): number {
    return this.#now
  }
  get state(): State {
    return this.#state
  }
  get parsed(): Parsed {
    return this.#parsed
  }
  /** Processes not yet reaped (a failed spawn stays until its failure is delivered). */
  get processes(): ReadonlyMap<string, SimProcess> {
    return this.#processes
  }
  get timeline(): readonly TimelineEntry[] {
    return this.#timeline
  }
  get history(): readonly StepRecord[] {
    return this.#history
  }
  get violations(): readonly Violation[] {
    return this.#violations
  }
  get starts(): readonly StartRecord[] {
    return this.#starts
  }
  get statusWrites(): number {
    return this.#statusWrites
  }
  /** Probes performed so far (rules 20-22). */
  get probes(): number {
    return this.#probes
  }
  get steps(): number {
    return this.#stepCount
  }
  /** The Tick the world will deliver next, if the reducer asked for one. */
  get deadline(): number | undefined {
    return this.#deadline
  }
  /** Set when the reducer asked for ticks without letting time move; the world stops then. */
  get stuck(): boolean {
    return this.#stuck
  }
  /** Set when `maxSteps` events were handled; the world stops then, at the time it reached. */
  get exhausted(): boolean {
    return this.#exhausted
  }
  get #stopped(): boolean {
    return this.#stuck || this.#exhausted
  }

  startsOf(tag: string): readonly StartRecord[] {
    return this.#startsByTag.get(tag) ?? []
  }

  /**
   * The last step that restarted the respawn count of `tag`: an accepted tell or reload that took
   * it out of its level or out of the config (rules 3, 4), or its jailing (rule 6: the start after
   * a jail begins a new count).
   */
  countResetAt(tag: string): number | undefined {
    return this.#countReset.get(tag)
  }

  /** The live (spawned, not failed, not reaped) run of a tag, if any. */
  liveRuns(tag: string): readonly SimProcess[] {
    return [...this.#processes.values()].filter((p) => p.tag === tag && p.pid !== undefined)
  }

  report(): StatusReport {
    return report(this.#state)
  }

  behave(name: string, behaviour: Behaviour): void {
    this.#behaviours.set(name, behaviour)
  }

  /** Replace the isinittab; the next tell or reload reads it, as the daemon re-reads its file. */
  editConfig(config: string | Parsed): void {
    this.#parsed = typeof config === "string" ? this.#parse(config) : config
    const errors = this.#parsed.problems.filter((p) => p.severity === "error").length
    const detail = `config edited: ${this.#parsed.config.entries.length} entries` + (errors > 0 ? `, ${errors} errors` : "")
    this.#note("config", undefined, undefined, undefined, detail)
  }

  tell(group: string, level: string): void {
    this.#note("tell", group, undefined, undefined, `tell ${group} ${level}`)
    this.#dispatch(tell(group, level, this.#parsed, this.#now))
    this.#runDue(this.#now)
  }

  reload(): void {
    this.#note("reload", undefined, undefined, undefined, "reload")
    this.#dispatch(reload(this.#parsed, this.#now))
    this.#runDue(this.#now)
  }

  stopAll(): void {
    this.#note("stopall", undefined, undefined, undefined, "stopall")
    this.#dispatch(stopAll(this.#now))
    this.#runDue(this.#now)
  }

  /** Kill the live run of `tag` from outside (exit code, or a signal name such as `SIGKILL`). */
  crash(tag: string, how: number | string = "SIGKILL"): void {
    const victim = this.liveRuns(tag)[0]
    const outcome: Outcome = typeof how === "number" ? { _tag: "Exited", code: how } : { _tag: "Signaled", signal: how }
    if (victim === undefined) {
      this.#note("crash", undefined, tag, undefined, `crash ${tag}: no live run`)
      return
    }
    this.#note("crash", victim.group, tag, victim.run, `crash: ${describeOutcome(outcome)}`)
    this.#planExit(victim, this.#now, outcome)
    this.#runDue(this.#now)
  }

  /** The leader of `tag`'s live run alone exits (say an operator kills the shell); the rest of its group lives on. */
  crashLeader(tag: string, how: number | string = "SIGKILL"): void {
    const victim = this.liveRuns(tag)[0]
    const outcome: Outcome = typeof how === "number" ? { _tag: "Exited", code: how } : { _tag: "Signaled", signal: how }
    if (victim === undefined) {
      this.#note("crash", undefined, tag, undefined, `crash of ${tag}'s leader: no live run`)
      return
    }
    this.#schedule(this.#now, { _tag: "LeaderExit", key: victim.key, outcome })
    this.#runDue(this.#now)
  }

  /** Deliver the handful of raw events a property wants to throw at the reducer directly. */
  inject(event: Event): void {
    this.#dispatch(event)
    this.#runDue(this.#now)
  }

  advance(ms: number): void {
    this.advanceTo(this.#now + Math.max(0, ms))
  }

  advanceTo(at: number): void {
    this.#runDue(at)
    if (!this.#stopped && at > this.#now) this.#now = at
  }

  /** Nothing scheduled: no pending exits, no deadline. Processes may still run forever. */
  isIdle(): boolean {
    return this.#agenda.length === 0 && this.#deadline === undefined
  }

  /** Run until idle or until `limitMs` of virtual time passed; true when idle. */
  runUntilIdle(limitMs: number): boolean {
    const end = this.#now + limitMs
    while (!this.#stopped) {
      if (this.isIdle()) return true
      const next = this.#nextAt()
      if (next === undefined || next > end) break
      this.#runDue(next)
    }
    if (!this.#stopped && end > this.#now) this.#now = end
    return this.isIdle()
  }

  #nextAt(): number | undefined {
    const item = this.#agenda[0]?.at
    const deadline = this.#deadline
    if (item === undefined) return deadline
    if (deadline === undefined) return item
    return Math.min(item, deadline)
  }

  /** Handle everything due at or before `until`, in time order; agenda items before ticks on ties. */
  #runDue(until: number): void {
    while (!this.#stopped) {
      const item = this.#agenda[0]
      const deadline = this.#deadline
      const next = this.#nextAt()
      if (next === undefined || next > until) return
      const at = Math.max(this.#now, next)
      if (at !== this.#instant) {
        this.#instant = at
        this.#stepsAtInstant = 0
      }
      if (this.#stepCount >= this.#maxSteps) {
        this.#exhausted = true
        return
      }
      this.#now = at
      if (++this.#stepsAtInstant > this.#maxStepsPerInstant) {
        this.#stuck = true
        this.#violate("progress", `more than ${this.#maxStepsPerInstant} steps at ${at} ms without time moving`)
        return
      }
      if (item !== undefined && (deadline === undefined || item.at <= deadline)) {
        this.#agenda.shift()
        this.#perform(item.action)
      } else {
        this.#dispatch(tick(this.#now))
      }
    }
  }

  #perform(action: Action): void {
    if (action._tag === "ProbeAnswer") return this.#dispatch(probeResult(action.tag, action.run, action.attempt, action.result, this.#now))
    const proc = this.#processes.get(action.key)
    if (proc === undefined) return
    if (action._tag === "Started") {
      if (proc.pid !== undefined) this.#dispatch(started(proc.tag, proc.run, proc.pid, this.#now))
      return
    }
    if (action._tag === "LeaderExit") {
      if (proc.leader !== undefined || proc.pid === undefined) return
      proc.leader = action.outcome
      this.#note("leader-exited", proc.group, proc.tag, proc.run, `its leader exited (${describeOutcome(action.outcome)})`)
      this.#dispatch(leaderExited(proc.tag, proc.run, action.outcome, this.#now))
      return
    }
    if (proc.exit?.id !== action.id) return
    // A run whose leader exited earlier ends with the leader's outcome, as the runtime reports it.
    const outcome = proc.leader ?? proc.exit.outcome
    this.#processes.delete(action.key)
    if (outcome._tag === "SpawnFailed") this.#note("spawn-failed", proc.group, proc.tag, proc.run, describeOutcome(outcome))
    else this.#note("exited", proc.group, proc.tag, proc.run, `exited (${describeOutcome(outcome)})`)
    this.#dispatch(childExit(proc.tag, proc.run, outcome, this.#now))
  }

  #schedule(at: number, action: Action): void {
    insertByTime(this.#agenda, { at, seq: this.#seq++, action })
  }

  /** A process ends at the earliest of the ends planned for it. */
  #planExit(proc: SimProcess, at: number, outcome: Outcome): void {
    if (proc.exit !== undefined && proc.exit.at <= at) return
    const id = ++this.#exitIds
    proc.exit = { at, outcome, id }
    this.#schedule(at, { _tag: "Exit", key: proc.key, id })
  }

  #dispatch(event: Event): void {
    const before = this.#state
    let result: readonly [State, readonly Effect[]]
    try {
      result = reduce(before, event)
    } catch (error) {
      this.#violate("total", `reduce threw on ${event._tag}: ${String(error)}`)
      return
    }
    const [after, effects] = result
    this.#state = after
    const record: StepRecord = { index: this.#stepCount++, at: this.#now, event, effects }
    if (this.#keepHistory) this.#history.push(record)
    const starts: StartRecord[] = []
    for (const effect of effects) this.#interpret(effect, after, starts)
    this.#noteLeaves(record, before, after)
    this.#noteGroupChanges(before, after)
    this.#deadline = this.#safeDeadline(after)
    const step: SimStep = { record, before, after, starts }
    for (const invariant of this.#invariants) {
      for (const v of invariant(this, step)) this.#record(v)
    }
  }

  #safeDeadline(state: State): number | undefined {
    try {
      return nextDeadline(state)
    } catch (error) {
      this.#violate("total", `nextDeadline threw: ${String(error)}`)
      return undefined
    }
  }

  #interpret(effect: Effect, after: State, starts: StartRecord[]): void {
    switch (effect._tag) {
      case "Spawn":
      case "RunSync":
        this.#spawn(effect, after, starts)
        return
      case "Kill":
        this.#signal(effect.tag, effect.run, effect.signal)
        return
      case "WriteStatus":
        this.#statusWrites++
        return
      case "Log":
        this.#log(effect.entry, after)
        return
      case "Rejected":
        // As the daemon's log prints it: the verb, then what was refused and why.
        this.#note("rejected", effect.group, undefined, undefined, `rejected ${describeRejection(effect)}`)
        return
      case "Probe":
        this.#probe(effect)
        return
    }
  }

  #behaviourFor(tag: string, command: string, kind: SimProcess["kind"]): Behaviour {
    const argv0 = command.trim().split(/\s+/)[0] ?? ""
    return (
      this.#behaviours.get(tag) ??
      this.#behaviours.get(command) ??
      this.#behaviours.get(argv0) ??
      (kind === "RunSync" ? defaultForRunSync : defaultForSpawn)
    )
  }

  #spawn(effect: Extract<Effect, { _tag: "Spawn" | "RunSync" }>, after: State, starts: StartRecord[]): void {
    const key = keyOf(effect.tag, effect.run)
    const entry = lookup(after.entries, effect.tag)
    const mode = entry !== undefined && entry.proc._tag !== "Idle" ? entry.proc.def.mode : after.config.byTag.get(effect.tag)?.mode
    const start: StartRecord = { at: this.#now, step: this.#stepCount - 1, tag: effect.tag, run: effect.run, group: effect.group, mode }
    starts.push(start)
    this.#starts.push(start)
    const ofTag = this.#startsByTag.get(effect.tag)
    if (ofTag === undefined) this.#startsByTag.set(effect.tag, [start])
    else ofTag.push(start)
    if (this.#processes.has(key)) {
      this.#violate("run-reused", `${effect._tag} of ${key}, which is still in the process table`)
      return
    }
    const behaviour = this.#behaviourFor(effect.tag, effect.command, effect._tag)
    const life = behaviour.life
    const pid = life._tag === "FailsToSpawn" ? undefined : this.#nextPid++
    const proc: SimProcess = {
      key,
      tag: effect.tag,
      run: effect.run,
      group: effect.group,
      command: effect.command,
      kind: effect._tag,
      pid,
      startedAt: this.#now,
      behaviour,
      exit: undefined,
      leader: undefined,
    }
    this.#processes.set(key, proc)
    if (life._tag === "FailsToSpawn") {
      this.#planExit(proc, this.#now, { _tag: "SpawnFailed", reason: life.reason })
      return
    }
    this.#note("started", effect.group, effect.tag, effect.run, `started pid ${pid}: ${effect.command}`)
    this.#schedule(this.#now, { _tag: "Started", key })
    if (life._tag === "ExitsAfter") this.#planExit(proc, this.#now + life.ms, { _tag: "Exited", code: life.code })
    if (life._tag === "LeaderExitsAfter") this.#schedule(this.#now + life.ms, { _tag: "LeaderExit", key, outcome: { _tag: "Exited", code: life.code } })
  }

  /** Rules 20-22: the probe finds what the process's behaviour says at its age; answered after `probeLatencyMs`. */
  #probe(effect: Extract<Effect, { _tag: "Probe" }>): void {
    const proc = this.#processes.get(keyOf(effect.tag, effect.run))
    const alive = proc !== undefined && proc.pid !== undefined && proc.leader === undefined
    const passes = alive && probePasses(proc.behaviour, effect.purpose, this.#now - proc.startedAt)
    const result: ProbeOutcome = passes ? { _tag: "Passed" } : { _tag: "Failed", reason: alive ? `${effect.purpose} probe fails` : "no process" }
    this.#probes++
    this.#schedule(this.#now + this.#probeLatencyMs, { _tag: "ProbeAnswer", tag: effect.tag, run: effect.run, attempt: effect.attempt, result })
  }

  #signal(tag: string, run: number, signal: Signal): void {
    const proc = this.#processes.get(keyOf(tag, run))
    // Aiming at a reaped run is a violation the invariants report; a failed spawn has nothing to hit.
    if (proc === undefined || proc.pid === undefined) return
    if (signal === "SIGKILL") {
      this.#note("killed", proc.group, tag, run, "sent SIGKILL")
      this.#planExit(proc, this.#now, { _tag: "Signaled", signal: "SIGKILL" })
      return
    }
    // A process honours its stop signal (SIGTERM, or the entry's `stop-signal`) as it would SIGTERM.
    if (proc.behaviour.ignoresSigterm) {
      this.#note("ignored", proc.group, tag, run, `sent ${signal} (ignored)`)
      return
    }
    this.#note("killed", proc.group, tag, run, `sent ${signal}`)
    this.#planExit(proc, this.#now + (proc.behaviour.sigtermDelayMs ?? this.#sigtermDelayMs), { _tag: "Signaled", signal })
  }

  #log(entry: LogEntry, after: State): void {
    switch (entry.what) {
      case "jailed": {
        const jail = entry.tag === undefined ? undefined : lookup(after.entries, entry.tag)?.jail
        const until = jail?._tag === "Jailed" ? `jailed until ${formatMs(jail.until)}` : "jailed"
        this.#note("jailed", entry.group, entry.tag, entry.run, `${until} (${entry.message})`)
        return
      }
      // A log line is the verb, then its message (as the daemon's log prints it).
      case "released":
      case "halted":
        this.#note(entry.what, entry.group, entry.tag, entry.run, `${entry.what} ${entry.message}`)
        return
      default:
        this.#timeline.push({ at: this.#now, kind: "log", group: entry.group, tag: entry.tag, run: entry.run, what: entry.what, detail: `${entry.what} ${entry.message}` })
    }
  }

  #noteLeaves(record: StepRecord, before: State, after: State): void {
    const event = record.event
    if (event._tag !== "Tell" && event._tag !== "Reload") return
    if (rejectionOf(record.effects) !== undefined) return
    const config = after.config
    const told = event._tag === "Tell" ? [[event.group, event.level] as const] : [...HashMap.values(after.groups)].flatMap((g) => (g.level === undefined ? [] : [[g.name, g.level] as const]))
    for (const [group, level] of told) {
      for (const def of config.byGroup.get(group) ?? []) if (!def.levels.includes(level)) this.#countReset.set(def.tag, record.index)
    }
    for (const tag of HashMap.keys(before.entries)) {
      const def = config.byTag.get(tag)
      if (def === undefined || def.mode === "off") this.#countReset.set(tag, record.index)
    }
  }

  #noteGroupChanges(before: State, after: State): void {
    if (before.groups === after.groups) return
    for (const name of HashMap.keys(after.groups)) {
      const was = groupOf(before, name)
      const is = groupOf(after, name)
      if (was.phase !== is.phase || was.level !== is.level) this.#note("group", name, undefined, undefined, `state ${is.phase} ${is.level ?? ""}`.trimEnd())
    }
  }

  #note(kind: TimelineKind, group: string | undefined, tag: string | undefined, run: number | undefined, detail: string): void {
    this.#timeline.push({ at: this.#now, kind, group, tag, run, detail })
  }

  #violate(invariant: string, message: string): void {
    this.#record({ at: this.#now, step: this.#stepCount, invariant, message })
  }

  #record(violation: Violation): void {
    this.#violations.push(violation)
    this.#note("violation", undefined, undefined, undefined, `${violation.invariant}: ${violation.message}`)
  }
}

/** `12000` as `12.000s`: the timeline's clock. */
export const formatMs = (ms: number): string => `${(ms / 1000).toFixed(3)}s`
