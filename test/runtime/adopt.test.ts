/**
 * Re-adoption pieces without a daemon (the adoption plan is the core's: test/core/adoption.test.ts):
 * the state file and journal on disk, the boot clock across processes, and the process adapter supervising processes that are
 * not its children.
 */
import { spawn, spawnSync } from "node:child_process"
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterEach, describe, expect, it } from "vitest"
import { decodeJournal, decodeStateFile, encodeJournalLine, encodeStateFile, stateFormat } from "../../src/codec/stateFile.ts"
import { makeLivenessCheck, scanMarkedLeaders } from "../../src/runtime/adopt.ts"
import { bootId, makeBootClock } from "../../src/runtime/boot.ts"
import { processIdentity } from "../../src/runtime/procfs.ts"
import { journalPathFor, makeSpawnJournal, readJournal, readStateFile, removeStaleTemporaries, setAside } from "../../src/runtime/stateFile.ts"
import { repoRoot } from "./daemonHarness.ts"
import { groupAlive, processTableLab, sleep, until } from "./helpers.ts"
import { saved, snap } from "../core/snapshots.ts"

describe("state file and journal", () => {
  let dir: string | undefined
  afterEach(() => {
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true })
    dir = undefined
  })
  const tmp = (): string => (dir = mkdtempSync(join(tmpdir(), "isinit-state-")))
  const header = (boot: string, pid = 999_999, identity: string | null = null) => ({
    format: stateFormat,
    version: 1 as const,
    bootId: boot,
    clockAnchorMs: 123,
    daemon: { pid, identity },
  })
  const body = snap([saved("srv", { run: 3, pid: 30, identity: "a" })], 4)

  it("round-trips, and rejects a cut, foreign or wrong-version file", () => {
    const text = encodeStateFile(header("b"), body)
    expect(decodeStateFile(text)).toEqual({ _tag: "Decoded", header: header("b"), snapshot: body })
    expect(decodeStateFile(text.slice(0, text.length - 20))._tag).toBe("Undecodable")
    expect(decodeStateFile("")._tag).toBe("Undecodable")
    expect(decodeStateFile(`{"format":"something-else"}\n{}`)._tag).toBe("Undecodable")
    expect(decodeStateFile(text.replace('"version":1', '"version":2'))._tag).toBe("Undecodable")
  })

  it("judges a file: missing, corrupt, from another boot, left halted, written by a live daemon, usable", () => {
    const d = tmp()
    const path = join(d, "isinitd.state")
    const boot = bootId() ?? "test-boot"
    expect(readStateFile(path, boot)).toEqual({ _tag: "Missing" })
    writeFileSync(path, "garbage\n")
    expect(readStateFile(path, boot)).toMatchObject({ _tag: "Unusable", reason: expect.stringMatching(/corrupt or foreign/) })
    writeFileSync(path, encodeStateFile(header("another-boot"), body))
    expect(readStateFile(path, boot)).toMatchObject({ _tag: "Unusable", reason: expect.stringMatching(/before a reboot/) })
    expect(readStateFile(path, undefined)._tag).toBe("Unusable")
    // A halted daemon has no process left (a file that says otherwise is inconsistent, and refused).
    writeFileSync(path, encodeStateFile(header(boot), { ...body, lifecycle: "halted", entries: [], groups: [] }))
    expect(readStateFile(path, boot)).toEqual({ _tag: "Finished" })
    // The test's parent process stands in for a live predecessor.
    writeFileSync(path, encodeStateFile(header(boot, process.ppid, processIdentity(process.ppid) ?? null), body))
    expect(readStateFile(path, boot)).toEqual({ _tag: "OwnerAlive", pid: process.ppid })
    // Same pid, another start time: that daemon is gone, its pid reused.
    writeFileSync(path, encodeStateFile(header(boot, process.ppid, "1"), body))
    expect(readStateFile(path, boot)._tag).toBe("Usable")
    const moved = setAside(path, new Date("2026-01-02T03:04:05.678Z"))
    expect(moved).toEqual({ _tag: "Moved", to: `${path}.bad-2026-01-02T03-04-05.678Z` })
    expect(readdirSync(d)).toEqual(["isinitd.state.bad-2026-01-02T03-04-05.678Z"])
  })

  it("removes temporary files of writers that died mid-write, not those of live processes", () => {
    const d = tmp()
    const path = join(d, "isinitd.state")
    for (const name of [".isinitd.state.999999.tmp", `.isinitd.state.${process.ppid}.tmp`, ".initstat.999999.tmp", "isinitd.state.999999.tmp"]) writeFileSync(join(d, name), "x")
    expect(removeStaleTemporaries(path)).toBe(1)
    expect(readdirSync(d).sort()).toEqual([`.initstat.999999.tmp`, `.isinitd.state.${process.ppid}.tmp`, "isinitd.state.999999.tmp"].sort())
  })

  it("journals spawns, skips a torn last line, and empties itself once a written state covers it", () => {
    const d = tmp()
    const path = journalPathFor(join(d, "isinitd.state"))
    const warnings: string[] = []
    const journal = makeSpawnJournal(path, [], (m) => warnings.push(m))
    journal.append({ tag: "a", run: 1 })
    journal.append({ tag: "b c", run: 2 })
    writeFileSync(path, `${readFileSync(path, "utf8")}{"tag":"x","ru`)
    expect(readJournal(path)).toEqual([{ tag: "a", run: 1 }, { tag: "b c", run: 2 }])
    expect(decodeJournal(encodeJournalLine({ tag: "q", run: 9 }))).toEqual([{ tag: "q", run: 9 }])
    journal.covered(2) // run 2 is not covered yet
    expect(readJournal(path)).toHaveLength(2)
    journal.covered(3)
    expect(readFileSync(path, "utf8")).toBe("")
    expect(warnings).toEqual([])
    const broken = makeSpawnJournal(join(d, "missing-dir", "j"), [], (m) => warnings.push(m))
    broken.append({ tag: "a", run: 1 })
    broken.append({ tag: "a", run: 2 })
    expect(warnings).toHaveLength(1)
    expect(warnings[0]).toMatch(/cannot append to the spawn journal .*ENOENT/)
  })
})

describe("boot clock", () => {
  it("reads the same in another process: a successor continues its predecessor's timers", () => {
    const clock = makeBootClock()
    const before = clock()
    const child = spawnSync(
      process.execPath,
      ["--import", "tsx", "-e", `import("./src/runtime/boot.ts").then((m) => console.log(m.makeBootClock(${clock.anchorMs})()))`],
      { cwd: repoRoot, encoding: "utf8" },
    )
    const after = clock()
    const theirs = Number(child.stdout.trim())
    expect(child.status).toBe(0)
    expect(theirs).toBeGreaterThanOrEqual(before)
    expect(theirs).toBeLessThanOrEqual(after)
    // Anchored at the boot: epoch-like values, within a few seconds of the wall clock.
    expect(Math.abs(clock() - Date.now())).toBeLessThan(5_000)
  })
})

describe("supervising adopted processes (not reported by an exit event)", () => {
  const lab = processTableLab()
  const { pgids } = lab
  afterEach(lab.cleanup)
  const table = () => {
    const { table: t, reports, exited: exit } = lab.make()
    return { t, reports, exit }
  }
  /** A process that is not the table's child (spawned here, as a predecessor daemon would have). */
  const outsider = (script: string): { pid: number; identity: string } => {
    const child = spawn("/bin/sh", ["-c", script], { detached: true, stdio: "ignore" })
    child.unref()
    const pid = child.pid
    if (pid === undefined) throw new Error("no pid")
    pgids.add(pid)
    const identity = processIdentity(pid)
    if (identity === undefined) throw new Error("no identity")
    return { pid, identity }
  }

  it("reports Vanished when an adopted process is killed from outside", async () => {
    const { t, reports, exit } = table()
    const p = outsider("exec sleep 300")
    t.adopt({ tag: "a", run: 1, ...p })
    await sleep(700)
    expect(reports).toEqual([])
    expect(t.liveRuns()).toBe(1)
    process.kill(p.pid, "SIGKILL")
    expect(await exit("a")).toEqual({ _tag: "ChildExit", tag: "a", run: 1, outcome: { _tag: "Vanished" } })
    expect(t.liveRuns()).toBe(0)
  })

  it("reports the adopted leader's exit (rule 14), waits for the whole group, and signals the group", async () => {
    const { t, reports, exit } = table()
    const p = outsider("sleep 300 & sleep 0.3")
    t.adopt({ tag: "b", run: 2, ...p })
    await until("the leader gone", () => processIdentity(p.pid) === undefined || readFileSync(`/proc/${p.pid}/stat`, "latin1").includes(") Z"))
    await until("the leader's exit reported", () => reports.length > 0, 10_000)
    await sleep(700) // and nothing else (the adopted group's poll backs off to 500 ms): the group lives on
    expect(reports).toEqual([{ _tag: "LeaderExited", tag: "b", run: 2, outcome: { _tag: "Vanished" } }])
    expect(groupAlive(p.pid)).toBe(true)
    t.kill("b", 2, "SIGTERM")
    expect(await exit("b")).toMatchObject({ outcome: { _tag: "Vanished" } })
    expect(groupAlive(p.pid)).toBe(false)
  })

  it("never adopts or signals a reused pid: another start time ends the run without a signal", async () => {
    const { t, exit } = table()
    const p = outsider("exec sleep 300")
    const live = makeLivenessCheck()
    expect(live(p.pid, p.identity)).toBe(true)
    expect(live(p.pid, "1")).toBe(false)
    t.adopt({ tag: "c", run: 3, pid: p.pid, identity: "1" })
    t.kill("c", 3, "SIGKILL")
    expect(await exit("c")).toMatchObject({ outcome: { _tag: "Vanished" } })
    expect(processIdentity(p.pid)).toBe(p.identity) // untouched
  })

  it("scans /proc for session leaders carrying this daemon's run markers", () => {
    const instance = `/tmp/test-instance-${process.pid}-${Date.now()}`
    const child = spawn("/bin/sh", ["-c", "sleep 300 & exec sleep 300"], {
      detached: true,
      stdio: "ignore",
      env: { ...process.env, ISINIT_INSTANCE: instance, ISINIT_TAG: "m", ISINIT_RUN: "12" },
    })
    child.unref()
    if (child.pid === undefined) throw new Error("no pid")
    pgids.add(child.pid)
    const found = until("the marked leader", () => {
      const all = scanMarkedLeaders(instance)
      return all.length > 0 ? all : undefined
    })
    return found.then((all) => {
      // The background sleep is in the same session but not its leader: only the leader is listed.
      expect(all).toEqual([{ pid: child.pid, identity: processIdentity(child.pid ?? 0), tag: "m", run: 12 }])
      expect(scanMarkedLeaders(`${instance}-other`)).toEqual([])
    })
  })
})
