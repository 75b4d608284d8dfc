/**
 * Event hooks: commands the daemon runs when something happens, as supervisord's event listeners,
 * Pacemaker's alert agents and keepalived's notify scripts do. Declared in the isinittab with
 * directives the original parser skips:
 *
 *   :::hook:EVENT[,EVENT...]:COMMAND   run COMMAND on each such event (`*`: every event)
 *   :::hook-timeout:DURATION           a hook still running after this is killed (30s)
 *   :::hook-limit:N/DURATION           each hook starts at most N runs in any DURATION (10/10s)
 *
 * This module is the pure half: the directives (validated with line numbers, for `isinit check`),
 * and which hooks a notice (notices.ts) runs with which environment. Hooks are not entries: no
 * transition waits for them and the reducer never sees them; the runtime (runtime/hooks.ts) runs
 * them beside the loop, rate-limited and time-limited, and logs their failures.
 */
import type { DirectiveDoc, Problem } from "./config.ts"
import type { Notice } from "./notices.ts"

/** Everything a hook can be told about, one name per kind of notice (notices.ts says when each is given). */
export const hookEvents = [
  "started",
  "exited",
  "leader-exited",
  "restarting",
  "jailed",
  "released",
  "killed",
  "fenced",
  "group-start",
  "group-run",
  "group-fail",
  "group-stopping",
  "group-stopped",
  "failover-moved",
] as const

export type HookEvent = (typeof hookEvents)[number]

const isHookEvent = (name: string): name is HookEvent => (hookEvents as readonly string[]).includes(name)

/** Which events a hook runs on: a list, or every event. */
export type HookEvents = { readonly _tag: "Some"; readonly events: readonly HookEvent[] } | { readonly _tag: "Every" }

export interface Hook {
  readonly on: HookEvents
  /** Executed like an entry's command (command.ts: Perl's exec rule). */
  readonly command: string
  /** Line of the directive: names the hook in the log and the metrics. */
  readonly line: number
}

/** A token bucket per hook: at most `max` runs in any `windowMs` (refilled evenly over the window). */
export interface HookLimit {
  readonly max: number
  readonly windowMs: number
}

export interface HookConfig {
  readonly hooks: readonly Hook[]
  readonly timeoutMs: number
  readonly limit: HookLimit
}

/**
 * Pacemaker kills an alert agent after 30 s; the same here. The limit lets a burst of 10 through
 * and then one a second: enough for every alert worth paging about, and a crash loop of many
 * entries (3 notices per restart) cannot make the daemon fork hundreds of hooks a second.
 */
export const defaultHookConfig: HookConfig = { hooks: [], timeoutMs: 30_000, limit: { max: 10, windowMs: 10_000 } }

export const hookDirectiveDocs: readonly DirectiveDoc[] = [
  { syntax: ":::hook:EVENT[,EVENT...]:COMMAND", default: "(none)", meaning: `run COMMAND on each EVENT (${hookEvents.join(", ")}; * for all), with the event in ISINIT_* variables` },
  { syntax: ":::hook-timeout:DURATION", default: "30s", meaning: "a hook still running after this is killed (its process group, SIGKILL), and the failure logged" },
  { syntax: ":::hook-limit:N/DURATION", default: "10/10s", meaning: "each hook starts at most N runs in any DURATION; the events over it are dropped, counted and logged" },
]

/** The values a hook directive needs parsed the way every other directive parses them (inittab.ts). */
export interface DirectiveValues {
  readonly durationMs: (text: string) => number | undefined
  readonly limit: (text: string) => HookLimit | undefined
}

/** What the hook directives said so far; the parser keeps one per file. */
export interface HookDraft {
  readonly hooks: Hook[]
  timeoutMs: { readonly ms: number; readonly line: number } | undefined
  limit: { readonly value: HookLimit; readonly line: number } | undefined
}

export const newHookDraft = (): HookDraft => ({ hooks: [], timeoutMs: undefined, limit: undefined })

const error = (problems: Problem[], line: number, message: string): void => void problems.push({ severity: "error", line, message })

const eventsOf = (field: string): HookEvents | string => {
  const names = field.split(",").map((name) => name.trim())
  if (names.length === 1 && names[0] === "*") return { _tag: "Every" }
  const unknown = names.filter((name) => !isHookEvent(name))
  if (unknown.length > 0) return `unknown event${unknown.length === 1 ? "" : "s"} ${unknown.map((n) => `"${n}"`).join(", ")} (events: ${hookEvents.join(", ")}, or * for all)`
  return { _tag: "Some", events: names.filter(isHookEvent) }
}

const hookLine = (draft: HookDraft, problems: Problem[], line: number, value: string): void => {
  const colon = value.indexOf(":")
  const usage = "write :::hook:EVENT:COMMAND"
  if (colon < 0) return error(problems, line, `directive "hook": no command in "${value}": ${usage}`)
  const command = value.slice(colon + 1)
  const on = eventsOf(value.slice(0, colon))
  if (typeof on === "string") return error(problems, line, `directive "hook": ${on}`)
  if (command.trim() === "") return error(problems, line, `directive "hook": the command is empty: ${usage}`)
  draft.hooks.push({ on, command, line })
}

const repeated = (problems: Problem[], line: number, name: string, earlier: { readonly line: number } | undefined): void => {
  if (earlier !== undefined) problems.push({ severity: "warning", line, message: `directive "${name}" repeated: this line replaces line ${earlier.line}` })
}

/**
 * One `:::hook...` directive. Returns false for a name that is not a hook directive, so the
 * parser's own "unknown directive" warning applies.
 */
export const hookDirective = (draft: HookDraft, problems: Problem[], line: number, name: string, value: string, parse: DirectiveValues): boolean => {
  switch (name) {
    case "hook":
      hookLine(draft, problems, line, value)
      return true
    case "hook-timeout": {
      repeated(problems, line, name, draft.timeoutMs)
      const ms = parse.durationMs(value)
      if (ms === undefined) error(problems, line, `directive "hook-timeout": bad value "${value}": expected DURATION (e.g. 500ms, 10s, 2m; bare means seconds), positive`)
      else draft.timeoutMs = { ms, line }
      return true
    }
    case "hook-limit": {
      repeated(problems, line, name, draft.limit)
      const limit = parse.limit(value)
      if (limit === undefined) error(problems, line, `directive "hook-limit": bad value "${value}": expected N/DURATION, e.g. 10/10s`)
      else draft.limit = { value: limit, line }
      return true
    }
    default:
      return false
  }
}

export const finishHooks = (draft: HookDraft): HookConfig => ({
  hooks: draft.hooks,
  timeoutMs: draft.timeoutMs?.ms ?? defaultHookConfig.timeoutMs,
  limit: draft.limit?.value ?? defaultHookConfig.limit,
})

export const runsOn = (hook: Hook, event: HookEvent): boolean => hook.on._tag === "Every" || hook.on.events.includes(event)

/** How the log and the metrics name a hook: its line and its events. */
export const hookName = (hook: Hook): string => `line ${hook.line} (${hook.on._tag === "Every" ? "*" : hook.on.events.join(",")})`

/** Where the daemon runs, for the hook's environment (cluster mode only). */
export interface HookSite {
  readonly node?: string | undefined
  readonly cluster?: string | undefined
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
