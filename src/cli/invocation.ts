/**
 * What `isinit` was asked to do: its usage text and the parsing of its arguments into a `Command`.
 * Node built-ins only, so that `--help` and `--version` load nothing else.
 */
import { parseArgs } from "node:util"
import { defaultSocketPath } from "../paths.ts"
import { UsageError, expectCount, onlyFlags, timeoutOptionMs, waitTimeoutMs } from "./args.ts"

export const usage = `Usage:
  isinit [-c FILE] [-s SOCKET] GROUP LEVEL [--wait] [--timeout S] [--force]   (also: isinit tell ...)
  isinit [-c FILE] [-s SOCKET] stopall [--timeout S]                (also: isinit -k)
  isinit [-c FILE] [-s SOCKET] reload [--force] [--timeout S]
  isinit [-c FILE] [-s SOCKET] handover [--timeout S]
  isinit [-c FILE] [-s SOCKET] status [GROUP] [--level L] [--json] [--timeout S]
  isinit [-c FILE] check [--strict]
  isinit [-c FILE] [-s SOCKET] logs TAG [-n N] [-f]
  isinit [-c FILE] [-s SOCKET] plan GROUP LEVEL [--json] [--timeout S]
  isinit simulate SCENARIO [--json] [--max-events N]
  isinit --etcd URLS [--cluster NAME] tell|clear|status|config|forget|rollout|move ...   (cluster mode, see
                                                  isinit --etcd URLS --help and docs/cluster.md;
                                                  --etcd-config FILE can give the URLs instead)
  isinit --help | --version

Commands:
  GROUP LEVEL   switch GROUP to runlevel LEVEL. If no daemon listens, isinitd is started first
                in the background with the same -c and -s, in /, with a clean environment
                (PATH, HOME, USER, LOGNAME, locale and TZ; see README), logging to isinitd.log
                beside the socket. --wait blocks until the transition is over: exit 0 when the
                group runs, 1 when a test entry failed, a later tell of another level replaced
                it, or --timeout S passed (default 600 s). Telling the level a group is at in
                fail reruns its failed tests. A group named like a command needs the tell form.
                A tell re-reads the isinittab; one that would stop more than half of the
                running entries (their lines gone, as in a file cut by a rewrite) is refused:
                --force applies it anyway (the share: :::removal-guard:).
  stopall       stop every process of every group; returns once every process is gone and the
                daemon has exited (so "isinit stopall && isinit GROUP LEVEL" starts afresh).
  reload        re-read the isinittab and re-apply every group's level (as SIGHUP does);
                --force as for a tell.
  handover      the daemon writes its state file and exits, leaving every process running;
                the next isinitd (started by hand, by systemd, or by the next tell) adopts them
                all. Returns once the daemon has exited. For upgrades and restarts of isinitd.
  status        groups (state, level) and their entries (mode, state, pid, restarts, jail);
                --json prints the daemon's status report. When the daemon cannot be asked (none
                runs, it does not answer, permission denied), the groups from the status file,
                saying why.
  check         print every error and warning of the isinittab with its line; exit 1 on errors.
                Warns of what the daemon or old clients trip over (group names the original
                protocol cannot carry, commands in daemon mode or too long to execute). As
                root, or with --strict, also the StrictModes refusal a root daemon would make
                (the file or its directory writable by others, or not owned by root).
  logs          print the last N lines (-n, default 10) of TAG's log file; -f keeps printing what
                is written, across rotations (like tail -F), until interrupted. The file is the
                one the isinittab gives TAG (:::option:TAG:log=..., by default log/TAG.log beside
                the status file); read directly, so it works with no daemon running.
  plan          what GROUP LEVEL would do now, in order (stops before starts), without doing it
                (against the running daemon's state, or everything stopped when no daemon runs).
  simulate      run a scenario file in the simulator (virtual time) and print its timeline.
                A scenario that runs away (a respawn loop without end, a long run) is
                stopped after --max-events N events (default 100000): exit 1, saying so.

Options:
  -c, --config FILE   the isinittab (default: $ISINITTAB, else /etc/isinittab)
  -s, --socket PATH   the daemon's socket (default: the isinittab's :::socket:, else ${defaultSocketPath})
  -k                  same as stopall
      --wait          (tell) wait for the transition to end
      --timeout S     give up after S seconds: waiting for the daemon's answer (default 10), for
                      a --wait transition (default 600), for the daemon to exit after stopall
                      (default: the kill grace + 30) or handover (default 30). A tell that timed
                      out may still be applied: the daemon got it and may be stuck or stopped
      --force         (tell, reload) apply the isinittab even if it stops most of what runs
      --level L       (status) only groups at level L
      --json          (status, plan, simulate) machine-readable output
      --strict        (check) check ownership and modes as a root daemon would
      --max-events N  (simulate) stop the simulation after N events
  -n, --lines N       (logs) how many of the last lines to print (default 10; 0: none)
  -f, --follow        (logs) keep printing what is written, across rotations
  -h, --help          this text
  -V, --version       print the version
`

export const synopsis = usage.slice(0, usage.indexOf("\nCommands:") + 1)

/** How long to wait for the daemon's answer without --timeout. */
export const defaultAnswerMs = 10_000

export type Command =
  /** `timeoutMs` bounds the transition with `wait`, else the answer. */
  | { readonly _tag: "Tell"; readonly group: string; readonly level: string; readonly wait: boolean; readonly timeoutMs: number; readonly force: boolean }
  /** `timeoutMs` bounds the wait for the daemon's exit; `undefined`: the default (see `exitTimeoutMs`). */
  | { readonly _tag: "StopAll"; readonly timeoutMs: number | undefined }
  | { readonly _tag: "Reload"; readonly force: boolean; readonly timeoutMs: number }
  | { readonly _tag: "Handover"; readonly timeoutMs: number | undefined }
  | { readonly _tag: "Status"; readonly group: string | undefined; readonly level: string | undefined; readonly json: boolean; readonly timeoutMs: number }
  | { readonly _tag: "Check"; readonly strict: boolean }
  | { readonly _tag: "Plan"; readonly group: string; readonly level: string; readonly json: boolean; readonly timeoutMs: number }
  | { readonly _tag: "Simulate"; readonly file: string; readonly json: boolean; readonly maxEvents: number | undefined }
  | { readonly _tag: "Logs"; readonly tag: string; readonly lines: number; readonly follow: boolean }
  | { readonly _tag: "Help" }
  | { readonly _tag: "Version" }

export interface Invocation {
  readonly command: Command
  readonly config: string | undefined
  readonly socket: string | undefined
}

const options = {
  config: { type: "string", short: "c" },
  socket: { type: "string", short: "s" },
  k: { type: "boolean", short: "k" },
  wait: { type: "boolean" },
  timeout: { type: "string" },
  level: { type: "string" },
  json: { type: "boolean" },
  force: { type: "boolean" },
  strict: { type: "boolean" },
  "max-events": { type: "string" },
  lines: { type: "string", short: "n" },
  follow: { type: "boolean", short: "f" },
  help: { type: "boolean", short: "h" },
  version: { type: "boolean", short: "V" },
} as const

type Values = ReturnType<typeof parseArgs<{ options: typeof options; allowPositionals: true }>>["values"]

/** The flags that only some commands take. */
const commandFlags = ["wait", "timeout", "level", "json", "force", "strict", "max-events", "lines", "follow"] as const

const onlyFor = (values: Values, allowed: readonly (typeof commandFlags)[number][], command: string): void => onlyFlags(values, commandFlags, allowed, command)

const answerTimeoutMs = (values: Values): number => (values.timeout === undefined ? defaultAnswerMs : timeoutOptionMs(values.timeout))

const tellCommand = (values: Values, group: string, level: string): Command => {
  onlyFor(values, ["wait", "timeout", "force"], "a tell")
  const wait = values.wait === true
  return { _tag: "Tell", group, level, wait, timeoutMs: wait ? waitTimeoutMs(values) : answerTimeoutMs(values), force: values.force === true }
}

const stopAllCommand = (values: Values): Command => {
  onlyFor(values, ["timeout"], "stopall")
  return { _tag: "StopAll", timeoutMs: values.timeout === undefined ? undefined : timeoutOptionMs(values.timeout) }
}

const maxEventsOf = (text: string | undefined): number | undefined => {
  if (text === undefined) return undefined
  const n = Number(text)
  if (!/^\d+$/.test(text) || n < 1 || !Number.isSafeInteger(n)) throw new UsageError(`--max-events takes a whole number of events, at least 1, not "${text}"`)
  return n
}

/** `-n N`: a whole number of lines (tail's default, 10, without it). */
const linesOf = (text: string | undefined): number => {
  if (text === undefined) return 10
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(Number(text))) throw new UsageError(`-n takes a whole number of lines, not "${text}"`)
  return Number(text)
}

const commandOf = (values: Values, positionals: readonly string[]): Command => {
  if (values.help === true) return { _tag: "Help" }
  if (values.version === true) return { _tag: "Version" }
  if (values.k === true) {
    if (positionals.length > 0) throw new UsageError(`-k (stopall) takes no arguments, got ${positionals.join(" ")}`)
    return stopAllCommand(values)
  }
  const [first, ...rest] = positionals
  if (first === undefined) throw new UsageError("missing command: give GROUP LEVEL, or one of stopall, reload, handover, status, check, logs, plan, simulate")
  switch (first) {
    case "help":
      return { _tag: "Help" }
    case "tell": {
      const [group = "", level = ""] = expectCount("tell", rest, 2, "GROUP LEVEL")
      return tellCommand(values, group, level)
    }
    case "stopall":
      expectCount("stopall", rest, 0, "no arguments")
      return stopAllCommand(values)
    case "reload":
      expectCount("reload", rest, 0, "no arguments (a group named reload needs the tell form)")
      onlyFor(values, ["force", "timeout"], "reload")
      return { _tag: "Reload", force: values.force === true, timeoutMs: answerTimeoutMs(values) }
    case "handover":
      expectCount("handover", rest, 0, "no arguments")
      onlyFor(values, ["timeout"], "handover")
      return { _tag: "Handover", timeoutMs: values.timeout === undefined ? undefined : timeoutOptionMs(values.timeout) }
    case "status":
      if (rest.length > 1) throw new UsageError(`status takes at most one GROUP, got ${rest.join(" ")}`)
      onlyFor(values, ["level", "json", "timeout"], "status")
      return { _tag: "Status", group: rest[0], level: values.level, json: values.json === true, timeoutMs: answerTimeoutMs(values) }
    case "check":
      expectCount("check", rest, 0, "no arguments (the isinittab comes from -c or $ISINITTAB)")
      onlyFor(values, ["strict"], "check")
      return { _tag: "Check", strict: values.strict === true }
    case "plan": {
      const [group = "", level = ""] = expectCount("plan", rest, 2, "GROUP LEVEL")
      onlyFor(values, ["json", "timeout"], "plan")
      return { _tag: "Plan", group, level, json: values.json === true, timeoutMs: answerTimeoutMs(values) }
    }
    case "logs": {
      const [tag = ""] = expectCount("logs", rest, 1, "one TAG (a group named logs needs the tell form)")
      onlyFor(values, ["lines", "follow"], "logs")
      return { _tag: "Logs", tag, lines: linesOf(values.lines), follow: values.follow === true }
    }
    case "simulate": {
      const [file = ""] = expectCount("simulate", rest, 1, "one SCENARIO file")
      onlyFor(values, ["json", "max-events"], "simulate")
      return { _tag: "Simulate", file, json: values.json === true, maxEvents: maxEventsOf(values["max-events"]) }
    }
    default:
      if (positionals.length === 2) {
        const [group = "", level = ""] = positionals
        return tellCommand(values, group, level)
      }
      throw new UsageError(
        positionals.length === 1
          ? `unknown command "${first}": to tell a group, give GROUP LEVEL`
          : `unknown command "${first}" (a tell is GROUP LEVEL: two words, not ${positionals.length})`,
      )
  }
}

export const parseInvocation = (argv: readonly string[]): Invocation => {
  let parsed: { values: Values; positionals: string[] }
  try {
    parsed = parseArgs({ args: [...argv], options, allowPositionals: true, strict: true })
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error))
  }
  const { values, positionals } = parsed
  return { command: commandOf(values, positionals), config: values.config, socket: values.socket }
}

/** One of the commands. */
export type CommandOf<Tag extends Command["_tag"]> = Extract<Command, { readonly _tag: Tag }>
