/**
 * `isinit logs TAG [-n N] [-f]`: an entry's log file, read directly (no daemon needed: the file
 * is where the isinittab says, core/logs.ts, the same function the daemon spawns with). Prints the
 * last N lines like `tail -n`; `-f` follows like `tail -F`: the daemon rotates by copy-and-truncate
 * (runtime/logs.ts), so a file that got shorter was rotated, and what was written since the last
 * read and before the copy is read from `FILE.1` first, then the file from its start.
 * Loaded by isinit.ts for this command only.
 */
import type { Stats } from "node:fs"
import { closeSync, openSync, readFileSync, readSync, statSync } from "node:fs"
import { resolve } from "node:path"
import { StringDecoder } from "node:string_decoder"
import { parseInittab } from "../core/inittab.ts"
import type { LogPlace } from "../core/logs.ts"
import { logDirOf, logPlaceOf } from "../core/logs.ts"
import { configPathFrom, resolvePaths } from "../paths.ts"
import type { CommandOf, Invocation } from "./invocation.ts"
import type { Io } from "./io.ts"
import { readError } from "./io.ts"

const chunkBytes = 64 * 1024
/** How often `-f` looks at the file (tail -F: 1 s). */
const followEveryMs = 250

/** Where TAG logs by the isinittab, or why it cannot be said. */
const placeOf = (invocation: Invocation, tag: string, io: Io): LogPlace | string => {
  const configPath = resolve(configPathFrom(invocation.config, io.env))
  let text: string
  try {
    text = readFileSync(configPath, "utf8")
  } catch (error) {
    return `cannot read the isinittab ${configPath} (${readError(error)})`
  }
  const parsed = parseInittab(text)
  const entry = parsed.config.byTag.get(tag)
  if (entry === undefined) return `no entry "${tag}" in ${configPath}`
  const paths = resolvePaths({ configPath, socketPath: invocation.socket }, parsed.config)
  return logPlaceOf(tag, entry.options, logDirOf(paths.initstat))
}

/** Reads `[from, to)` of the open file `fd`, chunk by chunk, to `out`. */
const copyRange = (fd: number, from: number, to: number, out: (text: string) => void, decoder: StringDecoder): void => {
  const buffer = Buffer.alloc(chunkBytes)
  for (let at = from; at < to; ) {
    const n = readSync(fd, buffer, 0, Math.min(chunkBytes, to - at), at)
    if (n === 0) return
    out(decoder.write(buffer.subarray(0, n)))
    at += n
  }
}

/** The offset where the last `lines` lines of the open file `fd` (of `size` bytes) begin. */
const tailStart = (fd: number, size: number, lines: number): number => {
  if (lines === 0) return size
  const buffer = Buffer.alloc(chunkBytes)
  // A final newline ends the last line; it does not start another.
  let wanted = lines + 1
  for (let end = size; end > 0; ) {
    const start = Math.max(0, end - chunkBytes)
    const n = readSync(fd, buffer, 0, end - start, start)
    for (let i = n - 1; i >= 0; i--) {
      if (buffer[i] !== 0x0a || (start + i === size - 1)) continue
      if (--wanted === 1) return start + i + 1
    }
    end = start
  }
  return 0
}

const statOf = (path: string): Stats | undefined => {
  try {
    return statSync(path)
  } catch {
    return undefined
  }
}

/** Prints `[from, to)` of `path` (nothing when it cannot be opened). */
const printRange = (path: string, from: number, to: number, io: Io, decoder: StringDecoder): void => {
  let fd: number
  try {
    fd = openSync(path, "r")
  } catch {
    return
  }
  try {
    copyRange(fd, from, to, io.out, decoder)
  } finally {
    closeSync(fd)
  }
}

/** Where `-f` is: the offset read up to, the file's inode, and the newest rotated file's (a rotation makes a new `.1`). */
export interface Followed {
  offset: number
  ino: number | undefined
  rotatedIno: number | undefined
  /** The new `.1` already waited on for one look (its truncation seemed still to come). */
  waitedOn: number | undefined
}

/**
 * One look of `-f`: new bytes printed. A rotation (a new `.1`, or a shorter file) first prints the
 * rest of `.1` after our offset, then the file from its start. A new `.1` no larger than the file
 * means the copy is done and the truncation still to come: looked at again once, no more (a small
 * `log-max` can fill the truncated file past `.1` within a look). Another file at the path
 * (replaced) is read from its start.
 */
export const followStep = (path: string, at: Followed, io: Io, decoder: StringDecoder): void => {
  const now = statOf(path)
  if (now === undefined) return
  const rotated = statOf(`${path}.1`)
  const newRotation = rotated !== undefined && rotated.ino !== at.rotatedIno
  if (newRotation && at.waitedOn !== rotated.ino && now.size >= rotated.size && now.size >= at.offset) {
    at.waitedOn = rotated.ino
    return
  }
  if (at.ino !== undefined && now.ino !== at.ino) at.offset = 0
  else if (newRotation || now.size < at.offset) {
    if (rotated !== undefined && rotated.size >= at.offset) printRange(`${path}.1`, at.offset, rotated.size, io, decoder)
    at.offset = 0
  }
  at.ino = now.ino
  at.rotatedIno = rotated?.ino
  if (now.size > at.offset) printRange(path, at.offset, now.size, io, decoder)
  at.offset = Math.max(at.offset, now.size)
}

/** Prints the last lines; with `follow`, never resolves (ended by a signal, as tail -f is). */
export const showLogs = async (invocation: Invocation, command: CommandOf<"Logs">, io: Io): Promise<number> => {
  const place = placeOf(invocation, command.tag, io)
  if (typeof place === "string") {
    io.err(`isinit: ${place}\n`)
    return 1
  }
  if (place._tag !== "File") {
    io.err(`isinit: ${command.tag} logs ${place._tag === "Off" ? "nowhere (log=off)" : "to isinitd's own output (log=inherit): see the daemon's log"}\n`)
    return 1
  }
  const decoder = new StringDecoder("utf8")
  const first = statOf(place.path)
  if (first === undefined && !command.follow) {
    io.err(`isinit: no log file ${place.path} yet (${command.tag} has not started since it logs there)\n`)
    return 1
  }
  const at: Followed = { offset: 0, ino: first?.ino, rotatedIno: statOf(`${place.path}.1`)?.ino, waitedOn: undefined }
  if (first !== undefined) {
    const fd = openSync(place.path, "r")
    try {
      at.offset = tailStart(fd, first.size, command.lines)
      copyRange(fd, at.offset, first.size, io.out, decoder)
      at.offset = first.size
    } finally {
      closeSync(fd)
    }
  }
  if (!command.follow) return 0
  for (;;) {
    await new Promise((wake) => setTimeout(wake, followEveryMs))
    followStep(place.path, at, io, decoder)
  }
}
