/**
 * Entries' log files (issue 11): opened for each spawn, rotated by size.
 *
 * Why children write straight to a file: a daemon that dies or hands over must not kill, block or
 * silence a child that writes (a child writing into a pipe whose reader died gets SIGPIPE; one
 * whose reader stalls blocks). So the daemon opens the entry's file `O_WRONLY|O_APPEND|O_CREAT`
 * right before the fork, the child gets it as stdout and stderr, and the daemon closes its own
 * descriptor right after: it holds no descriptor per entry and spends no CPU per logged byte, and
 * a child outlives any number of daemons writing to the same file. A root daemon opens the file,
 * so an entry running as another `user` writes its log without owning it (it cannot rewrite it).
 *
 * Rotation is copy-and-truncate (the children keep their descriptors: the daemon cannot make them
 * reopen): `PATH.keep-1` → `PATH.keep` ... `PATH.1` → `PATH.2`, copy `PATH` to `PATH.1`, truncate
 * `PATH` to 0. Every writer's next write goes to the new end (O_APPEND). What it costs is in the
 * README (Logs): lines written while the copy runs and until the truncation are lost, and a
 * writer that reopened the file without O_APPEND leaves a hole of zeros up to its old offset.
 *
 * The size check: one timer, once a second, stats at most `batch` files, round-robin over every
 * file the config's entries log to (so a daemon with 1,000 entries stats each file every 10 s):
 * no work per byte or per write, none per event of the loop. Once a whole round saw no file
 * change, the timer stops and an inotify watch on each log directory waits for the next write
 * (then it is closed and the timer runs again): an idle daemon makes no wake-ups, a busy one pays
 * nothing per write. The copy runs in libuv's thread pool, never on the event loop.
 */
import type { FSWatcher } from "node:fs"
import { closeSync, constants, existsSync, mkdirSync, openSync, statSync, watch } from "node:fs"
import { copyFile, rename, truncate, unlink } from "node:fs/promises"
import { dirname } from "node:path"
import type { LogFile, LogPlace } from "../core/logs.ts"
import { rotatedPaths } from "../core/logs.ts"
import { codeOf, describeError } from "./errors.ts"
import type { ChildOutput } from "./log.ts"

/** A child's stdout/stderr ready for one spawn; `close` right after it (the child has its own copy). */
export type OpenedOutput = { readonly _tag: "Opened"; readonly output: ChildOutput; readonly close: () => void } | { readonly _tag: "Failed"; readonly reason: string }

const appendFlags = constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT

/** Log files are readable by the daemon's group (adm-like readers), written by nobody else. */
const fileMode = 0o640
const dirMode = 0o750

/**
 * Creates `dir` and its missing parents, top down. Not `mkdirSync(..., { recursive: true })`: in
 * a directory that refuses with ENOENT (under /proc) Node's recursive mkdir loops for ever.
 */
const makeDirs = (dir: string): void => {
  const missing: string[] = []
  for (let at = dir; !existsSync(at) && missing.length < 64; at = dirname(at)) missing.push(at)
  for (const one of missing.reverse()) mkdirSync(one, { mode: dirMode })
}

const openAppend = (path: string): number => {
  try {
    return openSync(path, appendFlags, fileMode)
  } catch (error) {
    if (codeOf(error) !== "ENOENT") throw error
    makeDirs(dirname(path))
    return openSync(path, appendFlags, fileMode)
  }
}

/**
 * Opens where a child writes: the daemon's own output (`inherit`, asked now: it may have moved to
 * its fallback file), /dev/null, or the entry's file. A `log=` file that cannot be opened fails the
 * spawn with the reason (respawn rules apply), never the daemon; the default file falls back to the
 * daemon's output, with a warning (core/logs.ts `LogPlace`).
 */
export const openChildOutput = (place: LogPlace, inherit: () => ChildOutput, warn: (message: string) => void): OpenedOutput => {
  switch (place._tag) {
    case "Inherit":
      return { _tag: "Opened", output: inherit(), close: () => undefined }
    case "Off":
      return { _tag: "Opened", output: "ignore", close: () => undefined }
    case "File":
      try {
        const fd = openAppend(place.path)
        return { _tag: "Opened", output: fd, close: () => closeSync(fd) }
      } catch (error) {
        const reason = `log ${place.path}: ${describeError(error)}`
        if (place.from === "option") return { _tag: "Failed", reason }
        warn(`${reason}; this run writes to isinitd's own output instead`)
        return { _tag: "Opened", output: inherit(), close: () => undefined }
      }
  }
}

const ignoreMissing = (error: unknown): void => {
  if (codeOf(error) !== "ENOENT") throw error
}

/** Shifts the rotated files one up, copies the file to `.1` and truncates it (see the module's comment). */
export const rotateLogFile = async (file: LogFile): Promise<void> => {
  const rotated = rotatedPaths(file.path, file.keep)
  const last = rotated.at(-1)
  if (last !== undefined) await unlink(last).catch(ignoreMissing)
  for (let i = rotated.length - 1; i > 0; i--) await rename(rotated[i - 1] ?? "", rotated[i] ?? "").catch(ignoreMissing)
  const newest = rotated[0]
  if (newest !== undefined) await copyFile(file.path, newest)
  await truncate(file.path, 0)
}

export interface RotationOptions {
  /** Every file the entries log to now (asked each tick; cheap when the config did not change). */
  readonly files: () => readonly LogFile[]
  readonly warn: (message: string) => void
  readonly everyMs?: number
  /** Files stat-ed per tick at most. */
  readonly batch?: number
}

export interface Rotation {
  /** Checks the next batch now (the timer does it every `everyMs` while files change). */
  readonly check: () => Promise<void>
  /** Something may log now (a spawn): polling resumes if it was idle. */
  readonly wake: () => void
  readonly stop: () => void
}

/** The size of `path`, or undefined when it does not exist (yet) or cannot be read. */
const sizeOf = (path: string): number | undefined => {
  try {
    return statSync(path).size
  } catch {
    return undefined
  }
}

/** Rotates a file at a time: a failure is said once per file until a rotation works again, not once a second. */
const makeRotator = (warn: (message: string) => void) => {
  const rotating = new Set<string>()
  const failed = new Set<string>()
  return {
    busy: (path: string): boolean => rotating.has(path),
    rotate: async (file: LogFile): Promise<void> => {
      rotating.add(file.path)
      try {
        await rotateLogFile(file)
        failed.delete(file.path)
      } catch (error) {
        if (!failed.has(file.path)) warn(`log rotation of ${file.path} failed (${describeError(error)}); retrying`)
        failed.add(file.path)
      } finally {
        rotating.delete(file.path)
      }
    },
  }
}

/**
 * Waits for the first change in any of `dirs` (inotify), then calls `wake` once. Armed only while
 * no file grows, so a writing child costs the daemon nothing per write; undefined when a
 * directory cannot be watched (then polling goes on).
 */
const watchForChange = (dirs: ReadonlySet<string>, wake: () => void): (() => void) | undefined => {
  const watchers: FSWatcher[] = []
  const close = (): void => {
    for (const w of watchers.splice(0)) w.close()
  }
  const changed = (): void => {
    close()
    wake()
  }
  try {
    for (const dir of dirs) watchers.push(watch(dir, { persistent: false }, changed).on("error", changed))
    return close
  } catch {
    close()
    return undefined
  }
}

/**
 * Checks files round-robin, `batch` per tick, and rotates those past their size. When a whole
 * round finds no file changed, the timer stops and one inotify watch per log directory waits for
 * the next write (or `wake`): an idle daemon makes no wake-ups.
 */
export const startLogRotation = (options: RotationOptions): Rotation => {
  const batch = options.batch ?? 100
  const rotator = makeRotator(options.warn)
  const sizes = new Map<string, number | undefined>()
  const round = { checked: 0, changed: false, cursor: 0 }
  let timer: NodeJS.Timeout | undefined
  let unwatch: (() => void) | undefined

  const idle = (files: readonly LogFile[]): void => {
    unwatch = watchForChange(new Set(files.map((f) => dirname(f.path))), () => wake())
    if (unwatch === undefined) return
    clearInterval(timer)
    timer = undefined
  }
  const wake = (): void => {
    unwatch?.()
    unwatch = undefined
    if (timer !== undefined) return
    timer = setInterval(() => void check(), options.everyMs ?? 1000)
    // The socket keeps the daemon alive, not this timer.
    timer.unref()
  }
  /** Forgets the sizes of files no entry logs to any more (a re-read dropped them); once a round. */
  const forgetDropped = (files: readonly LogFile[]): void => {
    const live = new Set(files.map((f) => f.path))
    for (const path of sizes.keys()) if (!live.has(path)) sizes.delete(path)
  }
  /** Counts a round's looks; a whole round with no change idles. */
  const looked = (files: readonly LogFile[], n: number, changed: boolean): void => {
    round.checked += n
    round.changed ||= changed
    if (round.checked < files.length) return
    forgetDropped(files)
    if (!round.changed) idle(files)
    Object.assign(round, { checked: 0, changed: false })
  }
  const check = async (): Promise<void> => {
    const files = options.files()
    const due: Promise<void>[] = []
    let changed = false
    const n = Math.min(batch, files.length)
    for (let i = 0; i < n; i++) {
      if (round.cursor >= files.length) round.cursor = 0
      const file = files[round.cursor++]
      if (file === undefined) continue
      const size = sizeOf(file.path)
      if (!sizes.has(file.path) || sizes.get(file.path) !== size) changed = true
      sizes.set(file.path, size)
      if (size !== undefined && size > file.max && !rotator.busy(file.path)) due.push(rotator.rotate(file))
    }
    looked(files, n, changed || due.length > 0)
    await Promise.all(due)
  }

  wake()
  return {
    check,
    wake,
    stop: () => {
      unwatch?.()
      clearInterval(timer)
      timer = undefined
    },
  }
}
