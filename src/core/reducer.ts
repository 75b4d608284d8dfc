/**
 * The reducer: `(state, event) => [state, effects]`, the whole of isinit's behaviour.
 *
 * Theory of operation. Each group has a level and, while it is moving into that level, a
 * *transition*: the group's entries that list the level, in file order, taken one at a time.
 * Taking an entry starts it (`respawn`, `once`) or runs it while the transition waits for its
 * exit (`wait`, `test`: a *barrier*). Nothing else waits: other groups' tells, exits and ticks are
 * handled while a barrier runs. A transition is over when every entry has been taken, no barrier
 * runs and the group's outgoing processes are gone; the group is then `run`, or `fail` if one of
 * its tests exited non-zero.
 *
 * An entry is *admitted* when its group's level lists it and the transition (if any) has taken
 * it. Only admitted entries are started, restarted or released from jail, so file order and
 * barriers hold for restarts as well as for first starts.
 *
 * Processes are named by tag and run number. A stop sends SIGTERM to the process group and arms a
 * timer for SIGKILL; signals go only to runs whose exit has not been reported, so a reaped pid is
 * never signalled. Time comes only from events; timers live in a persistent heap and the runtime
 * asks `nextDeadline` when to send the next tick.
 *
 * Within one call a `Step` accumulates the new state and the effects; nothing outside the call
 * can see it, so the function stays pure.
 */
import type { Config, Entry, Parsed } from "./config.ts"
import { hasErrors, listsLevel, sameDefinition } from "./config.ts"
import type { Effect, LogEntry } from "./effects.ts"
import type { Event, Guard, Outcome } from "./events.ts"
import { describeOutcome, succeeded } from "./events.ts"
import * as HashMap from "effect/HashMap"
import { removalRefusal } from "./reread.ts"
import type { EntrySnapshot } from "./snapshot.ts"
import type { Completion, EntryState, GroupState, Lifecycle, LiveProc, State, Transition } from "./state.ts"
import { free, freshEntry, freshGroup, groupOf, idle, lookup, notRun } from "./state.ts"
import type { Timer, TimerQueue } from "./timers.ts"
import * as Timers from "./timers.ts"

export const reduce = (state: State, event: Event): readonly [State, readonly Effect[]] => {
  if (state.lifecycle === "halted") return [state, []]
  if (event._tag === "Tell" || event._tag === "Reload") {
    const reason = configRejection(state, event.parsed, event.guard) ?? (event._tag === "Tell" ? groupRejection(event.parsed.config, event.group, event.level) : undefined)
    if (reason !== undefined) return [state, [rejected(event, reason)]]
  }
  const step = new Step(state, Math.max(state.now, event.now))
  switch (event._tag) {
    case "Tell":
      onTell(step, event)
      break
    case "Reload":
      onReload(step, event)
      break
    case "StopAll":
      onStopAll(step)
      break
    case "Started":
      onStarted(step, event)
      break
    case "ChildExit":
      onChildExit(step, event)
      break
    case "Tick":
      onTick(step)
      break
    case "Restore":
      onRestore(step, event)
      break
  }
  return step.finish()
}

/** Why a tell would be rejected, or `undefined` if it would be accepted: for immediate replies. */
export const tellRejection = (state: State, group: string, level: string, parsed: Parsed, guard?: Guard): string | undefined =>
  configRejection(state, parsed, guard) ?? groupRejection(parsed.config, group, level)

/** When the runtime must deliver the next Tick; `undefined` when nothing is pending. */
export const nextDeadline = (state: State): number | undefined => Timers.peek(state.timers)?.at

const configRejection = (state: State, parsed: Parsed, guard: Guard | undefined): string | undefined => {
  if (state.lifecycle !== "running") return "the daemon is stopping all processes"
  if (!hasErrors(parsed)) return guard === "removals" ? removalRefusal(state, parsed.config) : undefined
  const errors = parsed.problems.filter((p) => p.severity === "error")
  const first = errors[0]
  const where = first === undefined || first.line === 0 ? "first" : `first at line ${first.line}`
  return `the isinittab has ${errors.length} error(s), ${where}: ${first?.message ?? ""}; nothing was changed`
}

const groupRejection = (config: Config, group: string, level: string): string | undefined => {
  if (level === "") return "empty runlevel"
  if (config.byGroup.has(group)) return undefined
  const known = [...config.byGroup.keys()].sort().join(", ")
  return `unknown group "${group}" (the isinittab defines: ${known === "" ? "none" : known})`
}

const rejected = (event: Event & { readonly _tag: "Tell" | "Reload" }, reason: string): Effect => ({
  _tag: "Log",
  entry:
    event._tag === "Tell"
      ? { what: "rejected", group: event.group, message: `tell ${event.group} ${event.level} rejected: ${reason}` }
      : { what: "rejected", message: `reload rejected: ${reason}` },
})

// ---------------------------------------------------------------------------------------------
// Event handlers

type EventOf<K extends Event["_tag"]> = Extract<Event, { readonly _tag: K }>

const onTell = (step: Step, { group, level, parsed }: EventOf<"Tell">): void => {
  applyConfig(step, parsed.config)
  enterLevel(step, group, level, "tell")
}

/** SIGHUP: the re-read config applies, and every told group re-enters its level. */
const onReload = (step: Step, { parsed }: EventOf<"Reload">): void => {
  applyConfig(step, parsed.config)
  for (const group of step.groups()) {
    if (group.level !== undefined && parsed.config.byGroup.has(group.name)) enterLevel(step, group.name, group.level, "reapply")
  }
}

const onStopAll = (step: Step): void => {
  if (step.lifecycle !== "running") return
  step.lifecycle = "stopping"
  for (const group of step.groups()) step.setGroup({ ...group, phase: "stopping", transition: undefined })
  step.log({ what: "group", message: "stopall: stopping every process" })
  for (const tag of step.entryTags()) stop(step, tag, "stopall")
  haltIfDone(step)
}

/** The runtime learnt the pid; only for display, runs are named by number. */
const onStarted = (step: Step, { tag, run, pid, identity }: EventOf<"Started">): void => {
  const entry = step.findEntry(tag)
  if (entry === undefined || entry.proc._tag === "Idle" || entry.proc.run !== run) return
  step.setEntry({ ...entry, proc: { ...entry.proc, pid, identity } })
}

/** Exits of runs that are not live (unknown, duplicate, late) change nothing. */
const onChildExit = (step: Step, { tag, run, outcome }: EventOf<"ChildExit">): void => {
  const entry = step.findEntry(tag)
  if (entry === undefined || entry.proc._tag === "Idle" || entry.proc.run !== run) return
  childExited(step, entry, entry.proc, outcome)
}

/**
 * A daemon that starts after a crash takes over its predecessor's record: runs the runtime
 * verified as still alive are adopted, the others count as ended while nobody watched (once,
 * wait and test as done, so they do not run twice; a test whose result is unknown as failed),
 * jails and windows continue, and every told group converges to its level as after a tell.
 */
const onRestore = (step: Step, { snapshot, alive, parsed }: EventOf<"Restore">): void => {
  if (step.entryTags().length > 0 || step.groups().length > 0) {
    step.log({ what: "rejected", message: "restore rejected: the daemon already manages processes" })
    return
  }
  const live = new Set(alive)
  step.nextRun = Math.max(step.nextRun, snapshot.nextRun)
  for (const saved of snapshot.entries) adoptEntry(step, saved, saved.proc !== null && live.has(saved.proc.run))
  for (const group of snapshot.groups) {
    step.setGroup({ ...freshGroup(group.name), level: group.level ?? undefined, phase: group.level === null ? "stopped" : group.phase, seq: group.seq })
  }
  for (const saved of snapshot.entries) {
    if (saved.proc?.stopping === true) stop(step, saved.tag, "it was being stopped when the previous daemon ended")
  }
  if (snapshot.lifecycle !== "running") return onStopAll(step)
  if (hasErrors(parsed)) {
    step.log({ what: "rejected", message: "the isinittab has errors: adopted processes keep running, no group converges until a valid tell" })
    return
  }
  applyConfig(step, parsed.config)
  for (const group of step.groups()) {
    if (group.level !== undefined && parsed.config.byGroup.has(group.name)) enterLevel(step, group.name, group.level, "reapply")
  }
}

const adoptEntry = (step: Step, saved: EntrySnapshot, isAlive: boolean): void => {
  const base: EntryState = { ...freshEntry(saved.tag), completion: saved.completion, jail: saved.jail, starts: saved.starts, restarts: saved.restarts }
  const proc = saved.proc
  if (saved.jail._tag === "Jailed") step.addTimer({ at: saved.jail.until, reason: { _tag: "JailEnds", tag: saved.tag } })
  if (proc === null) return step.setEntry(base)
  const where = { group: proc.def.group, tag: saved.tag, run: proc.run }
  if (isAlive) {
    step.setEntry({ ...base, proc: { _tag: "Running", run: proc.run, pid: proc.pid ?? undefined, identity: proc.identity ?? undefined, since: proc.since, def: proc.def } })
    step.log({ what: "adopted", ...where, message: `adopted pid ${proc.pid ?? "?"} from the previous daemon` })
    return
  }
  const finished: Completion = proc.def.mode === "respawn" ? base.completion : { _tag: "Ran", ok: proc.def.mode !== "test" }
  step.setEntry({ ...base, completion: finished, lastExit: { outcome: { _tag: "Vanished" }, at: step.now } })
  step.log({ what: "exited", ...where, message: "ended while no daemon was watching (exit status unknown)" })
}

const onTick = (step: Step): void => {
  for (let timer = step.dueTimer(); timer !== undefined; timer = step.dueTimer()) fire(step, timer)
}

// ---------------------------------------------------------------------------------------------
// Rules

/** Rules 4 and 12: the re-read config stops removed and `off` entries, restarts changed ones. */
const applyConfig = (step: Step, config: Config): void => {
  step.config = config
  for (const entry of step.entries()) {
    const tag = entry.tag
    const def = config.byTag.get(tag)
    const gone = def === undefined || def.mode === "off"
    if (entry.proc._tag === "Idle") {
      if (gone) step.forget(tag)
      // The jail is a respawn rule: an entry changed to another mode is free to run.
      else if (entry.jail._tag === "Jailed" && def.mode !== "respawn") step.setEntry({ ...entry, jail: free, starts: [] })
    } else if (gone) {
      stop(step, tag, def === undefined ? "removed from the isinittab" : "set to off")
    } else if (!sameDefinition(def, entry.proc.def)) {
      stop(step, tag, "its definition changed: restarting it")
    }
  }
}

/**
 * Rules 2, 3 and 8: a group moves to a level; a newer tell supersedes an unfinished one. A
 * reload or restore re-applies the level without counting as a tell, so a client waiting for
 * the last tell's transition is not told it was superseded.
 */
const enterLevel = (step: Step, name: string, level: string, why: "tell" | "reapply"): void => {
  const defs = step.config.byGroup.get(name) ?? []
  for (const def of defs) if (!listsLevel(def, level)) leaveLevel(step, def.tag)
  const order = defs.filter((def) => def.mode !== "off" && listsLevel(def, level))
  const group = step.group(name)
  const seq = why === "tell" ? group.seq + 1 : group.seq
  step.setGroup({ ...group, level, phase: "start", seq, transition: { level, order, next: 0, barrier: undefined } })
  step.log({ what: "group", group: name, message: `entering level ${level} (${order.length} entries)` })
  advance(step, name)
  settle(step, name)
}

/** Rule 3: an entry outside the new level stops and forgets its runs, marks and jail. */
const leaveLevel = (step: Step, tag: string): void => {
  stop(step, tag, "not in the new level")
  const entry = step.findEntry(tag)
  if (entry !== undefined) step.setEntry({ ...entry, completion: notRun, jail: free, starts: [] })
}

/** Rule 1: take entries in file order until a barrier is running or the order is exhausted. */
const advance = (step: Step, name: string): void => {
  for (;;) {
    const group = step.group(name)
    const transition = group.transition
    if (transition === undefined || transition.barrier !== undefined) return
    const def = transition.order[transition.next]
    if (def === undefined) return
    step.setGroup({ ...group, transition: { ...transition, next: transition.next + 1 } })
    if (take(step, def)) {
      step.setGroup({ ...step.group(name), transition: { ...transition, next: transition.next + 1, barrier: def.tag } })
      return
    }
  }
}

/** Starts an entry the transition has reached; true if the transition must wait for it. */
const take = (step: Step, def: Entry): boolean => {
  const entry = step.entry(def.tag)
  switch (def.mode) {
    case "respawn":
      if (entry.proc._tag === "Idle" && entry.jail._tag === "Free") startRespawn(step, def)
      return false
    case "once":
      if (entry.proc._tag === "Idle" && entry.completion._tag === "NotRun") spawn(step, def)
      return false
    case "wait":
    case "test":
      if (entry.completion._tag === "Ran") return false
      // A live run (kept from a superseded transition, or being stopped to rerun) is waited for.
      if (entry.proc._tag === "Idle") spawn(step, def)
      return true
    case "off":
      return false
  }
}

/** Rule 6: a respawn start counts toward the window; the start that would exceed it jails. */
const startRespawn = (step: Step, def: Entry): void => {
  const { respawnMax, respawnWindowMs, jailMs } = step.config.limits
  const now = step.now
  const entry = step.entry(def.tag)
  const recent = entry.starts.filter((at) => now - at < respawnWindowMs)
  if (recent.length < respawnMax) {
    step.setEntry({ ...entry, starts: [...recent, now] })
    spawn(step, def)
    return
  }
  // The window's starts are kept, so a jail shorter than the window cannot let extra starts in.
  const until = now + jailMs
  step.setEntry({ ...entry, starts: recent, jail: { _tag: "Jailed", until } })
  step.addTimer({ at: until, reason: { _tag: "JailEnds", tag: def.tag } })
  step.log({
    what: "jailed",
    group: def.group,
    tag: def.tag,
    message: `respawning too rapidly (${respawnMax} starts within ${respawnWindowMs} ms): jailed for ${jailMs} ms`,
  })
}

const spawn = (step: Step, def: Entry): void => {
  const run = step.nextRun++
  const entry = step.entry(def.tag)
  step.setEntry({ ...entry, proc: { _tag: "Running", run, pid: undefined, identity: undefined, since: step.now, def } })
  const sync = def.mode === "wait" || def.mode === "test"
  step.emit({ _tag: sync ? "RunSync" : "Spawn", tag: def.tag, run, group: def.group, command: def.command })
}

/** Rule 7: SIGTERM to the process group now, SIGKILL when the grace is over. */
const stop = (step: Step, tag: string, reason: string): void => {
  const entry = step.findEntry(tag)
  if (entry === undefined || entry.proc._tag !== "Running") return
  const proc = entry.proc
  const killAt = step.now + step.config.limits.killGraceMs
  step.setEntry({ ...entry, proc: { ...proc, _tag: "Stopping", killAt, signal: "SIGTERM" } })
  const group = step.group(proc.def.group)
  step.setGroup({ ...group, outgoing: group.outgoing + 1 })
  step.addTimer({ at: killAt, reason: { _tag: "KillDue", tag, run: proc.run } })
  step.emit({ _tag: "Kill", tag, run: proc.run, signal: "SIGTERM" })
  step.log({ what: "stopping", group: proc.def.group, tag, run: proc.run, message: `stopping: ${reason}` })
}

const childExited = (step: Step, entry: EntryState, proc: LiveProc, outcome: Outcome): void => {
  step.setEntry({ ...entry, proc: idle, lastExit: { outcome, at: step.now } })
  const wasStopping = proc._tag === "Stopping"
  if (wasStopping) {
    const group = step.group(proc.def.group)
    step.setGroup({ ...group, outgoing: group.outgoing - 1 })
  }
  // Halting needs every group drained: look only when this exit drained its own group.
  if (step.lifecycle === "stopping") return step.group(proc.def.group).outgoing === 0 ? haltIfDone(step) : undefined
  const def = step.config.byTag.get(entry.tag)
  if (def === undefined || def.mode === "off") {
    step.forget(entry.tag)
  } else if (step.group(def.group).transition?.barrier === def.tag) {
    barrierExited(step, def, wasStopping, outcome)
  } else if (wasStopping) {
    if (admitted(step, def)) resumeAfterStop(step, def)
  } else {
    exitedOnItsOwn(step, def, outcome)
  }
  settle(step, proc.def.group)
  if (def !== undefined && def.group !== proc.def.group) settle(step, def.group)
}

/** Rules 1 and 5: a barrier that ran to completion lets the transition go on. */
const barrierExited = (step: Step, def: Entry, wasStopping: boolean, outcome: Outcome): void => {
  if (wasStopping) {
    spawn(step, def) // it was stopped to run again with its current definition
    return
  }
  const ok = succeeded(outcome)
  step.setEntry({ ...step.entry(def.tag), completion: { _tag: "Ran", ok } })
  if (def.mode === "test" && !ok) {
    step.log({ what: "exited", group: def.group, tag: def.tag, message: `test failed (${describeOutcome(outcome)}): the group will be fail` })
  }
  const group = step.group(def.group)
  if (group.transition !== undefined) step.setGroup({ ...group, transition: { ...group.transition, barrier: undefined } })
  advance(step, def.group)
}

/**
 * Rule 12: a process stopped only to be replaced starts again with its new definition. A wait
 * or test that has not run in this level runs (outside a transition nothing waits for it).
 */
const resumeAfterStop = (step: Step, def: Entry): void => {
  const entry = step.entry(def.tag)
  if (def.mode === "respawn") {
    if (entry.jail._tag === "Free") startRespawn(step, def)
  } else if (entry.completion._tag === "NotRun") {
    spawn(step, def)
  }
}

/** Rules 5 and 6: respawn entries restart while admitted; the others are marked as done. */
const exitedOnItsOwn = (step: Step, def: Entry, outcome: Outcome): void => {
  const entry = step.entry(def.tag)
  if (def.mode !== "respawn") {
    step.setEntry({ ...entry, completion: { _tag: "Ran", ok: succeeded(outcome) } })
    return
  }
  if (!admitted(step, def)) return
  step.setEntry({ ...entry, restarts: entry.restarts + 1 })
  step.log({ what: "restarting", group: def.group, tag: def.tag, message: `restarting after ${describeOutcome(outcome)}` })
  startRespawn(step, def)
}

/** Whether the entry belongs to its group's level and the transition has already reached it. */
const admitted = (step: Step, def: Entry): boolean => {
  const group = step.group(def.group)
  if (step.lifecycle !== "running" || group.level === undefined || !listsLevel(def, group.level)) return false
  const pending = group.transition?.order[group.transition.next]
  return pending === undefined || def.line < pending.line
}

/** Rule 8: a transition is over when all is taken, no barrier runs and no outgoing process is left. */
const settle = (step: Step, name: string): void => {
  const group = step.group(name)
  const transition = group.transition
  if (transition === undefined || transition.barrier !== undefined || group.outgoing > 0) return
  if (transition.next < transition.order.length) return
  const phase = testFailed(step, transition) ? "fail" : "run"
  step.setGroup({ ...group, phase, transition: undefined })
  step.log({ what: "group", group: name, message: `level ${transition.level} reached: ${phase}` })
}

const testFailed = (step: Step, transition: Transition): boolean =>
  transition.order.some((def) => {
    if (def.mode !== "test") return false
    const completion = step.entry(def.tag).completion
    return completion._tag === "Ran" && !completion.ok
  })

/** Rule 8: after stopall, the daemon halts once every process is gone. */
const haltIfDone = (step: Step): void => {
  const groups = step.groups()
  if (groups.some((group) => group.outgoing > 0)) return
  for (const group of groups) step.setGroup({ ...group, phase: "stopped" })
  step.lifecycle = "halted"
  step.log({ what: "halted", message: "every process is gone" })
}

/** Rules 6 and 7: a jail that ends, or a grace that runs out. */
const fire = (step: Step, timer: Timer): void => {
  const reason = timer.reason
  const entry = step.entry(reason.tag)
  if (reason._tag === "KillDue") {
    if (entry.proc._tag !== "Stopping") return
    step.setEntry({ ...entry, proc: { ...entry.proc, signal: "SIGKILL" } })
    step.emit({ _tag: "Kill", tag: reason.tag, run: reason.run, signal: "SIGKILL" })
    step.log({ what: "killed", group: entry.proc.def.group, tag: reason.tag, run: reason.run, message: "still alive after the grace: SIGKILL" })
    return
  }
  step.setEntry({ ...entry, jail: free })
  const def = step.config.byTag.get(reason.tag)
  if (def === undefined) return
  step.log({ what: "released", group: def.group, tag: def.tag, message: "jail is over" })
  if (def.mode === "respawn" && entry.proc._tag === "Idle" && admitted(step, def)) startRespawn(step, def)
}

// ---------------------------------------------------------------------------------------------

/**
 * The accumulator of one reduction. Local to `reduce`, so its mutation is invisible outside.
 * Changes collect in small overlays and reach the persistent maps once, in `finish`: an event
 * touching an entry four times still costs one HashMap update.
 */
class Step {
  config: Config
  now: number
  lifecycle: Lifecycle
  nextRun: number
  private timers: TimerQueue
  private readonly base: State
  private readonly entryChanges = new Map<string, EntryState | undefined>()
  private readonly groupChanges = new Map<string, GroupState>()
  /** Groups read but not changed: a child exit looks at its group several times. */
  private readonly groupReads = new Map<string, GroupState>()
  private readonly effects: Effect[] = []
  private statusChanged = false

  constructor(base: State, now: number) {
    this.base = base
    this.config = base.config
    this.now = now
    this.lifecycle = base.lifecycle
    this.nextRun = base.nextRun
    this.timers = base.timers
  }

  findEntry(tag: string): EntryState | undefined {
    const changed = this.entryChanges.get(tag)
    if (changed !== undefined || this.entryChanges.has(tag)) return changed
    return lookup(this.base.entries, tag)
  }
  entry(tag: string): EntryState {
    return this.findEntry(tag) ?? freshEntry(tag)
  }
  setEntry(entry: EntryState): void {
    this.entryChanges.set(entry.tag, entry)
  }
  forget(tag: string): void {
    this.entryChanges.set(tag, undefined)
  }
  /** Every remembered entry; for whole-config events (tell, reload, stopall), never per exit. */
  entries(): readonly EntryState[] {
    return this.entryTags().flatMap((tag) => this.findEntry(tag) ?? [])
  }
  entryTags(): readonly string[] {
    return [...new Set([...HashMap.keys(this.base.entries), ...this.entryChanges.keys()])]
  }

  group(name: string): GroupState {
    const known = this.groupChanges.get(name) ?? this.groupReads.get(name)
    if (known !== undefined) return known
    const group = groupOf(this.base, name)
    this.groupReads.set(name, group)
    return group
  }
  setGroup(group: GroupState): void {
    const before = this.groupChanges.get(group.name) ?? lookup(this.base.groups, group.name)
    if (before?.phase !== group.phase || before.level !== group.level) this.statusChanged = true
    this.groupChanges.set(group.name, group)
  }
  groups(): readonly GroupState[] {
    const names = new Set([...HashMap.keys(this.base.groups), ...this.groupChanges.keys()])
    return [...names].map((name) => this.group(name))
  }

  addTimer(timer: Timer): void {
    this.timers = Timers.add(this.timers, timer)
  }
  /** Pops the earliest timer if it is due and still live; drops stale ones on the way. */
  dueTimer(): Timer | undefined {
    this.dropStaleTimers()
    const timer = Timers.peek(this.timers)
    if (timer === undefined || timer.at > this.now) return undefined
    this.timers = Timers.pop(this.timers)
    return timer
  }

  emit(effect: Effect): void {
    this.effects.push(effect)
  }
  log(entry: LogEntry): void {
    this.effects.push({ _tag: "Log", entry })
  }

  finish(): readonly [State, readonly Effect[]] {
    this.dropStaleTimers()
    if (this.statusChanged) this.effects.push({ _tag: "WriteStatus" })
    const state: State = {
      config: this.config,
      entries: applyChanges(this.base.entries, this.entryChanges),
      groups: applyChanges(this.base.groups, this.groupChanges),
      timers: this.timers,
      nextRun: this.nextRun,
      lifecycle: this.lifecycle,
      now: this.now,
    }
    return [state, this.effects]
  }

  /** A timer is live while the thing it was armed for still stands; stale ones are dropped. */
  private isLive(timer: Timer): boolean {
    const reason = timer.reason
    const entry = this.findEntry(reason.tag)
    if (entry === undefined) return false
    if (reason._tag === "JailEnds") return this.lifecycle === "running" && entry.jail._tag === "Jailed" && entry.jail.until === timer.at
    const proc = entry.proc
    return proc._tag === "Stopping" && proc.run === reason.run && proc.signal === "SIGTERM" && proc.killAt === timer.at
  }

  private dropStaleTimers(): void {
    for (let timer = Timers.peek(this.timers); timer !== undefined && !this.isLive(timer); timer = Timers.peek(this.timers)) {
      this.timers = Timers.pop(this.timers)
    }
  }
}

const applyChanges = <V>(map: HashMap.HashMap<string, V>, changes: ReadonlyMap<string, V | undefined>): HashMap.HashMap<string, V> => {
  if (changes.size === 0) return map
  if (changes.size === 1) {
    for (const [key, value] of changes) return value === undefined ? HashMap.remove(map, key) : HashMap.set(map, key, value)
  }
  return HashMap.mutate(map, (draft) => {
    for (const [key, value] of changes) {
      if (value === undefined) HashMap.remove(draft, key)
      else HashMap.set(draft, key, value)
    }
  })
}
