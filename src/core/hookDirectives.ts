/**
 * The hook directives (`:::hook`, `:::hook-timeout`, `:::hook-limit`; hooks.ts says what they
 * mean), read with line numbers for `isinit check`. Apart from hooks.ts so that the config's types
 * (config.ts, which holds a `HookConfig`) and the directives' problems do not import each other.
 */
import type { DirectiveDoc, Problem } from "./config.ts"
import type { Hook, HookConfig, HookEvents, HookLimit } from "./hooks.ts"
import { defaultHookConfig, hookEvents, isHookEvent } from "./hooks.ts"
import { durationHelp, durationMs, respawnLimitHelp, respawnLimitOf } from "./units.ts"

export const hookDirectiveDocs: readonly DirectiveDoc[] = [
  { syntax: ":::hook:EVENT[,EVENT...]:COMMAND", default: "(none)", meaning: `run COMMAND on each EVENT (${hookEvents.join(", ")}; * for all), with the event in ISINIT_* variables` },
  { syntax: ":::hook-timeout:DURATION", default: "30s", meaning: "a hook still running after this is killed (its process group, SIGKILL), and the failure logged" },
  { syntax: ":::hook-limit:N/DURATION", default: "10/10s", meaning: "each hook starts at most N runs in any DURATION; the events over it are dropped, counted and logged" },
]

/** What the hook directives said so far; the parser keeps one per file. */
export interface HookDraft {
  readonly hooks: Hook[]
  timeoutMs: { readonly ms: number; readonly line: number } | undefined
  limit: { readonly value: HookLimit; readonly line: number } | undefined
}

export const newHookDraft = (): HookDraft => ({ hooks: [], timeoutMs: undefined, limit: undefined })

const error = (problems: Problem[], line: number, message: string): void => void problems.push({ severity: "error", line, message })

const eventsOf = (field: string): HookEvents | string => {
  const names = field.split(",").map((name) => name.trim())
  if (names.length === 1 && names[0] === "*") return { _tag: "Every" }
  const unknown = names.filter((name) => !isHookEvent(name))
  if (unknown.length > 0) return `unknown event${unknown.length === 1 ? "" : "s"} ${unknown.map((n) => `"${n}"`).join(", ")} (events: ${hookEvents.join(", ")}, or * for all)`
  return { _tag: "Some", events: names.filter(isHookEvent) }
}

const hookLine = (draft: HookDraft, problems: Problem[], line: number, value: string): void => {
  const colon = value.indexOf(":")
  const usage = "write :::hook:EVENT:COMMAND"
  if (colon < 0) return error(problems, line, `directive "hook": no command in "${value}": ${usage}`)
  const command = value.slice(colon + 1)
  const on = eventsOf(value.slice(0, colon))
  if (typeof on === "string") return error(problems, line, `directive "hook": ${on}`)
  if (command.trim() === "") return error(problems, line, `directive "hook": the command is empty: ${usage}`)
  draft.hooks.push({ on, command, line })
}

const repeated = (problems: Problem[], line: number, name: string, earlier: { readonly line: number } | undefined): void => {
  if (earlier !== undefined) problems.push({ severity: "warning", line, message: `directive "${name}" repeated: this line replaces line ${earlier.line}` })
}

/**
 * One `:::hook...` directive. Returns false for a name that is not a hook directive, so the
 * parser's own "unknown directive" warning applies.
 */
export const hookDirective = (draft: HookDraft, problems: Problem[], line: number, name: string, value: string): boolean => {
  switch (name) {
    case "hook":
      hookLine(draft, problems, line, value)
      return true
    case "hook-timeout": {
      repeated(problems, line, name, draft.timeoutMs)
      const ms = durationMs(value)
      if (ms === undefined) error(problems, line, `directive "hook-timeout": bad value "${value}": expected DURATION, ${durationHelp}`)
      else draft.timeoutMs = { ms, line }
      return true
    }
    case "hook-limit": {
      repeated(problems, line, name, draft.limit)
      const limit = respawnLimitOf(value)
      if (limit === undefined) error(problems, line, `directive "hook-limit": bad value "${value}": expected ${respawnLimitHelp}`)
      else draft.limit = { value: limit, line }
      return true
    }
    default:
      return false
  }
}

export const finishHooks = (draft: HookDraft): HookConfig => ({
  hooks: draft.hooks,
  timeoutMs: draft.timeoutMs?.ms ?? defaultHookConfig.timeoutMs,
  limit: draft.limit?.value ?? defaultHookConfig.limit,
})
