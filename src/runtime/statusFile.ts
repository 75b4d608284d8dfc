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
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"

export interface StatusFileOptions {
  readonly path: string
  /** Called at write time: the file's whole content from the daemon's latest state. */
  readonly render: () => string
  readonly warn: (message: string) => void
  /** What the file is called in warnings (default "status file"; the state file's writer is this one too). */
  readonly name?: string
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

/** Writes `content` to `temp` beside `path`, then renames it over `path`: readers see the old file or the new, never a torn one. */
const writeAtomically = async (path: string, temp: string, content: string): Promise<void> => {
  await mkdir(dirname(path), { recursive: true })
  await writeFile(temp, content, { mode: 0o644 })
  await rename(temp, path)
}

/** The retry after a failed write: one timer, its delay doubling up to a cap, reset by a success. */
const makeRetry = (firstMs: number, maxMs: number) => {
  let delayMs = firstMs
  let timer: NodeJS.Timeout | undefined
  const cancel = (): void => {
    if (timer !== undefined) clearTimeout(timer)
    timer = undefined
  }
  const schedule = (retry: () => void): void => {
    if (timer !== undefined) return
    timer = setTimeout(() => {
      timer = undefined
      retry()
    }, delayMs)
    delayMs = Math.min(maxMs, delayMs * 2)
  }
  return { schedule, cancel, reset: (): void => void (delayMs = firstMs) }
}

/** One warning per outage, not per attempt: when writing fails, and when it works again. */
const makeOutageNotes = (warn: (message: string) => void, what: string) => {
  let outage: "None" | "Reported" = "None"
  return {
    failed: (error: unknown): void => {
      if (outage === "None") warn(`cannot write ${what}: ${(error as Error).message}; will retry`)
      outage = "Reported"
    },
    written: (): void => {
      if (outage === "Reported") warn(`${what} written again`)
      outage = "None"
    },
  }
}

export const makeStatusWriter = (options: StatusFileOptions): StatusWriter => {
  const temp = join(dirname(options.path), `.${basename(options.path)}.${process.pid}.tmp`)
  const retry = makeRetry(options.retryMs ?? 1_000, options.maxRetryMs ?? 30_000)
  const notes = makeOutageNotes(options.warn, `${options.name ?? "status file"} ${options.path}`)
  let writing = false
  let dirty = false
  let closed = false
  let writes = 0
  let failures = 0
  let idleWaiters: Array<() => void> = []

  const settleIdle = (): void => {
    const waiters = idleWaiters
    idleWaiters = []
    for (const wake of waiters) wake()
  }

  const drain = async (): Promise<void> => {
    while (dirty) {
      dirty = false
      try {
        await writeAtomically(options.path, temp, options.render())
        writes++
        retry.reset()
        notes.written()
      } catch (e) {
        failures++
        notes.failed(e)
        await rm(temp, { force: true }).catch(() => undefined)
        if (!closed) retry.schedule(request)
        break
      }
    }
  }

  const request = (): void => {
    dirty = true
    retry.cancel()
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
    retry.cancel()
  }

  return { request, flush, stats: () => ({ writes, failures }), close }
}

/** A writer that stops retrying when its scope closes. */
export const makeStatusFile = (options: StatusFileOptions): Effect.Effect<StatusWriter, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => makeStatusWriter(options)),
    (writer) => Effect.sync(() => writer.close()),
  )
