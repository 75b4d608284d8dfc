/**
 * `:::option:` lines of an isinittab, from their text to each entry's `options` (options.ts has
 * the keys). A line is read where it stands; it is resolved once the whole file is read, since
 * an option may come before or after its entry. Every problem names the option's line.
 */
import type { Config, Entry, Problem } from "./config.ts"
import type { EntryOptions, OptionKey } from "./options.ts"
import { appliesTo, isRepeatable, noOptions, optionSpecs, readOptionLine, rootOnlyKeys, withOption } from "./options.ts"

/** A well-formed option line, not yet matched with its entry. */
export interface OptionDraft {
  readonly line: number
  /** A tag, or `*` for every entry. */
  readonly target: string
  readonly key: OptionKey
  readonly value: unknown
}

export const everyEntry = "*"

/** Reads one `:::option:` line's rest (`TAG:KEY=VALUE`); a bad one is an error of its line. */
export const optionLine = (drafts: OptionDraft[], problems: Problem[], line: number, rest: string): void => {
  const read = readOptionLine(rest)
  if (read._tag === "Bad") problems.push({ severity: "error", line, message: read.message })
  else drafts.push({ line, target: read.target, key: read.key, value: read.value })
}

const modesOf = (key: OptionKey): string => optionSpecs[key].modes.join(", ")

/**
 * A TAG line for a tag the file does not define, or of a key its mode cannot use, is an error. An
 * `off` entry takes any option (it keeps them for when it is switched on). A non-repeatable key
 * given twice for one target: the later line wins, with a warning (as a repeated directive).
 */
const checkDrafts = (drafts: readonly OptionDraft[], byTag: ReadonlyMap<string, Entry>, tagLines: ReadonlyMap<string, number>, problems: Problem[]): readonly OptionDraft[] => {
  const seen = new Map<string, number>()
  const kept: OptionDraft[] = []
  for (const draft of drafts) {
    const { line, target, key } = draft
    const entry = byTag.get(target)
    if (target !== everyEntry && !tagLines.has(target)) {
      problems.push({ severity: "error", line, message: `option "${key}" for unknown tag "${target}" (no entry has it; use * for every entry)` })
      continue
    }
    if (entry !== undefined && entry.mode !== "off" && !appliesTo(key, entry.mode)) {
      problems.push({ severity: "error", line, message: `option "${key}" does not apply to "${target}": it is for ${modesOf(key)} entries, "${target}" is ${entry.mode}` })
      continue
    }
    const slot = `${target}\n${key}`
    const earlier = seen.get(slot)
    if (earlier !== undefined && !isRepeatable(key)) problems.push({ severity: "warning", line, message: `option "${key}" for "${target}" repeated: this line replaces line ${earlier}` })
    seen.set(slot, line)
    kept.push(draft)
  }
  return kept
}

/** Each entry with its options: the `*` defaults its mode can use, then its own lines. */
export const resolveOptions = (drafts: readonly OptionDraft[], entries: readonly Entry[], tagLines: ReadonlyMap<string, number>, problems: Problem[]): readonly Entry[] => {
  if (drafts.length === 0) return entries
  const byTag = new Map(entries.map((e) => [e.tag, e]))
  const defaults: OptionDraft[] = []
  const own = new Map<string, OptionDraft[]>()
  for (const draft of checkDrafts(drafts, byTag, tagLines, problems)) {
    if (draft.target === everyEntry) defaults.push(draft)
    else own.set(draft.target, [...(own.get(draft.target) ?? []), draft])
  }
  const resolved = entries.map((entry) => {
    let options: EntryOptions = noOptions
    for (const d of defaults) if (entry.mode === "off" || appliesTo(d.key, entry.mode)) options = withOption(options, d.key, d.value)
    // A TAG line wins over `*`: a single key replaces the default; a repeatable one comes after
    // the defaults' values, so its `env` of the same NAME is applied last.
    for (const d of own.get(entry.tag) ?? []) options = withOption(options, d.key, d.value)
    return options === noOptions ? entry : { ...entry, options }
  })
  for (const entry of resolved) problems.push(...probeKeyProblems(entry, own.get(entry.tag) ?? []))
  return resolved
}

/** A TAG's line tuning a probe the entry does not have (rules 20-22) is a warning; a `*` default is not (it tunes those that have one). */
const probeTuning = [["ready-timeout", "ready"], ["health-every", "health"], ["health-fails", "health"]] as const

const probeKeyProblems = (entry: Entry, lines: readonly OptionDraft[]): readonly Problem[] =>
  probeTuning.flatMap(([key, probe]): Problem[] => {
    const draft = lines.find((d) => d.key === key)
    if (draft === undefined || entry.options[probe] !== undefined || entry.mode !== "respawn") return []
    return [{ severity: "warning", line: draft.line, message: `option "${key}" for "${entry.tag}" without "${probe}" has no effect` }]
  })

/**
 * `user` and `group` switch identity (setgid, initgroups, setuid), which only root may do: a
 * daemon running as `uid` other than 0 fails those entries' starts. `isinit check` run by such a
 * user says so (a warning: the daemon that reads the file may well be root). O(entries).
 */
export const rootProblems = (config: Config, uid: number): readonly Problem[] => {
  if (uid === 0) return []
  return config.entries.flatMap((entry): Problem[] => {
    const keys = rootOnlyKeys.filter((key) => entry.options[key] !== undefined)
    if (keys.length === 0 || entry.mode === "off") return []
    const named = keys.length === 1 ? `option ${keys.join(", ")} needs` : `options ${keys.join(", ")} need`
    const message = `entry "${entry.tag}": ${named} a root isinitd (this check runs as uid ${uid}): a daemon not running as root fails its start with that reason`
    return [{ severity: "warning", line: entry.line, message }]
  })
}
