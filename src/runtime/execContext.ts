/**
 * An entry's execution context (issue 11): its options turned into what `spawn` executes, built
 * at each start (an env file or a user's groups change between starts).
 *
 * Everything is applied in the child before the entry's program runs, never through a shell the
 * user did not write: the program's argv is passed through as argv. The chain, each step
 * exec'ing the next (same pid, same process group):
 *
 *   prlimit --nofile=S:H ... --     limits, set while still root (a hard limit can only be raised by root)
 *   setpriv --reuid=U --regid=G --init-groups --
 *                                   user, group and the user's supplementary groups (initgroups)
 *   /bin/sh -c 'umask 027 && exec "$@"' isinit-umask
 *                                   umask: the text is our own octal rendering, never the user's
 *   COMMAND                         as before: its words, or /bin/sh -c COMMAND with metacharacters
 *
 * Why setpriv: Node's `uid`/`gid` spawn options drop every supplementary group (libuv calls
 * setgroups(0)), so a service run as `www-data` would lose `ssl-cert` and the like; setpriv
 * (util-linux, in every Debian base system, as is prlimit) calls initgroups. The working directory
 * and the environment are spawn's own options (chdir happens in the child, before the exec).
 *
 * A missing user, group, directory or env file refuses the start with the reason: the run ends as
 * `SpawnFailed` (logged; respawn rules apply), never an error of the daemon.
 */
import { readFileSync, statSync } from "node:fs"
import type { Argv } from "../core/command.ts"
import { execArguments } from "../core/command.ts"
import type { EntryOptions, LimitValue, Principal, ResourceLimit } from "../core/options.ts"
import { envName, reservedEnvName } from "../core/options.ts"
import { errnoOf, messageOf } from "./errors.ts"

export type ExecPlan =
  | { readonly _tag: "Exec"; readonly file: string; readonly args: readonly string[]; readonly cwd: string; readonly env: NodeJS.ProcessEnv }
  | { readonly _tag: "Refused"; readonly reason: string }

/** What the plan reads of the host; a fake one in tests. */
export interface ExecHost {
  readonly uid: number
  /** The file's text; throws (ErrnoException) when it cannot be read. */
  readonly readText: (path: string) => string
  /** Why `path` cannot be a working directory, or undefined if it can. */
  readonly directoryProblem: (path: string) => string | undefined
  /** The absolute path of a util-linux tool, or undefined when it is not installed. */
  readonly tool: (name: "setpriv" | "prlimit") => string | undefined
}

const toolDirs = ["/usr/bin", "/bin", "/usr/sbin", "/sbin"]
const toolPaths = new Map<string, string | undefined>()

/** A failure to read or stat a path in an operator's words. */
const reasonOf = (error: unknown): string => {
  const code = errnoOf(error)
  return code === "ENOENT" ? "no such file or directory" : code === "EACCES" ? "permission denied" : (code ?? messageOf(error))
}

export const realHost: ExecHost = {
  uid: process.getuid?.() ?? 0,
  readText: (path) => readFileSync(path, "utf8"),
  directoryProblem: (path) => {
    try {
      return statSync(path).isDirectory() ? undefined : "not a directory"
    } catch (error) {
      return reasonOf(error)
    }
  },
  tool: (name) => {
    if (!toolPaths.has(name)) toolPaths.set(name, toolDirs.map((dir) => `${dir}/${name}`).find((path) => statSync(path, { throwIfNoEntry: false })?.isFile() === true))
    return toolPaths.get(name)
  },
}

type Step<T> = { readonly _tag: "Ok"; readonly value: T } | { readonly _tag: "Refused"; readonly reason: string }
const ok = <T>(value: T): Step<T> => ({ _tag: "Ok", value })
const refused = <T>(reason: string): Step<T> => ({ _tag: "Refused", reason })

// Users and groups, from /etc/passwd and /etc/group (names served by NSS only, as LDAP's, are not
// found: give their numbers).

interface PasswdLine {
  readonly name: string
  readonly uid: number
  readonly gid: number
  readonly home: string
}

const passwdLines = (text: string): readonly PasswdLine[] =>
  text.split("\n").flatMap((line) => {
    const [name = "", , uid = "", gid = "", , home = ""] = line.split(":")
    return /^\d+$/.test(uid) && /^\d+$/.test(gid) && name !== "" ? [{ name, uid: Number(uid), gid: Number(gid), home }] : []
  })

const groupId = (text: string, name: string): number | undefined => {
  for (const line of text.split("\n")) {
    const [group, , gid = ""] = line.split(":")
    if (group === name && /^\d+$/.test(gid)) return Number(gid)
  }
  return undefined
}

/** Who the run is: its uid, primary gid, and the user whose groups it gets (none: groups cleared). */
interface Identity {
  readonly uid: number | undefined
  readonly gid: number
  readonly user: PasswdLine | undefined
}

const readOr = (host: ExecHost, path: string): Step<string> => {
  try {
    return ok(host.readText(path))
  } catch (error) {
    return refused(`cannot read ${path}: ${reasonOf(error)}`)
  }
}

const userOf = (host: ExecHost, user: Principal): Step<PasswdLine | number> => {
  const passwd = readOr(host, "/etc/passwd")
  if (passwd._tag === "Refused") return passwd
  const lines = passwdLines(passwd.value)
  const found = user._tag === "Name" ? lines.find((l) => l.name === user.name) : lines.find((l) => l.uid === user.id)
  if (found !== undefined) return ok(found)
  return user._tag === "Name" ? refused(`user "${user.name}" does not exist (no line in /etc/passwd)`) : ok(user.id)
}

const gidOf = (host: ExecHost, group: Principal): Step<number> => {
  if (group._tag === "Id") return ok(group.id)
  const text = readOr(host, "/etc/group")
  if (text._tag === "Refused") return text
  const gid = groupId(text.value, group.name)
  return gid === undefined ? refused(`group "${group.name}" does not exist (no line in /etc/group)`) : ok(gid)
}

const identityOf = (host: ExecHost, options: EntryOptions): Step<Identity | undefined> => {
  const { user, group } = options
  if (user === undefined && group === undefined) return ok(undefined)
  const asked = [user === undefined ? "" : "user", group === undefined ? "" : "group"].filter((k) => k !== "").join(" and ")
  if (host.uid !== 0) return refused(`${asked} need${asked.includes(" ") ? "" : "s"} isinitd to run as root (it runs as uid ${host.uid})`)
  const found = user === undefined ? ok(undefined) : userOf(host, user)
  if (found._tag === "Refused") return found
  const line = typeof found.value === "object" ? found.value : undefined
  const uid = typeof found.value === "number" ? found.value : line?.uid
  const gid = group === undefined ? ok(line?.gid) : gidOf(host, group)
  if (gid._tag === "Refused") return gid
  if (gid.value === undefined) return refused(`uid ${uid ?? "?"} has no line in /etc/passwd, so no primary group: give the option group as well`)
  return ok({ uid, gid: gid.value, user: line })
}

// The environment.

/**
 * `NAME=VALUE` lines, taken literally as Docker's `--env-file` does (no quotes removed, nothing
 * expanded); `#` lines and blank lines are skipped, an `export ` before the name is allowed.
 */
export const envFileVars = (path: string, text: string): Step<readonly (readonly [string, string])[]> => {
  const vars: (readonly [string, string])[] = []
  const lines = text.split("\n")
  for (const [i, raw] of lines.entries()) {
    const line = raw.endsWith("\r") ? raw.slice(0, -1) : raw
    if (/^\s*(#|$)/.test(line)) continue
    const assignment = line.replace(/^\s*export\s+/, "")
    const eq = assignment.indexOf("=")
    const name = eq < 0 ? "" : assignment.slice(0, eq).trim()
    if (!envName.test(name)) return refused(`env-file ${path}:${i + 1}: expected NAME=VALUE`)
    if (reservedEnvName(name)) return refused(`env-file ${path}:${i + 1}: ${name} begins with ISINIT_, which isinit sets itself`)
    vars.push([name, assignment.slice(eq + 1)])
  }
  return ok(vars)
}

/**
 * The child's environment: the daemon's (with the run markers), the switched user's HOME, USER
 * and LOGNAME, then each `env-file` in order, then each `env` line: the isinittab's own word wins.
 */
const environmentOf = (host: ExecHost, options: EntryOptions, base: NodeJS.ProcessEnv, identity: Identity | undefined): Step<NodeJS.ProcessEnv> => {
  const files = options["env-file"] ?? []
  const vars = options.env ?? []
  if (files.length === 0 && vars.length === 0 && identity?.user === undefined) return ok(base)
  const env: NodeJS.ProcessEnv = { ...base }
  if (identity?.user !== undefined) Object.assign(env, { HOME: identity.user.home, USER: identity.user.name, LOGNAME: identity.user.name })
  for (const path of files) {
    const text = readOr(host, path)
    if (text._tag === "Refused") return refused(`env-file: ${text.reason}`)
    const read = envFileVars(path, text.value)
    if (read._tag === "Refused") return read
    for (const [name, value] of read.value) env[name] = value
  }
  for (const { name, value } of vars) env[name] = value
  return ok(env)
}

// The chain.

const limitKeys = ["nofile", "nproc", "core", "memlock"] as const

const limitText = (v: LimitValue): string => (v === "unlimited" ? "unlimited" : String(v))

const limitArgs = (options: EntryOptions): readonly string[] =>
  limitKeys.flatMap((key) => {
    const limit: ResourceLimit | undefined = options[key]
    return limit === undefined ? [] : [`--${key}=${limitText(limit.soft)}:${limitText(limit.hard)}`]
  })

const needTool = (host: ExecHost, name: "setpriv" | "prlimit", why: string): Step<string> => {
  const path = host.tool(name)
  return path === undefined ? refused(`${why} needs ${name} (util-linux), which is not installed`) : ok(path)
}

/** A `nofile` above the host's fs.nr_open, which the kernel refuses (prlimit would only say EPERM). */
const openFilesProblem = (host: ExecHost, options: EntryOptions): string | undefined => {
  const limit = options.nofile
  if (limit === undefined) return undefined
  const nrOpen = readOr(host, "/proc/sys/fs/nr_open")
  const max = nrOpen._tag === "Ok" ? Number(nrOpen.value.trim()) : Number.NaN
  const highest = Math.max(...[limit.soft, limit.hard].map((v) => (v === "unlimited" ? Infinity : v)))
  return Number.isFinite(max) && highest > max ? `nofile ${highest} is above this host's fs.nr_open (${max})` : undefined
}

/** The words before the command: prlimit, setpriv and the umask shell, each only when needed. */
const prefixOf = (host: ExecHost, options: EntryOptions, identity: Identity | undefined): Step<readonly string[]> => {
  const prefix: string[] = []
  const tooMany = openFilesProblem(host, options)
  if (tooMany !== undefined) return refused(tooMany)
  const limits = limitArgs(options)
  if (limits.length > 0) {
    const prlimit = needTool(host, "prlimit", "a resource limit")
    if (prlimit._tag === "Refused") return prlimit
    prefix.push(prlimit.value, ...limits, "--")
  }
  if (identity !== undefined) {
    const setpriv = needTool(host, "setpriv", "user or group")
    if (setpriv._tag === "Refused") return setpriv
    const uid = identity.uid === undefined ? [] : [`--reuid=${identity.uid}`]
    prefix.push(setpriv.value, ...uid, `--regid=${identity.gid}`, identity.user === undefined ? "--clear-groups" : "--init-groups", "--")
  }
  const umask = options.umask
  if (umask !== undefined) prefix.push("/bin/sh", "-c", `umask ${umask.toString(8).padStart(4, "0")} && exec "$@"`, "isinit-umask")
  return ok(prefix)
}

/** What to execute for `argv` with `options`, in `base` environment; or why it cannot start. */
export const execPlan = (argv: Argv, options: EntryOptions, base: NodeJS.ProcessEnv, host: ExecHost = realHost): ExecPlan => {
  const cwd = options.cwd ?? "/"
  const problem = host.directoryProblem(cwd)
  if (problem !== undefined) return { _tag: "Refused", reason: `cwd ${cwd}: ${problem}` }
  const identity = identityOf(host, options)
  if (identity._tag === "Refused") return identity
  const env = environmentOf(host, options, base, identity.value)
  if (env._tag === "Refused") return env
  const prefix = prefixOf(host, options, identity.value)
  if (prefix._tag === "Refused") return prefix
  const [file = "", ...args] = [...prefix.value, ...execArguments(argv)]
  return { _tag: "Exec", file, args, cwd, env: env.value }
}
