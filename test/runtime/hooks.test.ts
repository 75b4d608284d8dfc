/**
 * Event hooks with real processes through the real isinitd: a hook that records its environment
 * sees started, exited, jailed and group-run with the right fields; a slow hook is killed at its
 * timeout, and while it runs the daemon applies and answers tells; a flood is rate-limited (and
 * said so once); a failing hook is logged and the daemon goes on. Outcomes with generous bounded
 * waits, never timings.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { describe, expect, it } from "vitest"
import type { Daemon } from "./daemonHarness.ts"
import { askJson, entryOf, labPerTest, markedPids } from "./daemonHarness.ts"
import type { Bucket } from "../../src/runtime/hooks.ts"
import { takeToken } from "../../src/runtime/hooks.ts"
import { procStat, sleep, until } from "./helpers.ts"

const fresh = labPerTest()

/** One record per hook run: its ISINIT_* variables (one file each, renamed into place whole: runs overlap). */
const records = (dir: string): Record<string, string>[] =>
  existsSync(dir)
    ? readdirSync(dir)
        .filter((name) => name.endsWith(".env"))
        .map((name) => Object.fromEntries(readFileSync(join(dir, name), "utf8").trim().split("\n").map((line) => [line.slice(0, line.indexOf("=")), line.slice(line.indexOf("=") + 1)])))
    : []

/** A hook script (executed directly, no shell line: the Perl exec rule's direct path) that records its environment in `out`. */
const recorder = (dir: string, out: string): string => {
  const script = join(dir, "record.sh")
  mkdirSync(out, { recursive: true })
  writeFileSync(script, `env | grep '^ISINIT_' | sort > ${out}/$$.tmp\nmv ${out}/$$.tmp ${out}/$$.env\n`)
  return `sh ${script}`
}

const logged = (d: Daemon, pattern: RegExp): Promise<true> => until(`a log line matching ${pattern}`, () => pattern.test(d.log()), 30_000)

describe("a hook's token bucket", () => {
  it("lets a burst of N through, then one per window/N, never more than N in any window", () => {
    const limit = { max: 3, windowMs: 3_000 }
    let bucket: Bucket | undefined
    const take = (at: number): boolean => {
      const taken = takeToken(bucket, limit, at)
      bucket = taken.bucket
      return taken.admitted
    }
    expect([take(0), take(0), take(0), take(0), take(999)]).toEqual([true, true, true, false, false])
    expect([take(1_000), take(1_001)]).toEqual([true, false])
    expect([take(10_000), take(10_000), take(10_000), take(10_000)]).toEqual([true, true, true, false])
  })
})

describe("event hooks", () => {
  it("run with the event in their environment: group-run, started, exited, restarting, jailed", async () => {
    const l = fresh()
    const out = l.path("hooks.out")
    l.writeTab(`:::hook:started,exited,jailed,group-run,restarting:${recorder(l.dir, out)}\n:::respawn-limit:2/60s\ng:srv:1:respawn:sleep 300\ng:bad:1:respawn:sh -c "exit 3"\n`)
    const d = await l.start()
    expect(await askJson(d.socket, { op: "tell", group: "g", level: "1", wait: true })).toMatchObject({ ok: true, outcome: "run" })
    const srv = await until("srv running", async () => (await entryOf(d.socket, "srv"))?.pid ?? undefined)
    const find = (event: string, tag?: string) => records(out).find((r) => r["ISINIT_EVENT"] === event && (tag === undefined || r["ISINIT_TAG"] === tag))
    const started = await until("a started hook for srv", () => find("started", "srv"))
    expect(started).toMatchObject({ ISINIT_GROUP: "g", ISINIT_TAG: "srv", ISINIT_PID: String(srv), ISINIT_LEVEL: "1", ISINIT_OUTCOME: "", ISINIT_NODE: "" })
    expect(Number(started["ISINIT_RUN"])).toBeGreaterThan(0)
    expect(await until("a group-run hook", () => find("group-run"))).toMatchObject({ ISINIT_GROUP: "g", ISINIT_LEVEL: "1", ISINIT_OUTCOME: "run", ISINIT_TAG: "" })
    expect(await until("an exited hook for bad", () => find("exited", "bad"))).toMatchObject({ ISINIT_GROUP: "g", ISINIT_OUTCOME: "exit 3" })
    expect(await until("a restarting hook for bad", () => find("restarting", "bad"))).toMatchObject({ ISINIT_GROUP: "g", ISINIT_MESSAGE: "after exit 3" })
    expect(await until("a jailed hook for bad", () => find("jailed", "bad"))).toMatchObject({ ISINIT_GROUP: "g", ISINIT_MESSAGE: expect.stringMatching(/respawning too rapidly/) as unknown })
    // Hooks are not the daemon's business beyond their run: no entry waited, nothing was adopted.
    expect((await entryOf(d.socket, "srv"))?.pid).toBe(srv)
    expect(records(out).every((r) => r["ISINIT_INSTANCE"] === undefined)).toBe(true)
  })

  it("a hook still running at its timeout is killed (its whole process group), and that is logged", async () => {
    const l = fresh()
    const pidFile = l.path("slow.pid")
    l.writeTab(`:::hook-timeout:1s\n:::hook:group-run:sh -c 'echo $$ > ${pidFile}; sleep 300 & sleep 300'\ng:srv:1:respawn:sleep 300\n`)
    const d = await l.start()
    await askJson(d.socket, { op: "tell", group: "g", level: "1" })
    const pid = await until("the slow hook started", () => (existsSync(pidFile) ? Number(readFileSync(pidFile, "utf8")) : undefined))
    await logged(d, /hook line 2 \(group-run\) for group-run of g killed after its timeout of 1000 ms/)
    await until("the hook's process group gone", () => markedPids(d.marker).every((p) => procStat(p)?.pgrp !== pid))
    expect((await entryOf(d.socket, "srv"))?.state).toBe("running")
  })

  it("never blocks the daemon: while a hook runs, tells are applied and answered and the entries kept", async () => {
    const l = fresh()
    const pidFile = l.path("slow.pid")
    l.writeTab(`:::hook:group-run:sh -c 'echo $$ > ${pidFile}; exec sleep 300'\na:srv:1:respawn:sleep 300\nb:srv2:1:respawn:sleep 300\n`)
    const d = await l.start()
    expect(await askJson(d.socket, { op: "tell", group: "a", level: "1", wait: true })).toMatchObject({ ok: true, outcome: "run" })
    const hook = await until("the slow hook started", () => (existsSync(pidFile) ? Number(readFileSync(pidFile, "utf8")) : undefined))
    // The hook sleeps for 300 s (its timeout is 30 s): everything below happens while it runs.
    expect(await askJson(d.socket, { op: "tell", group: "b", level: "1", wait: true })).toMatchObject({ ok: true, outcome: "run" })
    expect(await askJson(d.socket, { op: "tell", group: "a", level: "0", wait: true })).toMatchObject({ ok: true })
    expect((await entryOf(d.socket, "srv2"))?.state).toBe("running")
    expect(markedPids(d.marker)).toContain(hook)
  })

  it("a flood is rate-limited: N runs per window, the drops said once, then counted", async () => {
    const l = fresh()
    const out = l.path("hooks.out")
    const entries = Array.from({ length: 12 }, (_, i) => `g:e${i}:1:once:true\n`).join("")
    l.writeTab(`:::hook-limit:3/1m\n:::hook:started:${recorder(l.dir, out)}\n${entries}`)
    const d = await l.start()
    await askJson(d.socket, { op: "tell", group: "g", level: "1", wait: true })
    await logged(d, /hook line 2 \(started\): over its limit of 3 runs per 60000 ms: dropping its events/)
    await until("3 hook runs", () => records(out).length === 3)
    // A second tell of the level: the once entries run again, and the bucket is still empty.
    await askJson(d.socket, { op: "tell", group: "g", level: "0", wait: true })
    await askJson(d.socket, { op: "tell", group: "g", level: "1", wait: true })
    await until("every exit seen", async () => (await entryOf(d.socket, "e11"))?.lastExit === "exit 0")
    await sleep(1_000) // a hook wrongly let through has had time to write its record
    expect(records(out).length).toBe(3)
    expect(d.log().match(/dropping its events/g)?.length).toBe(1)
  })

  it("a failing hook is logged with its exit and what it said; the daemon goes on", async () => {
    const l = fresh()
    l.writeTab(`:::hook:started:sh -c 'echo cannot reach the pager >&2; exit 7'\n:::hook:exited:/nonexistent/hook --now\ng:srv:1:respawn:sleep 300\ng:one:1:once:true\n`)
    const d = await l.start()
    await askJson(d.socket, { op: "tell", group: "g", level: "1" })
    await logged(d, / g srv hook exit=7 hook line 1 \(started\) for started of g\/srv failed: cannot reach the pager/)
    await logged(d, / g one hook spawn failed: ENOENT hook line 2 \(exited\) for exited of g\/one could not be started/)
    expect(await askJson(d.socket, { op: "tell", group: "g", level: "1", wait: true })).toMatchObject({ ok: true, outcome: "run" })
    expect((await entryOf(d.socket, "srv"))?.state).toBe("running")
    expect(d.exitCode()).toBeUndefined()
  })
})
