/**
 * Where an entry's stdout and stderr go (issue 11), as a pure function of its `log`, `log-max` and
 * `log-keep` options and the log directory (`log/` beside the status file). The daemon opens the
 * file for each spawn (runtime/logs.ts), rotates it, `isinit status` shows it and `isinit logs`
 * reads it: all through `logPlaceOf`, so they never disagree.
 *
 * Default: a file per entry, `DIR/log/TAG.log` (tags are unique on a host; a tag's characters
 * outside letters, digits and `-_.!~*'()` are %-encoded, so a tag never names another directory),
 * rotated past 10M, 5 old files kept. `log=PATH`: an absolute path as is, a relative one under the
 * log directory; a PATH ending in `/` is a directory holding `TAG.log` (`:::option:*:log=/var/log/isinit/`). `log=inherit`: the daemon's own stdout/stderr (before issue 11, every entry's).
 * `log=off`: /dev/null.
 */
import type { Config } from "./config.ts"
import type { EntryOptions } from "./options.ts"

/** `log-max` without an option: 10 MiB, supervisord's `stdout_logfile_maxbytes` and Nomad's size. */
export const defaultLogMax = 10 * 1024 * 1024
/** `log-keep` without an option: 5 rotated files (supervisord keeps 10, Nomad 10, svlogd 10). */
export const defaultLogKeep = 5
/** The directory of the default log files, beside the status file. */
export const logDirName = "log"

/** A file an entry logs to, and when to rotate it. */
export interface LogFile {
  readonly path: string
  /** Rotate once the file is larger than this (bytes). */
  readonly max: number
  /** Rotated files kept: `PATH.1` (newest) to `PATH.keep`; 0 truncates without a copy. */
  readonly keep: number
}

/**
 * `from`: a file the operator gave (`log=PATH`) that cannot be opened fails the spawn; the default
 * file falls back to the daemon's output (a status directory that cannot hold logs stops no service).
 */
export type LogPlace = { readonly _tag: "Inherit" } | { readonly _tag: "Off" } | ({ readonly _tag: "File"; readonly from: "option" | "default" } & LogFile)

/** The directory part of an absolute path (`/a/b/initstat` → `/a/b`). */
const dirnameOf = (path: string): string => {
  const cut = path.lastIndexOf("/")
  return cut <= 0 ? "/" : path.slice(0, cut)
}

/** `DIR/log` for the status file at `initstat` (an absolute path). */
export const logDirOf = (initstat: string): string => `${dirnameOf(initstat).replace(/\/$/, "")}/${logDirName}`

/** The default file name of a tag: no `/`, no `.` or `..`. */
export const logFileName = (tag: string): string => `${encodeURIComponent(tag)}.log`

/** Where the entry `tag` with these options logs, for the log directory `logDir`. */
export const logPlaceOf = (tag: string, options: EntryOptions, logDir: string): LogPlace => {
  const target = options.log ?? { _tag: "File", path: logFileName(tag) }
  if (target._tag !== "File") return target
  const given = target.path.startsWith("/") ? target.path : `${logDir}/${target.path}`
  // `log=DIR/` (with `*`, every entry's): a directory, a file per tag in it.
  const path = given.endsWith("/") ? `${given}${logFileName(tag)}` : given
  const from = options.log === undefined ? "default" : "option"
  return { _tag: "File", from, path, max: options["log-max"] ?? defaultLogMax, keep: options["log-keep"] ?? defaultLogKeep }
}

/** How status shows a place: the file's path, `inherit` or `off`. */
export const showLogPlace = (place: LogPlace): string => (place._tag === "File" ? place.path : place._tag === "Off" ? "off" : "inherit")

/**
 * Every file the config's entries log to, once each (two entries may share one: the first one's
 * limits count). What the daemon's rotation watches: adopted runs included, since they run a
 * definition of this config (a changed option restarts its entry, rule 12).
 */
export const logFilesOf = (config: Pick<Config, "entries">, logDir: string): readonly LogFile[] => {
  const files = new Map<string, LogFile>()
  for (const entry of config.entries) {
    if (entry.mode === "off") continue
    const place = logPlaceOf(entry.tag, entry.options, logDir)
    if (place._tag === "File" && !files.has(place.path)) files.set(place.path, { path: place.path, max: place.max, keep: place.keep })
  }
  return [...files.values()]
}

/** The rotated files of `path`, newest first: `PATH.1` .. `PATH.keep`. */
export const rotatedPaths = (path: string, keep: number): readonly string[] => Array.from({ length: keep }, (_, i) => `${path}.${i + 1}`)
