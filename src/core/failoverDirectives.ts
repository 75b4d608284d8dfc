/**
 * The `:::failover` directives of the isinittab (the original parser skips every `:::` line):
 *
 *   :::failover:GROUP:LEVEL[:NODE,NODE,...]   GROUP runs at LEVEL on exactly one node
 *   :::failover-ttl:DURATION                   lease TTL (10s; at least 2s)
 *   :::failover-renew-deadline:DURATION        a holder stops its groups this long after its last
 *                                              acknowledged keep-alive was sent (60 % of the TTL)
 *   :::failover-kill-grace:DURATION            SIGTERM-to-SIGKILL grace of a failover stop (30 %)
 *   :::failover-takeover-delay:DURATION        a new holder's wait after a lease vanished (10 %; 0 allowed)
 *   :::failover-ban:DURATION                   how long a node whose group failed stays out (5m)
 *
 * Pure validation with line numbers, called by the parser (inittab.ts) for every directive whose
 * name starts with `failover`, and once at the end (`finishFailover`) for the rules that need the
 * whole file: the group exists, no entry of it lists `standby`, and the timing rule of failover.ts.
 */
import type { Entry, Problem } from "./config.ts"
import type { Failover, FailoverGroup, FailoverTiming } from "./failover.ts"
import { defaultTtlMs, standbyLevel, timingFor, timingProblems } from "./failover.ts"
import type { DirectiveDoc } from "./inittab.ts"
import { durationMs } from "./units.ts"

export type TimingName = "failover-ttl" | "failover-renew-deadline" | "failover-kill-grace" | "failover-takeover-delay" | "failover-ban"

const timingField: Readonly<Record<TimingName, keyof FailoverTiming>> = {
  "failover-ttl": "ttlMs",
  "failover-renew-deadline": "renewDeadlineMs",
  "failover-kill-grace": "killGraceMs",
  "failover-takeover-delay": "takeoverDelayMs",
  "failover-ban": "banMs",
}

const isTimingName = (name: string): name is TimingName => name in timingField

/** What the directives said so far; the parser keeps one per file. */
export interface FailoverDraft {
  readonly groups: Map<string, FailoverGroup>
  readonly timing: Map<TimingName, { readonly ms: number; readonly line: number }>
}

export const newFailoverDraft = (): FailoverDraft => ({ groups: new Map(), timing: new Map() })

export const failoverDirectiveDocs: readonly DirectiveDoc[] = [
  { syntax: ":::failover:GROUP:LEVEL[:NODE,...]", default: "(none)", meaning: "GROUP runs at LEVEL on exactly one node (of those listed, in order of preference)" },
  { syntax: ":::failover-ttl:DURATION", default: "10s", meaning: "failover lease TTL in etcd (at least 2s)" },
  { syntax: ":::failover-renew-deadline:DURATION", default: "60% of the TTL", meaning: "a holder stops its groups this long after its last acknowledged keep-alive was sent" },
  { syntax: ":::failover-kill-grace:DURATION", default: "30% of the TTL", meaning: "SIGTERM-to-SIGKILL grace when a failover group stops" },
  { syntax: ":::failover-takeover-delay:DURATION", default: "10% of the TTL", meaning: "a new holder's wait after the old lease vanished (0 allowed; skipped on a clean hand-over)" },
  { syntax: ":::failover-ban:DURATION", default: "5m", meaning: "how long a node whose group failed to start stays out of its election" },
]

/** A group, level or node name: one etcd key segment, one word on the socket. */
const nameProblem = (what: string, name: string): string | undefined => {
  if (name === "") return `${what} is empty`
  if (/[\s/,:]/.test(name)) return `${what} "${name}" contains whitespace, a slash, a comma or a colon`
  return undefined
}

const error = (problems: Problem[], line: number, message: string): void => void problems.push({ severity: "error", line, message })

const groupDirective = (draft: FailoverDraft, problems: Problem[], line: number, value: string): void => {
  const [group = "", level = "", nodeList, ...rest] = value.split(":")
  const usage = "write :::failover:GROUP:LEVEL or :::failover:GROUP:LEVEL:NODE,NODE,..."
  if (rest.length > 0) return error(problems, line, `directive "failover": too many fields in "${value}": ${usage}`)
  const bad = nameProblem("group", group) ?? nameProblem("level", level)
  if (bad !== undefined) return error(problems, line, `directive "failover": ${bad}: ${usage}`)
  if (level === standbyLevel) return error(problems, line, `directive "failover": the level "${standbyLevel}" is where the group waits on nodes that do not hold it; choose another`)
  const nodes = nodeList === undefined ? [] : nodeList.split(",")
  for (const node of nodes) {
    const problem = nameProblem("node", node)
    if (problem !== undefined) return error(problems, line, `directive "failover": ${problem} in the node list "${nodeList ?? ""}"`)
  }
  const repeated = nodes.find((node, i) => nodes.indexOf(node) !== i)
  if (repeated !== undefined) return error(problems, line, `directive "failover": node "${repeated}" is listed twice`)
  const earlier = draft.groups.get(group)
  if (earlier !== undefined) return error(problems, line, `directive "failover": group "${group}" is already a failover group (line ${earlier.line})`)
  draft.groups.set(group, { group, level, nodes, line })
}

/**
 * One `:::failover...` directive. Returns false for a name that is not a failover directive, so
 * the parser's own "unknown directive" warning applies.
 */
export const failoverDirective = (draft: FailoverDraft, problems: Problem[], line: number, name: string, value: string): boolean => {
  if (name === "failover") {
    groupDirective(draft, problems, line, value)
    return true
  }
  if (!isTimingName(name)) return false
  const earlier = draft.timing.get(name)
  if (earlier !== undefined) problems.push({ severity: "warning", line, message: `directive "${name}" repeated: this line replaces line ${earlier.line}` })
  const ms = durationMs(value, name === "failover-takeover-delay" ? "zero-ok" : "positive")
  if (ms === undefined) {
    error(problems, line, `directive "${name}": bad value "${value}": expected DURATION (e.g. 500ms, 10s, 2m; bare means seconds)${name === "failover-takeover-delay" ? ", 0 allowed" : ", positive"}`)
    return true
  }
  draft.timing.set(name, { ms, line })
  return true
}

const timingOf = (draft: FailoverDraft): FailoverTiming => {
  const base = timingFor(draft.timing.get("failover-ttl")?.ms ?? defaultTtlMs)
  const explicit = [...draft.timing].map(([name, { ms }]) => [timingField[name], ms] as const)
  return { ...base, ...Object.fromEntries(explicit) }
}

/** The rules that need the whole file; returns what the config will carry. */
export const finishFailover = (draft: FailoverDraft, entries: readonly Entry[], problems: Problem[]): Failover => {
  const timing = timingOf(draft)
  const timingLine = Math.max(0, ...[...draft.timing.values()].map((t) => t.line))
  if (draft.groups.size === 0 && draft.timing.size > 0) {
    problems.push({ severity: "warning", line: timingLine, message: "failover timing directives without any :::failover group have no effect" })
  }
  if (draft.groups.size > 0) {
    for (const problem of timingProblems(timing)) error(problems, timingLine, problem)
  }
  for (const group of draft.groups.values()) {
    const members = entries.filter((entry) => entry.group === group.group)
    if (members.length === 0) error(problems, group.line, `directive "failover": unknown group "${group.group}": no entry of the isinittab belongs to it`)
    else if (!members.some((entry) => entry.levels.includes(group.level))) {
      problems.push({ severity: "warning", line: group.line, message: `failover group "${group.group}": no entry lists level ${group.level}, so its holder runs nothing` })
    }
    for (const entry of members) {
      if (entry.levels.includes(standbyLevel)) {
        error(problems, entry.line, `entry "${entry.tag}" of failover group "${group.group}" lists the level "${standbyLevel}", where the group must run nothing`)
      }
    }
  }
  return { groups: draft.groups, timing }
}
