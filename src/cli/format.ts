/**
 * Text renderings for `isinit`: aligned tables of status, and the steps of a plan.
 * Pure functions of the data, so the daemon's answer, the status file and the simulator's final
 * report all print the same way.
 */
import type { PlanStep } from "../codec/protocol.ts"
import { readyProbeOf } from "../codec/protocol.ts"
import type { GroupReport, StatusReport } from "../core/report.ts"
import type { StatusLine } from "../core/status.ts"

/** Columns padded to their widest cell, two spaces apart, no trailing blanks. */
export const table = (header: readonly string[], rows: readonly (readonly string[])[], indent = ""): string => {
  const all = [header, ...rows]
  const widths = header.map((_, column) => Math.max(...all.map((row) => (row[column] ?? "").length)))
  return all
    .map((row) => indent + row.map((cell, column) => cell.padEnd(widths[column] ?? 0)).join("  ").trimEnd())
    .join("\n")
    .concat("\n")
}

/** `42s`, `1m30s`, `2h5m`: a delay at a glance. */
const formatDelay = (ms: number): string => {
  const seconds = Math.max(0, Math.ceil(ms / 1000))
  if (seconds < 60) return `${seconds}s`
  const minutes = Math.floor(seconds / 60)
  if (minutes < 60) return `${minutes}m${seconds % 60 === 0 ? "" : `${seconds % 60}s`}`
  return `${Math.floor(minutes / 60)}h${minutes % 60 === 0 ? "" : `${minutes % 60}m`}`
}

const dash = (value: string | number | null | undefined): string => (value === null || value === undefined || value === "" ? "-" : String(value))

/** The groups alone: name, state, level (what the status file knows). */
export const groupsTable = (rows: readonly Pick<StatusLine, "group" | "state" | "level">[]): string =>
  table(["GROUP", "STATE", "LEVEL"], rows.map((r) => [r.group, r.state, dash(r.level)]))

const entriesTable = (group: GroupReport, now: number | undefined): string =>
  table(
    ["TAG", "MODE", "STATE", "PID", "RESTARTS", "JAILED UNTIL", "LAST EXIT", "LOG"],
    group.entries.map((e) => [
      e.tag,
      e.mode,
      e.state,
      dash(e.pid),
      String(e.restarts),
      e.jailedUntil === null ? "-" : now === undefined ? `t=${e.jailedUntil}ms` : `in ${formatDelay(e.jailedUntil - now)}`,
      dash(e.lastExit),
      dash(e.log),
    ]),
    "  ",
  )

/**
 * The daemon's view: a table of groups, then each group's entries (mode, state, pid, restarts,
 * jail, where it logs). `now` is the daemon's clock, to show a jail's end as a delay.
 */
export const renderStatus = (report: StatusReport, now: number | undefined): string => {
  const parts: string[] = []
  if (report.lifecycle !== "running") parts.push(`daemon: ${report.lifecycle}\n`)
  parts.push(groupsTable(report.groups.map((g) => ({ group: g.group, state: g.state, level: g.level }))))
  for (const group of report.groups) {
    if (group.entries.length === 0) continue
    parts.push(`\n${group.group} (${group.state}${group.level === "" ? "" : `, level ${group.level}`}):\n`)
    parts.push(entriesTable(group, now))
  }
  return parts.join("")
}

/** One line per step of a plan, numbered in the order the daemon would take them. */
export const renderPlanSteps = (effects: readonly PlanStep[]): readonly string[] => {
  const rows: string[][] = []
  for (const effect of effects) {
    switch (effect._tag) {
      case "Spawn":
        rows.push(["start", `${effect.group}/${effect.tag}`, effect.command])
        break
      case "RunSync":
        rows.push(["run and wait", `${effect.group}/${effect.tag}`, effect.command])
        break
      case "Kill":
        rows.push(
          effect.signal !== "SIGKILL"
            ? ["stop", effect.tag, `${effect.signal} to its process group, SIGKILL after the grace`]
            : ["kill", effect.tag, "SIGKILL to its process group"],
        )
        break
      case "Log": {
        // Rule 20: the plan assumes each ready probe passes; it waits there.
        const probe = readyProbeOf(effect.entry)
        if (probe !== undefined) rows.push(["wait until ready", effect.entry.tag ?? "", probe])
        break
      }
      case "WriteStatus":
        break
    }
  }
  // An empty header row keeps the columns aligned; it is dropped from the output.
  return table(["", "", "", ""], rows.map((row, i) => [`${i + 1}.`, ...row])).trimEnd().split("\n").slice(1)
}

/** Whether the plan stops at a wait/test barrier (the entries after it start when it exits). */
export const endsAtBarrier = (effects: readonly PlanStep[]): boolean => effects.some((effect) => effect._tag === "RunSync")
