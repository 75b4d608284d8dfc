/**
 * What a log line is, how it reads, and where lines go, with no implementation: the daemon's
 * runtime writes them (runtime/log.ts), and the cluster layer and the fencer only need somewhere to
 * put them, so they depend on this small module (no effect, nothing to load) instead of on the runtime.
 */
import type { LogWhat } from "./core/effects.ts"

export interface LogLine {
  /** The verb, from the one vocabulary (core/effects.ts `logWhats`). */
  readonly what: LogWhat
  readonly group?: string | undefined
  readonly tag?: string | undefined
  readonly pid?: number | undefined
  /** `exit 3`, `signal SIGKILL`, `spawn failed: ENOENT` (see describeOutcome). */
  readonly outcome?: string | undefined
  readonly message?: string | undefined
}

export interface LogService {
  readonly line: (line: LogLine) => void
}

const field = (value: string | undefined): string => (value === undefined || value === "" ? "-" : value.replace(/\s/g, "_"))

/** One line: wall time, group, tag, what, then `pid=`, `exit=`/`signal=` when known, then the reason. */
export const formatLine = (at: Date, line: LogLine): string => {
  const parts = [at.toISOString(), field(line.group), field(line.tag), field(line.what)]
  if (line.pid !== undefined) parts.push(`pid=${line.pid}`)
  if (line.outcome !== undefined) parts.push(line.outcome.replace(/^exit /, "exit=").replace(/^signal /, "signal="))
  if (line.message !== undefined && line.message !== "") parts.push(line.message.replace(/\n/g, " "))
  return parts.join(" ")
}
