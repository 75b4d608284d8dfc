/**
 * The state file (issue 4): the core's `DaemonSnapshot` as JSON, decoded with io-ts. A file that does
 * not decode is never trusted in part: the daemon reports it, sets it aside and starts fresh.
 *
 * The JSON keeps the shape every version has written: a live run is `stopping: true|false`, with
 * `leaderExit` while the rest of an exited leader's group is stopped (rule 14). It is mapped to
 * and from the core's `ProcSnapshot` union here, so that an older or newer daemon reads the file
 * across a hand-over.
 */
import type { Entry } from "../core/config.ts"
import { groupPhases, lifecycles, modes } from "../core/enums.ts"
import { noOptions, optionPairs, optionsOfPairs } from "../core/options.ts"
import type { DaemonSnapshot, EntrySnapshot, GroupSnapshot, ProcSnapshot, RunSnapshot } from "../core/snapshot.ts"
import { snapshotProblems } from "../core/snapshot.ts"
import { E, t } from "../ioTs.ts"
import type { Assert, Same } from "./json.ts"
import { decodeJson, literals } from "./json.ts"

/**
 * A run's definition; its options as `[KEY, VALUE]` text (options.ts `optionPairs`), absent when
 * it has none, so files of daemons before options read as definitions without options.
 */
const entryDef = t.intersection([
  t.type({
    group: t.string,
    tag: t.string,
    levels: t.readonlyArray(t.string),
    mode: literals("mode", modes),
    command: t.string,
    line: t.number,
  }),
  t.partial({ options: t.readonlyArray(t.tuple([t.string, t.string])) }),
])
type StoredDef = t.TypeOf<typeof entryDef>

const storedDefOf = ({ options, ...def }: Entry): StoredDef => {
  const pairs = optionPairs(options)
  return pairs.length === 0 ? def : { ...def, options: pairs.map(([key, text]) => [key, text]) }
}

const defOf = ({ options, ...def }: StoredDef): Entry => ({ ...def, options: options === undefined ? noOptions : optionsOfPairs(options) })

const completion = t.union([t.type({ _tag: t.literal("NotRun") }), t.type({ _tag: t.literal("Ran"), ok: t.boolean })])
const jail = t.union([t.type({ _tag: t.literal("Free") }), t.type({ _tag: t.literal("Jailed"), until: t.number })])

const outcome = t.union([
  t.type({ _tag: t.literal("Exited"), code: t.number }),
  t.type({ _tag: t.literal("Signaled"), signal: t.string }),
  t.type({ _tag: t.literal("SpawnFailed"), reason: t.string }),
  t.type({ _tag: t.literal("Vanished") }),
])

/** Fields added later are optional, so a state file an older daemon wrote still decodes. */
const storedProc = t.intersection([
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
type StoredProc = t.TypeOf<typeof storedProc>

const storedEntry = t.intersection([
  t.type({ tag: t.string, proc: t.union([storedProc, t.null]), completion, jail, starts: t.readonlyArray(t.number), restarts: t.number }),
  t.partial({ lastExit: t.type({ outcome, at: t.number }) }),
])

const storedGroup = t.type({ name: t.string, level: t.union([t.string, t.null]), phase: literals("phase", groupPhases), seq: t.number })

const storedSnapshot = t.type({
  version: t.literal(1),
  nextRun: t.number,
  lifecycle: literals("lifecycle", lifecycles),
  entries: t.readonlyArray(storedEntry),
  groups: t.readonlyArray(storedGroup),
})

// The stored shapes are the core's, but for the live run: this stops compiling if they drift.
export type _CodecChecks = [
  Assert<Same<Omit<t.TypeOf<typeof storedEntry>, "proc">, Omit<EntrySnapshot, "proc">>>,
  Assert<Same<t.TypeOf<typeof storedGroup>, GroupSnapshot>>,
  Assert<Same<Omit<StoredProc, "stopping" | "leaderExit" | "def">, Omit<RunSnapshot, "def">>>,
  Assert<Same<Omit<StoredDef, "options">, Omit<Entry, "options">>>,
  Assert<Same<Omit<t.TypeOf<typeof storedSnapshot>, "entries">, Omit<DaemonSnapshot, "entries">>>,
]

const storedProcOf = (proc: ProcSnapshot): StoredProc => {
  const { run, pid, identity, since } = proc
  const def = storedDefOf(proc.def)
  if (proc._tag === "Running") return { run, pid, identity, since, stopping: false, def }
  const cause = proc.cause
  return { run, pid, identity, since, stopping: true, def, ...(cause._tag === "LeaderExited" ? { leaderExit: cause.outcome } : {}) }
}

const procOf = (stored: StoredProc): ProcSnapshot => {
  const { run, pid, identity, since } = stored
  const def = defOf(stored.def)
  if (!stored.stopping) return { _tag: "Running", run, pid, identity, since, def }
  const cause = stored.leaderExit === undefined ? { _tag: "Ordered" as const } : { _tag: "LeaderExited" as const, outcome: stored.leaderExit }
  return { _tag: "Stopping", run, pid, identity, since, def, cause }
}

export const encodeSnapshot = (snapshot: DaemonSnapshot): string =>
  `${JSON.stringify({ ...snapshot, entries: snapshot.entries.map((e) => ({ ...e, proc: e.proc === null ? null : storedProcOf(e.proc) })) })}\n`

/**
 * Why the text is not a usable state file, or the snapshot it holds. A snapshot that decodes but
 * breaks what every snapshot the core takes satisfies (`snapshotProblems`, asserted when it is
 * taken) is refused as well: the file was damaged or forged, and is not used in part.
 */
export const decodeSnapshot = (text: string): E.Either<string, DaemonSnapshot> => {
  const decoded = decodeJson(storedSnapshot, text)
  if (E.isLeft(decoded)) return decoded
  const stored = decoded.right
  const snapshot: DaemonSnapshot = { ...stored, entries: stored.entries.map((e) => ({ ...e, proc: e.proc === null ? null : procOf(e.proc) })) }
  const problems = snapshotProblems(snapshot)
  return problems.length === 0 ? E.right(snapshot) : E.left(`inconsistent snapshot: ${problems.slice(0, 3).join("; ")}`)
}
