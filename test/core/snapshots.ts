/** Snapshots and adoption inputs for the tests of adoption (core) and of the state file (runtime). */
import type { Entry, Mode, Parsed } from "../../src/core/config.ts"
import { noOptions } from "../../src/core/options.ts"
import { makeConfig } from "../../src/core/config.ts"
import type { FoundRun } from "../../src/core/adoption.ts"
import type { EntrySnapshot, DaemonSnapshot } from "../../src/core/snapshot.ts"

export const def = (tag: string, mode: Mode, line: number, levels = ["1"], group = "g"): Entry => ({ group, tag, levels, mode, command: `cmd-${tag}`, line, options: noOptions })
export const defs = [def("srv", "respawn", 1), def("one", "once", 2), def("w", "wait", 3), def("t", "test", 4), def("other", "respawn", 5, ["2"])]
export const parsed: Parsed = { config: makeConfig(defs), problems: [] }
export const byTag = new Map(defs.map((d) => [d.tag, d]))

export const saved = (tag: string, proc: { run: number; pid: number | null; identity: string | null } | null, extra: Partial<EntrySnapshot> = {}): EntrySnapshot => ({
  tag,
  proc: proc === null ? null : { _tag: "Running", ...proc, since: 100, def: byTag.get(tag) ?? def(tag, "respawn", 9) },
  completion: { _tag: "NotRun" },
  jail: { _tag: "Free" },
  starts: [],
  restarts: 0,
  ...extra,
})
export const snap = (entries: readonly EntrySnapshot[], nextRun: number, level: string | null = "1"): DaemonSnapshot => ({
  version: 1,
  nextRun,
  lifecycle: "running",
  entries,
  groups: [{ name: "g", level, phase: "start", seq: 1 }],
})
export const marked = (tag: string, run: number, pid: number, identity = `${pid}00`): FoundRun => ({ tag, run, pid, identity })

