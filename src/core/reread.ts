/**
 * The re-read guard. Every tell and SIGHUP re-reads the isinittab, and a config tool that rewrites
 * it in place (`>`) can be read cut in the middle: the entries past the cut are gone, and applying
 * that file would stop every one of them. (A file cut to nothing has no entries: the parser
 * refuses it.) So a re-read that would stop more than a share of the entries that run now, because
 * their lines are gone from the file, is refused unless the operator confirms it (`--force`).
 *
 * Only removed lines count: an entry set to `off`, moved to another level or changed is an edit a
 * cut cannot make. Only running processes count (not ones already being stopped, not finished
 * once/wait/test entries): the guard is about what the re-read would stop. The share is the new
 * file's `:::removal-guard:` (50% by default; `off` disables the guard): a cut file keeps its head,
 * where directives live.
 */
import * as HashMap from "effect/HashMap"
import type { Config } from "./config.ts"
import type { State } from "./state.ts"

/** What a new config would remove of a set of entries. */
export interface Removal {
  /** Tags of the entries whose lines are gone, in tag order. */
  readonly removed: readonly string[]
  /** How many entries were looked at (the share's denominator). */
  readonly of: number
}

/** Which of `tags` the config `next` no longer defines. */
export const removalOf = (tags: Iterable<string>, next: Config): Removal => {
  const all = [...tags]
  return { removed: all.filter((tag) => !next.byTag.has(tag)).sort(), of: all.length }
}

/** Whether the removal is more than the config's guard lets through unconfirmed. */
export const exceedsGuard = (removal: Removal, next: Config): boolean => {
  const guard = next.removalGuard
  return guard._tag === "Share" && removal.removed.length * 100 > guard.percent * removal.of
}

/** Entries with a live process that is not being stopped: what a re-read could stop. */
const runningTags = (state: State): string[] => {
  const tags: string[] = []
  for (const [tag, entry] of state.entries) if (entry.proc._tag === "Running") tags.push(tag)
  return tags
}

/** Entries a config can run (not `off`): what a push measures its removals against. */
export const runnableTags = (config: Config): string[] => config.entries.flatMap((e) => (e.mode === "off" ? [] : [e.tag]))

const listed = (tags: readonly string[]): string =>
  tags.length <= 5 ? tags.join(", ") : `${tags.slice(0, 5).join(", ")} and ${tags.length - 5} more`

/** `3 of the 4 running entries (b, c, d)`. */
export const describeRemoval = (removal: Removal, noun: string): string =>
  `${removal.removed.length} of the ${removal.of} ${noun} (${listed(removal.removed)})`

/** The guard's share in words: `50%`. */
export const guardShare = (config: Config): string => (config.removalGuard._tag === "Share" ? `${config.removalGuard.percent}%` : "100%")

/**
 * Why applying `next` would be refused by the guard, or `undefined`. The reason says what would
 * stop, why it is held back and how to confirm it.
 */
export const removalRefusal = (state: State, next: Config): string | undefined => {
  if (next.removalGuard._tag === "Off" || HashMap.size(state.entries) === 0) return undefined
  const removal = removalOf(runningTags(state), next)
  if (!exceedsGuard(removal, next)) return undefined
  return (
    `the isinittab as read now would stop ${describeRemoval(removal, "running entries")}: their lines are gone, ` +
    `more than the ${guardShare(next)} a re-read may stop unconfirmed, as when a file is read while being rewritten; ` +
    "nothing was changed. If you meant it, run isinit reload --force (or the tell with --force); " +
    ":::removal-guard: sets the share. Replace the file atomically (write, then rename)"
  )
}
