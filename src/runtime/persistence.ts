/**
 * isinitd's memory across its own crashes: the state file (stateFile.ts), the boot clock
 * (boot.ts) and re-adoption (adopt.ts), put together for the daemon's wiring.
 *
 * 1. Before the daemon builds anything, `openPersistence` judges the state file left by a
 *    predecessor (read only) and settles the clock: a predecessor's clock anchor is kept, so the
 *    recorded jails, windows and graces go on in the same time base. A predecessor that is still
 *    alive refuses the start.
 * 2. Once the socket is ours, `takeOver` sets a bad file aside (logging why), or verifies the
 *    recorded processes and returns the `Restore` event, which must be the loop's first event,
 *    with the processes the adapter must watch.
 * 3. After every batch, `onBatch` asks the coalesced writer for a write if anything a snapshot
 *    holds changed; `beforeSpawn` journals each run before its process exists; `flush` lets the
 *    socket answer a tell only once it is on disk. `finish` (after a stopall, everything gone)
 *    removes the file and the journal, so the next daemon starts fresh; `handOver` writes the
 *    latest state one last time and keeps both, so the next daemon adopts every process, as
 *    after a crash but with nothing left to guess.
 */
import * as Data from "effect/Data"
import type { Parsed } from "../core/config.ts"
import type { Event } from "../core/events.ts"
import { restore } from "../core/events.ts"
import type { DaemonSnapshot } from "../core/snapshot.ts"
import { recordedRuns, snapshot } from "../core/snapshot.ts"
import type { State } from "../core/state.ts"
import type { JournalEntry, StateHeader } from "../codec/stateFile.ts"
import { encodeStateFile, stateFormat } from "../codec/stateFile.ts"
import { planAdoption } from "../core/adoption.ts"
import { scanMarkedLeaders, stopStrays, verifiedRuns } from "./adopt.ts"
import type { BootClock } from "./boot.ts"
import { bootAnchorMs, bootId, makeBootClock } from "./boot.ts"
import type { LogService } from "../log.ts"
import type { AdoptedProcess } from "./processes.ts"
import { processIdentity } from "./procfs.ts"
import type { LoadedState, SpawnJournal } from "./stateFile.ts"
import { journalPathFor, makeSpawnJournal, makeStateWriter, readJournal, readStateFile, removeStaleTemporaries, removeStateFile, setAside } from "./stateFile.ts"
import type { StatusWriter } from "./statusFile.ts"

export interface TakeOver {
  /** The loop's first event, or `undefined` to start fresh. */
  readonly event: Event | undefined
  /** Runs of the predecessor to watch (not our children). */
  readonly adopt: readonly AdoptedProcess[]
}

export interface Persistence {
  readonly _tag: "Opened"
  readonly path: string
  readonly clock: BootClock
  readonly onBatch: (state: State) => void
  /** For the process adapter's `beforeSpawn`: journal the run before it exists. */
  readonly beforeSpawn: (spec: { readonly tag: string; readonly run: number }) => void
  readonly takeOver: (parsed: Parsed) => TakeOver
  readonly finish: () => Promise<void>
  /** Hand-over: the latest state goes to disk and stays there, with the journal, for the next daemon to adopt from. */
  readonly handOver: () => Promise<void>
  /** Resolves once the latest state is on disk (or its write failed): an acknowledged tell survives a crash. */
  readonly flush: () => Promise<void>
  /** Writes so far (tests). */
  readonly writer: StatusWriter | undefined
}

/** The daemon that wrote the state file still runs: a second one would supervise its processes twice. */
export class StateFileInUse extends Data.TaggedError("StateFileInUse")<{ readonly path: string; readonly pid: number }> {
  override get message(): string {
    return `the daemon that wrote ${this.path} (pid ${this.pid}) is still running: stop it first, or use another --state file`
  }
}

export interface PersistenceOptions {
  readonly path: string
  readonly log: LogService
  /**
   * Least time between two state-file writes (default 100 ms): a write renders every entry (about
   * 2.6 ms for 1,000 entries here), so a large transition must not write once per batch. Runs
   * started meanwhile are covered by the spawn journal; a tell is answered only after a write.
   */
  readonly minIntervalMs?: number
  /** Retry delays of the writer after a failed write (defaults: 1 s doubling to 30 s). */
  readonly retryMs?: number
  readonly maxRetryMs?: number
}

const emptySnapshot: DaemonSnapshot = { version: 1, nextRun: 1, lifecycle: "running", entries: [], groups: [] }

/** Whether two states differ in anything a snapshot records (maps are persistent: compare references). */
const snapshotChanged = (a: State, b: State): boolean =>
  a.entries !== b.entries || a.groups !== b.groups || a.nextRun !== b.nextRun || a.lifecycle !== b.lifecycle

/**
 * The state file's writer: renders the latest state when it writes, and empties the spawn journal
 * once a written file covers every run it lists (the write count moved since that render).
 */
const makeFileWriter = (options: PersistenceOptions, header: StateHeader, journal: SpawnJournal | undefined, latest: () => State | undefined): StatusWriter => {
  let renderedNextRun: number | undefined
  let writesAtRender = 0
  const writer: StatusWriter = makeStateWriter({
    path: options.path,
    render: () => {
      const writes = writer.stats().writes
      if (renderedNextRun !== undefined && writes > writesAtRender) journal?.covered(renderedNextRun)
      writesAtRender = writes
      const state = latest()
      renderedNextRun = state?.nextRun
      return state === undefined ? "" : encodeStateFile(header, snapshot(state))
    },
    warn: (message) => options.log.line({ what: "warning", message }),
    ...(options.retryMs === undefined ? {} : { retryMs: options.retryMs }),
    ...(options.maxRetryMs === undefined ? {} : { maxRetryMs: options.maxRetryMs }),
  })
  return writer
}

/** Requests at most one write per `minIntervalMs`; one held back goes out when the interval ends, or at `now()`. */
const makeThrottle = (minIntervalMs: number, request: () => void) => {
  let lastRequestAt = -Infinity
  let timer: NodeJS.Timeout | undefined
  const now = (): void => {
    if (timer !== undefined) clearTimeout(timer)
    timer = undefined
    lastRequestAt = performance.now()
    request()
  }
  return {
    request: (): void => {
      const wait = lastRequestAt + minIntervalMs - performance.now()
      if (wait <= 0) now()
      else timer ??= setTimeout(now, wait)
    },
    /** A write held back goes out now. */
    flushHeld: (): void => {
      if (timer !== undefined) now()
    },
    cancel: (): void => {
      if (timer !== undefined) clearTimeout(timer)
      timer = undefined
    },
  }
}

interface TakeOverContext {
  readonly path: string
  readonly journalPath: string
  readonly loaded: LoadedState
  readonly journaled: readonly JournalEntry[]
  readonly clock: BootClock
  readonly log: LogService
}

/** A daemon that died before its first write: no level was recorded, so whatever it started is stopped, never left orphaned. */
const stopUnrecorded = (ctx: TakeOverContext, parsed: Parsed): TakeOver => {
  if (ctx.journaled.length === 0) return { event: undefined, adopt: [] }
  // Its tells were lost with it.
  const runs = new Set(ctx.journaled.map((e) => e.run))
  const marked = scanMarkedLeaders(ctx.path).filter((m) => runs.has(m.run))
  const plan = planAdoption(emptySnapshot, parsed, ctx.journaled, marked, new Set(), ctx.clock())
  for (const note of plan.notes) ctx.log.line({ what: "restore", message: note })
  stopStrays(plan.strays, parsed.config.limits.killGraceMs)
  return { event: undefined, adopt: [] }
}

/** The predecessor's live processes, verified, and the `Restore` event that hands them to the reducer. */
const adoptRecorded = (ctx: TakeOverContext, loaded: Extract<LoadedState, { readonly _tag: "Usable" }>, parsed: Parsed): TakeOver => {
  const now = ctx.clock()
  const plan = planAdoption(loaded.snapshot, parsed, ctx.journaled, scanMarkedLeaders(ctx.path), verifiedRuns(loaded.snapshot), now)
  for (const note of plan.notes) ctx.log.line({ what: "restore", message: note })
  stopStrays(plan.strays, parsed.config.limits.killGraceMs)
  const recorded = recordedRuns(plan.snapshot).length
  ctx.log.line({
    what: "restore",
    message: `state file ${ctx.path}: ${plan.alive.length} of ${recorded} recorded process(es) still alive and adopted, ${recorded - plan.alive.length} gone`,
  })
  return { event: restore(plan.snapshot, plan.alive, parsed, now), adopt: plan.adopt }
}

/** Step 2 of the header: what the file left by the predecessor means, now that the socket is ours. */
const takeOverFrom = (ctx: TakeOverContext, parsed: Parsed): TakeOver => {
  const { path, loaded, log } = ctx
  // A journal without a usable state file belongs to an older lineage: its run numbers mean nothing now.
  if (loaded._tag !== "Usable") removeStateFile(ctx.journalPath)
  removeStaleTemporaries(path)
  switch (loaded._tag) {
    case "Missing":
      return stopUnrecorded(ctx, parsed)
    case "Finished": {
      const failed = removeStateFile(path)
      log.line({ what: "restore", message: `state file ${path} was left by a daemon that had stopped everything: ${failed === undefined ? "removed it" : `cannot remove it (${failed})`}; starting fresh` })
      return { event: undefined, adopt: [] }
    }
    case "Unusable": {
      const moved = setAside(path)
      const where = moved._tag === "Moved" ? `set aside as ${moved.to}` : moved.reason
      log.line({ what: "warning", message: `state file ${path} not used: ${loaded.reason}; ${where}; starting fresh` })
      return { event: undefined, adopt: [] }
    }
    case "Usable":
      return adoptRecorded(ctx, loaded, parsed)
    case "OwnerAlive":
      // openPersistence refused to open it.
      return { event: undefined, adopt: [] }
  }
}

export const openPersistence = (options: PersistenceOptions): Persistence | StateFileInUse => {
  const { path, log } = options
  const boot = bootId()
  const loaded: LoadedState = readStateFile(path, boot)
  if (loaded._tag === "OwnerAlive") return new StateFileInUse({ path, pid: loaded.pid })
  const clock = makeBootClock(loaded._tag === "Usable" ? loaded.header.clockAnchorMs : bootAnchorMs())
  const warn = (message: string): void => log.line({ what: "warning", message })
  const journalPath = journalPathFor(path)
  const journaled = loaded._tag === "Usable" || loaded._tag === "Missing" ? readJournal(journalPath) : []
  let latest: State | undefined
  /** `Closed` once the daemon leaves: later batches are not written. */
  let batches: "Written" | "Closed" = "Written"
  const journal: SpawnJournal | undefined = boot === undefined ? undefined : makeSpawnJournal(journalPath, journaled, warn)
  const header: StateHeader | undefined =
    boot === undefined
      ? undefined
      : { format: stateFormat, version: 1, bootId: boot, clockAnchorMs: clock.anchorMs, daemon: { pid: process.pid, identity: processIdentity(process.pid) ?? null } }
  const writer = header === undefined ? undefined : makeFileWriter(options, header, journal, () => latest)
  if (writer === undefined) warn(`no boot id in /proc/sys/kernel/random/boot_id: no state file, a restarted daemon will not re-adopt processes`)
  const throttle = makeThrottle(options.minIntervalMs ?? 100, () => writer?.request())

  const onBatch = (state: State): void => {
    if (writer === undefined || batches === "Closed") return
    if (latest !== undefined && !snapshotChanged(latest, state)) return
    latest = state
    throttle.request()
  }
  const close = (): void => {
    batches = "Closed"
  }
  const finish = async (): Promise<void> => {
    close()
    throttle.cancel()
    if (writer === undefined) return
    writer.close()
    await writer.flush()
    const failed = removeStateFile(path) ?? removeStateFile(journalPath)
    if (failed !== undefined) warn(`cannot remove the state file ${path}: ${failed}; the next daemon will set it aside`)
  }
  const handOver = async (): Promise<void> => {
    throttle.flushHeld()
    // Later batches are not written: the successor learns what happens from now on from /proc and the journal.
    close()
    if (writer === undefined) return
    await writer.flush()
    writer.close()
  }
  /** A throttled write goes out now: the caller waits for the latest state to be on disk. */
  const flush = (): Promise<void> => {
    throttle.flushHeld()
    return writer?.flush() ?? Promise.resolve()
  }
  const beforeSpawn = (spec: { readonly tag: string; readonly run: number }): void => journal?.append({ tag: spec.tag, run: spec.run })
  const takeOver = (parsed: Parsed): TakeOver => takeOverFrom({ path, journalPath, loaded, journaled, clock, log }, parsed)
  return { _tag: "Opened", path, clock, onBatch, beforeSpawn, takeOver, finish, handOver, flush, writer }
}
