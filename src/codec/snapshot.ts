/**
 * The state file (issue 4): the core's `Snapshot` as JSON, decoded with io-ts. A file that does
 * not decode is never trusted in part: the daemon reports it, sets it aside and starts fresh.
 */
import type { Mode } from "../core/config.ts"
import { modes } from "../core/config.ts"
import { decodeJson } from "./json.ts"
import type { Snapshot } from "../core/snapshot.ts"
import { E, t } from "../ioTs.ts"

const modeCodec = t.keyof(Object.fromEntries(modes.map((mode) => [mode, null])) as Record<Mode, null>)

const entryDef = t.type({
  group: t.string,
  tag: t.string,
  levels: t.readonlyArray(t.string),
  mode: modeCodec,
  command: t.string,
  line: t.number,
})

const completion = t.union([t.type({ _tag: t.literal("NotRun") }), t.type({ _tag: t.literal("Ran"), ok: t.boolean })])
const jail = t.union([t.type({ _tag: t.literal("Free") }), t.type({ _tag: t.literal("Jailed"), until: t.number })])

const outcome = t.union([
  t.type({ _tag: t.literal("Exited"), code: t.number }),
  t.type({ _tag: t.literal("Signaled"), signal: t.string }),
  t.type({ _tag: t.literal("SpawnFailed"), reason: t.string }),
  t.type({ _tag: t.literal("Vanished") }),
])

/** Fields added later are optional, so a state file an older daemon wrote still decodes. */
const proc = t.intersection([
  t.type({
    run: t.number,
    pid: t.union([t.number, t.null]),
    identity: t.union([t.string, t.null]),
    since: t.number,
    stopping: t.boolean,
    def: entryDef,
  }),
  t.partial({ leaderExit: outcome }),
])

const snapshotCodec = t.type({
  version: t.literal(1),
  nextRun: t.number,
  lifecycle: t.keyof({ running: null, stopping: null, halted: null }),
  entries: t.readonlyArray(
    t.intersection([
      t.type({
        tag: t.string,
        proc: t.union([proc, t.null]),
        completion,
        jail,
        starts: t.readonlyArray(t.number),
        restarts: t.number,
      }),
      t.partial({ lastExit: t.type({ outcome, at: t.number }) }),
    ]),
  ),
  groups: t.readonlyArray(
    t.type({
      name: t.string,
      level: t.union([t.string, t.null]),
      phase: t.keyof({ stopped: null, start: null, run: null, fail: null, stopping: null }),
      seq: t.number,
    }),
  ),
})

export const encodeSnapshot = (snapshot: Snapshot): string => `${JSON.stringify(snapshot)}\n`

/** Why the text is not a usable state file, or the snapshot it holds. */
export const decodeSnapshot = (text: string): E.Either<string, Snapshot> => decodeJson(snapshotCodec, text)
