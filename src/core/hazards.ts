/**
 * What a valid isinittab line can still hold that the daemon or old clients will trip over: the
 * parser reports each as a warning on its line (`isinit check`, `config push` and the daemon's
 * start all show them). Cheap on purpose: every tell re-parses the file.
 *
 * - Names the protocols cannot carry: a group starting with `stopall` (the original line protocol
 *   turns any request line starting with it into stopall: an old client's tell of that group
 *   stops everything), a group starting with `{` (isinitd reads such a line as JSON), names that
 *   no client may send (control characters, Unicode whitespace, over 256 characters).
 * - Commands that escape supervision: a trailing `&`, `setsid`, daemonizers, daemon-mode flags.
 *   The process isinit started exits at once; what it left behind runs where no stop reaches.
 * - Commands too long to execute: one argument of execve may not exceed MAX_ARG_STRLEN (32 pages,
 *   131072 bytes, its NUL included), and a `/bin/sh -c` script is one argument.
 */
import { nameProblem } from "./names.ts"
import { argvOf, execArguments } from "./command.ts"
import { utf8Length } from "./utf8.ts"

/** MAX_ARG_STRLEN on Linux: the longest single argument execve accepts, with its NUL. */
export const maxArgumentBytes = 131_072

/** Whitespace as the parser's own warnings mean it (Perl's `\s`): those names are warned about already. */
const asciiWhitespace = /[ \t\n\r\f\v]/

/** The common answer, shared: a tell re-parses the whole file, so the clean path allocates nothing. */
const none: readonly string[] = []

const unsendable = (what: "group" | "runlevel", name: string): string | undefined => {
  if (asciiWhitespace.test(name)) return undefined
  const problem = nameProblem(what, name)
  return problem === undefined ? undefined : `${what} "${name}" can never be requested: the ${problem}`
}

export const groupHazards = (group: string): readonly string[] => {
  const found = [unsendable("group", group)]
  if (group.startsWith("stopall")) {
    found.push(`group "${group}" starts with "stopall": an original IS::Init client's tell of it ("${group} LEVEL") is read as stopall by IS::Init and isinitd alike, stopping everything; rename the group (isinit's own client is not affected)`)
  }
  if (group.startsWith("{")) {
    found.push(`group "${group}" starts with "{": isinitd reads a line starting with "{" as JSON, so the original line protocol ("${group} LEVEL") cannot tell it; rename the group (isinit's own client is not affected)`)
  }
  return found.filter((message) => message !== undefined)
}

export const levelHazards = (level: string): readonly string[] => {
  const found = unsendable("runlevel", level)
  return found === undefined ? none : [found]
}

// Daemon mode. Only the command word of each simple command counts (after assignments, options
// and wrappers such as `exec`, `nohup` or `env`), so `echo setsid` is left alone.
const mayEscape = /&|setsid|daemon|fork|background|detach/
const segmentBreak = /&&|\|\||[;&|\n()`]/
const wrappers = new Set(["exec", "nohup", "nice", "ionice", "env", "sudo", "command", "builtin", "time", "chrt", "taskset", "stdbuf", "timeout"])
const assignment = /^[A-Za-z_][A-Za-z0-9_]*=/
const detachers = new Set(["setsid", "daemon", "daemonize", "start-stop-daemon"])
const detachFlags = new Set(["--daemon", "--daemonize", "--fork", "--background", "--detach", "-daemon"])

const commandWord = (segment: string): string | undefined => {
  for (const word of segment.trim().split(/\s+/)) {
    if (word === "" || assignment.test(word) || word.startsWith("-") || /^\d/.test(word) || wrappers.has(word)) continue
    return word.slice(word.lastIndexOf("/") + 1)
  }
  return undefined
}

const escapes = (command: string): string[] => {
  const found: string[] = []
  if (/(^|[^&])&\s*$/.test(command)) {
    found.push(`command ends with "&": the shell exits at once and leaves the program running where isinit cannot stop it (a respawn entry would start another copy each time); drop the "&"`)
  }
  const words = new Set(command.split(segmentBreak).flatMap((segment) => commandWord(segment) ?? []))
  for (const word of detachers) {
    if (!words.has(word)) continue
    found.push(
      word === "setsid"
        ? `command runs setsid: the program moves to a new session, out of the entry's process group, so stopping the entry cannot reach it; drop setsid`
        : `command runs ${word}, which detaches the program (daemon mode): isinit sees it exit at once and cannot stop what it left running; run the program itself in the foreground`,
    )
  }
  const flags = new Set(command.split(/\s+/).filter((word) => detachFlags.has(word)))
  for (const flag of flags) {
    found.push(`command passes ${flag}, which usually makes a program detach (daemon mode): isinit would see it exit at once and could not stop it; run it in the foreground (its --foreground or --nodaemon option, if it has one)`)
  }
  return found
}

const tooLong = (command: string): string[] => {
  const argv = argvOf(command)
  const longest = Math.max(...execArguments(argv).map(utf8Length))
  if (longest < maxArgumentBytes) return []
  const what = argv._tag === "Shell" ? "the command runs as one /bin/sh -c argument of" : "a word of the command is"
  return [`command is too long to run: ${what} ${longest} bytes, over the kernel's limit of ${maxArgumentBytes - 1} bytes per argument (MAX_ARG_STRLEN): every start would fail with E2BIG; move it into a script file`]
}

/** Warnings about an entry's command (the parser asks for none of `off` entries, which never run). */
export const commandHazards = (command: string): readonly string[] => {
  // A UTF-16 unit is at most 3 UTF-8 bytes: a shorter command cannot be too long.
  const long = command.length * 3 >= maxArgumentBytes
  if (!long && !mayEscape.test(command)) return none
  return long ? [...escapes(command), ...tooLong(command)] : escapes(command)
}
