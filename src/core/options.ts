/**
 * Per-entry options (issue 11): `:::option:TAG:KEY=VALUE` and `:::option:*:KEY=VALUE` lines, which
 * the original IS::Init skips like every `:::` line. One table, `optionSpecs`, says for every key
 * which modes it applies to, whether it may repeat, how its text reads into a typed value and back,
 * and its one-line doc (README, `isinit check`). Pure: the parser (inittab.ts) resolves lines to
 * entries; the runtime (runtime/execContext.ts) applies them.
 *
 * Resolution: a `*` line is every entry's default, a TAG line wins over it. A repeatable key
 * (`env`, `env-file`) keeps every value, the `*` ones first, so a TAG's `env` of the same NAME is
 * applied last and wins. A `*` default is given only to entries whose mode it applies to.
 */
import type { Mode, Signal } from "./enums.ts"
import { signals } from "./enums.ts"
import { durationHelp, durationMs, respawnLimitHelp, respawnLimitOf, showDuration, showSize, sizeBytes } from "./units.ts"
import type { RespawnLimit } from "./units.ts"

/** Where a run's stdout and stderr go, as written (core/logs.ts resolves it: default, relative paths). */
export type LogTarget = { readonly _tag: "Inherit" } | { readonly _tag: "Off" } | { readonly _tag: "File"; readonly path: string }

/** A user or group as written: a name looked up at each start, or a number used as is. */
export type Principal = { readonly _tag: "Name"; readonly name: string } | { readonly _tag: "Id"; readonly id: number }

export type LimitValue = number | "unlimited"

/** A resource limit (setrlimit): `N` sets both, `soft:hard` each. */
export interface ResourceLimit {
  readonly soft: LimitValue
  readonly hard: LimitValue
}

export interface EnvVar {
  readonly name: string
  readonly value: string
}

/** The first signal of a stop, any of `signals`; SIGKILL follows after the grace (rule 7). */
export type StopSignal = Signal

/**
 * A readiness or health probe (`ready`, `health`): a command that exits 0, a TCP port that accepts
 * a connection, an HTTP URL that answers 2xx, or a file that exists. The runtime performs it
 * (runtime/probes.ts), bounded in time; the simulator answers it from its virtual world.
 */
export type Probe =
  | { readonly _tag: "Exec"; readonly command: string }
  | { readonly _tag: "Tcp"; readonly host: string; readonly port: number }
  | { readonly _tag: "Http"; readonly url: string }
  | { readonly _tag: "File"; readonly path: string }

const probeHelp = "exec:COMMAND, tcp:HOST:PORT, http://HOST[:PORT]/PATH (or http:URL) or file:/PATH"

const tcpProbe = (rest: string): Probe | undefined => {
  const colon = rest.lastIndexOf(":")
  const host = rest.slice(0, colon).replace(/^\[(.*)\]$/, "$1")
  const port = Number(rest.slice(colon + 1))
  const valid = colon > 0 && host !== "" && /^\d+$/.test(rest.slice(colon + 1)) && port >= 1 && port <= 65_535
  return valid ? { _tag: "Tcp", host, port } : undefined
}

const httpProbe = (url: string): Probe | undefined => {
  try {
    const parsed = new URL(url)
    return parsed.protocol === "http:" && parsed.hostname !== "" ? { _tag: "Http", url } : undefined
  } catch {
    return undefined
  }
}

/** `exec:CMD`, `tcp:HOST:PORT`, `http:URL` or a bare `http://...`, `file:PATH`. */
export const probeOf = (text: string): Probe | undefined => {
  if (text.includes("\0")) return undefined
  const colon = text.indexOf(":")
  const form = text.slice(0, colon)
  const rest = text.slice(colon + 1)
  switch (form) {
    case "exec":
      return rest.trim() === "" ? undefined : { _tag: "Exec", command: rest }
    case "tcp":
      return tcpProbe(rest)
    case "http":
      return httpProbe(rest.startsWith("//") ? text : rest)
    case "file":
      return rest.startsWith("/") ? { _tag: "File", path: rest } : undefined
    default:
      return undefined
  }
}

export const showProbe = (probe: Probe): string => {
  switch (probe._tag) {
    case "Exec":
      return `exec:${probe.command}`
    case "Tcp":
      return `tcp:${probe.host.includes(":") ? `[${probe.host}]` : probe.host}:${probe.port}`
    case "Http":
      return probe.url
    case "File":
      return `file:${probe.path}`
  }
}

/**
 * The wait after a run's readiness attempt `attempt` (from 1) failed: 5, 10, 20, 40, 80, 160 ms, then
 * 200 ms. A server that is up within milliseconds is seen within milliseconds, so a chain of
 * ready-checked entries (each a barrier) starts nearly as fast as its servers do.
 */
export const readyRetryDelay = (attempt: number): number => Math.min(probeDefaults.readyRetryMs, 5 * 2 ** Math.min(attempt - 1, 6))

/** `tcp:db:5432`, or `none` when there is no probe: for log lines. */
export const describeProbe = (probe: Probe | undefined): string => (probe === undefined ? "none" : showProbe(probe))

/** Defaults of the probe keys (README's option table says the same). */
export const probeDefaults = {
  readyTimeoutMs: 60_000,
  healthEveryMs: 10_000,
  healthFails: 3,
  /** The longest wait between two readiness attempts while an entry is starting (`readyRetryDelay`). */
  readyRetryMs: 200,
  /** One attempt's bound (a health attempt's also at most its period). */
  attemptTimeoutMs: 5_000,
} as const

/** The value of one occurrence of each key. */
export interface OptionValues {
  readonly log: LogTarget
  readonly "log-max": number
  readonly "log-keep": number
  readonly user: Principal
  readonly group: Principal
  readonly cwd: string
  readonly env: EnvVar
  readonly "env-file": string
  readonly umask: number
  readonly nofile: ResourceLimit
  readonly nproc: ResourceLimit
  readonly core: ResourceLimit
  readonly memlock: ResourceLimit
  readonly "stop-signal": StopSignal
  readonly "kill-grace": number
  readonly "respawn-limit": RespawnLimit
  readonly jail: number
  readonly ready: Probe
  readonly "ready-timeout": number
  readonly health: Probe
  readonly "health-every": number
  readonly "health-fails": number
}

export type OptionKey = keyof OptionValues

/** Keys that may be given more than once for one entry: every value counts, in order. */
export const repeatableKeys = ["env", "env-file"] as const satisfies readonly OptionKey[]
type RepeatableKey = (typeof repeatableKeys)[number]

/** An entry's options, typed; a key not given is absent (the runtime's default applies). */
export type EntryOptions = {
  readonly [K in OptionKey]?: K extends RepeatableKey ? readonly OptionValues[K][] : OptionValues[K]
}

export const noOptions: EntryOptions = {}

export type Read<V> = { readonly _tag: "Ok"; readonly value: V } | { readonly _tag: "Bad"; readonly expected: string }

interface OptionSpec<V> {
  readonly modes: readonly Mode[]
  readonly parse: (text: string) => Read<V>
  /** The text `parse` reads back to the same value: the state file stores options as text. */
  readonly show: (value: V) => string
  readonly doc: string
  readonly default: string
}

const running: readonly Mode[] = ["respawn", "once", "wait", "test"]
const respawnOnly: readonly Mode[] = ["respawn"]

const ok = <V>(value: V): Read<V> => ({ _tag: "Ok", value })
const bad = <V>(expected: string): Read<V> => ({ _tag: "Bad", expected })
const orBad = <V>(value: V | undefined, expected: string): Read<V> => (value === undefined ? bad(expected) : ok(value))

const maxId = 4_294_967_294 // (uid_t)-1 means "unchanged" to setresuid
const principalPattern = /^[A-Za-z_][A-Za-z0-9_.-]*\$?$/

const principal = (what: string) => (text: string): Read<Principal> => {
  if (/^\d+$/.test(text)) return Number(text) <= maxId ? ok({ _tag: "Id", id: Number(text) }) : bad(`a ${what} id from 0 to ${maxId}`)
  return principalPattern.test(text) && text.length <= 32 ? ok({ _tag: "Name", name: text }) : bad(`a ${what} name (letters, digits, _ . -; at most 32) or a number`)
}
const showPrincipal = (p: Principal): string => (p._tag === "Id" ? String(p.id) : p.name)

const absolutePath = (text: string): Read<string> => orBad(text.startsWith("/") && !text.includes("\0") ? text : undefined, "an absolute path")

const logTarget = (text: string): Read<LogTarget> => {
  if (text === "inherit") return ok({ _tag: "Inherit" })
  if (text === "off") return ok({ _tag: "Off" })
  return text !== "" && !text.includes("\0") ? ok({ _tag: "File", path: text }) : bad("a file path, inherit or off")
}
const showLogTarget = (target: LogTarget): string => (target._tag === "File" ? target.path : target._tag === "Off" ? "off" : "inherit")

/** An environment variable's name, for `env` lines and env files alike. */
export const envName = /^[A-Za-z_][A-Za-z0-9_]*$/

/**
 * Names isinit sets itself: the run markers that crash re-adoption and the fencer find processes
 * by, and a failover child's `ISINIT_EPOCH`. An option or env file that set them would hide a
 * process from both, or hand it a stale fencing token, so they are refused.
 */
export const reservedEnvName = (name: string): boolean => name.startsWith("ISINIT_")

const envVar = (text: string): Read<EnvVar> => {
  const eq = text.indexOf("=")
  const name = eq < 0 ? text : text.slice(0, eq)
  if (eq < 0 || !envName.test(name) || text.includes("\0")) return bad("NAME=VALUE, NAME of letters, digits and _ (not starting with a digit)")
  if (reservedEnvName(name)) return bad(`NAME=VALUE with a NAME of your own: ${name} begins with ISINIT_, which isinit sets itself`)
  return ok({ name, value: text.slice(eq + 1) })
}

const integerIn = (min: number, max: number) => (text: string): Read<number> =>
  orBad(/^\d+$/.test(text) && Number(text) >= min && Number(text) <= max ? Number(text) : undefined, `an integer from ${min} to ${max}`)

const umask = (text: string): Read<number> => orBad(/^[0-7]{1,4}$/.test(text) && Number.parseInt(text, 8) <= 0o777 ? Number.parseInt(text, 8) : undefined, "an octal umask from 000 to 777 (e.g. 022)")
const showUmask = (mask: number): string => `0${mask.toString(8).padStart(3, "0")}`

/** setrlimit takes 64-bit values; beyond a safe integer JavaScript cannot carry them exactly. */
const limitValue = (text: string, amount: (text: string) => number | undefined): LimitValue | undefined =>
  text === "unlimited" || text === "infinity" ? "unlimited" : amount(text)

const count = (text: string): number | undefined => (/^\d+$/.test(text) && Number.isSafeInteger(Number(text)) ? Number(text) : undefined)

const resourceLimit = (amount: (text: string) => number | undefined, unit: string) => (text: string): Read<ResourceLimit> => {
  const parts = text.split(":")
  const soft = limitValue(parts[0] ?? "", amount)
  const hard = parts.length === 2 ? limitValue(parts[1] ?? "", amount) : soft
  const expected = `${unit}, unlimited, or SOFT:HARD with SOFT at most HARD`
  if (parts.length > 2 || soft === undefined || hard === undefined) return bad(expected)
  if (hard !== "unlimited" && (soft === "unlimited" || soft > hard)) return bad(expected)
  return ok({ soft, hard })
}
const showLimit = (show: (n: number) => string) => (l: ResourceLimit): string => {
  const one = (v: LimitValue): string => (v === "unlimited" ? v : show(v))
  return l.soft === l.hard ? one(l.soft) : `${one(l.soft)}:${one(l.hard)}`
}

const stopSignal = (text: string): Read<StopSignal> => {
  const name = text.startsWith("SIG") ? text : `SIG${text}`
  return orBad(signals.find((s) => s === name), `a signal name: ${signals.map((s) => s.slice(3)).join(", ")} (with or without SIG)`)
}

const duration = (text: string): Read<number> => orBad(durationMs(text), `DURATION, ${durationHelp}`)

/**
 * The kernel refuses an RLIMIT_NOFILE above fs.nr_open, and infinity. fs.nr_open is 1048576 by
 * default (systemd raises it to this, the kernel's ceiling); a start checks the host's own value.
 */
export const maxOpenFiles = 1_073_741_816
const openFiles = (text: string): Read<ResourceLimit> =>
  /unlimited|infinity/.test(text)
    ? bad(`a count up to ${maxOpenFiles} or SOFT:HARD: the kernel does not allow an unlimited number of open files`)
    : resourceLimit((t) => {
        const n = count(t)
        return n !== undefined && n <= maxOpenFiles ? n : undefined
      }, `a count up to the host's fs.nr_open (at most ${maxOpenFiles})`)(text)

const limit = (unit: string, amount: (text: string) => number | undefined, show: (n: number) => string, doc: string): OptionSpec<ResourceLimit> => ({
  modes: running,
  parse: resourceLimit(amount, unit),
  show: showLimit(show),
  doc,
  default: "the daemon's",
})

type OptionSpecs = { readonly [K in OptionKey]: OptionSpec<OptionValues[K]> }

/** Every key, in the order the README and `isinit check` list them. */
export const optionSpecs: OptionSpecs = {
  log: { modes: running, parse: logTarget, show: showLogTarget, doc: "where stdout and stderr go: a file (a relative path is under the log directory; DIR/ means DIR/TAG.log), inherit (the daemon's), or off (/dev/null)", default: "log/TAG.log beside the status file" },
  "log-max": { modes: running, parse: (t) => orBad(sizeBytes(t) || undefined, "a size in bytes such as 10M (K, M, G: binary multiples), above 0"), show: showSize, doc: "rotate the log file when it passes this size", default: "10M" },
  "log-keep": { modes: running, parse: integerIn(0, 1000), show: String, doc: "how many rotated files to keep (FILE.1 newest); 0 truncates", default: "5" },
  user: { modes: running, parse: principal("user"), show: showPrincipal, doc: "run as this user (name or uid), with its supplementary groups; needs a root isinitd", default: "the daemon's" },
  group: { modes: running, parse: principal("group"), show: showPrincipal, doc: "run with this primary group (name or gid); needs a root isinitd", default: "the user's, else the daemon's" },
  cwd: { modes: running, parse: absolutePath, show: String, doc: "working directory (must exist at start)", default: "/" },
  env: { modes: running, parse: envVar, show: (v) => `${v.name}=${v.value}`, doc: "NAME=VALUE added to the environment, never shell-expanded (repeatable)", default: "the daemon's environment" },
  "env-file": { modes: running, parse: absolutePath, show: String, doc: "a file of NAME=VALUE lines, read at each start (repeatable)", default: "none" },
  umask: { modes: running, parse: umask, show: showUmask, doc: "the child's umask, octal", default: "the daemon's" },
  nofile: { ...limit("a count", count, String, "open files (RLIMIT_NOFILE), at most the host's fs.nr_open"), parse: openFiles },
  nproc: limit("a count", count, String, "processes of the user (RLIMIT_NPROC)"),
  core: limit("a size such as 0 or 1G", sizeBytes, showSize, "core file size (RLIMIT_CORE)"),
  memlock: limit("a size such as 64M", sizeBytes, showSize, "locked memory (RLIMIT_MEMLOCK)"),
  "stop-signal": { modes: running, parse: stopSignal, show: String, doc: "the first signal of a stop", default: "SIGTERM" },
  "kill-grace": { modes: running, parse: duration, show: showDuration, doc: "time between the stop signal and SIGKILL", default: ":::kill-grace (30s)" },
  "respawn-limit": { modes: respawnOnly, parse: (t) => orBad(respawnLimitOf(t), respawnLimitHelp), show: (l) => `${l.max}/${showDuration(l.windowMs)}`, doc: "this entry's start rate limit", default: ":::respawn-limit (5/10s)" },
  jail: { modes: respawnOnly, parse: duration, show: showDuration, doc: "how long this entry is held back when it respawns too fast", default: ":::jail (60s)" },
  ready: { modes: respawnOnly, parse: (t) => orBad(probeOf(t), probeHelp), show: showProbe, doc: "when the entry counts as ready (a barrier of its group's transition, like a wait entry): exec:CMD exits 0, tcp:HOST:PORT accepts, http://URL answers 2xx, file:/PATH exists; tried at the start, then after 5, 10, 20, 40, 80, 160ms and every 200ms", default: "ready once started" },
  "ready-timeout": { modes: respawnOnly, parse: duration, show: showDuration, doc: "not ready this long after it was started: its group is fail (the entry keeps running; a tell of the level retries)", default: "60s" },
  health: { modes: respawnOnly, parse: (t) => orBad(probeOf(t), probeHelp), show: showProbe, doc: "a periodic check of the same forms, once the entry is ready", default: "none" },
  "health-every": { modes: respawnOnly, parse: duration, show: showDuration, doc: "the period of the health check (one attempt is bounded by it and by 5s)", default: "10s" },
  "health-fails": { modes: respawnOnly, parse: integerIn(1, 1000), show: String, doc: "failures in a row that restart the entry (counted like a respawn: it can be jailed)", default: "3" },
}

export const optionKeys = Object.keys(optionSpecs) as readonly OptionKey[]

export const isOptionKey = (key: string): key is OptionKey => Object.hasOwn(optionSpecs, key)

export const isRepeatable = (key: OptionKey): key is RepeatableKey => (repeatableKeys as readonly string[]).includes(key)

export const appliesTo = (key: OptionKey, mode: Mode): boolean => optionSpecs[key].modes.includes(mode)

/** One option line's parts: `TAG:KEY=VALUE` (what follows `:::option:`). */
export type OptionLine =
  | { readonly _tag: "Option"; readonly target: string; readonly key: OptionKey; readonly text: string; readonly value: unknown }
  | { readonly _tag: "Bad"; readonly message: string }

/**
 * Reads `TAG:KEY=VALUE`: the tag ends at the first `:`, the key at the first `=`, the value is the
 * rest (it may hold `:` and `=`). `value` is the key's typed value (`OptionValues[key]`).
 */
export const readOptionLine = (rest: string): OptionLine => {
  const colon = rest.indexOf(":")
  const eq = rest.indexOf("=", colon + 1)
  if (colon <= 0 || eq < 0) return { _tag: "Bad", message: `option needs TAG:KEY=VALUE (or *:KEY=VALUE for every entry), found "${rest}"` }
  const target = rest.slice(0, colon)
  const key = rest.slice(colon + 1, eq)
  const text = rest.slice(eq + 1)
  if (!isOptionKey(key)) return { _tag: "Bad", message: `unknown option "${key}" (options: ${optionKeys.join(", ")})` }
  const read = (optionSpecs[key].parse as (text: string) => Read<unknown>)(text)
  if (read._tag === "Bad") return { _tag: "Bad", message: `option "${key}": bad value "${text}": expected ${read.expected}` }
  return { _tag: "Option", target, key, text, value: read.value }
}

/** Adds one occurrence of `key` to `options` (a repeatable key appends, another replaces). */
export const withOption = (options: EntryOptions, key: OptionKey, value: unknown): EntryOptions => {
  if (isRepeatable(key)) {
    const before = (options[key] ?? []) as readonly unknown[]
    return { ...options, [key]: [...before, value] }
  }
  return { ...options, [key]: value }
}

/** The options as `[KEY, VALUE]` text pairs, in table order: the state file's form, and what `sameOptions` compares. */
export const optionPairs = (options: EntryOptions): readonly (readonly [OptionKey, string])[] => {
  const pairs: (readonly [OptionKey, string])[] = []
  for (const key of optionKeys) {
    const value = options[key]
    if (value === undefined) continue
    const show = optionSpecs[key].show as (value: unknown) => string
    const values: readonly unknown[] = isRepeatable(key) ? (value as readonly unknown[]) : [value]
    for (const one of values) pairs.push([key, show(one)])
  }
  return pairs
}

/** The options read back from text pairs; a pair this version cannot read is left out (a changed definition then). */
export const optionsOfPairs = (pairs: readonly (readonly [string, string])[]): EntryOptions => {
  let options = noOptions
  for (const [key, text] of pairs) {
    const line = readOptionLine(`*:${key}=${text}`)
    if (line._tag === "Option") options = withOption(options, line.key, line.value)
  }
  return options
}

/** Rule 12: a changed option is a changed definition. */
export const sameOptions = (a: EntryOptions, b: EntryOptions): boolean => {
  if (a === b) return true
  const left = optionPairs(a)
  const right = optionPairs(b)
  return left.length === right.length && left.every(([key, text], i) => right[i]?.[0] === key && right[i]?.[1] === text)
}

/** Keys that only a root daemon can apply (setuid, setgid, initgroups). */
export const rootOnlyKeys = ["user", "group"] as const satisfies readonly OptionKey[]
