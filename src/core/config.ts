/**
 * The isinittab model: what a parsed configuration says, nothing about what is running.
 *
 * A line is `group:tag:runlevels:mode:command`. Tags are unique across the whole file (the
 * original keys every table by tag alone), so a tag names one entry everywhere in the system.
 */

import type { Failover } from "./failover.ts"
import { noFailover } from "./failover.ts"
import type { Mode } from "./enums.ts"
import type { EntryOptions } from "./options.ts"
import { sameOptions } from "./options.ts"

export type { Mode } from "./enums.ts"
export { modes } from "./enums.ts"

export interface Entry {
  readonly group: string
  readonly tag: string
  /** Runlevels as the original reads them: `a,b` is two levels, `2345` is four. */
  readonly levels: readonly string[]
  readonly mode: Mode
  readonly command: string
  /** 1-based line in the isinittab; also the entry's place in file order. */
  readonly line: number
  /** Its `:::option:` lines, resolved (options.ts); `noOptions` when it has none. */
  readonly options: EntryOptions
}

/** Timing knobs, tunable with `:::` directives; defaults follow the original. */
export interface Limits {
  /** A respawn entry may start at most this many times within `respawnWindowMs`... */
  readonly respawnMax: number
  readonly respawnWindowMs: number
  /** ...the start that would exceed it jails the entry for this long. */
  readonly jailMs: number
  /** Time between SIGTERM and SIGKILL when stopping a process group. */
  readonly killGraceMs: number
}

export const defaultLimits: Limits = {
  respawnMax: 5,
  respawnWindowMs: 10_000,
  jailMs: 60_000,
  killGraceMs: 30_000,
}

/**
 * How much of what runs a re-read of the isinittab may stop without the operator's confirmation
 * (`:::removal-guard:`, see reread.ts): more than `percent` of the running entries is refused.
 */
export type RemovalGuard = { readonly _tag: "Share"; readonly percent: number } | { readonly _tag: "Off" }

export const defaultRemovalGuard: RemovalGuard = { _tag: "Share", percent: 50 }

export interface Config {
  /** Failover groups and their timing (`:::failover` directives; failover.ts). */
  readonly failover: Failover
  /** Every entry, in file order (`off` entries included). */
  readonly entries: readonly Entry[]
  readonly byTag: ReadonlyMap<string, Entry>
  /** Entries of each group, in file order. */
  readonly byGroup: ReadonlyMap<string, readonly Entry[]>
  readonly limits: Limits
  readonly removalGuard: RemovalGuard
  readonly socket: string | undefined
  readonly initstat: string | undefined
}

export type Severity = "error" | "warning"

export interface Problem {
  readonly severity: Severity
  /** 1-based line number; 0 for problems of the file as a whole. */
  readonly line: number
  readonly message: string
}

/** What parsing a file gives: the config it describes, and everything wrong with it. */
export interface Parsed {
  readonly config: Config
  readonly problems: readonly Problem[]
}

export const hasErrors = (parsed: Parsed): boolean => parsed.problems.some((p) => p.severity === "error")

export const makeConfig = (
  entries: readonly Entry[],
  options: {
    readonly limits?: Limits
    readonly removalGuard?: RemovalGuard
    readonly socket?: string | undefined
    readonly initstat?: string | undefined
    readonly failover?: Failover
  } = {},
): Config => {
  const byTag = new Map<string, Entry>()
  const byGroup = new Map<string, Entry[]>()
  for (const entry of entries) {
    byTag.set(entry.tag, entry)
    const members = byGroup.get(entry.group)
    if (members === undefined) byGroup.set(entry.group, [entry])
    else members.push(entry)
  }
  return {
    failover: options.failover ?? noFailover,
    entries,
    byTag,
    byGroup,
    limits: options.limits ?? defaultLimits,
    removalGuard: options.removalGuard ?? defaultRemovalGuard,
    socket: options.socket,
    initstat: options.initstat,
  }
}

export const emptyConfig: Config = makeConfig([])

/** Nothing parsed: no entry, no problem (what runs before any config has been read). */
export const emptyParsed: Parsed = { config: emptyConfig, problems: [] }

export const listsLevel = (entry: Entry, level: string): boolean => entry.levels.includes(level)

/** Whether two definitions of the same tag would run the same process (rule 12: options included). */
export const sameDefinition = (a: Entry, b: Entry): boolean =>
  a.command === b.command && a.mode === b.mode && a.group === b.group && sameOptions(a.options, b.options)
