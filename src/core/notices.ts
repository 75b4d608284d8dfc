/**
 * Notices: what an operator would want to be told about one step of the reducer, as plain data.
 * The hooks (hooks.ts, runtime/hooks.ts) and the status page's recent events are fed from here.
 *
 * Pure and derived: `noticesOf` reads one applied event (the event, the states around it, the
 * effects) and decides nothing the reducer has not decided already. The reducer keeps its one job
 * (its effects say what to do, not whom to tell), and the notices cost nothing unless someone
 * listens: the daemon calls this only while a hook is configured or the status page runs.
 *
 * Costs do not grow with the fleet: a notice of a group's new phase is looked for only in the
 * groups the step touched (the event's group, the groups its effects name, the group of the
 * entry it concerns); only a stopall, a reload or a restore, which touch every group anyway,
 * look at every group. properties/notices.test.ts checks that this finds what a diff of every
 * group would find.
 */
import type { Effect, LogEntry } from "./effects.ts"
import type { Event } from "./events.ts"
import { describeOutcome } from "./events.ts"
import type { Hook, HookEvent, HookSite } from "./hooks.ts"
import type { GroupPhase, GroupState, State } from "./state.ts"
import { knownGroups, lookup } from "./state.ts"

export interface Notice {
  readonly event: HookEvent
  /** The event's time (the loop's clock, ms: monotonic, anchored at the boot's wall time). */
  readonly now: number
  readonly group?: string
  readonly tag?: string
  readonly pid?: number
  readonly run?: number
  /** `exit 1`, `signal SIGKILL` for a process; the new phase for a group; `acquired`, `released`, `expired` for a failover hold. */
  readonly outcome?: string
  /** The group's level after the step. */
  readonly level?: string
  /** A failover group's epoch (its fencing token). */
  readonly epoch?: number
  /** The reducer's reason, as the log has it. */
  readonly message?: string
}

/** One event as the loop applied it. */
export interface Step {
  readonly event: Event
  readonly before: State
  readonly after: State
  readonly effects: readonly Effect[]
}

/** A group entering a phase is told as `group-PHASE`. */
const phaseEvents: Readonly<Record<GroupPhase, HookEvent>> = {
  start: "group-start",
  run: "group-run",
  fail: "group-fail",
  stopping: "group-stopping",
  stopped: "group-stopped",
}

/** Log verbs of the reducer that are notices as they are (the log line says the same). */
const loggedEvents: ReadonlySet<string> = new Set<HookEvent>(["restarting", "jailed", "released", "killed", "fenced"])

const levelOf = (state: State, group: string | undefined): string | undefined =>
  group === undefined ? undefined : lookup(state.groups, group)?.level

const pidOf = (state: State, tag: string | undefined): number | undefined => {
  if (tag === undefined) return undefined
  const proc = lookup(state.entries, tag)?.proc
  return proc === undefined || proc._tag === "Idle" ? undefined : proc.pid
}

type NoticeFields = Pick<Notice, "event" | "now"> & { readonly [K in Exclude<keyof Notice, "event" | "now">]?: Notice[K] | undefined }

/** Optional fields only when known: notices are compared, printed and put in environments. */
const defined = (fields: NoticeFields): Notice => Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== undefined)) as unknown as Notice

/** A run started, exited, or its leader exited: told only for the run the state knew (never a late or duplicate report). */
const processNotices = ({ event, before, after }: Step): readonly Notice[] => {
  if (event._tag !== "Started" && event._tag !== "ChildExit" && event._tag !== "LeaderExited") return []
  const was = lookup(before.entries, event.tag)?.proc
  const known = was !== undefined && was._tag !== "Idle" && was.run === event.run
  if (event._tag === "Started") {
    const now = lookup(after.entries, event.tag)?.proc
    if (now?._tag !== "Running" || now.run !== event.run || (known && was.pid !== undefined)) return []
    return [defined({ event: "started", now: event.now, group: now.def.group, tag: event.tag, pid: event.pid, run: event.run, level: levelOf(after, now.def.group) })]
  }
  if (!known || (event._tag === "LeaderExited" && was._tag !== "Running")) return []
  const name: HookEvent = event._tag === "ChildExit" ? "exited" : "leader-exited"
  const group = was.def.group
  return [defined({ event: name, now: event.now, group, tag: event.tag, pid: was.pid, run: event.run, outcome: describeOutcome(event.outcome), level: levelOf(after, group) })]
}

const logNotice = (step: Step, entry: LogEntry): Notice =>
  defined({
    event: entry.what as HookEvent,
    now: step.after.now,
    group: entry.group,
    tag: entry.tag,
    run: entry.run,
    pid: pidOf(step.after, entry.tag) ?? pidOf(step.before, entry.tag),
    level: levelOf(step.after, entry.group),
    message: entry.message,
  })

/** Restarts, jails, releases, SIGKILLs and fences, as the reducer logged them; and runs that ended unseen during a restore. */
const loggedNotices = (step: Step): readonly Notice[] =>
  step.effects.flatMap((effect) => {
    if (effect._tag !== "Log") return []
    const entry = effect.entry
    if (loggedEvents.has(entry.what)) return [logNotice(step, entry)]
    // An exit nobody saw (the daemon was down): told once, by the restore that found it.
    if (entry.what === "exited" && step.event._tag === "Restore") return [{ ...logNotice(step, entry), event: "exited", outcome: "unknown" }]
    return []
  })

/** The groups a step may have changed (see the header). */
const touchedGroups = (step: Step): readonly string[] => {
  const { event, before, after, effects } = step
  // These touch every group anyway; so does the halt after a stopall (every group `stopped` at once).
  const everyGroup = event._tag === "StopAll" || event._tag === "Reload" || event._tag === "Restore" || before.lifecycle !== after.lifecycle
  if (everyGroup) return [...new Set([...knownGroups(before), ...knownGroups(after)])]
  const names = new Set<string>()
  if (event._tag === "Tell" || event._tag === "Hold" || event._tag === "Release") names.add(event.group)
  for (const effect of effects) {
    if (effect._tag === "Log" && effect.entry.group !== undefined) names.add(effect.entry.group)
    if (effect._tag === "Spawn" || effect._tag === "RunSync") names.add(effect.group)
  }
  if (event._tag === "Started" || event._tag === "ChildExit" || event._tag === "LeaderExited") {
    for (const state of [before, after]) {
      const proc = lookup(state.entries, event.tag)?.proc
      if (proc !== undefined && proc._tag !== "Idle") names.add(proc.def.group)
    }
  }
  return [...names]
}

/** A failover hold gained (a new epoch) or lost on this node. */
const holdNotice = (step: Step, name: string, was: GroupState | undefined, now: GroupState | undefined): Notice | undefined => {
  const before = was?.hold
  const after = now?.hold
  if (after !== undefined && before?.epoch !== after.epoch) {
    return defined({ event: "failover-moved", now: step.after.now, group: name, outcome: "acquired", epoch: after.epoch, level: now?.level })
  }
  if (before !== undefined && after === undefined) {
    const outcome = step.event._tag === "Release" ? "released" : "expired"
    return defined({ event: "failover-moved", now: step.after.now, group: name, outcome, epoch: before.epoch, level: now?.level })
  }
  return undefined
}

/**
 * A tell began a transition (`group-start`, whether or not it ended in the same step), and the
 * group entered a phase (`group-run` ...). A group never told and still stopped has nothing to say.
 */
export const groupNotices = (step: Step, name: string, was: GroupState | undefined, now: GroupState | undefined): readonly Notice[] => {
  if (now === undefined) return []
  const told = now.seq !== (was?.seq ?? 0)
  const entered = now.phase !== (was?.phase ?? "stopped")
  const notice = (phase: GroupPhase): Notice => defined({ event: phaseEvents[phase], now: step.after.now, group: name, outcome: phase, level: now.level })
  if (told && now.phase !== "start") return [notice("start"), notice(now.phase)]
  return told || entered ? [notice(now.phase)] : []
}

const touchedGroupNotices = (step: Step): readonly Notice[] =>
  touchedGroups(step).flatMap((name) => {
    const was = lookup(step.before.groups, name)
    const now = lookup(step.after.groups, name)
    const hold = holdNotice(step, name, was, now)
    return hold === undefined ? groupNotices(step, name, was, now) : [...groupNotices(step, name, was, now), hold]
  })

/** Everything worth telling about one applied event, processes first, then groups. */
export const noticesOf = (step: Step): readonly Notice[] => {
  if (step.before === step.after && step.effects.length === 0) return []
  return [...processNotices(step), ...loggedNotices(step), ...touchedGroupNotices(step)]
}

/**
 * The variables a hook run gets on top of the daemon's environment. Every one is set, empty when
 * the event has no such field, so a script under `set -u` can read them all; and set, not
 * inherited, so a hook never sees a stale value from the daemon's own environment.
 */
export const hookEnvironment = (notice: Notice, hook: Hook, site: HookSite, wallTime: string): Readonly<Record<string, string>> => {
  const text = (value: string | number | undefined): string => (value === undefined ? "" : String(value))
  return {
    ISINIT_EVENT: notice.event,
    ISINIT_GROUP: text(notice.group),
    ISINIT_TAG: text(notice.tag),
    ISINIT_PID: text(notice.pid),
    ISINIT_RUN: text(notice.run),
    ISINIT_OUTCOME: text(notice.outcome),
    ISINIT_LEVEL: text(notice.level),
    ISINIT_EPOCH: text(notice.epoch),
    ISINIT_MESSAGE: text(notice.message),
    ISINIT_TIME: wallTime,
    ISINIT_NODE: text(site.node),
    ISINIT_CLUSTER: text(site.cluster),
    ISINIT_HOOK_LINE: String(hook.line),
  }
}
