/**
 * The daemon's log: one line per thing that happened, on stderr (systemd and containers collect
 * it). Fields in a fixed order so that `grep`/`awk` work: wall time, group, tag, what, then
 * `pid=`, `exit=`/`signal=` when known, then the reason in free text.
 */
import * as Context from "effect/Context"
import * as Layer from "effect/Layer"
import type { LogLine, LogService } from "../log.ts"

export type { LogLine, LogService }

const field = (value: string | undefined): string => (value === undefined || value === "" ? "-" : value.replace(/\s/g, "_"))

export const formatLine = (at: Date, line: LogLine): string => {
  const parts = [at.toISOString(), field(line.group), field(line.tag), field(line.what)]
  if (line.pid !== undefined) parts.push(`pid=${line.pid}`)
  if (line.outcome !== undefined) parts.push(line.outcome.replace(/^exit /, "exit=").replace(/^signal /, "signal="))
  if (line.message !== undefined && line.message !== "") parts.push(line.message.replace(/\n/g, " "))
  return parts.join(" ")
}

export class Log extends Context.Service<Log, LogService>()("isinit/runtime/Log") {}

/** Writes to a stream (stderr by default); a full pipe buffers in Node rather than blocking. */
export const streamLog = (stream: NodeJS.WritableStream = process.stderr, clock: () => Date = () => new Date()): LogService => ({
  line: (line) => {
    stream.write(`${formatLine(clock(), line)}\n`)
  },
})

/** Collects lines in memory (tests). */
export const memoryLog = (): LogService & { readonly lines: string[] } => {
  const lines: string[] = []
  return { lines, line: (line) => void lines.push(formatLine(new Date(), line)) }
}

export const layer = (service: LogService = streamLog()): Layer.Layer<Log> => Layer.succeed(Log, service)
