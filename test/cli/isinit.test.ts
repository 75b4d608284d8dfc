/**
 * `isinit` run in-process (its `main` with captured output): usage, check, plan and status
 * without a daemon, simulate. The end-to-end tests against a real daemon are in isinit.e2e.test.ts.
 */
import { spawnSync } from "node:child_process"
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterEach, beforeEach, describe, expect, it } from "vitest"
import { main } from "../../src/cli/isinit.ts"
import { maxArgumentBytes } from "../../src/core/hazards.ts"
import { renderStatusFile } from "../../src/core/status.ts"
import { defaultMaxEvents } from "../../src/sim/scenario.ts"

let dir: string
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "isinit-cli-"))
})
afterEach(() => {
  rmSync(dir, { recursive: true, force: true })
})

interface Run {
  readonly code: number
  readonly out: string
  readonly err: string
}

const run = async (argv: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<Run> => {
  let out = ""
  let err = ""
  const code = await main(argv, { out: (t) => void (out += t), err: (t) => void (err += t), env })
  return { code, out, err }
}

const write = (name: string, text: string): string => {
  const path = join(dir, name)
  writeFileSync(path, text)
  return path
}

const goodTab = (): string =>
  write(
    "isinittab",
    [
      "# a comment",
      "web:prep:2:wait:true",
      "web:db:23:respawn:sleep 1000",
      "web:app:2:respawn:sleep 1001",
      "mail:smtp:1:respawn:sleep 1002",
      `:::socket:${join(dir, "run", "init.s")}`,
      "",
    ].join("\n"),
  )

describe("usage", () => {
  it("--help prints the usage and exits 0", async () => {
    const { code, out } = await run(["--help"])
    expect(code).toBe(0)
    expect(out).toMatch(/^Usage:\n {2}isinit \[-c FILE\] \[-s SOCKET\] GROUP LEVEL \[--wait\] \[--timeout S\]/)
    for (const word of ["stopall", "handover", "status", "check", "plan", "simulate", "--json", "isinitd.log"]) expect(out).toContain(word)
  })
  it("--version prints the version", async () => {
    const { code, out } = await run(["-V"])
    expect(code).toBe(0)
    expect(out).toMatch(/^isinit \d+\.\d+\.\d+\n$/)
  })
  it.each([
    [[], /missing command/],
    [["--bogus"], /Unknown option '--bogus'/],
    [["web"], /unknown command "web": to tell a group, give GROUP LEVEL/],
    [["a", "b", "c"], /unknown command "a" \(a tell is GROUP LEVEL: two words, not 3\)/],
    [["tell", "web"], /tell takes GROUP LEVEL, got web/],
    [["stopall", "now"], /stopall takes no arguments/],
    [["-k", "web"], /-k \(stopall\) takes no arguments/],
    [["status", "a", "b"], /status takes at most one GROUP/],
    [["plan", "web"], /plan takes GROUP LEVEL/],
    [["simulate"], /simulate takes one SCENARIO file, got nothing/],
    [["check", "x"], /check takes no arguments/],
    [["check", "--timeout", "5"], /--timeout does not apply to check/],
    [["web", "2", "--wait", "--timeout", "soon"], /--timeout takes a number of seconds/],
    [["web", "2", "--wait", "--timeout", "0"], /--timeout takes a number of seconds/],
    [["web", "2", "--json"], /--json does not apply to a tell/],
    [["check", "--json"], /--json does not apply to check/],
    [["status", "--strict"], /--strict does not apply to status/],
    [["simulate", "x.scn", "--max-events", "0"], /--max-events takes a whole number of events, at least 1, not "0"/],
    [["simulate", "x.scn", "--max-events", "1e5"], /--max-events takes a whole number/],
    [["status", "--max-events", "5"], /--max-events does not apply to status/],
    [["reload", "now"], /reload takes no arguments/],
    [["reload", "--json"], /--json does not apply to reload/],
    [["status", "--force"], /--force does not apply to status/],
    [["stopall", "--force"], /--force does not apply to stopall/],
    [["status", "--wait"], /--wait does not apply to status/],
    [["plan", "web", "2", "--level", "2"], /--level does not apply to plan/],
    [["-c"], /Option '-c, --config <value>' argument missing/],
  ])("%j is a usage error: exit 2 with the reason and the synopsis", async (argv, reason) => {
    const { code, out, err } = await run(argv)
    expect(code).toBe(2)
    expect(out).toBe("")
    expect(err).toMatch(reason)
    expect(err).toContain("Run isinit --help for more.")
  })
})

describe("check", () => {
  it("prints every problem with its line number and exits 1 on errors", async () => {
    const tab = write(
      "bad",
      ["web:a:2:respawn:sleep 1", "web:a:2:respawn:sleep 2", "web:b:run:respawn:x", "web:c:2:sometimes:x", "too:few", ""].join("\n"),
    )
    const { code, out } = await run(["-c", tab, "check"])
    expect(code).toBe(1)
    const lines = out.trimEnd().split("\n")
    expect(lines.filter((l) => l.startsWith(`${tab}:2: error: `))).toHaveLength(1)
    expect(lines.filter((l) => l.startsWith(`${tab}:3: warning: `))).toHaveLength(1)
    expect(lines.filter((l) => l.startsWith(`${tab}:4: error: `))).toHaveLength(1)
    expect(lines.filter((l) => l.startsWith(`${tab}:5: error: `))).toHaveLength(1)
    expect(lines.at(-1)).toMatch(/3 errors, 1 warning$/)
    expect(out).not.toMatch(/^ok:/m)
  })
  it("says ok with counts and exits 0 when there are no errors (warnings allowed)", async () => {
    expect(await run(["-c", goodTab(), "check"])).toEqual({ code: 0, out: "ok: 4 entries in 2 groups\n", err: "" })
    const warned = write("warned", "g:a:run:respawn:sleep 1\n")
    const { code, out } = await run(["check"], { ISINITTAB: warned })
    expect(code).toBe(0)
    expect(out).toMatch(new RegExp(`^${warned}:1: warning: .*\nok: 1 entry in 1 group\n$`))
  })
  it("an isinittab without entries (empty or truncated) is an error, not ok: 0 entries", async () => {
    for (const text of ["", ":::jail:5s\n# the rest was never written\n"]) {
      const tab = write("empty", text)
      const { code, out } = await run(["-c", tab, "check"])
      expect(code).toBe(1)
      expect(out).toMatch(new RegExp(`^${tab}: error: no entries: `))
      expect(out).not.toMatch(/^ok:/m)
    }
  })
  it("warns, with the line, of what the daemon or old clients trip over", async () => {
    const tab = write("hazards", ["web:a:1:respawn:sleep 1", "stopall-db:b:1:respawn:sleep 2", "web:c:1:respawn:my-server &", ""].join("\n"))
    const { code, out } = await run(["-c", tab, "check"])
    expect(code).toBe(0)
    expect(out).toMatch(new RegExp(`^${tab}:2: warning: group "stopall-db" starts with "stopall"`, "m"))
    expect(out).toMatch(new RegExp(`^${tab}:3: warning: command ends with "&"`, "m"))
    expect(out).toMatch(/^ok: 3 entries in 2 groups$/m)
  })
  it("the length it warns about is the kernel's: a 131071-byte /bin/sh -c script runs, one byte more fails with E2BIG", () => {
    expect(spawnSync("/bin/sh", ["-c", `:${" ".repeat(maxArgumentBytes - 2)}`]).status).toBe(0)
    expect(spawnSync("/bin/sh", ["-c", `:${" ".repeat(maxArgumentBytes - 1)}`]).error).toMatchObject({ code: "E2BIG" })
  })
  it("--strict (implied as root) reports the StrictModes refusal a root daemon would make", async () => {
    const tab = write("loose", "web:a:1:respawn:sleep 1\n")
    chmodSync(tab, 0o666)
    const { code, out } = await run(["-c", tab, "check", "--strict"])
    expect(code).toBe(1)
    expect(out).toMatch(new RegExp(`^${tab}: error: refusing the isinittab .*writable by group and others \\(mode 0666\\).*chmod go-w .*\\(a root isinitd refuses it\\)$`, "m"))
    expect(out).toMatch(/1 error, 0 warnings$/m)
    const plain = await run(["-c", tab, "check"])
    expect(plain.code).toBe(process.getuid?.() === 0 ? 1 : 0)
    chmodSync(tab, 0o644)
    if (process.getuid?.() === 0) expect(await run(["-c", tab, "check", "--strict"])).toMatchObject({ code: 0, out: "ok: 1 entry in 1 group\n" })
  })
  it("names a byte-order mark instead of folding it into the first group", async () => {
    const tab = join(dir, "bom")
    writeFileSync(tab, Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from("web:w:1:respawn:sleep 1\n")]))
    const { code, out } = await run(["-c", tab, "check"])
    expect(code).toBe(0)
    expect(out).toMatch(new RegExp(`^${tab}:1: warning: a UTF-8 byte-order mark \\(EF BB BF\\) starts the file: ignored`))
    expect(out).toMatch(/^ok: 1 entry in 1 group$/m)
  })
  it("validates every option with its line (issue 11): unknown key, unknown tag, bad value, a key the mode cannot use", async () => {
    const tab = write("options", [
      "web:a:1:respawn:sleep 1",
      "web:b:1:once:sleep 1",
      ":::option:a:colour=red",
      ":::option:nobody:cwd=/",
      ":::option:a:umask=999",
      ":::option:b:jail=5s",
      ":::option:*:env=URL=http://h:80/?a=b",
      "",
    ].join("\n"))
    const { code, out } = await run(["-c", tab, "check"])
    expect(code).toBe(1)
    expect(out).toMatch(new RegExp(`^${tab}:3: error: unknown option "colour"`, "m"))
    expect(out).toMatch(new RegExp(`^${tab}:4: error: option "cwd" for unknown tag "nobody"`, "m"))
    expect(out).toMatch(new RegExp(`^${tab}:5: error: option "umask": bad value "999"`, "m"))
    expect(out).toMatch(new RegExp(`^${tab}:6: error: option "jail" does not apply to "b"`, "m"))
    expect(out).toMatch(/4 errors, 0 warnings$/m)
  })
  it("exits 1 with a hint when the isinittab cannot be read", async () => {
    const { code, err } = await run(["-c", join(dir, "missing"), "check"])
    expect(code).toBe(1)
    expect(err).toMatch(/cannot read the isinittab .*missing: no such file; give it with -c FILE or \$ISINITTAB/)
  })
})

describe("without a daemon", () => {
  it("plan plans against everything stopped, in file order, through the barrier", async () => {
    const { code, out, err } = await run(["-c", goodTab(), "plan", "web", "2"])
    expect(err).toContain(`no daemon on ${join(dir, "run", "init.s")}: planning against an initial state (everything stopped)`)
    expect(code).toBe(0)
    expect(out).toMatch(/^tell web 2 would, in this order:\n {2}1\. +run and wait +web\/prep +true\n/)
    expect(out).toMatch(/2\. +start +web\/db +sleep 1000\n {2}3\. +start +web\/app +sleep 1001\n/)
    expect(out).toContain("Assuming every wait and test exits 0")
    const direct = await run(["-c", goodTab(), "plan", "mail", "1"])
    expect(direct.out).toMatch(/1\. +start +mail\/smtp +sleep 1002/)
  })
  it("plan --json gives the effects; a plan for an unknown group is rejected with exit 1", async () => {
    const json = await run(["-c", goodTab(), "plan", "mail", "1", "--json"])
    expect(json.code).toBe(0)
    const parsed = JSON.parse(json.out) as { accepted: boolean; effects: { _tag: string }[] }
    expect(parsed.accepted).toBe(true)
    expect(parsed.effects.some((e) => e._tag === "Spawn")).toBe(true)
    const rejected = await run(["-c", goodTab(), "plan", "nope", "1"])
    expect(rejected.code).toBe(1)
    expect(rejected.err).toMatch(/plan: .*unknown group "nope"/)
  })
  it("status reads the status file, says the daemon is down, and filters", async () => {
    goodTab()
    const socketDir = join(dir, "run")
    const { mkdirSync } = await import("node:fs")
    mkdirSync(socketDir)
    writeFileSync(
      join(socketDir, "initstat"),
      renderStatusFile([{ group: "web", state: "run", level: "2" }, { group: "mail", state: "stopped", level: "" }], "x1"),
    )
    const all = await run(["-c", join(dir, "isinittab"), "status"])
    expect(all.code).toBe(0)
    expect(all.err).toContain(`no daemon on ${join(socketDir, "init.s")}; the last status it wrote (${join(socketDir, "initstat")})`)
    expect(all.out).toBe("GROUP  STATE    LEVEL\nmail   stopped  -\nweb    run      2\n")
    const one = await run(["-c", join(dir, "isinittab"), "status", "web", "--json"])
    expect(JSON.parse(one.out)).toEqual({
      daemon: "down", socket: join(socketDir, "init.s"), statusFile: join(socketDir, "initstat"),
      groups: [{ group: "web", state: "run", level: "2" }],
    })
    const level = await run(["-c", join(dir, "isinittab"), "status", "--level", "2"])
    expect(level.out).toBe("GROUP  STATE  LEVEL\nweb    run    2\n")
  })
  it("status without daemon and without a status file exits 1 and says how to start one", async () => {
    const { code, err } = await run(["-c", goodTab(), "status"])
    expect(code).toBe(1)
    expect(err).toMatch(/no daemon on .*init\.s, and no status file at .*initstat \(no such file\): nothing has run; start one with: isinitd -c /)
  })
  it("stopall without daemon has nothing to stop", async () => {
    expect(await run(["-c", goodTab(), "stopall"])).toMatchObject({ code: 0, err: expect.stringMatching(/nothing to stop/) })
  })
  it("reload without daemon has nothing to reload", async () => {
    expect(await run(["-c", goodTab(), "reload", "--force"])).toMatchObject({ code: 0, err: expect.stringMatching(/nothing to reload/) })
  })
  it("a tell with an unreadable isinittab does not try to start a daemon", async () => {
    const { code, err } = await run(["-c", join(dir, "missing"), "-s", join(dir, "s"), "web", "2"])
    expect(code).toBe(1)
    expect(err).toMatch(/no daemon on .*, and cannot start one: cannot read the isinittab .*missing \(no such file\)/)
  })
})

describe("simulate", () => {
  const scenario = [
    "config <<EOF",
    "web:db:2:respawn:db-server",
    "web:chk:2:test:check",
    "EOF",
    "behave db-server crashes-every 1s",
    "behave check exits 1 after 200ms",
    "at 0 tell web 2",
    "run 20s",
    "",
  ].join("\n")
  it("prints the timeline and the final status", async () => {
    const { code, out } = await run(["simulate", write("s.scn", scenario)])
    expect(code).toBe(0)
    expect(out).toMatch(/jailed/)
    expect(out).toMatch(/at the end \(20\.000s/)
    expect(out).toMatch(/web +fail +2/)
  })
  it("--json gives the timeline and report as data", async () => {
    const { code, out } = await run(["simulate", write("s.scn", scenario), "--json"])
    expect(code).toBe(0)
    const data = JSON.parse(out) as { timeline: { kind: string }[]; report: { groups: { state: string }[] }; endMs: number }
    expect(data.endMs).toBe(20_000)
    expect(data.timeline.some((e) => e.kind === "jailed")).toBe(true)
    expect(data.report.groups[0]?.state).toBe("fail")
  })
  it("stops a scenario that runs away after --max-events, says so and exits 1", async () => {
    const runaway = ["config <<EOF", ":::respawn-limit:1000/1ms", ":::jail:1ms", "g:loop:1:respawn:spin", "EOF", "behave spin crashes-every 1ms", "at 0 tell g 1", "run 1000h", ""].join("\n")
    const file = write("runaway.scn", runaway)
    const { code, out, err } = await run(["simulate", file, "--max-events", "2000"])
    expect(code).toBe(1)
    expect(out).toMatch(/^where it stopped \(\d+\.\d{3}s\):$/m)
    expect(err).toMatch(/^isinit: simulate stopped after 2000 events, at \d+\.\d{3}s of virtual time, before the scenario's end: a respawn loop without end, or a long run\? .*--max-events N raises the bound$/m)
    const json = await run(["simulate", file, "--max-events", "2000", "--json"])
    expect(json.code).toBe(1)
    expect((JSON.parse(json.out) as { outOfEvents: { maxEvents: number } }).outOfEvents.maxEvents).toBe(2000)
    expect((JSON.parse((await run(["simulate", write("s.scn", scenario), "--json"])).out) as { outOfEvents: unknown }).outOfEvents).toBeNull()
  })
  it("the help states the default bound of simulate", async () => {
    expect((await run(["--help"])).out).toContain(`--max-events N events (default ${defaultMaxEvents})`)
  })
  it("reports scenario errors with their line and exits 1", async () => {
    const { code, err } = await run(["simulate", write("bad.scn", "at soon tell web 2\n")])
    expect(code).toBe(1)
    expect(err).toMatch(/bad\.scn:1: error: /)
    expect((await run(["simulate", join(dir, "none.scn")])).err).toMatch(/cannot read the scenario .*none\.scn: no such file/)
  })
})
