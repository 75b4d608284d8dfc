/**
 * The status file writer. Readers (the original IS::Init `status`, `isinit status` with the daemon
 * down, shell scripts) must never see a torn file, and a large transition must not cost one disk
 * write per event, so:
 * - each write goes to a temporary file in the same directory, then is renamed over the file;
 * - at most one write is in flight; requests meanwhile only mark the file dirty, and one more
 *   write follows, rendered from the latest state at that moment (never an intermediate one
 *   that the daemon has already left, and never a state that did not happen);
 * - everything is asynchronous (fs/promises): the event loop never waits for the disk;
 * - a failure (unwritable directory, full disk) is logged and retried on the next request, or
 *   after a backoff if nothing changes; it never stops the daemon.
 */
import { mkdir, rename, rm, writeFile } from "node:fs/promises"
import { basename, dirname, join } from "node:path"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"

export interface StatusFileOptions {
  readonly path: string
  /** Called at write time: the file's whole content from the daemon's latest state. */
  readonly render: () => string
  readonly warn: (message: string) => void
  /** First retry delay after a failed write; doubles up to `maxRetryMs`. */
  readonly retryMs?: number
  readonly maxRetryMs?: number
}

export interface StatusFileStats {
  readonly writes: number
  readonly failures: number
}

export interface StatusWriter {
  /** The state changed: write it soon (coalesced with other requests). */
  readonly request: () => void
  /** Resolves when no write is in flight or pending (after the last attempt, failed or not). */
  readonly flush: () => Promise<void>
  readonly stats: () => StatusFileStats
  /** Stop retrying (the daemon is exiting); a write in flight still completes. */
  readonly close: () => void
}

export const makeStatusWriter = (options: StatusFileOptions): StatusWriter => {
  const dir = dirname(options.path)
  const temp = join(dir, `.${basename(options.path)}.${process.pid}.tmp`)
  const firstRetryMs = options.retryMs ?? 1_000
  const maxRetryMs = options.maxRetryMs ?? 30_000
  let writing = false
  let dirty = false
  let closed = false
  let writes = 0
  let failures = 0
  let retryDelayMs = firstRetryMs
  let retryTimer: NodeJS.Timeout | undefined
  /** Whether the last failure was already logged (one line per outage, not per attempt). */
  let failing = false
  let idleWaiters: Array<() => void> = []

  const writeOnce = async (): Promise<void> => {
    const content = options.render()
    await mkdir(dir, { recursive: true })
    await writeFile(temp, content, { mode: 0o644 })
    await rename(temp, options.path)
  }

  const settleIdle = (): void => {
    const waiters = idleWaiters
    idleWaiters = []
    for (const wake of waiters) wake()
  }

  const scheduleRetry = (): void => {
    if (closed || retryTimer !== undefined) return
    retryTimer = setTimeout(() => {
      retryTimer = undefined
      request()
    }, retryDelayMs)
    retryDelayMs = Math.min(maxRetryMs, retryDelayMs * 2)
  }

  const drain = async (): Promise<void> => {
    while (dirty) {
      dirty = false
      try {
        await writeOnce()
        writes++
        retryDelayMs = firstRetryMs
        if (failing) options.warn(`status file ${options.path} written again`)
        failing = false
      } catch (e) {
        failures++
        if (!failing) options.warn(`cannot write status file ${options.path}: ${(e as Error).message}; will retry`)
        failing = true
        await rm(temp, { force: true }).catch(() => undefined)
        scheduleRetry()
        break
      }
    }
  }

  const request = (): void => {
    dirty = true
    if (retryTimer !== undefined) {
      clearTimeout(retryTimer)
      retryTimer = undefined
    }
    if (writing) return
    writing = true
    void drain().finally(() => {
      writing = false
      settleIdle()
    })
  }

  const flush = (): Promise<void> => (writing ? new Promise<void>((resolve) => idleWaiters.push(resolve)) : Promise.resolve())

  const close = (): void => {
    closed = true
    if (retryTimer !== undefined) clearTimeout(retryTimer)
    retryTimer = undefined
  }

  return { request, flush, stats: () => ({ writes, failures }), close }
}

export class StatusFile extends Context.Service<StatusFile, StatusWriter>()("isinit/runtime/StatusFile") {}

/** A writer that stops retrying when its scope closes. */
export const makeStatusFile = (options: StatusFileOptions): Effect.Effect<StatusWriter, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => makeStatusWriter(options)),
    (writer) => Effect.sync(() => writer.close()),
  )

export const layer = (options: StatusFileOptions): Layer.Layer<StatusFile> => Layer.effect(StatusFile, makeStatusFile(options))
