/**
 * The state file on disk: where it lives, reading it at startup (never trusted blindly), setting a
 * bad one aside, and the coalesced atomic writer (the status file's writer, reused).
 *
 * Lifecycle. The daemon writes the file after every batch of events that changed what a snapshot
 * holds, and removes it when it exits after a stopall: a file that exists at startup therefore
 * means the previous daemon died while managing processes. A file that does not decode, comes from
 * another boot (every recorded pid is meaningless after a reboot), or was left by a daemon that
 * had already halted is set aside and the daemon starts fresh, saying why.
 */
import { appendFileSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs"
import { basename, dirname, join } from "node:path"
import type { JournalEntry, StateHeader } from "../codec/stateFile.ts"
import { decodeJournal, decodeStateFile, encodeJournalLine } from "../codec/stateFile.ts"
import type { DaemonSnapshot } from "../core/snapshot.ts"
import { statFields } from "./procfs.ts"
import type { StatusWriter } from "./statusFile.ts"
import { makeStatusWriter } from "./statusFile.ts"
import { describeError } from "./errors.ts"

const defaultStateName = "isinitd.state"

/** Without `--state`, the state file lives beside the status file. */
export const statePathFor = (initstat: string): string => join(dirname(initstat), defaultStateName)

export type LoadedState =
  | { readonly _tag: "Missing" }
  /** Decoded, from this boot, written by a daemon that is gone: adopt from it. */
  | { readonly _tag: "Usable"; readonly header: StateHeader; readonly snapshot: DaemonSnapshot }
  /** Corrupt, foreign, from another boot or left by a halted daemon: set aside, start fresh. */
  | { readonly _tag: "Unusable"; readonly reason: string }
  /** Left by a daemon that had stopped everything (it died before removing the file): nothing to adopt. */
  | { readonly _tag: "Finished" }
  /** The daemon that wrote it still runs: starting a second one would supervise its processes twice. */
  | { readonly _tag: "OwnerAlive"; readonly pid: number }


/** Reads and judges the state file; never throws. */
export const readStateFile = (path: string, currentBootId: string | undefined): LoadedState => {
  let text: string
  try {
    text = readFileSync(path, "utf8")
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return { _tag: "Missing" }
    return { _tag: "Unusable", reason: `cannot read it: ${describeError(e)}` }
  }
  const decoded = decodeStateFile(text)
  if (decoded._tag === "Undecodable") return { _tag: "Unusable", reason: `corrupt or foreign: ${decoded.reason}` }
  const { header, snapshot } = decoded
  if (currentBootId === undefined) return { _tag: "Unusable", reason: "this system has no boot id (/proc/sys/kernel/random/boot_id), so its pids cannot be trusted" }
  if (header.bootId !== currentBootId) return { _tag: "Unusable", reason: `written before a reboot (boot ${header.bootId}, now ${currentBootId}): none of its processes can be alive` }
  const owner = header.daemon
  const ownerStat = statFields(owner.pid)
  if (owner.pid !== process.pid && owner.identity !== null && ownerStat?.[19] === owner.identity && ownerStat[0] !== "Z" && ownerStat[0] !== "X") {
    return { _tag: "OwnerAlive", pid: owner.pid }
  }
  if (snapshot.lifecycle === "halted") return { _tag: "Finished" }
  return { _tag: "Usable", header, snapshot }
}

/** A file-name-safe timestamp: 2026-05-01T10-20-30.123Z. */
const stamp = (at: Date): string => at.toISOString().replace(/:/g, "-")

/** Renames a bad state file to `FILE.bad-TIME` for a human to look at; returns the new name. */
export const setAside = (path: string, at: Date = new Date()): { readonly _tag: "Moved"; readonly to: string } | { readonly _tag: "Failed"; readonly reason: string } => {
  const to = `${path}.bad-${stamp(at)}`
  try {
    renameSync(path, to)
    return { _tag: "Moved", to }
  } catch (e) {
    // Not even a rename: remove it, so that it cannot be trusted by the next start either.
    try {
      rmSync(path, { force: true })
      return { _tag: "Failed", reason: `cannot rename it (${describeError(e)}); removed it` }
    } catch (e2) {
      return { _tag: "Failed", reason: `cannot rename it (${describeError(e)}) nor remove it (${describeError(e2)})` }
    }
  }
}

/** After a clean exit (every process stopped), the next daemon must start fresh. */
export const removeStateFile = (path: string): string | undefined => {
  try {
    rmSync(path, { force: true })
    return undefined
  } catch (e) {
    return describeError(e)
  }
}

export interface StateWriterOptions {
  readonly path: string
  /** The whole file from the latest state, called at write time (so coalesced requests write it once). */
  readonly render: () => string
  readonly warn: (message: string) => void
  readonly retryMs?: number
  readonly maxRetryMs?: number
}

/** Coalesced, atomic (write a temporary file, rename it) and retried on failure, like the status file. */
export const makeStateWriter = (options: StateWriterOptions): StatusWriter => makeStatusWriter({ ...options, name: "state file" })

/** The spawn journal of a state file (see codec/stateFile.ts). */
export const journalPathFor = (statePath: string): string => `${statePath}.spawns`

/** The journal's entries; a missing or unreadable journal has none. */
export const readJournal = (path: string): readonly JournalEntry[] => {
  try {
    return decodeJournal(readFileSync(path, "utf8"))
  } catch {
    return []
  }
}

export interface SpawnJournal {
  /** Before a spawn: one small synchronous append (no rename, no fsync), so a crash right after the spawn loses nothing. */
  readonly append: (entry: JournalEntry) => void
  /** A state file listing every run below `nextRun` is on disk: empty the journal if that covers it all. */
  readonly covered: (nextRun: number) => void
  readonly remove: () => void
}

export const makeSpawnJournal = (path: string, existing: readonly JournalEntry[], warn: (message: string) => void): SpawnJournal => {
  /** Highest run appended and not yet covered by a written state file; -1 when the journal is empty. */
  let highest = existing.reduce((max, e) => Math.max(max, e.run), -1)
  let failing = false
  const failed = (what: string, e: unknown): void => {
    if (!failing) warn(`cannot ${what} the spawn journal ${path}: ${describeError(e)}; a crash now could start a process twice`)
    failing = true
  }
  const ok = (): void => {
    if (failing) warn(`spawn journal ${path} written again`)
    failing = false
  }
  return {
    append: (entry) => {
      try {
        appendFileSync(path, encodeJournalLine(entry), { mode: 0o600 })
        highest = Math.max(highest, entry.run)
        ok()
      } catch (e) {
        failed("append to", e)
      }
    },
    covered: (nextRun) => {
      if (highest < 0 || highest >= nextRun) return
      try {
        writeFileSync(path, "")
        highest = -1
        ok()
      } catch (e) {
        failed("empty", e)
      }
    },
    remove: () => {
      rmSync(path, { force: true })
    },
  }
}

/**
 * Removes the writer's temporary files (`.NAME.PID.tmp`) left by daemons killed in the middle of a
 * write; a live process's file is left alone. Returns how many were removed.
 */
export const removeStaleTemporaries = (path: string): number => {
  const pattern = new RegExp(`^\\.${basename(path).replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}\\.(\\d+)\\.tmp$`)
  let removed = 0
  let names: string[]
  try {
    names = readdirSync(dirname(path))
  } catch {
    return 0
  }
  for (const name of names) {
    const pid = Number(pattern.exec(name)?.[1])
    if (!Number.isInteger(pid) || pid === process.pid || statFields(pid) !== undefined) continue
    try {
      rmSync(join(dirname(path), name), { force: true })
      removed++
    } catch {
      // not ours to remove: left alone
    }
  }
  return removed
}
