/**
 * The status file, byte-compatible with IS::Init's `_status` and readable by its `status`:
 *
 *   !startid ID
 *   <printf("%-15s %-15s %-15s\n", group, state, level)>   one per group, sorted by name
 *   !endid ID
 *
 * A reader that sees different ids read a file torn by a concurrent write, and reads it again.
 * Two deliberate differences from the original writer: a level `0` is shown (Perl's `|| ""` hid
 * it), and a group named `NULL` is listed (the original skipped that name).
 */
import type { GroupPhase, State } from "./state.ts"
import { groupOf, knownGroups } from "./state.ts"
import { utf8Length } from "./utf8.ts"

export interface StatusRow {
  readonly group: string
  readonly state: GroupPhase
  /** The level last told; "" if never told. */
  readonly level: string
}

/** A row as read back from a file: any text, since anything may have written it. */
export interface StatusLine {
  readonly group: string
  readonly state: string
  readonly level: string
}

/** Perl's `%-15s`: left-justified, padded to 15, never truncated. */
const pad15 = (s: string): string => {
  const missing = 15 - utf8Length(s)
  return missing > 0 ? s + " ".repeat(missing) : s
}

/**
 * Perl's `sort` on byte strings: UTF-8 byte order, which is code point order. JavaScript's `<`
 * compares UTF-16 code units, which puts U+10000 and above (surrogates, 0xD800-0xDFFF) before
 * U+E000-U+FFFF; comparing code points puts them after, as their UTF-8 bytes (F0..) sort.
 */
export const compareUtf8 = (a: string, b: string): number => {
  const length = Math.min(a.length, b.length)
  for (let i = 0; i < length; i++) {
    const x = a.codePointAt(i) ?? 0
    const y = b.codePointAt(i) ?? 0
    if (x !== y) return x < y ? -1 : 1
    if (x > 0xffff) i++ // both strings hold the same pair here: skip its second half
  }
  return a.length - b.length
}

const byGroupName = (a: StatusRow, b: StatusRow): number => compareUtf8(a.group, b.group)

/**
 * The whole file. Rows are written sorted by group name in UTF-8 byte order, as the original's
 * Perl `sort` orders them. `id` must not contain a newline; the caller supplies it (the core has no
 * randomness), and a new id per write is what lets readers detect a torn file.
 */
export const renderStatusFile = (rows: readonly StatusRow[], id: string): string => {
  const body = [...rows]
    .sort(byGroupName)
    .map((row) => `${pad15(row.group)} ${pad15(row.state)} ${pad15(row.level)}\n`)
    .join("")
  return `!startid ${id}\n${body}!endid ${id}\n`
}

/** One row per known group: those of the config, and those told that the config has since lost. */
export const statusRows = (state: State): readonly StatusRow[] =>
  knownGroups(state).map((name) => {
    const group = groupOf(state, name)
    return { group: name, state: group.phase, level: group.level ?? "" }
  })

// Reading, as the original `status` method does, regular expressions included. Perl's `\s` on
// byte strings is exactly these six characters (JavaScript's `\s` has more), and Perl's `.` is
// anything but `\n` (JavaScript's also stops at `\r`), hence the explicit classes.

const perlSpace = /[ \t\n\r\f\v]+/
const startLine = /^!startid ([^\n]*)/
const endLine = /^!endid ([^\n]*)/
/** `s/^\S+\s+(.*?)\s*$/$1/`: drop the group column and trailing blanks. */
const dropGroup = /^[^ \t\n\r\f\v]+[ \t\n\r\f\v]+([^\n]*?)[ \t\n\r\f\v]*(?=\n?$)/
/** `s/^(\S+)\s+.*$/$1/`: keep only the group column. */
const keepGroup = /^([^ \t\n\r\f\v]+)[ \t\n\r\f\v]+[^\n]*(?=\n?$)/

/** Perl truth of a string: false for undef, "" and "0". */
const perlTrue = (s: string | undefined): s is string => s !== undefined && s !== "" && s !== "0"

/** Perl's `split` with no pattern: fields between runs of whitespace, leading whitespace ignored. */
const perlSplit = (line: string): string[] => line.split(perlSpace).filter((field) => field !== "")

const chomp = (s: string): string => (s.endsWith("\n") ? s.slice(0, -1) : s)

/** Lines as Perl's `<FH>` gives them: each with its `\n`, the last one possibly without. */
const perlLines = (text: string): string[] => {
  const lines: string[] = []
  let from = 0
  while (from < text.length) {
    const newline = text.indexOf("\n", from)
    const to = newline < 0 ? text.length : newline + 1
    lines.push(text.slice(from, to))
    from = to
  }
  return lines
}

export interface StatusFilter {
  /** Only this group; the output is `state level` without the group column. */
  readonly group?: string | undefined
  /** Only groups at this level; the output is the group name only. */
  readonly level?: string | undefined
}

export interface StatusRead {
  /** Whether the start and end ids matched: false for a torn (or foreign) file. */
  readonly complete: boolean
  /** The rows the filters kept, as read. */
  readonly rows: readonly StatusLine[]
  /** What each kept row contributes to `text`, without its newline, for line-by-line printing. */
  readonly lines: readonly string[]
  /**
   * Exactly what the original `status` returns for this file and these filters. Note its quirk:
   * a filtered row loses its newline, so a level filter matching two groups yields `webdb`.
   */
  readonly text: string
}

interface Pass {
  readonly startId: string
  readonly endId: string
  readonly rows: StatusLine[]
  readonly chunks: string[]
}

const active = (filter: string | undefined): filter is string => filter !== undefined && filter !== ""

/** One `do { ... }` pass of the original's loop, starting from the ids the previous pass left. */
const readPass = (lines: readonly string[], filter: StatusFilter, startId: string, endId: string): Pass => {
  const rows: StatusLine[] = []
  const chunks: string[] = []
  for (const raw of lines) {
    const start = startLine.exec(raw)
    if (start !== null) {
      startId = start[1] ?? ""
      continue
    }
    if (startId === "start") continue
    const end = endLine.exec(raw)
    if (end !== null) {
      endId = end[1] ?? ""
      break
    }
    const [group = "", state, level = ""] = perlSplit(raw)
    if (!perlTrue(state)) continue
    let out = raw
    if (active(filter.group)) {
      if (filter.group !== group) continue
      out = chomp(out.replace(dropGroup, "$1"))
    }
    if (active(filter.level)) {
      if (filter.level !== level) continue
      out = chomp(out.replace(keepGroup, "$1"))
    }
    rows.push({ group, state, level })
    chunks.push(out)
  }
  return { startId, endId, rows, chunks }
}

/**
 * Reads a status file as the original `status` method does, filters included; where that method
 * would loop forever on a torn file, this returns `complete: false` and the caller reads again.
 * One deliberate difference: a filter `0` filters (Perl took the string "0" for no filter).
 */
export const parseStatusFile = (text: string, filter: StatusFilter = {}): StatusRead => {
  const lines = perlLines(text)
  // The original repeats whole passes until the ids agree; the ids carry over between passes,
  // so a second pass can differ from the first. A repeated pair of ids means it never ends.
  const seen = new Set<string>()
  let pass = readPass(lines, filter, "start", "end")
  while (pass.startId !== pass.endId) {
    const key = `${pass.startId}\n${pass.endId}`
    if (seen.has(key)) break
    seen.add(key)
    pass = readPass(lines, filter, pass.startId, pass.endId)
  }
  const complete = pass.startId === pass.endId
  return {
    complete,
    rows: complete ? pass.rows : [],
    lines: complete ? pass.chunks.map(chomp) : [],
    text: complete ? pass.chunks.join("") : "",
  }
}
