/**
 * The daemon's log: one line per thing that happened, on stderr (systemd and containers collect
 * it), or in a file beside the status file once stderr is gone (`resilientLog`). Fields in a fixed order so that `grep`/`awk` work: wall time, group, tag, what, then
 * `pid=`, `exit=`/`signal=` when known, then the reason in free text.
 */
import { closeSync, openSync, writeSync } from "node:fs"
import type { Writable } from "node:stream"
import type { LogService } from "../log.ts"
import { formatLine } from "../log.ts"
import { codeOf } from "./errors.ts"

/** Where a child's stdout and stderr go: the daemon's own, nowhere, or an open file descriptor. */
export type ChildOutput = "inherit" | "ignore" | number

/** The daemon's log, which survives losing its stream; see `resilientLog`. */
export interface DaemonLog extends LogService {
  /** The file to log to once the stream is lost (isinitd: `isinitd.log` beside the status file). */
  readonly fallbackTo: (path: string) => void
  /** Where children should write now: the daemon's own stdout/stderr while they work, else the fallback file. */
  readonly childOutput: () => ChildOutput
  /** Lines written nowhere since the last report of them. */
  readonly dropped: () => number
}

/** How far a stuck reader may let unwritten lines pile up in memory before they are dropped (and counted). */
export const maxBufferedLogBytes = 1024 * 1024

/** How long after a failed fallback file the next line tries it again. */
const fallbackRetryMs = 5_000

/** Where lines go: the stream; the fallback file; or nowhere, until the fallback can be opened. */
type Sink =
  | { readonly _tag: "Stream" }
  | { readonly _tag: "File"; readonly fd: number; readonly path: string }
  | { readonly _tag: "Lost"; readonly why: string; readonly retryAt: number }


/** Opens `path` to log to and writes `firstLine` there: the file, or why not (tried again 5 s later). */
const openLogFile = (path: string, why: string, firstLine: string, nowMs: number): Sink => {
  try {
    const fd = openSync(path, "a", 0o600)
    writeSync(fd, firstLine)
    return { _tag: "File", fd, path }
  } catch (error) {
    return { _tag: "Lost", why: `${why}; the log file ${path} failed too (${codeOf(error)})`, retryAt: nowMs + fallbackRetryMs }
  }
}

/** Appends a line: the same file, or why it is lost now (a full disk...). */
const appendTo = (file: Extract<Sink, { readonly _tag: "File" }>, text: string, nowMs: number): Sink => {
  try {
    writeSync(file.fd, text)
    return file
  } catch (error) {
    try {
      closeSync(file.fd)
    } catch {
      // already unusable
    }
    return { _tag: "Lost", why: `the log file ${file.path} failed (${codeOf(error)})`, retryAt: nowMs + fallbackRetryMs }
  }
}

/**
 * Writes to a stream (stderr) and survives losing it. When the reader of a pipe goes away (a
 * `| logger` that exits, a log shipper restarting) or a terminal closes, the next write fails with
 * EPIPE or EIO, and Node reports it as an 'error' event that would kill the daemon unhandled.
 * Here that failure moves the log to a file (`fallbackTo`), saying so in one line there; the line
 * that failed and those queued behind it are written there in order. Lines that can be written
 * nowhere (no fallback yet, or it fails too: the next line after 5 s tries again) are counted,
 * and the count is written once logging works again. A stuck reader cannot make the daemon's
 * memory grow: past `maxBufferedLogBytes` queued, lines are dropped and counted until it drains.
 */
export const resilientLog = (stream: Writable = process.stderr, clock: () => Date = () => new Date()): DaemonLog => {
  let sink: Sink = { _tag: "Stream" }
  let fallbackPath: string | undefined
  let dropped = 0

  const note = (message: string): string => `${formatLine(clock(), { what: "log", message })}\n`
  const droppedNote = (): string => (dropped === 0 ? "" : `; ${dropped} earlier line(s) could not be written`)

  const toFile = (text: string): void => {
    const nowMs = clock().getTime()
    if (sink._tag === "Lost" && nowMs >= sink.retryAt && fallbackPath !== undefined) {
      const why = sink.why
      sink = openLogFile(fallbackPath, why, note(`${why}: logging to ${fallbackPath} from now on, and so do processes started from now on${droppedNote()}`), nowMs)
      if (sink._tag === "File") dropped = 0
    }
    if (sink._tag === "File") sink = appendTo(sink, text, nowMs)
    if (sink._tag !== "File") dropped++
  }

  const streamLost = (error: unknown): void => {
    if (sink._tag !== "Stream") return
    sink = { _tag: "Lost", why: `stderr lost (${codeOf(error)})`, retryAt: 0 }
  }
  // Unhandled, this event kills the process: every write error lands here (and in the write's callback).
  stream.on("error", streamLost)

  const drained = (): void => {
    if (sink._tag !== "Stream" || dropped === 0) return
    const count = dropped
    dropped = 0
    toStream(note(`stderr was not read fast enough: ${count} line(s) dropped`))
  }

  const toStream = (text: string): void => {
    if (stream.writableLength > maxBufferedLogBytes) {
      if (dropped === 0) stream.once("drain", drained)
      dropped++
      return
    }
    stream.write(text, (error) => {
      if (error === undefined || error === null) return
      streamLost(error)
      toFile(text)
    })
  }

  return {
    line: (line) => {
      const text = `${formatLine(clock(), line)}\n`
      if (sink._tag === "Stream") toStream(text)
      else toFile(text)
    },
    fallbackTo: (path) => {
      fallbackPath = path
    },
    childOutput: () => (sink._tag === "Stream" ? "inherit" : sink._tag === "File" ? sink.fd : "ignore"),
    dropped: () => dropped,
  }
}

/** Collects lines in memory (tests). */
export const memoryLog = (): LogService & { readonly lines: string[] } => {
  const lines: string[] = []
  return { lines, line: (line) => void lines.push(formatLine(new Date(), line)) }
}

