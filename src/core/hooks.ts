/**
 * Event hooks: commands the daemon runs when something happens, as supervisord's event listeners,
 * Pacemaker's alert agents and keepalived's notify scripts do. Declared in the isinittab with
 * directives the original parser skips:
 *
 *   :::hook:EVENT[,EVENT...]:COMMAND   run COMMAND on each such event (`*`: every event)
 *   :::hook-timeout:DURATION           a hook still running after this is killed (30s)
 *   :::hook-limit:N/DURATION           each hook starts at most N runs in any DURATION (10/10s)
 *
 * This module is the pure half: what a hook is, and which hooks a notice runs (notices.ts gives a
 * run its environment; hookDirectives.ts reads the directives). Hooks are not entries: no
 * transition waits for them and the reducer never sees them; the runtime (runtime/hooks.ts) runs
 * them beside the loop, rate-limited and time-limited, and logs their failures.
 */
import type { RespawnLimit } from "./units.ts"

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

export const isHookEvent = (name: string): name is HookEvent => (hookEvents as readonly string[]).includes(name)

/** Which events a hook runs on: a list, or every event. */
export type HookEvents = { readonly _tag: "Some"; readonly events: readonly HookEvent[] } | { readonly _tag: "Every" }

export interface Hook {
  readonly on: HookEvents
  /** Executed like an entry's command (command.ts: Perl's exec rule). */
  readonly command: string
  /** Line of the directive: names the hook in the log and the metrics. */
  readonly line: number
}

/** A token bucket per hook: at most `max` runs in any `windowMs` (refilled evenly over the window); written as `respawn-limit` is. */
export type HookLimit = RespawnLimit

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


export const runsOn = (hook: Hook, event: HookEvent): boolean => hook.on._tag === "Every" || hook.on.events.includes(event)

/** How the log and the metrics name a hook: its line and its events. */
export const hookName = (hook: Hook): string => `line ${hook.line} (${hook.on._tag === "Every" ? "*" : hook.on.events.join(",")})`

/** Where the daemon runs, for the hook's environment (cluster mode only). */
export interface HookSite {
  readonly node?: string | undefined
  readonly cluster?: string | undefined
}
