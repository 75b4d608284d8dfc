/**
 * Helpers for the fault-injection tests: crash the daemon with SIGKILL, start its successor, and
 * look at what really runs in /proc (processes carrying the lab's marker and a run tag).
 */
import { readFileSync } from "node:fs"
import type { Daemon, Lab } from "../runtime/daemonHarness.ts"
import { lines, markedPids } from "../runtime/daemonHarness.ts"
import { procStat, until } from "../runtime/helpers.ts"

/** SIGKILL the daemon (no cleanup of its own) and wait until it is gone. */
export const crash = async (d: Daemon): Promise<void> => {
  d.child.kill("SIGKILL")
  await d.exited()
}

/** The value of `name` in a process's environment, if readable. */
export const envOf = (pid: number, name: string): string | undefined => {
  try {
    for (const item of readFileSync(`/proc/${pid}/environ`, "latin1").split("\0")) {
      if (item.startsWith(`${name}=`)) return item.slice(name.length + 1)
    }
  } catch {
    // gone
  }
  return undefined
}

/** Live (non-zombie) processes of the lab that carry run tag `tag` (ISINIT_TAG), leaders and members. */
export const pidsOfTag = (lab: Pick<Daemon, "marker">, tag: string): number[] => markedPids(lab.marker).filter((pid) => envOf(pid, "ISINIT_TAG") === tag)

/** Process groups with a live process carrying run tag `tag`: one per live run of the entry. */
export const groupsOfTag = (lab: Pick<Daemon, "marker">, tag: string): number[] => [
  ...new Set(pidsOfTag(lab, tag).flatMap((pid) => procStat(pid)?.pgrp ?? [])),
]

/** How many times each tag appended itself to a runs file. */
export const countTags = (file: string): ReadonlyMap<string, number> => {
  const counts = new Map<string, number>()
  for (const tag of lines(file)) counts.set(tag, (counts.get(tag) ?? 0) + 1)
  return counts
}

/** Start the daemon again on the same lab (same config, socket, status and state file). */
export const restart = (lab: Lab): Promise<Daemon> => lab.start()

/** The daemon's stderr, once a line matches (stderr may arrive after a socket answer). */
export const logged = (d: Daemon, pattern: RegExp, timeoutMs = 20_000): Promise<true> =>
  until(`a log line matching ${pattern}`, () => pattern.test(d.log()), timeoutMs)
