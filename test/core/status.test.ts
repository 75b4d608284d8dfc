import { spawnSync } from "node:child_process"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fc, test as fcTest } from "@fast-check/vitest"
import * as HashMap from "effect/HashMap"
import { afterAll, describe, expect, it } from "vitest"
import { parseInittab } from "../../src/core/inittab.ts"
import { freshGroup, initialStateWith } from "../../src/core/state.ts"
import type { GroupState, State } from "../../src/core/state.ts"
import type { StatusFilter, StatusRow } from "../../src/core/status.ts"
import { compareUtf8, parseStatusFile, renderStatusFile, statusRows } from "../../src/core/status.ts"

const rows: readonly StatusRow[] = [
  { group: "web", state: "run", level: "run" },
  { group: "db", state: "start", level: "2" },
  { group: "batch", state: "stopped", level: "" },
  { group: "a-very-long-group-name", state: "fail", level: "maintenance-level" },
  { group: "zero", state: "run", level: "0" },
  { group: "café", state: "stopping", level: "ünï" },
]

describe("renderStatusFile", () => {
  it("writes the original's layout: ids, %-15s columns sorted by group, trailing blanks kept", () => {
    const text = renderStatusFile(rows.slice(0, 3), "0.42")
    expect(text).toBe(
      "!startid 0.42\n" +
        "batch           stopped                        \n" +
        "db              start           2              \n" +
        "web             run             run            \n" +
        "!endid 0.42\n",
    )
  })

  it("never truncates long fields", () => {
    expect(renderStatusFile([rows[3]!], "1")).toContain("a-very-long-group-name fail            maintenance-level\n")
  })

  it("an empty fleet is just the ids", () => {
    expect(renderStatusFile([], "x")).toBe("!startid x\n!endid x\n")
  })
})

describe("statusRows", () => {
  const withGroups = (text: string, groups: readonly GroupState[]): State => ({
    ...initialStateWith(parseInittab(text).config),
    groups: HashMap.fromIterable(groups.map((g) => [g.name, g] as const)),
  })

  it("lists every group of the config, sorted, never-told ones stopped with no level", () => {
    const state = withGroups("web:w:run,:respawn:x\nbatch:b:2345:once:x\ndb:d:0:once:x\n", [
      { ...freshGroup("web"), level: "run", phase: "run" },
      { ...freshGroup("db"), level: "0", phase: "start" },
    ])
    expect(statusRows(state)).toEqual([
      { group: "batch", state: "stopped", level: "" },
      { group: "db", state: "start", level: "0" },
      { group: "web", state: "run", level: "run" },
    ])
  })

  it("keeps a told group that the config no longer defines", () => {
    const state = withGroups("web:w:run,:respawn:x\n", [{ ...freshGroup("gone"), level: "1", phase: "stopped" }])
    expect(statusRows(state).map((r) => r.group)).toEqual(["gone", "web"])
  })
})

describe("parseStatusFile", () => {
  const file = renderStatusFile(rows, "123")

  it("round-trips what renderStatusFile writes", () => {
    const read = parseStatusFile(file)
    expect(read.complete).toBe(true)
    expect(read.rows).toEqual([...rows].sort((a, b) => (a.group < b.group ? -1 : 1)))
    expect(read.text).toBe(file.split("\n").slice(1, -2).map((l) => `${l}\n`).join(""))
  })

  it("group filter: state and level, group and trailing blanks stripped, no newline", () => {
    expect(parseStatusFile(file, { group: "web" }).text).toBe("run             run")
    expect(parseStatusFile(file, { group: "web" }).lines).toEqual(["run             run"])
    expect(parseStatusFile(file, { group: "nobody" }).text).toBe("")
  })

  it("level filter: group names only, run together as the original does", () => {
    const twoAtRun = renderStatusFile([...rows, { group: "api", state: "run", level: "run" }], "9")
    const read = parseStatusFile(twoAtRun, { level: "run" })
    expect(read.text).toBe("apiweb")
    expect(read.lines).toEqual(["api", "web"])
    expect(read.rows.map((r) => r.group)).toEqual(["api", "web"])
  })

  it("both filters: the state alone", () => {
    expect(parseStatusFile(file, { group: "db", level: "2" }).text).toBe("start")
    expect(parseStatusFile(file, { group: "db", level: "3" }).text).toBe("")
  })

  it("a filter 0 filters (the original took the string 0 for no filter)", () => {
    expect(parseStatusFile(file, { level: "0" }).lines).toEqual(["zero"])
  })

  it("torn or foreign files are incomplete", () => {
    expect(parseStatusFile("!startid 1\nweb run run\n!endid 2\n").complete).toBe(false)
    expect(parseStatusFile("!startid 1\nweb run run\n")).toEqual({ complete: false, rows: [], lines: [], text: "" })
    expect(parseStatusFile("").complete).toBe(false)
    expect(parseStatusFile("web run run\n").complete).toBe(false)
  })

  it("follows the original's retry loop, whose ids carry over from one pass to the next", () => {
    // Pass 1 skips the `!endid` (no start id yet) and ends at `!startid Y`; pass 2 reads the
    // `!endid Y` first, so the ids agree and the original returns "".
    expect(parseStatusFile("!endid Y\nweb run run\n!startid Y\ndb run 2\n")).toMatchObject({ complete: true, text: "" })
  })
})

// The compatibility proof: the ORIGINAL `status` method (IS::Init 0.93, verbatim but for line
// breaks), run by perl on files written by renderStatusFile and on random files.
const originalStatus = String.raw`
package IS::Init;
use strict;
sub status
{
  my $self=shift;
  my %parm = @_;
  my $group = $parm{'group'} if $parm{'group'};
  my $level = $parm{'level'} if $parm{'level'};
  my $initstat = $parm{'initstat'} if $parm{'initstat'};
  # allow this to be called as IS::Init->status(...)
  $self=bless({},$self) unless ref($self);
  $self->{'initstat'} = $initstat if $initstat;
  return "" unless $self->{'initstat'} && -f $self->{'initstat'};
  my $startid="start";
  my $endid="end";
  my $out;
  do
  {
    $out ="";
    open(STATUS,"<$self->{'initstat'}") || die $!;
    while(<STATUS>)
    {
      if (/^!startid (.*)/)
      {
        $startid = $1;
        next;
      }
      next if $startid eq "start";
      if (/^!endid (.*)/)
      {
        $endid = $1;
        last;
      }
      my ($sgroup,$state,$slevel) = split;
      next unless $state;
      if ($group)
      {
        next if $group ne $sgroup;
        s/^\S+\s+(.*?)\s*$/$1/;
        chomp;
      }
      if ($level)
      {
        next if $level ne $slevel;
        s/^(\S+)\s+.*$/$1/;
        chomp;
      }
      $out .= $_;
    }
  } while $startid ne $endid;
  return $out;
}
`

// Each case runs in a forked child (the original's `my $x = ... if ...` keeps values between
// calls in one process) under an alarm, since the original loops forever on a torn file.
const driver = String.raw`
package main;
$| = 1;
my ($cases, $seconds) = @ARGV;
open(my $in, "<", $cases) or die $!;
while (my $line = <$in>) {
  chomp $line;
  my ($file, $group, $level) = map { pack("H*", $_) } split(/,/, $line, -1);
  my $pid = fork();
  die $! unless defined $pid;
  if ($pid == 0) {
    alarm $seconds;
    my $out = IS::Init->status(initstat => $file, group => $group, level => $level);
    print unpack("H*", $out), "\n";
    exit 0;
  }
  waitpid($pid, 0);
  print "TIMEOUT\n" if ($? & 127) == 14;
}
`

// The original writer (`_status`): `for my $group (sort @group)`, then the printf, on byte strings.
const perlSortAndPrintf = String.raw`
$| = 1;
my $id = shift;
my (%state, %level);
while (my $line = <STDIN>) {
  chomp $line;
  my ($g, $s, $l) = map { pack("H*", $_) } split(/,/, $line, -1);
  ($state{$g}, $level{$g}) = ($s, $l);
}
print "!startid $id\n";
for my $group (sort keys %state) {
  printf("%-15s %-15s %-15s\n", $group, $state{$group}, $level{$group});
}
print "!endid $id\n";
`

/** Names whose UTF-16 order differs from their UTF-8 (byte) order: U+FB01, U+FF21, U+1F600, U+10400. */
const nonAsciiRows: readonly StatusRow[] = [
  { group: "\u{1F600}ops", state: "run", level: "\u{1F600}" },
  { group: "\uFB01les", state: "start", level: "2" },
  { group: "\uFF21pp", state: "fail", level: "run" },
  { group: "\u{10400}x", state: "stopped", level: "" },
  { group: "web", state: "run", level: "run" },
  { group: "Zed", state: "run", level: "\uFB01" },
  { group: "\u00e9t\u00e9", state: "stopping", level: "1" },
  { group: "caf\u00e9", state: "run", level: "caf\u00e9" },
  { group: "cafe", state: "run", level: "1" },
]

const perlPrintf = String.raw`
$| = 1;
my $id = shift;
print "!startid $id\n";
while (my $line = <STDIN>) {
  chomp $line;
  my ($g, $s, $l) = map { pack("H*", $_) } split(/,/, $line, -1);
  printf("%-15s %-15s %-15s\n", $g, $s, $l);
}
print "!endid $id\n";
`

const hasPerl = spawnSync("perl", ["-v"]).status === 0
const dir = mkdtempSync(join(tmpdir(), "isinit-status-"))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const hex = (s: string): string => Buffer.from(s, "utf8").toString("hex")

interface Case {
  readonly text: string
  readonly filter: StatusFilter
}

/** Runs the original on every case; a case's result is its output bytes in hex, or "TIMEOUT". */
const runOriginal = (cases: readonly Case[], seconds: number): string[] => {
  const script = join(dir, "status.pl")
  writeFileSync(script, originalStatus + driver)
  const list = cases.map((c, i) => {
    const file = join(dir, `status-${i}`)
    writeFileSync(file, c.text)
    return [file, c.filter.group ?? "", c.filter.level ?? ""].map(hex).join(",")
  })
  const caseFile = join(dir, `cases-${Math.random().toString(36).slice(2)}`)
  writeFileSync(caseFile, list.join("\n") + "\n")
  const result = spawnSync("perl", [script, caseFile, String(seconds)], { encoding: "utf8", timeout: 300_000 })
  expect(result.stderr).toBe("")
  expect(result.status).toBe(0)
  const outputs = result.stdout.split("\n").slice(0, -1)
  expect(outputs).toHaveLength(cases.length)
  return outputs
}

const expectSameAsOriginal = (cases: readonly Case[], seconds = 2): void => {
  const original = runOriginal(cases, seconds)
  cases.forEach((c, i) => {
    const ours = parseStatusFile(c.text, c.filter)
    const theirs = original[i]
    const context = `case ${i}: ${JSON.stringify(c)}`
    if (theirs === "TIMEOUT") expect(ours.complete, context).toBe(false)
    else {
      expect(ours.complete, context).toBe(true)
      expect(hex(ours.text), context).toBe(theirs)
    }
  })
}

describe.skipIf(!hasPerl)("compatibility with the original IS::Init (perl)", () => {
  it("perl's printf writes the same bytes as renderStatusFile", () => {
    const script = join(dir, "printf.pl")
    writeFileSync(script, perlPrintf)
    const sorted = [...rows].sort((a, b) => (a.group < b.group ? -1 : 1))
    const sortedInput = sorted.map((r) => [r.group, r.state, r.level].map(hex).join(",")).join("\n") + "\n"
    const result = spawnSync("perl", [script, "0.5"], { input: sortedInput })
    expect(result.status).toBe(0)
    expect(result.stdout.toString("hex")).toBe(Buffer.from(renderStatusFile(rows, "0.5"), "utf8").toString("hex"))
  })

  it("rows are sorted as the original's perl sort does: by UTF-8 bytes, not UTF-16 code units", () => {
    const script = join(dir, "sort.pl")
    writeFileSync(script, perlSortAndPrintf)
    const input = nonAsciiRows.map((r) => [r.group, r.state, r.level].map(hex).join(",")).join("\n") + "\n"
    const result = spawnSync("perl", [script, "7"], { input })
    expect(result.status).toBe(0)
    const ours = renderStatusFile(nonAsciiRows, "7")
    expect(Buffer.from(ours, "utf8").toString("hex")).toBe(result.stdout.toString("hex"))
    expect(parseStatusFile(ours).rows.map((r) => r.group)).toEqual(["Zed", "cafe", "caf\u00e9", "web", "\u00e9t\u00e9", "\uFB01les", "\uFF21pp", "\u{10400}x", "\u{1F600}ops"])
  })

  it("the original reads non-ASCII group and level names as parseStatusFile does", () => {
    const file = renderStatusFile(nonAsciiRows, "0.25")
    const filters: StatusFilter[] = [
      {},
      ...nonAsciiRows.map((r) => ({ group: r.group })),
      { level: "\u{1F600}" },
      { level: "\uFB01" },
      { level: "caf\u00e9" },
      { group: "\uFB01les", level: "2" },
      { group: "\u{1F600}", level: "run" },
    ]
    expectSameAsOriginal(filters.map((filter) => ({ text: file, filter })))
  })

  it("the original reads our files as parseStatusFile does, for every filter", () => {
    const file = renderStatusFile([...rows, { group: "api", state: "run", level: "run" }, { group: "NULL", state: "stopped", level: "" }], "0.8125")
    const filters: StatusFilter[] = [
      {},
      { group: "web" },
      { group: "batch" },
      { group: "café" },
      { group: "a-very-long-group-name" },
      { group: "nobody" },
      { level: "run" },
      { level: "2" },
      { level: "ünï" },
      { level: "nothing" },
      { group: "db", level: "2" },
      { group: "db", level: "run" },
      { group: "web", level: "run" },
    ]
    expectSameAsOriginal(filters.map((filter) => ({ text: file, filter })))
  })

  it("torn files: the original never returns, parseStatusFile says incomplete", () => {
    const torn = ["!startid 1\nweb run run\n!endid 2\n", "!startid 1\nweb run run\n", "web run run\n", "!endid Y\n!startid Z\n"]
    expectSameAsOriginal(torn.map((text) => ({ text, filter: {} })), 1)
  })

  // Random files from the pieces that matter to the original's regular expressions.
  const blank = fc.constantFrom(" ", "  ", "\t", "\r", "\f", "\v", " \r", "\r\f ")
  const word = fc.constantFrom("web", "db", "run", "2", "0", "stopped", "é", "!startid", "!endid", "x y")
  const rowLine = fc
    .tuple(fc.option(blank, { nil: "" }), fc.array(fc.tuple(word, blank), { maxLength: 4 }), fc.option(word, { nil: "" }), fc.option(blank, { nil: "" }))
    .map(([lead, pairs, last, trail]) => lead + pairs.map(([w, b]) => w + b).join("") + last + trail)
  const id = fc.constantFrom("1", "0.5", "", " x ", "start", "end")
  const statusText = fc
    .tuple(fc.array(rowLine, { maxLength: 3 }), id, fc.array(rowLine, { maxLength: 8 }), fc.constantFrom(true, true, true, true, false), fc.array(rowLine, { maxLength: 2 }), fc.boolean())
    .map(([before, i, body, ends, after, finalNewline]) => {
      const lines = [...before, `!startid ${i}`, ...body, ...(ends ? [`!endid ${i}`] : []), ...after]
      return lines.join("\n") + (finalNewline ? "\n" : "")
    })
  const filterArb = fc.record({
    group: fc.option(fc.constantFrom("web", "db", "é", ""), { nil: undefined, freq: 2 }),
    level: fc.option(fc.constantFrom("run", "2", "y", ""), { nil: undefined, freq: 2 }),
  })
  const seed = Number(process.env["ISINIT_STATUS_SEED"] ?? 20_010_093)

  it(`random files and filters agree with the original (seed ${seed})`, () => {
    const cases = fc.sample(fc.record({ text: statusText, filter: filterArb }), { numRuns: 1000, seed })
    const incomplete = cases.filter((c) => !parseStatusFile(c.text, c.filter).complete)
    // Torn cases cost the alarm's second each: keep a few of them.
    const chosen = [...cases.filter((c) => parseStatusFile(c.text, c.filter).complete), ...incomplete.slice(0, 3)]
    expect(chosen.length).toBeGreaterThan(500)
    expectSameAsOriginal(chosen, 1)
  })
})

if (!hasPerl) {
  it.skip("compatibility with the original IS::Init: SKIPPED, perl is not installed", () => {})
}

describe("properties", () => {
  // Characters on both sides of the surrogate range, where UTF-16 and UTF-8 orders disagree.
  const edgy = fc.string({ unit: fc.constantFrom("a", "\u00e9", "\ud7ff", "\ue000", "\ufb01", "\uffff", "\u{10000}", "\u{1f600}", "\u{10ffff}") })
  const text = fc.oneof(edgy, fc.string({ unit: "grapheme" }))
  fcTest.prop([text, text])("compareUtf8 orders as the UTF-8 bytes do", (a, b) => {
    expect(Math.sign(compareUtf8(a, b))).toBe(Math.sign(Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"))))
  })

  const name = fc.stringMatching(/^[!-~]{1,20}$/).filter((s) => !s.startsWith("!"))
  const level = fc.oneof(fc.constant(""), fc.stringMatching(/^[!-~]{1,20}$/))
  const phase = fc.constantFrom("start", "run", "fail", "stopping", "stopped" as const)
  const rowsArb = fc.uniqueArray(fc.record({ group: name, state: phase, level }), { selector: (r) => r.group, maxLength: 20 })

  fcTest.prop([rowsArb, fc.stringMatching(/^[ -~]{0,12}$/)])("render then parse gives the rows back, sorted", (generated, id) => {
    const read = parseStatusFile(renderStatusFile(generated, id))
    expect(read.complete).toBe(true)
    expect(read.rows).toEqual([...generated].sort((a, b) => (a.group < b.group ? -1 : 1)))
  })

  fcTest.prop([rowsArb, name])("the group filter finds exactly that group's state and level", (generated, group) => {
    const read = parseStatusFile(renderStatusFile(generated, "1"), { group })
    const row = generated.find((r) => r.group === group)
    expect(read.text).toBe(row === undefined ? "" : `${row.state.padEnd(15)} ${row.level}`.trimEnd())
  })

  fcTest.prop([fc.string({ unit: "binary", maxLength: 400 }), fc.option(fc.string(), { nil: undefined }), fc.option(fc.string(), { nil: undefined })])(
    "never throws on any text",
    (text, group, level) => {
      const read = parseStatusFile(text, { group, level })
      expect(read.lines.length).toBe(read.rows.length)
    },
  )
})
