/**
 * What /proc says about a process: its state, process group, session and start time. The start
 * time (field 22 of /proc/PID/stat, in clock ticks since boot) names one process and no later one
 * with the same pid, so that a recorded pid is never mistaken for a reused one. Node built-ins
 * only: the client loads this (to see a daemon exit) without loading the process table.
 */
import { readdirSync, readFileSync } from "node:fs"

/** Fields of /proc/PID/stat after "pid (comm) ", or undefined if the process is gone. */
export const statFields = (pid: number | string): string[] | undefined => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "latin1")
    // comm may hold spaces and parentheses, so cut at the last ')'.
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")
  } catch {
    return undefined
  }
}

/** The start time of `pid` (clock ticks since boot), which tells it from a later process with the same pid. */
export const processIdentity = (pid: number): string | undefined => statFields(pid)?.[19]

/** Calls `visit` with the stat fields of every live (not zombie) process; skips those that exit meanwhile. */
export const forEachLiveProcess = (visit: (pid: string, fields: readonly string[]) => void): void => {
  let names: string[]
  try {
    names = readdirSync("/proc")
  } catch {
    return
  }
  for (const name of names) {
    const first = name.charCodeAt(0)
    if (first < 48 || first > 57) continue
    const fields = statFields(name)
    if (fields === undefined || fields[0] === "Z" || fields[0] === "X") continue
    visit(name, fields)
  }
}

/** Process groups that still have a member which is not a zombie. */
export const livePgids = (): ReadonlySet<number> => {
  const live = new Set<number>()
  forEachLiveProcess((_, fields) => {
    const pgrp = Number(fields[2])
    if (Number.isInteger(pgrp)) live.add(pgrp)
  })
  return live
}

/** The children of `pid`, zombies included: /proc/PID/task/TID/children, else a /proc scan. */
export const childrenOf = (pid: number): number[] => {
  try {
    return readdirSync(`/proc/${pid}/task`).flatMap((task) =>
      readFileSync(`/proc/${pid}/task/${task}/children`, "latin1")
        .split(" ")
        .filter((child) => child !== "")
        .map(Number),
    )
  } catch {
    // A kernel without CONFIG_PROC_CHILDREN (or `pid` is gone): every process's parent, the slow way.
    return readdirSync("/proc").flatMap((name) => (/^\d+$/.test(name) && statFields(name)?.[1] === String(pid) ? [Number(name)] : []))
  }
}
