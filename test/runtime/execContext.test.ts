/**
 * Issue 11's execution context against real processes: what each option asks for is read back
 * from /proc (uid, gid, groups, cwd, environ, umask, limits), and what cannot be met ends the run
 * as a spawn failure with the reason.
 */
import { execFileSync, spawnSync } from "node:child_process"
import { mkdtempSync, readFileSync, readlinkSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest"
import { argvOf } from "../../src/core/command.ts"
import { parseInittab } from "../../src/core/inittab.ts"
import type { EntryOptions } from "../../src/core/options.ts"
import type { ExecHost } from "../../src/runtime/execContext.ts"
import { envFileVars, execPlan, realHost } from "../../src/runtime/execContext.ts"
import { cmdline, processTableLab, until } from "./helpers.ts"

const lab = processTableLab()
afterEach(lab.cleanup)

const dir = mkdtempSync(join(tmpdir(), "isinit-exec-"))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

/** The options `lines` give entry `t`, as the isinittab parser reads them. */
const optionsOf = (...lines: string[]): EntryOptions => {
  const parsed = parseInittab(["g:t:1:respawn:x", ...lines.map((l) => `:::option:t:${l}`)].join("\n"))
  expect(parsed.problems).toEqual([])
  return parsed.config.byTag.get("t")?.options ?? {}
}

const statusField = (pid: number, field: string): string | undefined =>
  readFileSync(`/proc/${pid}/status`, "utf8").split("\n").find((l) => l.startsWith(`${field}:`))?.slice(field.length + 1).trim()

const environ = (pid: number): Record<string, string> =>
  Object.fromEntries(readFileSync(`/proc/${pid}/environ`, "utf8").split("\0").filter((kv) => kv !== "").map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]))

/** `Max open files  1024  4096  files` as [soft, hard]. */
const limitOf = (pid: number, name: string): readonly string[] | undefined => {
  const line = readFileSync(`/proc/${pid}/limits`, "utf8").split("\n").find((l) => l.startsWith(name))
  return line?.slice(name.length).trim().split(/\s+/).slice(0, 2)
}

/** Starts `command` with `options`; the pid once the chain has exec'd into the program (same pid). */
const startWith = async (options: EntryOptions, command = "sleep 30", tag = "t", run = 1): Promise<number> => {
  const h = lab.make()
  h.table.spawn({ tag, run, command, options })
  const pid = await h.started(tag)
  const program = argvOf(command)._tag === "Direct" ? command.split(" ")[0] : "/bin/sh"
  await until(`${tag} to exec ${program}`, () => cmdline(pid)?.[0] === program)
  return pid
}

const failureOf = async (options: EntryOptions, command = "sleep 30"): Promise<unknown> => {
  const h = lab.make()
  h.table.spawn({ tag: "t", run: 1, command, options })
  const exit = await h.exited("t")
  return exit._tag === "ChildExit" ? exit.outcome : exit
}

const isRoot = process.getuid?.() === 0

describe("the working directory and the environment (real processes)", () => {
  it("runs in / by default, in cwd when given", async () => {
    expect(readlinkSync(`/proc/${await startWith({})}/cwd`)).toBe("/")
    expect(readlinkSync(`/proc/${await startWith(optionsOf(`cwd=${dir}`), "sleep 30", "u")}/cwd`)).toBe(dir)
  })

  it("env values arrive byte for byte, never shell-expanded, even when the command runs under /bin/sh", async () => {
    const options = optionsOf("env=A=$HOME `id` ; x", "env=URL=http://h:80/?a=b", "env=EMPTY=")
    const pid = await startWith(options, "sleep 30; true")
    expect(environ(pid)).toMatchObject({ A: "$HOME `id` ; x", URL: "http://h:80/?a=b", EMPTY: "" })
  })

  it("reads the env file at each start: a change applies at the next start; an env line wins over the file", async () => {
    const file = join(dir, "app.env")
    writeFileSync(file, "# comment\n\nexport COLOUR=red\nSHAPE='round'\nSIZE=file\n")
    const options = optionsOf(`env-file=${file}`, "env=SIZE=line")
    expect(environ(await startWith(options, "sleep 30", "a"))).toMatchObject({ COLOUR: "red", SHAPE: "'round'", SIZE: "line" })
    writeFileSync(file, "COLOUR=blue\n")
    expect(environ(await startWith(options, "sleep 30", "b"))).toMatchObject({ COLOUR: "blue", SIZE: "line" })
  })

  it("sets the umask", async () => {
    expect(statusField(await startWith(optionsOf("umask=027")), "Umask")).toBe("0027")
    expect(statusField(await startWith(optionsOf("umask=0"), "sleep 31", "u"), "Umask")).toBe("0000")
  })

  it("sets resource limits, soft and hard, the program keeping the pid it was started with", async () => {
    const pid = await startWith(optionsOf("nofile=1000:2000", "core=0:unlimited", "nproc=500", "memlock=64K"))
    expect(cmdline(pid)).toEqual(["sleep", "30"])
    expect(limitOf(pid, "Max open files")).toEqual(["1000", "2000"])
    expect(limitOf(pid, "Max core file size")).toEqual(["0", "unlimited"])
    expect(limitOf(pid, "Max processes")).toEqual(["500", "500"])
    expect(limitOf(pid, "Max locked memory")).toEqual(["65536", "65536"])
  })
})

describe("clear spawn failures (real processes)", () => {
  it("a missing directory or env file ends the run as SpawnFailed with the reason", async () => {
    expect(await failureOf(optionsOf("cwd=/nonexistent/dir"))).toEqual({ _tag: "SpawnFailed", reason: "cwd /nonexistent/dir: no such file or directory" })
    expect(await failureOf(optionsOf("cwd=/etc/passwd"))).toEqual({ _tag: "SpawnFailed", reason: "cwd /etc/passwd: not a directory" })
    expect(await failureOf(optionsOf("env-file=/nonexistent.env"))).toEqual({ _tag: "SpawnFailed", reason: "env-file: cannot read /nonexistent.env: no such file or directory" })
    const bad = join(dir, "bad.env")
    writeFileSync(bad, "A=1\nnot an assignment\n")
    expect(await failureOf(optionsOf(`env-file=${bad}`))).toEqual({ _tag: "SpawnFailed", reason: `env-file ${bad}:2: expected NAME=VALUE` })
  })

  it.runIf(isRoot)("a user or group that does not exist ends the run with the reason (as root: only root may switch)", async () => {
    expect(await failureOf(optionsOf("user=no-such-user-isinit"))).toEqual({ _tag: "SpawnFailed", reason: 'user "no-such-user-isinit" does not exist (no line in /etc/passwd)' })
    expect(await failureOf(optionsOf("group=no-such-group-isinit"))).toEqual({ _tag: "SpawnFailed", reason: 'group "no-such-group-isinit" does not exist (no line in /etc/group)' })
  })
})

/** A fake host: root or not, files from a table. */
const fakeHost = (uid: number, files: Readonly<Record<string, string>>): ExecHost => ({
  uid,
  readText: (path) => {
    const text = files[path]
    if (text === undefined) throw Object.assign(new Error(path), { code: "ENOENT" })
    return text
  },
  directoryProblem: () => undefined,
  tool: (name) => `/usr/bin/${name}`,
})

const passwd = "root:x:0:0:root:/root:/bin/bash\nwww:x:33:33:www:/var/www:/usr/sbin/nologin\n"
const group = "root:x:0:\nwww:x:33:\nadm:x:4:www\n"

describe("the exec chain (pure, with a fake host)", () => {
  const sleep = argvOf("sleep 30")

  it("nothing asked: the command alone, in /", () => {
    expect(execPlan(sleep, {}, { A: "1" }, fakeHost(0, {}))).toEqual({ _tag: "Exec", file: "sleep", args: ["30"], cwd: "/", env: { A: "1" } })
  })

  it("limits, then identity, then umask, then the command; a shell command stays one argument", () => {
    const plan = execPlan(argvOf("exec x; $y"), optionsOf("nofile=10:20", "user=www", "umask=027"), {}, fakeHost(0, { "/etc/passwd": passwd }))
    expect(plan).toMatchObject({
      _tag: "Exec",
      file: "/usr/bin/prlimit",
      args: ["--nofile=10:20", "--", "/usr/bin/setpriv", "--reuid=33", "--regid=33", "--init-groups", "--", "/bin/sh", "-c", 'umask 0027 && exec "$@"', "isinit-umask", "/bin/sh", "-c", "exec x; $y"],
      env: { HOME: "/var/www", USER: "www", LOGNAME: "www" },
    })
  })

  it("a nofile above the host's fs.nr_open is refused with both numbers, not left to prlimit's EPERM", () => {
    const host = fakeHost(0, { "/proc/sys/fs/nr_open": "1048576\n" })
    expect(execPlan(sleep, optionsOf("nofile=1048576"), {}, host)).toMatchObject({ _tag: "Exec", args: ["--nofile=1048576:1048576", "--", "sleep", "30"] })
    expect(execPlan(sleep, optionsOf("nofile=1024:2097152"), {}, host)).toEqual({ _tag: "Refused", reason: "nofile 2097152 is above this host's fs.nr_open (1048576)" })
  })

  it("user and group: the user's primary group unless group says; a uid without a passwd line needs group", () => {
    const host = fakeHost(0, { "/etc/passwd": passwd, "/etc/group": group })
    expect(execPlan(sleep, optionsOf("user=www", "group=adm"), {}, host)).toMatchObject({ args: ["--reuid=33", "--regid=4", "--init-groups", "--", "sleep", "30"] })
    expect(execPlan(sleep, optionsOf("user=33"), {}, host)).toMatchObject({ args: ["--reuid=33", "--regid=33", "--init-groups", "--", "sleep", "30"] })
    expect(execPlan(sleep, optionsOf("group=adm"), {}, host)).toMatchObject({ args: ["--regid=4", "--clear-groups", "--", "sleep", "30"] })
    expect(execPlan(sleep, optionsOf("user=4242", "group=7"), {}, host)).toMatchObject({ args: ["--reuid=4242", "--regid=7", "--clear-groups", "--", "sleep", "30"] })
    expect(execPlan(sleep, optionsOf("user=4242"), {}, host)).toEqual({ _tag: "Refused", reason: "uid 4242 has no line in /etc/passwd, so no primary group: give the option group as well" })
  })

  it("user or group under a daemon that is not root: refused, saying why", () => {
    const host = fakeHost(1000, { "/etc/passwd": passwd })
    expect(execPlan(sleep, optionsOf("user=www"), {}, host)).toEqual({ _tag: "Refused", reason: "user needs isinitd to run as root (it runs as uid 1000)" })
    expect(execPlan(sleep, optionsOf("user=www", "group=4"), {}, host)).toEqual({ _tag: "Refused", reason: "user and group need isinitd to run as root (it runs as uid 1000)" })
  })

  it("a missing util-linux tool is a reason, not a crash", () => {
    const host = { ...fakeHost(0, {}), tool: () => undefined }
    expect(execPlan(sleep, optionsOf("nofile=10"), {}, host)).toEqual({ _tag: "Refused", reason: "a resource limit needs prlimit (util-linux), which is not installed" })
  })

  it("env files: literal values, comments, export, CRLF; a bad line is named", () => {
    expect(envFileVars("f", "# c\n\n  \nexport A=1\nB=\"x y\"\r\nC==\n")).toEqual({ _tag: "Ok", value: [["A", "1"], ["B", '"x y"'], ["C", "="]] })
    expect(envFileVars("f", "A=1\n1B=2\n")).toEqual({ _tag: "Refused", reason: "env-file f:2: expected NAME=VALUE" })
    // A file dumped from a running service carries its markers: they would hide the child from
    // re-adoption and the fencer, or hand it a stale epoch.
    expect(envFileVars("f", "A=1\nISINIT_FENCE=i:g\n")).toEqual({ _tag: "Refused", reason: "env-file f:2: ISINIT_FENCE begins with ISINIT_, which isinit sets itself" })
  })

  it("the real host finds setpriv and prlimit where Debian puts them", () => {
    expect(realHost.tool("setpriv")).toMatch(/\/setpriv$/)
    expect(realHost.tool("prlimit")).toMatch(/\/prlimit$/)
  })
})

/** A user of its own, in a group of its own plus a supplementary one, for the duration of the tests. */
const testUser = { name: `isx${process.pid % 100_000}`, extra: `isxg${process.pid % 100_000}` }
const canAddUsers = isRoot && spawnSync("useradd", ["--help"]).status === 0

describe.skipIf(!canAddUsers)("user and group (real processes, as root)", () => {
  beforeAll(() => {
    execFileSync("groupadd", [testUser.extra])
    execFileSync("useradd", ["--no-create-home", "--home-dir", "/nonexistent-isinit", "--user-group", "--groups", testUser.extra, testUser.name])
  })
  afterAll(() => {
    spawnSync("userdel", [testUser.name])
    spawnSync("groupdel", [testUser.extra])
  })
  const idOf = (file: string, name: string): string => readFileSync(file, "utf8").split("\n").find((l) => l.startsWith(`${name}:`))?.split(":")[2] ?? "?"

  it("runs as the user, with its primary group and its supplementary groups (initgroups), and its HOME", async () => {
    const uid = idOf("/etc/passwd", testUser.name)
    const gid = idOf("/etc/group", testUser.name)
    const extra = idOf("/etc/group", testUser.extra)
    const pid = await startWith(optionsOf(`user=${testUser.name}`))
    expect(statusField(pid, "Uid")?.split(/\s+/)).toEqual([uid, uid, uid, uid])
    expect(statusField(pid, "Gid")?.split(/\s+/)).toEqual([gid, gid, gid, gid])
    expect(statusField(pid, "Groups")?.split(/\s+/).sort()).toEqual([gid, extra].sort())
    expect(environ(pid)).toMatchObject({ HOME: "/nonexistent-isinit", USER: testUser.name, LOGNAME: testUser.name })
  })

  it("group= sets the primary group; numbers work as names do", async () => {
    const uid = idOf("/etc/passwd", testUser.name)
    const extra = idOf("/etc/group", testUser.extra)
    const pid = await startWith(optionsOf(`user=${uid}`, `group=${testUser.extra}`))
    expect(statusField(pid, "Uid")?.split(/\s+/)[0]).toBe(uid)
    expect(statusField(pid, "Gid")?.split(/\s+/)[0]).toBe(extra)
    expect(statusField(pid, "Groups")?.split(/\s+/)).toContain(extra)
  })
})
