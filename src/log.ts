/**
 * What a log line is and where lines go, with no implementation: the daemon's runtime writes
 * them (runtime/log.ts), and the cluster layer only needs somewhere to put them, so it depends on
 * this small module instead of on the runtime.
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
