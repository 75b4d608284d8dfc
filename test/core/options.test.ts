/**
 * Issue 11's option syntax: `:::option:TAG:KEY=VALUE` and `:::option:*:KEY=VALUE` lines, read into
 * each entry's typed `options`, every problem with its line.
 */
import { spawnSync } from "node:child_process"
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fc, test as fcTest } from "@fast-check/vitest"
import { describe, expect, it } from "vitest"
import type { Parsed } from "../../src/core/config.ts"
import { parseInittab } from "../../src/core/inittab.ts"
import type { EntryOptions, OptionKey } from "../../src/core/options.ts"
import { optionKeys, optionPairs, optionsOfPairs, optionSpecs, readOptionLine, sameOptions } from "../../src/core/options.ts"
import { rootProblems } from "../../src/core/optionLines.ts"

const optionsOf = (parsed: Parsed, tag: string): EntryOptions | undefined => parsed.config.byTag.get(tag)?.options

const problems = (parsed: Parsed) => parsed.problems.map((p) => [p.severity, p.line, p.message])

describe("option lines", () => {
  it("a TAG line sets that entry's option, a * line every entry's, and a TAG line wins over *", () => {
    const parsed = parseInittab(["g:a:1:respawn:x", "g:b:1:once:y", ":::option:*:cwd=/srv", ":::option:a:cwd=/srv/a", ":::option:*:umask=027"].join("\n"))
    expect(parsed.problems).toEqual([])
    expect(optionsOf(parsed, "a")).toEqual({ cwd: "/srv/a", umask: 0o27 })
    expect(optionsOf(parsed, "b")).toEqual({ cwd: "/srv", umask: 0o27 })
  })

  it("an option may come before its entry; an entry without options has none", () => {
    const parsed = parseInittab(":::option:a:cwd=/tmp\ng:a:1:respawn:x\ng:b:1:respawn:y\n")
    expect(parsed.problems).toEqual([])
    expect(optionsOf(parsed, "a")).toEqual({ cwd: "/tmp" })
    expect(optionsOf(parsed, "b")).toEqual({})
  })

  it("the value is everything after the first =, colons and = included, blanks kept", () => {
    const parsed = parseInittab("g:a:1:respawn:x\n:::option:a:env=URL=http://h:80/?a=b&c=d\n:::option:a:env=PAD= two  \n")
    expect(parsed.problems).toEqual([])
    expect(optionsOf(parsed, "a")?.env).toEqual([{ name: "URL", value: "http://h:80/?a=b&c=d" }, { name: "PAD", value: " two  " }])
  })

  it("env and env-file repeat, the * values first, so a TAG's env of the same NAME is applied last", () => {
    const parsed = parseInittab(["g:a:1:respawn:x", ":::option:a:env=X=tag", ":::option:*:env=X=all", ":::option:*:env=Y=all", ":::option:a:env-file=/etc/a", ":::option:*:env-file=/etc/all"].join("\n"))
    expect(parsed.problems).toEqual([])
    expect(optionsOf(parsed, "a")).toEqual({
      env: [{ name: "X", value: "all" }, { name: "Y", value: "all" }, { name: "X", value: "tag" }],
      "env-file": ["/etc/all", "/etc/a"],
    })
  })

  it("a key given twice for one target: the later line wins, with a warning naming the earlier", () => {
    const parsed = parseInittab("g:a:1:respawn:x\n:::option:a:cwd=/a\n:::option:a:cwd=/b\n")
    expect(problems(parsed)).toEqual([["warning", 3, 'option "cwd" for "a" repeated: this line replaces line 2']])
    expect(optionsOf(parsed, "a")).toEqual({ cwd: "/b" })
  })

  it("a * default is given only to the entries whose mode can use it", () => {
    const parsed = parseInittab("g:a:1:respawn:x\ng:b:1:once:y\n:::option:*:jail=5m\n")
    expect(parsed.problems).toEqual([])
    expect(optionsOf(parsed, "a")).toEqual({ jail: 300_000 })
    expect(optionsOf(parsed, "b")).toEqual({})
  })

  it("an off entry keeps any option, for when it is switched on", () => {
    const parsed = parseInittab("g:a:1:off:x\n:::option:a:jail=5m\n")
    expect(parsed.problems).toEqual([])
    expect(optionsOf(parsed, "a")).toEqual({ jail: 300_000 })
  })
})

describe("isinit check: every option problem with its line", () => {
  it("a TAG's probe tuning without the probe is a warning at its line; a * default is not", () => {
    const parsed = parseInittab("g:a:1:respawn:x\ng:b:1:respawn:y\n:::option:a:ready-timeout=5s\n:::option:*:health-fails=2\n:::option:b:health=tcp:127.0.0.1:80\n:::option:b:health-every=1s\n")
    expect(parsed.problems.map((p) => [p.severity, p.line, p.message])).toEqual([["warning", 3, 'option "ready-timeout" for "a" without "ready" has no effect']])
  })

  const cases: readonly (readonly [string, string, number, RegExp])[] = [
    ["unknown key", "g:a:1:respawn:x\n:::option:a:colour=red\n", 2, /unknown option "colour" \(options: log, log-max, log-keep, user, group, cwd, env, env-file, umask, nofile, nproc, core, memlock, stop-signal, kill-grace, respawn-limit, jail, ready, ready-timeout, health, health-every, health-fails\)/],
    ["unknown tag", "g:a:1:respawn:x\n:::option:b:cwd=/\n", 2, /option "cwd" for unknown tag "b"/],
    ["bad value", "g:a:1:respawn:x\n\n:::option:a:umask=999\n", 3, /option "umask": bad value "999": expected an octal umask/],
    ["a key its mode cannot use", "g:a:1:once:x\n:::option:a:respawn-limit=3/10s\n", 2, /option "respawn-limit" does not apply to "a": it is for respawn entries, "a" is once/],
    ["no =", "g:a:1:respawn:x\n:::option:a:cwd\n", 2, /option needs TAG:KEY=VALUE/],
    ["no tag", "g:a:1:respawn:x\n:::option:cwd=/\n", 2, /option needs TAG:KEY=VALUE/],
    ["an empty key", "g:a:1:respawn:x\n:::option:a:=x\n", 2, /unknown option ""/],
    ["a probe on an entry that is not respawn", "g:a:1:wait:x\n:::option:a:ready=tcp:127.0.0.1:80\n", 2, /option "ready" does not apply to "a": it is for respawn entries, "a" is wait/],
    ["a probe of no known form", "g:a:1:respawn:x\n:::option:a:health=ping:db\n", 2, /option "health": bad value "ping:db": expected exec:COMMAND, tcp:HOST:PORT/],
  ]
  for (const [name, text, line, message] of cases) {
    it(name, () => {
      const parsed = parseInittab(text)
      expect(parsed.problems).toHaveLength(1)
      expect(parsed.problems[0]).toMatchObject({ severity: "error", line, message: expect.stringMatching(message) })
    })
  }

  it("a tag whose line is broken is no unknown tag: its own line explains it", () => {
    const parsed = parseInittab("g:a:1:sometimes:x\ng:b:1:once:y\n:::option:a:cwd=/\n")
    expect(problems(parsed)).toEqual([["error", 1, expect.stringMatching(/unknown mode "sometimes"/)]])
  })

  it("user and group need a root daemon: check says so, with the option's entry line, when not root", () => {
    const parsed = parseInittab("g:a:1:respawn:x\ng:b:1:respawn:y\n:::option:a:user=www-data\n:::option:*:group=100\n")
    expect(parsed.problems).toEqual([])
    expect(rootProblems(parsed.config, 1000).map((p) => [p.severity, p.line, p.message])).toEqual([
      ["warning", 1, expect.stringMatching(/^entry "a": options user, group need a root isinitd \(this check runs as uid 1000\)/)],
      ["warning", 2, expect.stringMatching(/^entry "b": option group needs a root isinitd/)],
    ])
    expect(rootProblems(parsed.config, 0)).toEqual([])
  })
})

/** Good and bad texts of every key: the table is the registry's spec, by example. */
const examples: { readonly [K in OptionKey]: { readonly good: readonly (readonly [string, unknown])[]; readonly bad: readonly string[] } } = {
  log: { good: [["inherit", { _tag: "Inherit" }], ["off", { _tag: "Off" }], ["/var/log/a.log", { _tag: "File", path: "/var/log/a.log" }]], bad: [""] },
  "log-max": { good: [["10M", 10_485_760], ["512", 512], ["1g", 1_073_741_824]], bad: ["0", "-1", "10X", "1.5M"] },
  "log-keep": { good: [["0", 0], ["5", 5]], bad: ["-1", "1001", "x"] },
  user: { good: [["www-data", { _tag: "Name", name: "www-data" }], ["0", { _tag: "Id", id: 0 }], ["1000", { _tag: "Id", id: 1000 }]], bad: ["", "a b", "4294967295", "-1", "1x"] },
  group: { good: [["adm", { _tag: "Name", name: "adm" }], ["100", { _tag: "Id", id: 100 }]], bad: ["", "a:b"] },
  cwd: { good: [["/", "/"], ["/srv/my app", "/srv/my app"]], bad: ["", "srv", "./x"] },
  env: { good: [["A=1", { name: "A", value: "1" }], ["_X=", { name: "_X", value: "" }], ["P=$HOME", { name: "P", value: "$HOME" }]], bad: ["A", "=1", "1A=2", "A B=1", "ISINIT_FENCE=x", "ISINIT_EPOCH=9"] },
  "env-file": { good: [["/etc/default/a", "/etc/default/a"]], bad: ["", "a.env"] },
  umask: { good: [["022", 0o22], ["0027", 0o27], ["7", 0o7], ["777", 0o777]], bad: ["", "8", "1000", "0x1", "-1"] },
  nofile: { good: [["1024", { soft: 1024, hard: 1024 }], ["1024:4096", { soft: 1024, hard: 4096 }], ["1048576", { soft: 1_048_576, hard: 1_048_576 }], ["2097152", { soft: 2_097_152, hard: 2_097_152 }]], bad: ["", "x", "4096:1024", "unlimited", "64:unlimited", "infinity", "1073741817", "unlimited:5", "1:2:3", "1K"] },
  nproc: { good: [["100", { soft: 100, hard: 100 }]], bad: ["-1"] },
  core: { good: [["0", { soft: 0, hard: 0 }], ["1G", { soft: 1_073_741_824, hard: 1_073_741_824 }], ["0:unlimited", { soft: 0, hard: "unlimited" }]], bad: ["1Q"] },
  memlock: { good: [["64M", { soft: 67_108_864, hard: 67_108_864 }]], bad: ["64MB:1K"] },
  "stop-signal": { good: [["SIGINT", "SIGINT"], ["INT", "SIGINT"], ["QUIT", "SIGQUIT"], ["TERM", "SIGTERM"], ["KILL", "SIGKILL"]], bad: ["", "int", "SIGSTOP", "15"] },
  "kill-grace": { good: [["10s", 10_000], ["500ms", 500], ["2", 2000]], bad: ["0", "1h", ""] },
  "respawn-limit": { good: [["3/1m", { max: 3, windowMs: 60_000 }]], bad: ["0/1s", "3", "3/0"] },
  jail: { good: [["5m", 300_000]], bad: ["0", "x"] },
  ready: {
    good: [
      ["exec:pg_isready -q", { _tag: "Exec", command: "pg_isready -q" }],
      ["tcp:127.0.0.1:5432", { _tag: "Tcp", host: "127.0.0.1", port: 5432 }],
      ["tcp:[::1]:80", { _tag: "Tcp", host: "::1", port: 80 }],
      ["http://localhost:8080/healthz", { _tag: "Http", url: "http://localhost:8080/healthz" }],
      ["file:/run/app.ready", { _tag: "File", path: "/run/app.ready" }],
    ],
    bad: ["", "exec:", "tcp:host", "tcp:host:0", "tcp:host:65536", "tcp::80", "http:ftp://x/", "https://x/", "file:rel", "sleep 1"],
  },
  "ready-timeout": { good: [["30s", 30_000], ["1500ms", 1500]], bad: ["0", "x"] },
  health: { good: [["http:http://127.0.0.1/", { _tag: "Http", url: "http://127.0.0.1/" }]], bad: ["tcp:x:y"] },
  "health-every": { good: [["5s", 5000]], bad: ["0"] },
  "health-fails": { good: [["1", 1], ["3", 3]], bad: ["0", "1001", "x"] },
}

describe("every key's values", () => {
  for (const key of optionKeys) {
    const { good, bad } = examples[key]
    it(`${key}: reads what it documents, refuses the rest, and shows its value back as text it reads the same`, () => {
      for (const [text, value] of good) {
        const read = readOptionLine(`a:${key}=${text}`)
        expect(read).toEqual({ _tag: "Option", target: "a", key, text, value })
        const shown = (optionSpecs[key].show as (v: unknown) => string)(value)
        expect(readOptionLine(`a:${key}=${shown}`)).toMatchObject({ _tag: "Option", value })
      }
      for (const text of bad) expect(readOptionLine(`a:${key}=${text}`)).toMatchObject({ _tag: "Bad", message: expect.stringContaining(`option "${key}": bad value`) })
    })
  }

  it("every key has a doc line and a default for the README", () => {
    for (const key of optionKeys) {
      expect(optionSpecs[key].doc.length).toBeGreaterThan(10)
      expect(optionSpecs[key].default).not.toBe("")
    }
  })
})

/** Any option line a user could write for a respawn entry, from the examples (good and bad). */
const optionTextArb = fc.constantFrom(...optionKeys).chain((key) => fc.constantFrom(...examples[key].good.map(([text]) => `${key}=${text}`)))

describe("text pairs (the state file's form) and rule 12's comparison", () => {
  fcTest.prop([fc.array(optionTextArb, { maxLength: 8 })])("options read back from their pairs are the same options", (lines) => {
    const parsed = parseInittab(["g:a:1:respawn:x", ...lines.map((l) => `:::option:a:${l}`)].join("\n"))
    const options = optionsOf(parsed, "a") ?? {}
    const back = optionsOfPairs(optionPairs(options))
    expect(back).toEqual(options)
    expect(sameOptions(back, options)).toBe(true)
  })

  fcTest.prop([fc.array(optionTextArb, { maxLength: 6 }), fc.array(optionTextArb, { maxLength: 6 })])("two entries' options are the same exactly when their pairs are", (left, right) => {
    const read = (lines: readonly string[]) => optionsOf(parseInittab(["g:a:1:respawn:x", ...lines.map((l) => `:::option:a:${l}`)].join("\n")), "a") ?? {}
    const a = read(left)
    const b = read(right)
    expect(sameOptions(a, b)).toBe(JSON.stringify(optionPairs(a)) === JSON.stringify(optionPairs(b)))
  })

  it("a pair this version cannot read is left out (the run then counts as changed, and restarts)", () => {
    expect(optionsOfPairs([["colour", "red"], ["cwd", "/x"], ["umask", "9"]])).toEqual({ cwd: "/x" })
  })
})

// The compatibility proof: the ORIGINAL isinittab reader (`_config` of IS::Init 0.93, verbatim
// but for line breaks; `debug` and Data::Dump's `dump` stubbed: they only print when debugging),
// run by perl, with warnings on, on a file full of options. It must read the entries we read and
// take no option line for an entry.
const originalConfig = String.raw`
# Data::Dump's dump, imported from another package as "use Data::Dump qw(dump)" does.
BEGIN { *IS::Init::dump = sub { "" } }
package IS::Init;
use strict;
use warnings;
sub debug { }
sub _config
{
  my $self=shift;
  $self->{'inittab'}={};
  open(INITTAB,"<$self->{'config'}") || die $!;
  while(<INITTAB>)
  {
    next if /^#/;
    next if /^\s*$/;
    chomp;
    my ($group,$tag,$level,$mode,$cmd) = split(':',$_,5);
    debug "inittab $group|$tag|$level|$mode|$cmd\n";
    if ($mode eq "socket")
    {
      $self->{'socket'} = $cmd;
      next;
    }
    if ($mode eq "initstat")
    {
      $self->{'initstat'} = $cmd;
      next;
    }
    next if /^:::/;
    $self->{'inittab'}{'group'}{$tag} = $group;
    my @level;
    if ($level =~/,/)
    {
      @level = split(',',$level);
      debug dump(@level). "\n";
    }
    else
    {
      @level = split('',$level);
    }
    debug "final levels @level\n";
    $self->{'inittab'}{'levels'}{$tag} = \@level;
    $self->{'inittab'}{'mode'}{$tag} = $mode;
    $self->{'inittab'}{'cmd'}{$tag} = $cmd;
  }
}
package main;
my $self = bless { config => $ARGV[0] }, 'IS::Init';
$self->_config();
my $t = $self->{'inittab'};
for my $tag (sort keys %{$t->{'group'}}) {
  print join("|", $tag, $t->{'group'}{$tag}, join(",", @{$t->{'levels'}{$tag}}), $t->{'mode'}{$tag}, $t->{'cmd'}{$tag}), "\n";
}
`

const hasPerl = spawnSync("perl", ["-v"]).status === 0

describe.skipIf(!hasPerl)("compatibility with the original IS::Init (perl)", () => {
  it("the original reads a file full of options without a warning, and takes the same entries", () => {
    const keys = optionKeys.map((key) => `:::option:web:${key}=${examples[key].good[0]?.[0] ?? ""}`)
    const text = [
      ":::socket:/tmp/isinit.s",
      "web:web:2,3:respawn:/usr/sbin/httpd -f /etc/h.conf",
      ":::option:*:env=URL=http://x:80/a=b",
      ...keys,
      "db:db:23:once:/usr/bin/db --port=5432",
      ":::option:db:env=A=B:C",
      ":::option:*:cwd=/srv",
      ":::option:db:stop-signal=INT",
    ].join("\n") + "\n"
    const ours = parseInittab(text)
    expect(ours.problems.filter((p) => p.severity === "error")).toEqual([])
    const dir = mkdtempSync(join(tmpdir(), "isinit-options-"))
    try {
      writeFileSync(join(dir, "config.pl"), originalConfig)
      writeFileSync(join(dir, "isinittab"), text)
      const result = spawnSync("perl", [join(dir, "config.pl"), join(dir, "isinittab")], { encoding: "utf8" })
      expect(result.stderr).toBe("")
      expect(result.status).toBe(0)
      const theirs = result.stdout.split("\n").filter((l) => l !== "")
      const mine = [...ours.config.entries].sort((a, b) => (a.tag < b.tag ? -1 : 1)).map((e) => [e.tag, e.group, e.levels.join(","), e.mode, e.command].join("|"))
      expect(theirs).toEqual(mine)
      expect(theirs).toHaveLength(2)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe("the README", () => {
  it("has one row per key, in the registry's order", () => {
    const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8")
    const rows = [...readme.matchAll(/^\| `([a-z-]+)` \| (all|respawn) \|/gm)].map((m) => m[1])
    expect(rows).toEqual([...optionKeys])
  })
})
