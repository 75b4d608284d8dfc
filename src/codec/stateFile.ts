/**
 * isinitd's state file: a header line (what wrote it: boot, clock anchor, daemon process), then
 * the core's `DaemonSnapshot` (codec/snapshot.ts) on the next line. Both are decoded with io-ts; a file
 * that does not decode as a whole is never used in part.
 */
import type { DaemonSnapshot } from "../core/snapshot.ts"
import { E, t } from "../lib/ioTs.ts"
import { decodeJson } from "./json.ts"
import { decodeSnapshot, encodeSnapshot } from "./snapshot.ts"

export const stateFormat = "isinitd-state" as const

const headerCodec = t.type({
  format: t.literal(stateFormat),
  version: t.literal(1),
  /** /proc/sys/kernel/random/boot_id of the boot the recorded processes belong to. */
  bootId: t.string,
  /** The clock anchor (ms) the recorded times are relative to; a successor keeps using it. */
  clockAnchorMs: t.number,
  /** The daemon that wrote the file: a successor refuses to start while it is still alive. */
  daemon: t.type({ pid: t.number, identity: t.union([t.string, t.null]) }),
})

export type StateHeader = t.TypeOf<typeof headerCodec>

export type DecodedState =
  | { readonly _tag: "Decoded"; readonly header: StateHeader; readonly snapshot: DaemonSnapshot }
  | { readonly _tag: "Undecodable"; readonly reason: string }

export const encodeStateFile = (header: StateHeader, snapshot: DaemonSnapshot): string => `${JSON.stringify(header)}\n${encodeSnapshot(snapshot)}`

const undecodable = (reason: string): DecodedState => ({ _tag: "Undecodable", reason })

export const decodeStateFile = (text: string): DecodedState => {
  const newline = text.indexOf("\n")
  if (newline < 0) return undecodable("no header line: not an isinitd state file, or cut short")
  const header = decodeJson(headerCodec, text.slice(0, newline))
  if (E.isLeft(header)) return undecodable(`not an isinitd state file header: ${header.left}`)
  const snapshot = decodeSnapshot(text.slice(newline + 1))
  if (E.isLeft(snapshot)) return undecodable(`snapshot: ${snapshot.left}`)
  return { _tag: "Decoded", header: header.right, snapshot: snapshot.right }
}

/**
 * The spawn journal beside the state file: one line per spawn, appended before the process exists,
 * so that a successor knows every run started after the last state-file write, even one that has
 * already ended. A torn last line (a crash in the middle of an append) is skipped.
 */
export interface JournalEntry {
  readonly tag: string
  readonly run: number
}

const journalLine = t.type({ tag: t.string, run: t.number })

export const encodeJournalLine = (entry: JournalEntry): string => `${JSON.stringify({ tag: entry.tag, run: entry.run })}\n`

export const decodeJournal = (text: string): readonly JournalEntry[] =>
  text.split("\n").flatMap((line) => {
    if (line === "") return []
    try {
      const decoded = journalLine.decode(JSON.parse(line))
      return E.isRight(decoded) && Number.isSafeInteger(decoded.right.run) ? [decoded.right] : []
    } catch {
      return []
    }
  })
