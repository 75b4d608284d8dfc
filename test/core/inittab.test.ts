import { readFileSync } from "node:fs"
import { fileURLToPath } from "node:url"
import { fc, test as fcTest } from "@fast-check/vitest"
import { describe, expect, it } from "vitest"
import type { Parsed, Problem } from "../../src/core/config.ts"
import { defaultLimits, hasErrors } from "../../src/core/config.ts"
import { checkSummary, directives, DurationFromString, formatProblem, parseInittab } from "../../src/core/inittab.ts"

const only = (parsed: Parsed): Problem => {
  expect(parsed.problems).toHaveLength(1)
  const [problem] = parsed.problems
  if (problem === undefined) throw new Error("no problem")
  return problem
}

const entry = (parsed: Parsed, tag: string) => parsed.config.byTag.get(tag)

describe("entries", () => {
  it("splits on the first four colons and keeps the command's colons", () => {
    const parsed = parseInittab("a:b:run,:respawn:echo a:b\n")
    expect(parsed.problems).toEqual([])
    expect(parsed.config.entries).toEqual([
      { group: "a", tag: "b", levels: ["run"], mode: "respawn", command: "echo a:b", line: 1, options: {} },
    ])
  })

  it("keeps the command byte for byte, inner and trailing blanks included, but drops a CR", () => {
    const parsed = parseInittab("g:t:1:once:  echo  'x'  \r\ng:u:1:once:echo\t:\r\n")
    expect(entry(parsed, "t")?.command).toBe("  echo  'x'  ")
    expect(entry(parsed, "u")?.command).toBe("echo\t:")
    expect(parsed.problems).toEqual([])
  })

  it("reads runlevels as the original: commas split, otherwise one level per character", () => {
    const parsed = parseInittab(["g:a:2345:once:x", "g:b:run,:once:x", "g:c:a,,b,:once:x", "g:d:0:once:x", "g:e:run,stop:once:x"].join("\n"))
    expect(entry(parsed, "a")?.levels).toEqual(["2", "3", "4", "5"])
    expect(entry(parsed, "b")?.levels).toEqual(["run"])
    expect(entry(parsed, "c")?.levels).toEqual(["a", "b"])
    expect(entry(parsed, "d")?.levels).toEqual(["0"])
    expect(entry(parsed, "e")?.levels).toEqual(["run", "stop"])
    expect(parsed.problems).toEqual([])
  })

  it("accepts every mode and keeps file order with 1-based lines", () => {
    const parsed = parseInittab("# c\n\ng:a:1:respawn:x\ng:b:1:once:x\n   \nh:c:1:wait:x\nh:d:1:test:x\nh:e:1:off:x\n")
    expect(parsed.problems).toEqual([])
    expect(parsed.config.entries.map((e) => [e.tag, e.mode, e.line])).toEqual([
      ["a", "respawn", 3],
      ["b", "once", 4],
      ["c", "wait", 6],
      ["d", "test", 7],
      ["e", "off", 8],
    ])
    expect([...parsed.config.byGroup.keys()]).toEqual(["g", "h"])
    expect(parsed.config.byGroup.get("h")?.map((e) => e.tag)).toEqual(["c", "d", "e"])
  })

  it("skips only lines whose first character is #", () => {
    const parsed = parseInittab("  # indented:t:1:once:x\n")
    expect(parsed.config.entries.map((e) => e.group)).toEqual(["  # indented"])
  })

  it("handles a file without a final newline", () => {
    expect(parseInittab("g:t:1:once:x").config.entries).toHaveLength(1)
  })

  it("a file without entries is an error of the whole file: empty, blank, comments and directives only", () => {
    for (const text of ["", "\n", "# nothing\n\n", ":::jail:5s\n", "x:y:z:socket:/tmp/s\n", "\uFEFF"]) {
      const parsed = parseInittab(text)
      expect(parsed.config.entries, JSON.stringify(text)).toEqual([])
      const errors = parsed.problems.filter((p) => p.severity === "error")
      expect(errors, JSON.stringify(text)).toEqual([{ severity: "error", line: 0, message: expect.stringMatching(/^no entries: .*truncated.*refused so that nothing stops.*rename/) }])
    }
  })

  it("entries set to off count: a file of off entries stops everything on purpose", () => {
    expect(parseInittab("g:t:1:off:x\n").problems).toEqual([])
  })

  it("a file whose every line is broken reports those lines, not a missing entry", () => {
    expect(parseInittab("g:t:1:sometimes:x\n").problems.map((p) => p.line)).toEqual([1])
  })
})

describe("a UTF-8 byte-order mark", () => {
  it("is dropped, named in a warning, never folded into the first group's name", () => {
    const bytes = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from("web:w:1:respawn:sleep 1\n")])
    const parsed = parseInittab(bytes.toString("utf8"))
    expect(parsed.config.entries.map((e) => e.group)).toEqual(["web"])
    expect(parsed.problems).toEqual([{ severity: "warning", line: 1, message: expect.stringMatching(/byte-order mark \(EF BB BF\).*ignored/) }])
  })

  it("before a comment or a directive, they still read as such", () => {
    expect(parseInittab("\uFEFF# comment\ng:t:1:once:x\n").config.entries.map((e) => e.line)).toEqual([2])
    expect(parseInittab("\uFEFF:::jail:5s\ng:t:1:once:x\n").config.limits.jailMs).toBe(5000)
  })
})

describe("errors", () => {
  const cases: ReadonlyArray<readonly [string, string, number, RegExp]> = [
    ["too few fields", "# x\ng:t:1:once\n", 2, /too few fields.*found 4 fields/],
    ["one field", "hello\n", 1, /too few fields.*found 1 field$/],
    ["empty group", "g:a:1:once:x\n:t:1:once:x\n", 2, /field "group" is empty/],
    ["empty tag", "\ng::1:once:x\n", 2, /field "tag" is empty/],
    ["unknown mode", "g:t:1:sometimes:x\n", 1, /field "mode": unknown mode "sometimes" \(modes: respawn, once, wait, test, off\)/],
    ["empty mode", "g:t:1::x\n", 1, /unknown mode ""/],
    ["empty command", "g:t:1:respawn:\n", 1, /field "command" is empty/],
    ["empty runlevels", "g:t::once:x\n", 1, /field "runlevels" is empty/],
    ["only commas", "g:t:,,:wait:x\n", 1, /field "runlevels" is empty/],
    ["socket without path", ":::socket\n", 1, /directive "socket" needs a path/],
    ["initstat with empty path", ":::initstat:\n", 1, /directive "initstat" needs a path/],
    ["bad jail", ":::jail:soon\n", 1, /directive "jail": bad value "soon"/],
    ["zero kill-grace", ":::kill-grace:0s\n", 1, /directive "kill-grace": bad value "0s"/],
    ["huge jail", ":::jail:25000h\n", 1, /directive "jail": bad value/],
    ["too long jail", ":::jail:2147484s\n", 1, /directive "jail": bad value/],
    ["bad respawn-limit", ":::respawn-limit:5\n", 1, /directive "respawn-limit": bad value "5"/],
    ["zero respawn count", ":::respawn-limit:0/10s\n", 1, /respawn-limit.*bad value "0\/10s"/],
    ["respawn count too large", ":::respawn-limit:1001/10s\n", 1, /respawn-limit/],
    ["respawn window with unit typo", ":::respawn-limit:5/10sec\n", 1, /respawn-limit/],
  ]
  for (const [name, text, line, message] of cases) {
    it(name, () => {
      const problem = only(parseInittab(text))
      expect(problem.severity).toBe("error")
      expect(problem.line).toBe(line)
      expect(problem.message).toMatch(message)
    })
  }

  it("a repeated tag names the first definition and keeps it", () => {
    const parsed = parseInittab("g:t:1:once:first\n\nh:t:2:respawn:second\n")
    const problem = only(parsed)
    expect(problem).toMatchObject({ severity: "error", line: 3 })
    expect(problem.message).toMatch(/tag "t" repeated: first defined on line 1/)
    expect(entry(parsed, "t")).toMatchObject({ group: "g", command: "first", line: 1 })
    expect(parsed.config.entries).toHaveLength(1)
  })

  it("reports every problem of a line, and leaves bad lines out of the config", () => {
    const parsed = parseInittab("::1:maybe:\n")
    expect(parsed.problems.map((p) => [p.line, p.severity])).toEqual([
      [1, "error"],
      [1, "error"],
      [1, "error"],
      [1, "error"],
    ])
    expect(parsed.config.entries).toEqual([])
    expect(hasErrors(parsed)).toBe(true)
  })

  it("an off entry may have an empty command and no levels", () => {
    const parsed = parseInittab("g:t::off:\n")
    expect(parsed.problems).toEqual([])
    expect(entry(parsed, "t")).toMatchObject({ mode: "off", levels: [], command: "" })
  })
})

describe("warnings", () => {
  it("a comma-less word as runlevels suggests the comma", () => {
    const parsed = parseInittab("g:t:run:respawn:x\n")
    const problem = only(parsed)
    expect(problem).toMatchObject({ severity: "warning", line: 1 })
    expect(problem.message).toBe(`runlevels "run" means the levels r, u, n; write "run," for one level named run`)
    expect(entry(parsed, "t")?.levels).toEqual(["r", "u", "n"])
    expect(hasErrors(parsed)).toBe(false)
  })

  it("digits and single characters are not warned about", () => {
    expect(parseInittab("g:a:2345:once:x\ng:b:S:once:x\ng:c:s,:once:x\n").problems).toEqual([])
  })

  it("a level or group with whitespace can never be requested", () => {
    const parsed = parseInittab("g:t:run, stop:once:x\nmy app:u:1:once:x\n")
    expect(parsed.problems.map((p) => [p.severity, p.line])).toEqual([
      ["warning", 1],
      ["warning", 2],
    ])
    expect(parsed.problems[0]?.message).toMatch(/runlevel " stop" contains whitespace/)
    expect(parsed.problems[1]?.message).toMatch(/group "my app" contains whitespace/)
  })

  it("an unknown ::: directive is a warning and is ignored", () => {
    const parsed = parseInittab("g:t:1:once:x\n:::respawn:sleep 1\n")
    const problem = only(parsed)
    expect(problem).toMatchObject({ severity: "warning", line: 2 })
    expect(problem.message).toMatch(/unknown directive ":::respawn" ignored/)
    expect(parsed.config.entries).toHaveLength(1)
  })

  it("a repeated directive warns and the later line wins", () => {
    const parsed = parseInittab(":::jail:10s\n:::jail:20s\ng:t:1:once:x\n")
    const problem = only(parsed)
    expect(problem).toMatchObject({ severity: "warning", line: 2 })
    expect(problem.message).toMatch(/directive "jail" repeated: this line replaces line 1/)
    expect(parsed.config.limits.jailMs).toBe(20_000)
  })
})

describe("what the daemon or old clients trip over (warnings)", () => {
  const warnings = (text: string): string[] => {
    const parsed = parseInittab(text)
    expect(hasErrors(parsed)).toBe(false)
    return parsed.problems.map((p) => `${p.line}: ${p.message}`)
  }
  const cases: ReadonlyArray<readonly [string, string, RegExp]> = [
    ["a group starting with stopall", "stopall-web:t:1:once:x\n", /^1: group "stopall-web" starts with "stopall": an original IS::Init client's tell of it .* is read as stopall/],
    ["a group named stopall", "stopall:t:1:once:x\n", /group "stopall" starts with "stopall"/],
    ["a group starting with {", "{web}:t:1:once:x\n", /^1: group "\{web\}" starts with "\{": isinitd reads a line starting with "\{" as JSON/],
    ["a group with a control character", "we\u0001b:t:1:once:x\n", /^1: group "we.b" can never be requested: the group contains a control character/],
    ["a group with Unicode whitespace", "web\u00a0a:t:1:once:x\n", /can never be requested: the group contains whitespace/],
    ["a group over 256 characters", `${"g".repeat(257)}:t:1:once:x\n`, /can never be requested: the group is longer than 256 characters/],
    ["a level over 256 characters", `g:t:${"l".repeat(257)},:once:x\n`, /runlevel "l+" can never be requested: the runlevel is longer than 256/],
    ["a command ending in &", "g:t:1:respawn:my-server --port 80 &\n", /^1: command ends with "&": the shell exits at once .*cannot stop it/],
    ["nohup ... &", "g:t:1:once:nohup sleep 100 > /dev/null 2>&1 &\n", /command ends with "&"/],
    ["setsid", "g:t:1:respawn:setsid sleep 100\n", /^1: command runs setsid: the program moves to a new session, out of the entry's process group/],
    ["setsid behind wrappers and a path", "g:t:1:respawn:A=1 exec nice -n 5 /usr/bin/setsid -f sleep 100\n", /command runs setsid/],
    ["setsid after a separator", "g:t:1:respawn:cd /srv && setsid ./app\n", /command runs setsid/],
    ["a daemonizer", "g:t:1:respawn:start-stop-daemon --start --exec /usr/sbin/app\n", /command runs start-stop-daemon, which detaches the program \(daemon mode\)/],
    ["daemonize", "g:t:1:respawn:daemonize /usr/sbin/app\n", /command runs daemonize/],
    ["a daemon-mode flag", "g:t:1:respawn:/usr/sbin/app --daemon -c /etc/app.conf\n", /^1: command passes --daemon, which usually makes a program detach/],
    ["docker run --detach", "g:t:1:respawn:docker run --detach nginx\n", /command passes --detach/],
  ]
  for (const [name, text, expected] of cases) {
    it(name, () => {
      const found = warnings(text)
      expect(found, JSON.stringify(found)).toHaveLength(1)
      expect(found[0]).toMatch(expected)
    })
  }

  it("leaves alone what only looks alike", () => {
    for (const text of [
      "web:t:1:once:echo setsid daemon &&\n", // words, not commands; && is not &
      "web:t:1:once:a && b\n",
      "web:t:1:respawn:sleep 1 & wait\n", // backgrounded, then waited for: supervised
      "web:t:1:respawn:git daemon --base-path=/srv\n",
      "web:t:1:off:setsid app &\n", // never runs
      "stop-all:t:1:once:x\nweb{:u:1:once:x\n",
    ]) {
      expect(warnings(text), text).toEqual([])
    }
  })

  it("a command too long to exec: one /bin/sh -c argument, or one word, over 131071 bytes", () => {
    const atLimit = "x".repeat(131_071)
    expect(warnings(`g:t:1:once:echo '${"x".repeat(131_071 - 7)}'\n`)).toEqual([])
    expect(warnings(`g:t:1:once:echo ${atLimit}\n`)).toEqual([])
    const [shell] = warnings(`g:t:1:once:echo '${"x".repeat(131_072 - 7)}'\n`)
    expect(shell).toMatch(/^1: command is too long to run: the command runs as one \/bin\/sh -c argument of 131072 bytes, over the kernel's limit of 131071 bytes per argument \(MAX_ARG_STRLEN\)/)
    const [word] = warnings(`g:t:1:once:echo ${"é".repeat(65_536)}\n`)
    expect(word).toMatch(/a word of the command is 131072 bytes/)
    expect(warnings(`g:t:1:once:echo ${"x ".repeat(100_000)}\n`)).toEqual([]) // many short words are fine
  })
})

describe("directives", () => {
  it("defaults follow the original", () => {
    const parsed = parseInittab("g:t:1:once:x\n")
    expect(parsed.config.limits).toEqual(defaultLimits)
    expect(defaultLimits).toEqual({ respawnMax: 5, respawnWindowMs: 10_000, jailMs: 60_000, killGraceMs: 30_000 })
    expect(parsed.config.socket).toBeUndefined()
    expect(parsed.config.initstat).toBeUndefined()
  })

  it("reads socket, initstat and tuning directives", () => {
    const parsed = parseInittab(
      [":::socket:/tmp/is/init.s", ":::initstat:/tmp/is/a:b", ":::respawn-limit:3/2m", ":::jail: 500ms ", ":::kill-grace:7", "g:t:1:once:x"].join("\r\n"),
    )
    expect(parsed.problems).toEqual([])
    expect(parsed.config.socket).toBe("/tmp/is/init.s")
    expect(parsed.config.initstat).toBe("/tmp/is/a:b")
    expect(parsed.config.limits).toEqual({ respawnMax: 3, respawnWindowMs: 120_000, jailMs: 500, killGraceMs: 7000 })
    expect(parsed.config.entries.map((e) => e.tag)).toEqual(["t"])
  })

  it("like the original, any line with mode socket or initstat is a directive", () => {
    const parsed = parseInittab("x:y:z:socket:/tmp/s\ng:t:1:initstat:/tmp/st\ng:u:1:once:x\n")
    expect(parsed.problems).toEqual([])
    expect(parsed.config.socket).toBe("/tmp/s")
    expect(parsed.config.initstat).toBe("/tmp/st")
    expect(parsed.config.entries.map((e) => e.tag)).toEqual(["u"])
  })

  it("durations: ms, s, m and bare seconds", () => {
    const decode = (s: string) => {
      const result = DurationFromString.decode(s)
      return result._tag === "Right" ? result.right : undefined
    }
    expect([decode("500ms"), decode("10s"), decode("2m"), decode("7"), decode("2147483647ms")]).toEqual([500, 10_000, 120_000, 7000, 2_147_483_647])
    expect([decode("0"), decode("-1s"), decode("1.5s"), decode("1h"), decode(""), decode("2147483648ms")]).toEqual([
      undefined, undefined, undefined, undefined, undefined, undefined,
    ])
  })

  it("lists every directive for the README", () => {
    expect(directives.map((d) => d.syntax.split(":")[3])).toEqual([
      "socket", "initstat", "respawn-limit", "jail", "kill-grace", "removal-guard", "option",
      "failover", "failover-ttl", "failover-renew-deadline", "failover-kill-grace", "failover-takeover-delay", "failover-ban",
    ])
  })

  it("removal-guard: a whole percentage from 0% to 100%, or off; 50% by default", () => {
    const guard = (value: string) => parseInittab(`:::removal-guard:${value}\ng:t:1:once:x\n`)
    expect(parseInittab("g:t:1:once:x\n").config.removalGuard).toEqual({ _tag: "Share", percent: 50 })
    expect(guard("0%").config.removalGuard).toEqual({ _tag: "Share", percent: 0 })
    expect(guard(" 100% ").config.removalGuard).toEqual({ _tag: "Share", percent: 100 })
    expect(guard("off").config.removalGuard).toEqual({ _tag: "Off" })
    for (const bad of ["50", "101%", "-1%", "1.5%", "half", ""]) {
      const problem = only(guard(bad))
      expect(problem, bad).toMatchObject({ severity: "error", line: 1 })
      expect(problem.message, bad).toMatch(/directive "removal-guard": bad value .*0% to 100%.*off/)
    }
  })
})

describe("reporting", () => {
  it("formats problems compiler style", () => {
    expect(formatProblem("/etc/isinittab", { severity: "error", line: 4, message: "boom" })).toBe("/etc/isinittab:4: error: boom")
    expect(formatProblem("f", { severity: "warning", line: 0, message: "m" })).toBe("f: warning: m")
  })

  it("summarises a check", () => {
    expect(checkSummary("f", parseInittab("g:a:1:once:x\nh:b:run:once:x\ng:a:1:once:x\n"))).toBe("f: 2 entries in 2 groups, 1 error, 1 warning")
    expect(checkSummary("f", parseInittab("g:a:1:once:x\n"))).toBe("f: 1 entry in 1 group, 0 errors, 0 warnings")
  })
})

describe("the example isinittab", () => {
  const path = fileURLToPath(new URL("../../examples/isinittab", import.meta.url))
  const text = readFileSync(path, "utf8")

  it("never wraps a shell in a shell: a command with metacharacters already runs under /bin/sh -c", () => {
    for (const e of parseInittab(text).config.entries) expect(e.command, e.tag).not.toMatch(/^\s*(\S*\/)?(ba|da)?sh\s+-c\b/)
  })

  it("says how commands run as the README does: directly, or by /bin/sh -c with metacharacters", () => {
    const comment = text.split("\n").filter((l) => l.startsWith("#")).join("\n")
    expect(comment).not.toMatch(/a \/bin\/sh command line/)
    expect(comment).toMatch(/split into words\s+#\s+and executed directly; any other runs as \/bin\/sh -c/)
  })

  it("parses cleanly and uses only the allowed commands", () => {
    const parsed = parseInittab(text)
    expect(parsed.problems).toEqual([])
    expect(parsed.config.byGroup.size).toBeGreaterThanOrEqual(2)
    expect(new Set(parsed.config.entries.map((e) => e.mode))).toEqual(new Set(["respawn", "once", "wait", "test", "off"]))
    const allowed = new Set(["sleep", "echo", "true", "false", "while", "do", "done"])
    for (const e of parsed.config.entries) {
      for (const part of e.command.split(/;|&&|\|\||'|-c/)) {
        const word = part.trim().split(/\s+/)[0] ?? ""
        if (word !== "") expect(allowed.has(word), `${e.tag}: ${word}`).toBe(true)
      }
    }
  })
})

// Lines built from the pieces that matter to the parser, so that the fuzzer hits real cases.
const piece = fc.constantFrom(":", "::", ":::", "#", ",", " ", "\t", "\r", "\n", "g", "t", "run", "2345", "once", "respawn", "off", "socket", "initstat", "jail", "kill-grace", "respawn-limit", "5/10s", "10s", "x", "é", "\u2028")
const inittabText = fc.oneof(fc.string({ unit: "binary", maxLength: 300 }), fc.array(piece, { maxLength: 80 }).map((p) => p.join("")))

describe("properties", () => {
  fcTest.prop([inittabText], { numRuns: 2000 })("never throws, and every problem's line is in the file", (text) => {
    const parsed = parseInittab(text)
    const lineCount = text.split("\n").length
    for (const problem of parsed.problems) {
      // Line 0 is the whole file: only for a file without entries.
      expect(problem.line).toBeGreaterThanOrEqual(parsed.config.entries.length === 0 ? 0 : 1)
      expect(problem.line).toBeLessThanOrEqual(lineCount)
      expect(problem.message.length).toBeGreaterThan(0)
    }
    for (const e of parsed.config.entries) {
      expect(e.group).not.toBe("")
      expect(e.tag).not.toBe("")
      expect(parsed.config.byTag.get(e.tag)).toBe(e)
    }
  })

  fcTest.prop([fc.array(fc.tuple(fc.stringMatching(/^[a-z]{1,6}$/), fc.stringMatching(/^[^:\n\r]{0,20}$/)), { minLength: 1, maxLength: 20 })])(
    "a well-formed file parses to its entries, commands verbatim",
    (rows) => {
      const unique = [...new Map(rows).entries()]
      const text = unique.map(([tag, command]) => `grp:${tag}:run,:once:${command}:${tag}`).join("\n")
      const parsed = parseInittab(text)
      expect(parsed.problems).toEqual([])
      expect(parsed.config.entries.map((e) => [e.tag, e.command])).toEqual(unique.map(([tag, command]) => [tag, `${command}:${tag}`]))
    },
  )
})
