/**
 * The isinittab parser: text in, `Parsed` out (the config plus every error and warning with its
 * line). Total: it never throws, whatever the input.
 *
 * Format, as in IS::Init: one entry per line, `group:tag:runlevels:mode:command`, split on the
 * first four colons only (the command may contain colons and is kept byte for byte, except a
 * trailing `\r` from CRLF files). Lines starting with `#` and blank lines are skipped.
 *
 * Runlevels: a field with a comma is a comma-separated list (`run,` is the one level `run`, empty
 * parts are dropped); otherwise every character is one level (`2345` is four levels, and `run` is
 * the three levels r, u, n: kept for compatibility, reported as a warning).
 *
 * Modes: respawn, once, wait, test, off.
 *
 * Directives. A line whose mode field is `socket` or `initstat` sets a path, whatever its other
 * fields hold (the original reads it that way). Any other line starting with `:::` is a directive
 * (the original ignores them all):
 *
 *   :::socket:PATH                 UNIX socket of the daemon
 *   :::initstat:PATH               status file
 *   :::respawn-limit:N/DURATION    a respawn entry starts at most N times in DURATION (5/10s)
 *   :::jail:DURATION               how long an entry that respawns too fast waits (60s)
 *   :::kill-grace:DURATION         stop-signal-to-SIGKILL grace when stopping (30s); an entry's kill-grace wins; capped in failover groups
 *   :::removal-guard:PERCENT%|off  a re-read may stop at most this share of what runs (50%; reread.ts)
 *   :::option:TAG:KEY=VALUE        a per-entry option; TAG `*` for every entry (options.ts, optionLines.ts)
 *   :::hook:EVENT:COMMAND, :::hook-timeout:DURATION, :::hook-limit:N/DURATION   event hooks (hooks.ts)
 *
 * DURATION is an integer with unit `ms`, `s` or `m` (`500ms`, `10s`, `2m`); a bare integer means
 * seconds. Durations must be positive and at most 2147483647 ms (about 24.8 days: the longest
 * timer Node can arm); N is 1 to 1000. An unknown `:::` directive is a warning and is ignored.
 * A directive given twice: the later line wins, with a warning.
 *
 * Errors (the config must not be used): too few fields, empty group, empty tag, repeated tag (the
 * first definition is kept), unknown mode, empty command (except for `off`), empty runlevels
 * (except for `off`: an `off` entry never runs, so its levels do not matter), a bad directive value,
 * no entry at all (an empty or truncated file; line 0, the whole file).
 * Warnings: a comma-less multi-character runlevel field that is not all digits, a level or group
 * with whitespace (it can never be requested: the protocol splits on whitespace), unknown or
 * repeated directives, a UTF-8 byte-order mark at the start of the file (dropped), and what the
 * daemon or old clients trip over (hazards.ts): group names the line protocol cannot carry,
 * commands that escape supervision (daemon mode) or are too long to execute.
 */
import type { Entry, Limits, Mode, Parsed, Problem, RemovalGuard } from "./config.ts"
import { defaultLimits, defaultRemovalGuard, makeConfig, modes } from "./config.ts"
import type { FailoverDraft } from "./failoverDirectives.ts"
import { failoverDirective, failoverDirectiveDocs, finishFailover, newFailoverDraft } from "./failoverDirectives.ts"
import { commandHazards, groupHazards, levelHazards } from "./hazards.ts"
import type { HookDraft } from "./hookDirectives.ts"
import { finishHooks, hookDirective, hookDirectiveDocs, newHookDraft } from "./hookDirectives.ts"
import { E, t } from "../lib/ioTs.ts"
import type { DirectiveDoc } from "./config.ts"
import { noOptions } from "./options.ts"
import { durationHelp, durationMs, maxDurationMs, respawnLimitHelp, respawnLimitOf } from "./units.ts"
import type { OptionDraft } from "./optionLines.ts"
import { optionLine, resolveOptions } from "./optionLines.ts"

/** Every `:::` directive, for `isinit check` and the README. */
export const directives: readonly DirectiveDoc[] = [
  { syntax: ":::socket:PATH", default: "(command-line default)", meaning: "UNIX socket the daemon listens on" },
  { syntax: ":::initstat:PATH", default: "(command-line default)", meaning: "status file the daemon writes" },
  {
    syntax: ":::respawn-limit:N/DURATION",
    default: "5/10s",
    meaning: "a respawn entry may start at most N times within DURATION",
  },
  { syntax: ":::jail:DURATION", default: "60s", meaning: "how long an entry that respawns too fast is held back" },
  { syntax: ":::kill-grace:DURATION", default: "30s", meaning: "time between SIGTERM and SIGKILL when stopping" },
  {
    syntax: ":::removal-guard:PERCENT%|off",
    default: "50%",
    meaning: "a re-read that would stop more than this share of the running entries (their lines gone) needs --force",
  },
  { syntax: ":::option:TAG:KEY=VALUE", default: "(none)", meaning: "a per-entry option (README: Per-entry options); TAG * sets it for every entry, a TAG line wins" },
  ...failoverDirectiveDocs,
  ...hookDirectiveDocs,
]

// Codecs for the field values. The mode codec is built from config.ts's list, so the two agree.

const ModeCodec = t.keyof(Object.fromEntries(modes.map((m) => [m, null])) as Record<Mode, null>, "Mode")

export { maxDurationMs, maxRespawnCount } from "./units.ts"

/** `10s`, `500ms`, `2m`, `7` (seconds) to milliseconds; positive and timer-sized. */
export const DurationFromString = new t.Type<number, string, unknown>(
  "Duration",
  (u): u is number => typeof u === "number" && Number.isInteger(u) && u > 0 && u <= maxDurationMs,
  (u, c) => {
    if (typeof u !== "string") return t.failure(u, c, "a duration must be a string")
    const ms = durationMs(u)
    return ms === undefined ? t.failure(u, c) : t.success(ms)
  },
  (ms) => `${ms}ms`,
)

/** `50%` (a whole percentage, 0 to 100) or `off`. */
const removalGuardOf = (text: string): RemovalGuard | undefined => {
  if (text === "off") return { _tag: "Off" }
  const match = /^(\d{1,3})%$/.exec(text)
  const percent = Number(match?.[1] ?? Number.NaN)
  return percent >= 0 && percent <= 100 ? { _tag: "Share", percent } : undefined
}

// Lines

const blank = /^[ \t\n\r\f\v]*$/
const whitespace = /[ \t\n\r\f\v]/
const allDigits = /^\d+$/

/** Perl's `split(':', $line, 5)`: up to five fields, the last one keeps its colons. */
const splitFields = (line: string): string[] => {
  const fields: string[] = []
  let from = 0
  while (fields.length < 4) {
    const colon = line.indexOf(":", from)
    if (colon < 0) break
    fields.push(line.slice(from, colon))
    from = colon + 1
  }
  fields.push(line.slice(from))
  return fields
}

// One level per code point. (Perl split bytes; a level that is half a character could never be typed.)
const parseLevels = (field: string): string[] =>
  // oxlint-disable-next-line typescript/no-misused-spread -- code points are the intent here
  field.includes(",") ? field.split(",").filter((level) => level !== "") : [...field]

type Tuning = "respawn-limit" | "jail" | "kill-grace" | "removal-guard"
type DirectiveName = "socket" | "initstat" | Tuning

interface Builder {
  readonly entries: Entry[]
  readonly problems: Problem[]
  readonly tagLines: Map<string, number>
  readonly directiveLines: Map<DirectiveName, number>
  /** Hazards of each group and level name, worked out once per file: names repeat on many lines. */
  readonly nameHazards: Map<string, readonly string[]>
  readonly failover: FailoverDraft
  readonly hooks: HookDraft
  /** `:::option:` lines, resolved to their entries once the whole file is read (optionLines.ts). */
  readonly options: OptionDraft[]
  limits: Limits
  removalGuard: RemovalGuard
  socket: string | undefined
  initstat: string | undefined
}

const error = (b: Builder, line: number, message: string): void => {
  b.problems.push({ severity: "error", line, message })
}
const warning = (b: Builder, line: number, message: string): void => {
  b.problems.push({ severity: "warning", line, message })
}

const warnAll = (b: Builder, line: number, messages: readonly string[]): void => {
  for (const message of messages) warning(b, line, message)
}

const cached = (b: Builder, key: string, compute: () => readonly string[]): readonly string[] => {
  const known = b.nameHazards.get(key)
  if (known !== undefined) return known
  const found = compute()
  b.nameHazards.set(key, found)
  return found
}

const noteDirective = (b: Builder, line: number, name: DirectiveName): void => {
  const earlier = b.directiveLines.get(name)
  if (earlier !== undefined) warning(b, line, `directive "${name}" repeated: this line replaces line ${earlier}`)
  b.directiveLines.set(name, line)
}

const pathDirective = (b: Builder, line: number, name: "socket" | "initstat", path: string | undefined): void => {
  noteDirective(b, line, name)
  if (path === undefined || path === "") {
    error(b, line, `directive "${name}" needs a path: write :::${name}:PATH`)
    return
  }
  if (name === "socket") b.socket = path
  else b.initstat = path
}

const tuningDirective = (b: Builder, line: number, name: string, value: string | undefined): void => {
  const raw = value ?? ""
  if (failoverDirective(b.failover, b.problems, line, name, raw)) return
  if (hookDirective(b.hooks, b.problems, line, name, raw)) return
  switch (name) {
    case "option":
      optionLine(b.options, b.problems, line, raw)
      return
    case "respawn-limit": {
      noteDirective(b, line, name)
      const limit = respawnLimitOf(raw)
      if (limit !== undefined) b.limits = { ...b.limits, respawnMax: limit.max, respawnWindowMs: limit.windowMs }
      else error(b, line, `directive "respawn-limit": bad value "${raw}": expected ${respawnLimitHelp}`)
      return
    }
    case "jail":
    case "kill-grace": {
      noteDirective(b, line, name)
      const decoded = DurationFromString.decode(raw)
      if (!E.isRight(decoded)) error(b, line, `directive "${name}": bad value "${raw}": expected DURATION, ${durationHelp}`)
      else if (name === "jail") b.limits = { ...b.limits, jailMs: decoded.right }
      else b.limits = { ...b.limits, killGraceMs: decoded.right }
      return
    }
    case "removal-guard": {
      noteDirective(b, line, name)
      const guard = removalGuardOf(raw.trim())
      if (guard === undefined) error(b, line, `directive "removal-guard": bad value "${raw}": expected a share such as 50% (0% to 100%), or off`)
      else b.removalGuard = guard
      return
    }
    default:
      warning(b, line, `unknown directive ":::${name}" ignored (directives: socket, initstat, respawn-limit, jail, kill-grace, removal-guard, option, failover..., hook, hook-timeout, hook-limit)`)
  }
}

const checkLevels = (b: Builder, line: number, field: string, levels: readonly string[], mode: Mode | undefined): void => {
  if (levels.length === 0) {
    if (mode !== "off") error(b, line, `field "runlevels" is empty: the entry could never start (use mode off to disable it)`)
    return
  }
  if (!field.includes(",") && field.length > 1 && !allDigits.test(field)) {
    const letters = levels.join(", ")
    warning(b, line, `runlevels "${field}" means the levels ${letters}; write "${field}," for one level named ${field}`)
  }
  for (const level of levels) {
    if (whitespace.test(level)) warning(b, line, `runlevel "${level}" contains whitespace and can never be requested`)
    else warnAll(b, line, cached(b, `l${level}`, () => levelHazards(level)))
  }
}

const entryLine = (b: Builder, line: number, fields: readonly string[]): void => {
  const [group = "", tag = "", levelField = "", modeField = "", command = ""] = fields
  let ok = true
  if (group === "") {
    error(b, line, `field "group" is empty`)
    ok = false
  } else if (whitespace.test(group)) {
    warning(b, line, `group "${group}" contains whitespace: it can never be requested and breaks the status file`)
  } else {
    warnAll(b, line, cached(b, `g${group}`, () => groupHazards(group)))
  }
  if (tag === "") {
    error(b, line, `field "tag" is empty`)
    ok = false
  } else {
    const first = b.tagLines.get(tag)
    if (first !== undefined) {
      error(b, line, `tag "${tag}" repeated: first defined on line ${first} (tags must be unique in the whole file)`)
      ok = false
    } else {
      b.tagLines.set(tag, line)
    }
  }
  const mode = ModeCodec.is(modeField) ? modeField : undefined
  if (mode === undefined) {
    error(b, line, `field "mode": unknown mode "${modeField}" (modes: ${modes.join(", ")})`)
    ok = false
  }
  if (command === "" && mode !== "off") {
    error(b, line, `field "command" is empty`)
    ok = false
  }
  const levels = parseLevels(levelField)
  checkLevels(b, line, levelField, levels, mode)
  if (levels.length === 0 && mode !== "off") ok = false
  if (mode !== undefined && mode !== "off") warnAll(b, line, commandHazards(command))
  if (ok && mode !== undefined) b.entries.push({ group, tag, levels, mode, command, line, options: noOptions })
}

const parseLine = (b: Builder, line: number, raw: string): void => {
  if (raw.startsWith("#") || blank.test(raw)) return
  const text = raw.endsWith("\r") ? raw.slice(0, -1) : raw
  const fields = splitFields(text)
  const mode = fields[3]
  if (mode === "socket" || mode === "initstat") {
    pathDirective(b, line, mode, fields[4])
    return
  }
  if (text.startsWith(":::")) {
    tuningDirective(b, line, mode ?? "", fields[4])
    return
  }
  if (fields.length < 5) {
    error(b, line, `too few fields: expected group:tag:runlevels:mode:command, found ${fields.length} field${fields.length === 1 ? "" : "s"}`)
    return
  }
  entryLine(b, line, fields)
}

/**
 * A file without a single entry is what a rewrite with `>` leaves when it is read half-way (or a
 * config tool that failed): taken at its word it would stop every process on the host. Whoever
 * wants everything stopped says so with `isinit stopall`, or keeps the entries with mode `off`.
 * Not added when the file already has errors: those explain it, and it is refused anyway.
 */
const requireEntries = (b: Builder): void => {
  if (b.entries.length > 0 || b.problems.some((p) => p.severity === "error")) return
  error(b, 0, "no entries: the file is empty or holds only comments and directives (truncated by a rewrite?); it is refused so that nothing stops. Replace the file atomically (write a new file, then rename it over the old one); to stop everything use isinit stopall, or keep the entries with mode off")
}

/**
 * Editors on other systems may start a UTF-8 file with a byte-order mark (EF BB BF). Kept, it
 * would become part of the first group's name (a group nobody can type). It is dropped, and named
 * in a warning: the original IS::Init keeps it, so it reads that first line differently.
 */
const withoutBom = (b: Builder, text: string): string => {
  if (!text.startsWith("\uFEFF")) return text
  warning(b, 1, "a UTF-8 byte-order mark (EF BB BF) starts the file: ignored, but IS::Init would read it as part of the first line; save the file without it")
  return text.slice(1)
}

export const parseInittab = (text: string): Parsed => {
  const b: Builder = {
    entries: [],
    problems: [],
    tagLines: new Map(),
    directiveLines: new Map(),
    nameHazards: new Map(),
    failover: newFailoverDraft(),
    hooks: newHookDraft(),
    options: [],
    limits: defaultLimits,
    removalGuard: defaultRemovalGuard,
    socket: undefined,
    initstat: undefined,
  }
  const lines = withoutBom(b, text).split("\n")
  // A final newline does not start another line.
  const count = lines.length > 0 && lines[lines.length - 1] === "" ? lines.length - 1 : lines.length
  for (let i = 0; i < count; i++) parseLine(b, i + 1, lines[i] ?? "")
  requireEntries(b)
  const entries = resolveOptions(b.options, b.entries, b.tagLines, b.problems)
  const failover = finishFailover(b.failover, entries, b.problems)
  return {
    config: makeConfig(entries, { limits: b.limits, removalGuard: b.removalGuard, socket: b.socket, initstat: b.initstat, failover, hooks: finishHooks(b.hooks) }),
    problems: b.problems,
  }
}

/** `FILE:LINE: error: message`, as compilers print it (no line for whole-file problems). */
export const formatProblem = (file: string, p: Problem): string =>
  p.line > 0 ? `${file}:${p.line}: ${p.severity}: ${p.message}` : `${file}: ${p.severity}: ${p.message}`

const plural = (n: number, one: string, many: string): string => `${n} ${n === 1 ? one : many}`

/** One line for `isinit check`: `FILE: 12 entries in 3 groups, 1 error, 2 warnings`. */
export const checkSummary = (file: string, parsed: Parsed): string => {
  const errors = parsed.problems.filter((p) => p.severity === "error").length
  const warnings = parsed.problems.length - errors
  const { entries, byGroup } = parsed.config
  return `${file}: ${plural(entries.length, "entry", "entries")} in ${plural(byGroup.size, "group", "groups")}, ${plural(errors, "error", "errors")}, ${plural(warnings, "warning", "warnings")}`
}
