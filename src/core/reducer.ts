/**
 * The reducer: `(state, event) => [state, effects]`, the whole of isinit's behaviour.
 *
 * Theory of operation. Each group has a level and, while it is moving into that level, a
 * *transition*: the group's entries that list the level, in file order, taken one at a time.
 * The group's *outgoing* processes (those being stopped) go first: nothing is taken while one is
 * still going, as sysvinit runs K scripts before S scripts. Taking an entry starts it (`respawn`,
 * `once`) or runs it while the transition waits for its exit (`wait`, `test`: a *barrier*).
 * Nothing else waits: other groups' tells, exits and ticks are handled while a barrier runs. A
 * transition is over when every entry has been taken, no barrier runs and no outgoing process is
 * left; the group is then `run`, or `fail` if one of its tests exited non-zero.
 *
 * An entry is *admitted* when its group's level lists it and the transition (if any) has taken
 * it. Only admitted entries are started, restarted or released from jail, so file order and
 * barriers hold for restarts as well as for first starts.
 *
 * Processes are named by tag and run number. A stop sends SIGTERM to the process group and arms a
 * timer for SIGKILL; signals go only to runs whose exit has not been reported, so a reaped pid is
 * never signalled. A run is over when its whole process group is gone; a leader that exits before
 * the rest of its group ends the run all the same: the rest is stopped, then the entry is handled
 * as exited with the leader's outcome. Time comes only from events; timers live in a persistent heap and the runtime
 * asks `nextDeadline` when to send the next tick.
 *
 * Within one call a `Step` accumulates the new state and the effects; nothing outside the call
 * can see it, so the function stays pure, total and deterministic (rule 13).
 *
 * The rules are numbered once, in properties/README.md, each with its property and the functions
 * below that implement it; `Rule N` in a comment cites that list.
 */
import type { Config, Entry, Parsed } from "./config.ts"
import { hasErrors, limitsFor, listsLevel, sameDefinition, stopSignalOf } from "./config.ts"
import type { Effect, LogEntry, Rejection } from "./effects.ts"
import type { Event, Guard, Outcome } from "./events.ts"
import { describeOutcome } from "./events.ts"
import * as HashMap from "effect/HashMap"
import type { Before } from "./invariants.ts"
import { assertChanges, assertStep, checkInvariants } from "./invariants.ts"
import { assertPhaseChange } from "./phases.ts"
import { noOptions } from "./options.ts"
import { removalRefusal } from "./reread.ts"
import { admitStart } from "./respawn.ts"
import type { EntrySnapshot, ProcSnapshot } from "./snapshot.ts"
import { standbyLevel } from "./failover.ts"
import type { EntryState, GroupState, Hold, Lifecycle, LiveProc, ProbeSlot, Readiness, State, StopCause, Transition } from "./state.ts"
import { completionAfter, free, freshEntry, freshGroup, idle, lookup, notRun, ordered, unprobed } from "./state.ts"
import type { ProbePurpose } from "./effects.ts"
import { describeProbe, probeDefaults, readyRetryDelay } from "./options.ts"
import type { Timer, TimerQueue } from "./timers.ts"
import * as Timers from "./timers.ts"

export const reduce = (state: State, event: Event): readonly [State, readonly Effect[]] => {
  if (state.lifecycle === "halted") return [state, []]
  // Rule 9: a refused tell or reload changes nothing.
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
    case "LeaderExited":
      onLeaderExited(step, event)
      break
    case "Tick":
      onTick(step)
      break
    case "Restore":
      onRestore(step, event)
      break
    case "Hold":
      onHold(step, event)
      break
    case "Release":
      onRelease(step, event)
      break
    case "ProbeResult":
      onProbeResult(step, event)
      break
  }
  const [after, effects] = step.finish()
  assertStep(state, event, after)
  // The restore boundary: a predecessor's record, once, so the whole state is checked (O(entries)).
  if (event._tag === "Restore") checkInvariants(after)
  return [after, effects]
}

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
  if (config.failover.groups.has(group)) return `"${group}" is a failover group: it runs where its lease is held; move it with isinit --etcd URLS move ${group} NODE`
  if (config.byGroup.has(group)) return undefined
  const known = [...config.byGroup.keys()].sort().join(", ")
  return `unknown group "${group}" (the isinittab defines: ${known === "" ? "none" : known})`
}

const rejected = (event: EventOf<"Tell" | "Reload">, reason: string): Rejection =>
  event._tag === "Tell"
    ? { _tag: "Rejected", event: event._tag, subject: `tell ${event.group} ${event.level}`, group: event.group, reason }
    : { _tag: "Rejected", event: event._tag, subject: "reload", reason }

// ---------------------------------------------------------------------------------------------
// Event handlers

type EventOf<K extends Event["_tag"]> = Extract<Event, { readonly _tag: K }>

const onTell = (step: Step, { group, level, parsed }: EventOf<"Tell">): void => {
  applyConfig(step, parsed.config)
  enterLevel(step, group, level, "tell")
}

/** Rule 8: SIGHUP: the re-read config applies, and every told group re-enters its level (not a tell). */
const onReload = (step: Step, { parsed }: EventOf<"Reload">): void => {
  applyConfig(step, parsed.config)
  reapplyLevels(step, parsed.config)
}

/** Rule 8: stopall: every group `stopping`, every process stopped; the daemon halts when they are gone. */
const onStopAll = (step: Step): void => {
  if (step.lifecycle !== "running") return
  step.lifecycle = "stopping"
  // A group removed from the file has no level and stays `stopped` while its processes go (rule 18).
  for (const group of step.groups()) {
    if (group.level !== undefined) step.setGroup({ ...group, phase: "stopping", transition: undefined })
  }
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
 * Rule 14: the leader's exit ends the run (systemd's main-pid rule): it is recorded at once, and
 * the rest of its process group is stopped; once that is gone the entry is handled as exited with
 * the leader's outcome. A run already being stopped goes on being stopped for its own reason.
 */
const onLeaderExited = (step: Step, { tag, run, outcome }: EventOf<"LeaderExited">): void => {
  const entry = step.findEntry(tag)
  if (entry === undefined || entry.proc._tag !== "Running" || entry.proc.run !== run) return
  step.setEntry({ ...entry, lastExit: { outcome, at: step.now } })
  const why = `its leader exited (${describeOutcome(outcome)}), the rest of its process group lives on`
  beginStop(step, tag, { _tag: "LeaderExited", outcome }, why)
}

/**
 * Rule 19: a daemon that starts after a crash takes over its predecessor's record: runs the runtime
 * verified as still alive are adopted, the others count as ended while nobody watched (once,
 * wait and test as done, so they do not run twice; a test whose result is unknown as failed),
 * jails and windows continue, and every told group converges to its level as after a tell.
 */
const onRestore = (step: Step, { snapshot, alive, parsed }: EventOf<"Restore">): void => {
  if (step.entryTags().length > 0 || step.groups().length > 0) {
    step.emit({ _tag: "Rejected", event: "Restore", subject: "restore", reason: "the daemon already manages processes" })
    return
  }
  const live = new Set(alive)
  step.nextRun = Math.max(step.nextRun, snapshot.nextRun)
  for (const saved of snapshot.entries) restoreEntry(step, saved, live)
  for (const group of snapshot.groups) {
    const phase = group.level === null ? "stopped" : group.phase
    step.restoreGroup({ ...freshGroup(group.name), level: group.level ?? undefined, phase, seq: group.seq })
  }
  for (const saved of snapshot.entries) {
    if (saved.proc?._tag === "Stopping") beginStop(step, saved.tag, saved.proc.cause, "it was being stopped when the previous daemon ended")
  }
  if (snapshot.lifecycle !== "running") return onStopAll(step)
  if (hasErrors(parsed)) {
    const reason = "the isinittab has errors: adopted processes keep running, no group converges until a valid tell"
    step.emit({ _tag: "Rejected", event: "Restore", subject: "restore", reason })
    return
  }
  applyConfig(step, parsed.config)
  reapplyLevels(step, parsed.config)
}

/** Every told group the config still defines re-enters its level (a reload, a restore: not a tell). */
const reapplyLevels = (step: Step, config: Config): void => {
  for (const group of step.groups()) {
    const level = group.level
    if (level !== undefined && config.byGroup.has(group.name)) enterLevel(step, group.name, level, "reapply")
  }
}

/** An entry as the predecessor recorded it; its run adopted if the runtime verified it alive, else ended unseen. */
const restoreEntry = (step: Step, saved: EntrySnapshot, alive: ReadonlySet<number>): void => {
  const base: EntryState = {
    ...freshEntry(saved.tag),
    completion: saved.completion,
    jail: saved.jail,
    starts: saved.starts,
    restarts: saved.restarts,
    lastExit: saved.lastExit,
  }
  const jail = saved.jail
  if (jail._tag === "Jailed") step.addTimer({ at: jail.until, reason: { _tag: "JailEnds", tag: saved.tag } })
  const proc = saved.proc
  if (proc === null) return step.setEntry(base)
  if (alive.has(proc.run)) return adoptRun(step, base, proc)
  runEndedUnseen(step, base, proc)
}

const adoptRun = (step: Step, base: EntryState, proc: ProcSnapshot): void => {
  const adopted = { run: proc.run, pid: proc.pid ?? undefined, identity: proc.identity ?? undefined, since: proc.since }
  // Adopted as running: a run being stopped is stopped again once every entry is back (onRestore).
  step.setEntry({ ...base, proc: { _tag: "Running", ...adopted, def: proc.def } })
  step.log({ what: "adopted", group: proc.def.group, tag: base.tag, run: proc.run, message: "from the previous daemon" })
}

const runEndedUnseen = (step: Step, base: EntryState, proc: ProcSnapshot): void => {
  const vanished: Outcome = { _tag: "Vanished" }
  const finished = proc.def.mode === "respawn" ? base.completion : completionAfter(proc.def.mode, vanished)
  step.setEntry({ ...base, completion: finished, lastExit: { outcome: vanished, at: step.now } })
  step.log({ what: "exited", group: proc.def.group, tag: base.tag, run: proc.run, message: "ended while no daemon was watching (exit status unknown)" })
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
  for (const group of step.groups()) if (!config.byGroup.has(group.name)) dropGroup(step, group)
}

/**
 * Rule 18: a group the config no longer defines has no level: it shows `stopped` while its
 * processes go (its waiters are told it was replaced), and is forgotten once they are gone.
 */
const dropGroup = (step: Step, group: GroupState): void => {
  if (group.outgoing === 0) return step.forgetGroup(group.name)
  if (group.level === undefined) return
  step.setGroup({ ...group, level: undefined, phase: "stopped", transition: undefined, seq: group.seq + 1 })
  step.log({ what: "group", group: group.name, message: "removed from the isinittab: stopped while its processes go" })
}

/** Rule 18: the last process of a group the config no longer defines is gone: so is the group. */
const forgetIfDropped = (step: Step, name: string): void => {
  const group = step.group(name)
  if (group.outgoing === 0 && group.level === undefined && !step.config.byGroup.has(name)) step.forgetGroup(name)
}

/**
 * Rules 2, 3 and 8: a group moves to a level; a tell of another level supersedes an unfinished
 * transition (rules 16 and 17 for the same level). A reload or restore re-applies the level
 * without counting as a tell, so a client waiting for the last tell's transition is not told it
 * was superseded.
 */
const enterLevel = (step: Step, name: string, level: string, why: Why): void => {
  const course = courseOf(step.group(name), level, why)
  const defs = step.config.byGroup.get(name) ?? []
  for (const def of defs) if (!listsLevel(def, level)) leaveLevel(step, def.tag)
  const order = defs.filter((def) => def.mode !== "off" && listsLevel(def, level))
  const retried = course === "retry" ? retryFailedTests(step, order) : 0
  const group = step.group(name)
  const seq = course === "new" || course === "retry" ? group.seq + 1 : group.seq
  step.setGroup({ ...group, level, phase: "start", seq, transition: { level, order, next: 0, barrier: undefined } })
  step.log({ what: "group", group: name, message: enteringMessage(course, level, order.length, retried) })
  advance(step, name)
  settle(step, name)
}

/**
 * How a tell meets its group. Rule 16: the level it is heading to joins the running transition
 * (same number, so every waiter of that level is answered when it is reached). Rule 17: the
 * level it is at starts a new transition that reruns its failed tests.
 */
type Course = "new" | "join" | "retry" | "reapply"

/** What makes a group enter a level: a tell, a re-read that re-applies it, or a new failover epoch (a new transition). */
type Why = "tell" | "reapply" | "epoch"

const courseOf = (group: GroupState, level: string, why: Why): Course => {
  if (why === "reapply") return "reapply"
  if (why === "epoch" || group.level !== level) return "new"
  return group.phase === "start" ? "join" : "retry"
}

const enteringMessage = (course: Course, level: string, entries: number, retried: number): string => {
  switch (course) {
    case "join":
      return `level ${level} told again while entering it: joining its transition`
    case "retry":
      return `level ${level} told again: rerunning ${retried} failed test(s)`
    case "new":
    case "reapply":
      return `entering level ${level} (${entries} entries)`
  }
}

/** Rule 17: the level's failed tests (a test whose result is unknown counts) run again; nothing else does. */
const retryFailedTests = (step: Step, order: readonly Entry[]): number => {
  let retried = 0
  for (const def of order) {
    const entry = step.findEntry(def.tag)
    if (def.mode !== "test" || entry === undefined || entry.completion._tag !== "Ran" || entry.completion.ok) continue
    step.setEntry({ ...entry, completion: notRun })
    retried++
  }
  return retried
}

/** Rule 3: an entry outside the new level stops and forgets its runs, marks and jail. */
const leaveLevel = (step: Step, tag: string): void => {
  stop(step, tag, "not in the new level")
  const entry = step.findEntry(tag)
  if (entry !== undefined) step.setEntry({ ...entry, completion: notRun, jail: free, starts: [], readiness: unprobed })
}

/**
 * Rule 1: take entries in file order until a barrier is running or the order is exhausted.
 * Rule 15: nothing is taken while the group's outgoing processes are still going (K before S).
 */
const advance = (step: Step, name: string): void => {
  for (;;) {
    const group = step.group(name)
    const transition = group.transition
    if (transition === undefined || transition.barrier !== undefined || group.outgoing > 0) return
    const def = transition.order[transition.next]
    if (def === undefined) return
    step.setGroup({ ...group, transition: { ...transition, next: transition.next + 1 } })
    if (take(step, def) === "barrier") {
      step.setGroup({ ...step.group(name), transition: { ...transition, next: transition.next + 1, barrier: def.tag } })
      return
    }
  }
}

/** What taking an entry means for the transition: go on to the next, or wait for this barrier's exit. */
type Taken = "passed" | "barrier"

/** Rules 1, 2, 5 and 6: starts an entry the transition has reached. */
const take = (step: Step, def: Entry): Taken => {
  const entry = step.entry(def.tag)
  switch (def.mode) {
    case "respawn":
      if (entry.proc._tag === "Idle" && entry.jail._tag === "Free") startRespawn(step, def)
      else if (entry.proc._tag === "Running") probeAgain(step, entry.proc.def)
      // Rule 20: a ready-checked entry holds the transition like a wait entry until it is ready.
      return step.entry(def.tag).readiness._tag === "Starting" ? "barrier" : "passed"
    case "once":
      if (entry.proc._tag === "Idle" && entry.completion._tag === "NotRun") spawn(step, def)
      return "passed"
    case "wait":
    case "test":
      if (entry.completion._tag === "Ran") return "passed"
      // A live run (kept from a superseded transition, or being stopped to rerun) is waited for.
      if (entry.proc._tag === "Idle") spawn(step, def)
      return "barrier"
    case "off":
      return "passed"
  }
}

/**
 * Rule 6: a respawn start counts toward the window; the start that would exceed it jails the entry
 * until the jail is over and the window admits a start again.
 */
const startRespawn = (step: Step, def: Entry): void => {
  const limits = limitsFor(def, step.config.limits)
  const entry = step.entry(def.tag)
  const admission = admitStart(entry.starts, step.now, limits)
  if (admission._tag === "Admitted") {
    step.setEntry({ ...entry, starts: admission.starts })
    spawn(step, def)
    beginProbing(step, def)
    return
  }
  const until = admission.until
  step.setEntry({ ...entry, starts: admission.starts, jail: { _tag: "Jailed", until } })
  step.addTimer({ at: until, reason: { _tag: "JailEnds", tag: def.tag } })
  const why = `${limits.respawnMax} starts within ${limits.respawnWindowMs} ms`
  const message = `for ${until - step.now} ms: respawning too rapidly (${why})`
  step.log({ what: "jailed", group: def.group, tag: def.tag, message })
}

const spawn = (step: Step, def: Entry): void => {
  const hold = failoverHold(step, def)
  if (hold === "fenced") return
  const run = step.nextRun++
  const entry = step.entry(def.tag)
  step.setEntry({ ...entry, proc: { _tag: "Running", run, pid: undefined, identity: undefined, since: step.now, def } })
  const sync = def.mode === "wait" || def.mode === "test"
  const options = def.options === noOptions ? {} : { options: def.options }
  step.emit({ _tag: sync ? "RunSync" : "Spawn", tag: def.tag, run, group: def.group, command: def.command, ...options, ...hold })
}

/** Rule 7: the stop signal (SIGTERM unless the entry says) to the process group now, SIGKILL when the grace is over. */
const stop = (step: Step, tag: string, reason: string): void => {
  const entry = step.findEntry(tag)
  if (entry === undefined || entry.proc._tag === "Idle") return
  if (entry.proc._tag === "Running") return beginStop(step, tag, ordered, reason)
  // Rule 14: the leftovers of an exited leader now go for this reason, as any stopped run does.
  if (entry.proc.cause._tag === "LeaderExited") step.setEntry({ ...entry, proc: { ...entry.proc, cause: ordered } })
}

/** Rules 7 and 14: the stop itself, for a reason the reducer gave or because the leader exited. */
const beginStop = (step: Step, tag: string, cause: StopCause, reason: string): void => {
  const entry = step.findEntry(tag)
  if (entry === undefined || entry.proc._tag !== "Running") return
  const proc = entry.proc
  const killAt = step.now + graceOf(step.config, proc.def)
  // The running definition's signal and grace: the program that runs is the one they were written for.
  const signal = stopSignalOf(proc.def)
  step.setEntry({ ...entry, proc: { ...proc, _tag: "Stopping", killAt, signal, cause } })
  const group = step.group(proc.def.group)
  step.setGroup({ ...group, outgoing: group.outgoing + 1 })
  // stop-signal=KILL has nothing to escalate to: no timer that could only be dropped as stale.
  if (signal !== "SIGKILL") step.addTimer({ at: killAt, reason: { _tag: "KillDue", tag, run: proc.run } })
  step.emit({ _tag: "Kill", tag, run: proc.run, signal })
  step.log({ what: "stopping", group: proc.def.group, tag, run: proc.run, message: reason })
}

/**
 * Rule 7: the entry's grace (`kill-grace`, else the directive); in a failover group never longer
 * than the failover grace, which the lease's fencing counts on.
 */
const graceOf = (config: Config, def: Entry): number => {
  const own = limitsFor(def, config.limits).killGraceMs
  return config.failover.groups.has(def.group) ? Math.min(own, config.failover.timing.killGraceMs) : own
}

/** How a run's end is handled: as an exit on its own (with this outcome), or as the end of a stop. */
type Ending = { readonly _tag: "OnItsOwn"; readonly outcome: Outcome } | { readonly _tag: "Stopped" }

const endingOf = (proc: LiveProc, outcome: Outcome): Ending => {
  if (proc._tag === "Running") return { _tag: "OnItsOwn", outcome }
  // Rule 14: the leader's exit ended the run; its leftovers are gone now.
  return proc.cause._tag === "LeaderExited" ? { _tag: "OnItsOwn", outcome: proc.cause.outcome } : { _tag: "Stopped" }
}

/** What a run's end means (rules 5, 6, 7, 12, 14, 15 and 18); O(1) in the size of the config. */
const childExited = (step: Step, entry: EntryState, proc: LiveProc, outcome: Outcome): void => {
  const ending = endingOf(proc, outcome)
  const leaderExitedEarlier = proc._tag === "Stopping" && proc.cause._tag === "LeaderExited"
  // Rule 21: a run that ends before it is ready keeps the readiness deadline for the next run.
  const readiness = entry.readiness._tag === "Starting" ? entry.readiness : unprobed
  step.setEntry({ ...entry, proc: idle, lastExit: leaderExitedEarlier ? entry.lastExit : { outcome, at: step.now }, readiness })
  if (proc._tag === "Stopping") {
    const group = step.group(proc.def.group)
    step.setGroup({ ...group, outgoing: group.outgoing - 1 })
  }
  // Halting needs every group drained: look only when this exit drained its own group.
  if (step.lifecycle === "stopping") return step.group(proc.def.group).outgoing === 0 ? haltIfDone(step) : undefined
  const def = step.config.byTag.get(entry.tag)
  if (def === undefined || def.mode === "off") {
    step.forget(entry.tag)
  } else if (def.mode !== "respawn" && step.group(def.group).transition?.barrier === def.tag) {
    barrierExited(step, def, ending)
  } else if (ending._tag === "Stopped") {
    if (admitted(step, def)) resumeAfterStop(step, def)
  } else {
    exitedOnItsOwn(step, def, ending.outcome)
  }
  // Rule 15: the last outgoing process gone, the group's transition takes its entries.
  if (proc._tag === "Stopping") advance(step, proc.def.group)
  settle(step, proc.def.group)
  if (def !== undefined && def.group !== proc.def.group) settle(step, def.group)
  if (proc._tag === "Stopping") forgetIfDropped(step, proc.def.group)
}

/** Rules 1 and 5: a barrier that ran to completion lets the transition go on. */
const barrierExited = (step: Step, def: Entry, ending: Ending): void => {
  if (ending._tag === "Stopped") {
    spawn(step, def) // it was stopped to run again with its current definition
    return
  }
  const outcome = ending.outcome
  const completion = completionAfter(def.mode, outcome)
  step.setEntry({ ...step.entry(def.tag), completion })
  if (def.mode === "test" && !completion.ok) {
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
    step.setEntry({ ...entry, completion: completionAfter(def.mode, outcome) })
    return
  }
  if (!admitted(step, def)) return
  step.setEntry({ ...entry, restarts: entry.restarts + 1 })
  step.log({ what: "restarting", group: def.group, tag: def.tag, message: `after ${describeOutcome(outcome)}` })
  startRespawn(step, def)
}

/** Rules 1 and 6: whether the entry belongs to its group's level and the transition has reached it. */
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
  const phase = testFailed(step, transition) || readinessFailed(step, transition) ? "fail" : "run"
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
  if (reason._tag === "HoldEnds") return holdEnded(step, reason.group)
  if (reason._tag === "ProbeDue") return sendProbe(step, reason.tag)
  if (reason._tag === "ReadyDeadline") return readyTimedOut(step, reason.tag)
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
// Failover groups (failover.ts; docs/cluster.md "Failover groups"): the cluster node hands the
// group a hold while its lease is known alive. Without a live hold nothing of the group starts,
// and a hold that reaches its deadline stops the group: even events handled late, after the
// daemon stalled, can never restart a fenced group.

/** The hold a spawn of `def` carries, nothing for an ordinary group, or "fenced" when it may not start. */
const failoverHold = (step: Step, def: Entry): { readonly hold?: Hold } | "fenced" => {
  if (!step.config.failover.groups.has(def.group)) return {}
  const hold = step.group(def.group).hold
  if (hold !== undefined && step.now < hold.until) return { hold }
  step.log({ what: "fenced", group: def.group, tag: def.tag, message: "not started: this node does not hold the group's failover lease" })
  return "fenced"
}

/** Enters the failover level under a new epoch (or after the hold ran out); a renewal only moves the deadline. */
const onHold = (step: Step, { group, epoch, until }: EventOf<"Hold">): void => {
  const failover = step.config.failover.groups.get(group)
  if (failover === undefined || until <= step.now || step.lifecycle !== "running") {
    const reason = failover === undefined ? "not a failover group" : until <= step.now ? "its deadline has passed" : "the daemon is stopping"
    step.emit({ _tag: "Rejected", event: "Hold", subject: `hold of ${group} (epoch ${epoch})`, group, reason })
    return
  }
  const before = step.group(group)
  step.setGroup({ ...before, hold: { epoch, until } })
  step.addTimer({ at: until, reason: { _tag: "HoldEnds", group } })
  if (before.hold?.epoch === epoch && before.level === failover.level) return
  step.log({ what: "group", group, message: `holding the failover lease (epoch ${epoch})` })
  enterLevel(step, group, failover.level, "epoch")
}

const onRelease = (step: Step, { group }: EventOf<"Release">): void => {
  if (!step.config.failover.groups.has(group) || step.lifecycle !== "running") return
  const before = step.group(group)
  step.setGroup({ ...before, hold: undefined })
  if (before.level !== standbyLevel) enterLevel(step, group, standbyLevel, "tell")
}

/** The renew deadline passed without a renewal: stop the group (SIGTERM now, SIGKILL after the failover grace). */
const holdEnded = (step: Step, group: string): void => {
  step.setGroup({ ...step.group(group), hold: undefined })
  // A group the config made ordinary since keeps running: its hold no longer means anything.
  if (!step.config.failover.groups.has(group) || step.lifecycle !== "running") return
  step.log({ what: "fenced", group, message: "failover lease not renewed by its deadline: stopping the group" })
  enterLevel(step, group, standbyLevel, "tell")
}

// ---------------------------------------------------------------------------------------------
// Readiness and health (rules 20-22). A respawn entry's run is probed by `Probe` effects the
// runtime performs; each answer is a `ProbeResult` of that run and attempt, and only the attempt
// the entry waits for counts. One timer per entry at a time (its next attempt), plus its
// readiness deadline: nothing scans the entries.

/** Rule 20: a new run of a respawn entry starts probing: readiness awaited, else health (if any) at once. */
const beginProbing = (step: Step, def: Entry): void => {
  const entry = step.entry(def.tag)
  if (entry.proc._tag !== "Running") return
  const was = entry.readiness
  if (def.options.ready === undefined) return becomeReady(step, def, entry.proc.run)
  const deadline = was._tag === "Starting" ? was.deadline : step.now + (def.options["ready-timeout"] ?? probeDefaults.readyTimeoutMs)
  if (was._tag !== "Starting" || was.deadline !== deadline) step.addTimer({ at: deadline, reason: { _tag: "ReadyDeadline", tag: def.tag } })
  const probe = nextSlot(was, entry.proc.run)
  step.setEntry({ ...entry, readiness: { _tag: "Starting", deadline, probe } })
  scheduleProbe(step, def.tag, probe, step.now)
}

/** Rules 19 and 21: a running entry taken again (adopted, or not ready in time) is probed again, with a new deadline. */
const probeAgain = (step: Step, def: Entry): void => {
  const readiness = step.entry(def.tag).readiness._tag
  if (readiness === "Unprobed" || readiness === "NotReady") beginProbing(step, def)
}

const becomeReady = (step: Step, def: Entry, run: number): void => {
  const entry = step.entry(def.tag)
  const probe = def.options.health === undefined ? undefined : nextSlot(entry.readiness, run)
  step.setEntry({ ...entry, readiness: { _tag: "Ready", fails: 0, probe } })
  if (probe !== undefined) scheduleProbe(step, def.tag, probe, step.now + healthEvery(def))
}

const healthEvery = (def: Entry): number => def.options["health-every"] ?? probeDefaults.healthEveryMs

/** The slot of the run's next attempt: attempts are numbered per run. */
const nextSlot = (readiness: Readiness, run: number): ProbeSlot => {
  const last = readiness._tag === "Starting" || readiness._tag === "Ready" ? readiness.probe : undefined
  return { run, attempt: last?.run === run ? last.attempt + 1 : 1, stage: "Scheduled" }
}

const scheduleProbe = (step: Step, tag: string, slot: ProbeSlot, at: number): void =>
  step.addTimer({ at, reason: { _tag: "ProbeDue", tag, run: slot.run, attempt: slot.attempt } })

/** The attempt an entry's timer may send: scheduled, for the run that is running. */
const dueSlot = (entry: EntryState): ProbeSlot | undefined => {
  const r = entry.readiness
  const slot = r._tag === "Starting" || r._tag === "Ready" ? r.probe : undefined
  const running = entry.proc._tag === "Running" && entry.proc.run === slot?.run
  return running && slot?.stage === "Scheduled" ? slot : undefined
}

const sendProbe = (step: Step, tag: string): void => {
  const entry = step.entry(tag)
  const slot = dueSlot(entry)
  const r = entry.readiness
  if (slot === undefined || entry.proc._tag !== "Running" || (r._tag !== "Starting" && r._tag !== "Ready")) return
  if (r._tag === "Starting" && step.now >= r.deadline) return
  const options = entry.proc.def.options
  const purpose: ProbePurpose = r._tag === "Starting" ? "ready" : "health"
  const probe = purpose === "ready" ? options.ready : options.health
  if (probe === undefined) return
  const timeoutMs = purpose === "ready" ? probeDefaults.attemptTimeoutMs : Math.min(probeDefaults.attemptTimeoutMs, healthEvery(entry.proc.def))
  step.setEntry({ ...entry, readiness: { ...r, probe: { ...slot, stage: "InFlight" } } })
  step.emit({ _tag: "Probe", tag, run: slot.run, attempt: slot.attempt, purpose, probe, timeoutMs })
}

/** Rule 22: only the answer the entry waits for counts (its run, its attempt, sent). */
const onProbeResult = (step: Step, { tag, run, attempt, result }: EventOf<"ProbeResult">): void => {
  const entry = step.findEntry(tag)
  const r = entry?.readiness
  if (entry === undefined || entry.proc._tag !== "Running" || entry.proc.run !== run || step.lifecycle !== "running") return
  if ((r?._tag !== "Starting" && r?._tag !== "Ready") || r.probe?.attempt !== attempt || r.probe.run !== run || r.probe.stage !== "InFlight") return
  const def = entry.proc.def
  // Rule 21: an answer counts only before the deadline; at the deadline the timeout wins.
  if (r._tag === "Starting" && step.now >= r.deadline) return
  if (r._tag === "Starting") return result._tag === "Passed" ? readyNow(step, def, run) : retryReady(step, entry, r)
  healthAnswered(step, def, r, result)
}

const readyNow = (step: Step, def: Entry, run: number): void => {
  becomeReady(step, def, run)
  step.log({ what: "probe", group: def.group, tag: def.tag, run, message: `ready (${describeProbe(def.options.ready)})` })
  readinessSettled(step, def)
}

const retryReady = (step: Step, entry: EntryState, r: Extract<Readiness, { _tag: "Starting" }>): void => {
  const probe = r.probe === undefined ? undefined : { ...r.probe, attempt: r.probe.attempt + 1, stage: "Scheduled" as const }
  step.setEntry({ ...entry, readiness: { ...r, probe } })
  if (probe !== undefined) scheduleProbe(step, entry.tag, probe, step.now + readyRetryDelay(probe.attempt - 1))
}

/** Rule 22: N failures in a row restart the entry, counted like a respawn (window, jail). */
const healthAnswered = (step: Step, def: Entry, r: Extract<Readiness, { _tag: "Ready" }>, result: EventOf<"ProbeResult">["result"]): void => {
  const entry = step.entry(def.tag)
  const fails = result._tag === "Passed" ? 0 : r.fails + 1
  const limit = def.options["health-fails"] ?? probeDefaults.healthFails
  if (fails < limit) {
    const probe = r.probe === undefined ? undefined : { ...r.probe, attempt: r.probe.attempt + 1, stage: "Scheduled" as const }
    step.setEntry({ ...entry, readiness: { _tag: "Ready", fails, probe } })
    if (probe !== undefined) scheduleProbe(step, def.tag, probe, step.now + healthEvery(def))
    return
  }
  const why = result._tag === "Failed" ? result.reason : "passed"
  step.setEntry({ ...entry, readiness: unprobed, restarts: entry.restarts + 1 })
  step.log({ what: "probe", group: def.group, tag: def.tag, message: `health check failed ${fails} times in a row (last: ${why}): restarting` })
  stop(step, def.tag, "its health check failed: restarting it")
}

/** Rule 21: still not ready at the deadline: the transition goes on and its group will be fail. */
const readyTimedOut = (step: Step, tag: string): void => {
  const entry = step.entry(tag)
  const def = entry.proc._tag === "Idle" ? step.config.byTag.get(tag) : entry.proc.def
  step.setEntry({ ...entry, readiness: { _tag: "NotReady" } })
  if (def === undefined) return
  step.log({ what: "probe", group: def.group, tag, message: `not ready within its ready-timeout: its group will be fail (a tell of the level probes again)` })
  readinessSettled(step, def)
}

/** Rule 20: the barrier this entry held is over. */
const readinessSettled = (step: Step, def: Entry): void => {
  const group = step.group(def.group)
  if (group.transition?.barrier !== def.tag) return
  step.setGroup({ ...group, transition: { ...group.transition, barrier: undefined } })
  advance(step, def.group)
  settle(step, def.group)
}

/** Rule 21: a ready-checked entry that is not ready (timed out, jailed, not started) makes the group fail. */
const readinessFailed = (step: Step, transition: Transition): boolean =>
  transition.order.some((def) => {
    if (def.mode !== "respawn" || def.options.ready === undefined) return false
    const entry = step.entry(def.tag)
    return entry.readiness._tag === "NotReady" || entry.proc._tag === "Idle"
  })

// ---------------------------------------------------------------------------------------------

/**
 * The accumulator of one reduction. Local to `reduce`, so its mutation is invisible outside.
 * Changes collect in small overlays and reach the persistent maps once, in `finish`: an event
 * touching an entry four times still costs one HashMap update.
 */
class Step implements Before {
  config: Config
  now: number
  lifecycle: Lifecycle
  nextRun: number
  private timers: TimerQueue
  private readonly base: State
  private readonly entryChanges = new Map<string, EntryState | undefined>()
  /** Changed groups; `undefined` for a group forgotten (rule 18). */
  private readonly groupChanges = new Map<string, GroupState | undefined>()
  /** Groups read but not changed: a child exit looks at its group several times. */
  private readonly groupReads = new Map<string, GroupState>()
  /** What the base state holds, as read so far: the end-of-step check compares with it without reading again. */
  private readonly entryBases = new Map<string, EntryState | undefined>()
  private readonly groupBases = new Map<string, GroupState | undefined>()
  private readonly effects: Effect[] = []
  private statusChanged = false

  get baseLifecycle(): Lifecycle {
    return this.base.lifecycle
  }

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
    return this.baseEntry(tag)
  }
  baseEntry(tag: string): EntryState | undefined {
    if (this.entryBases.has(tag)) return this.entryBases.get(tag)
    const entry = lookup(this.base.entries, tag)
    this.entryBases.set(tag, entry)
    return entry
  }
  baseGroup(name: string): GroupState | undefined {
    if (this.groupBases.has(name)) return this.groupBases.get(name)
    const group = lookup(this.base.groups, name)
    this.groupBases.set(name, group)
    return group
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
    if (this.groupChanges.has(name)) return this.groupChanges.get(name) ?? freshGroup(name)
    const read = this.groupReads.get(name)
    if (read !== undefined) return read
    const group = this.baseGroup(name) ?? freshGroup(name)
    this.groupReads.set(name, group)
    return group
  }
  setGroup(group: GroupState): void {
    const name = group.name
    const before = this.groupChanges.has(name) ? this.groupChanges.get(name) : this.baseGroup(name)
    assertPhaseChange(name, before?.phase ?? "stopped", group.phase)
    if (before?.phase !== group.phase || before.level !== group.level) this.statusChanged = true
    this.groupChanges.set(group.name, group)
  }
  /** A group as a predecessor recorded it (Restore): its first phase, not a change. */
  restoreGroup(group: GroupState): void {
    this.groupChanges.set(group.name, group)
    this.statusChanged = true
  }
  forgetGroup(name: string): void {
    this.groupChanges.set(name, undefined)
    this.statusChanged = true
  }
  /** Every remembered group; for whole-config events (tell, reload, stopall), never per exit. */
  groups(): readonly GroupState[] {
    const names = new Set([...HashMap.keys(this.base.groups), ...this.groupChanges.keys()])
    const forgotten = (name: string): boolean =>
      this.groupChanges.has(name) && this.groupChanges.get(name) === undefined
    return [...names].flatMap((name) => (forgotten(name) ? [] : [this.group(name)]))
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
    assertChanges(this, state, this.entryChanges, this.groupChanges)
    return [state, this.effects]
  }

  /** A timer is live while the thing it was armed for still stands; stale ones are dropped. */
  private isLive(timer: Timer): boolean {
    const reason = timer.reason
    if (reason._tag === "HoldEnds") return this.group(reason.group).hold?.until === timer.at
    const entry = this.findEntry(reason.tag)
    if (entry === undefined) return false
    if (reason._tag === "JailEnds") return this.lifecycle === "running" && entry.jail._tag === "Jailed" && entry.jail.until === timer.at
    if (reason._tag === "ProbeDue") return this.lifecycle === "running" && dueSlot(entry)?.attempt === reason.attempt && dueSlot(entry)?.run === reason.run
    if (reason._tag === "ReadyDeadline") return this.lifecycle === "running" && entry.readiness._tag === "Starting" && entry.readiness.deadline === timer.at
    const proc = entry.proc
    return proc._tag === "Stopping" && proc.run === reason.run && proc.signal !== "SIGKILL" && proc.killAt === timer.at
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
