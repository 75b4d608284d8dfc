/**
 * Orphans on real processes: isinitd as PID 1 of a PID namespace (a container) reaps every
 * orphan, and on a host it is a child subreaper, so a service's orphaned descendants stay its
 * children and are reaped by it. Services' own exit statuses still reach libuv (never stolen).
 * The reaper's choice of whom to reap, and its degraded mode without koffi, in-process.
 */
import { execFileSync, spawn } from "node:child_process"
import { existsSync, readFileSync, readdirSync, readlinkSync } from "node:fs"
import * as Effect from "effect/Effect"
import { afterEach, describe, expect, it } from "vitest"
import type { Libc } from "../../src/runtime/reaper.ts"
import { childPids, startReaper } from "../../src/runtime/reaper.ts"
import { trackSpawned } from "../../src/spawned.ts"
import type { Daemon, Lab } from "./daemonHarness.ts"
import { askJson, entryOf, makeLab, markedPids, statusOf } from "./daemonHarness.ts"
import { cmdline, procStat, sleep, until } from "./helpers.ts"

let lab: Lab | undefined
afterEach(async () => {
  await lab?.cleanup()
  lab = undefined
})

const logged = (d: Daemon, pattern: RegExp): Promise<true> => until(`a log line matching ${pattern}`, () => pattern.test(d.log()))

/** Host pids of the zombies in the PID namespace `ns` (a /proc/PID/ns/pid link). */
const zombiesIn = (ns: string): number[] =>
  readdirSync("/proc").flatMap((name) => {
    if (!/^\d+$/.test(name)) return []
    try {
      return readlinkSync(`/proc/${name}/ns/pid`) === ns && procStat(Number(name))?.state === "Z" ? [Number(name)] : []
    } catch {
      return []
    }
  })

const unshareWorks = (): string | undefined => {
  if (process.getuid?.() !== 0) return "needs root for unshare --pid"
  try {
    execFileSync("unshare", ["--pid", "--fork", "--mount-proc", "--kill-child", "true"], { stdio: "ignore" })
    return undefined
  } catch (error) {
    return `unshare --pid --fork --mount-proc is not allowed here (${(error as Error).message.split("\n")[0] ?? ""})`
  }
}

describe("orphans", () => {
  it("as PID 1 of a PID namespace: orphaned grandchildren leave no zombie, and services' exit statuses still arrive", async (ctx) => {
    const cannot = unshareWorks()
    if (cannot !== undefined) {
      console.log(`skipped: ${cannot}`)
      return ctx.skip()
    }
    const l = (lab = makeLab())
    l.writeTab(
      [
        // Two grandchildren orphaned at once, a subshell's child that outlives it, one that leaves
        // the group. The leaders outlive the orphans: a leader's exit would end its run and stop
        // what is left of its group (rule 14), orphans included.
        "g:orphans:1:once:sh -c '(sleep 1 &); (sleep 1 &); exec sleep 2'",
        `g:outlive:1:once:sh -c '((sleep 1; touch ${l.path("outlived")}) &); exec sleep 2'`,
        `g:escape:1:once:sh -c 'setsid sh -c "sleep 1; touch ${l.path("escaped")}" & exit 0'`,
        // Its status must come through: a reaper that stole it would leave the run open forever.
        "g:code:1:test:sh -c 'sleep 0.5 & exit 3'",
        "",
      ].join("\n"),
    )
    // --kill-child: the namespace (and everything in it) dies with unshare when the lab cleans up.
    const d = await l.start({ prefix: ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child"] })
    await logged(d, /orphans reaped \(isinitd is pid 1\)/)
    const daemon = await until("isinitd inside the namespace", () => {
      const pid = Number(readFileSync(`/proc/${d.child.pid}/task/${d.child.pid}/children`, "latin1").trim().split(" ")[0])
      return Number.isInteger(pid) && pid > 0 ? pid : undefined
    })
    const ns = readlinkSync(`/proc/${daemon}/ns/pid`)
    expect(ns).not.toBe(readlinkSync("/proc/self/ns/pid"))

    const told = await askJson(d.socket, { op: "tell", group: "g", level: "1", wait: true, timeoutMs: 30_000 })
    expect(told).toMatchObject({ ok: true, outcome: "fail", message: expect.stringMatching(/code \(exit 3\)/) })
    expect(await entryOf(d.socket, "code")).toMatchObject({ state: "failed", lastExit: "exit 3" })
    await until("the outliving and the escaped grandchild ran", () => existsSync(l.path("outlived")) && existsSync(l.path("escaped")))
    for (const tag of ["orphans", "outlive", "escape"]) await until(`${tag} done`, async () => (await entryOf(d.socket, tag))?.state === "done")
    // Every orphan has exited by now; none may stay a zombie.
    await until("no zombie in the namespace", () => zombiesIn(ns).length === 0, 10_000)

    expect(await askJson(d.socket, { op: "stopall" })).toMatchObject({ ok: true })
    expect(await d.exited()).toBe(0)
  })

  it("on a host, isinitd is a child subreaper: a service's orphans become its children and are reaped when they exit", async () => {
    const l = (lab = makeLab())
    // The subshells exit at once, orphaning their sleeps; the leaders live on (a leader's exit would
    // end its run and stop the rest of its group, rule 14).
    l.writeTab("g:orphan:1:once:sh -c '(sleep 301 &); exec sleep 300'\ng:escape:1:once:sh -c '(setsid sleep 302 &); exec sleep 303'\n")
    const d = await l.start()
    await logged(d, /orphans reaped \(child subreaper\)/)
    expect(await askJson(d.socket, { op: "tell", group: "g", level: "1", wait: true })).toMatchObject({ ok: true, outcome: "run" })
    const sleeper = (seconds: string): Promise<number> =>
      until(`sleep ${seconds} running`, () => markedPids(d.marker).find((pid) => cmdline(pid)?.join(" ") === `sleep ${seconds}`))
    const orphan = await sleeper("301")
    const escaped = await sleeper("302")
    // Their shells are gone: they were re-parented to isinitd, not to the host's init.
    await until("both orphans re-parented to isinitd", () => procStat(orphan)?.ppid === d.child.pid && procStat(escaped)?.ppid === d.child.pid)
    expect(procStat(orphan)?.pgrp).toBe((await entryOf(d.socket, "orphan"))?.pid)
    process.kill(orphan, "SIGKILL")
    process.kill(escaped, "SIGKILL")
    await until("both reaped by isinitd (gone, not zombies)", () => procStat(orphan) === undefined && procStat(escaped) === undefined, 10_000)
    // Its leader still runs, so the run goes on; once the leader is gone too, the group is empty.
    const leader = (await entryOf(d.socket, "orphan"))?.pid
    expect((await entryOf(d.socket, "orphan"))?.state).toBe("running")
    if (typeof leader === "number") process.kill(leader, "SIGKILL")
    // Over once the run has ended (its leader's exit may first show `leader-exited` while the rest
    // of its group is stopped).
    await until("orphan's run over", async () => (await entryOf(d.socket, "orphan"))?.pid === null)
    expect(await entryOf(d.socket, "orphan")).toMatchObject({ pid: null, lastExit: "signal SIGKILL" })
    expect((await statusOf(d.socket)).groups[0]?.state).toBe("run")
  })
})

describe("the reaper in-process", () => {
  const fakeLibc = (reaped: number[]): Libc => ({ becomeSubreaper: () => 0, reap: (pid) => (reaped.push(pid), 0) })

  it("never touches a child libuv spawned, and asks waitpid by pid for every other child", async () => {
    const child = spawn("sleep", ["30"], { stdio: "ignore" })
    try {
      await until("the child listed", () => childPids().includes(child.pid ?? -1))
      const reaped: number[] = []
      const logs: string[] = []
      const run = (ownsChild: (pid: number) => boolean) =>
        Effect.runPromise(
          Effect.scoped(
            Effect.map(startReaper({ ownsChild, log: (_, m) => logs.push(m), libc: async () => fakeLibc(reaped) }), (r) => (r._tag === "Reaping" ? r.reapNow() : -1)),
          ),
        )
      reaped.length = 0
      await run((pid) => pid === child.pid)
      expect(reaped).not.toContain(child.pid)
      await run(() => false)
      expect(reaped).toContain(child.pid)
      expect(logs).toEqual([])
    } finally {
      child.kill("SIGKILL")
    }
  })

  it("leaves alone the other children libuv spawned (the fencer, hooks): their exits still arrive", async () => {
    const child = trackSpawned(spawn("sleep", ["30"], { stdio: "ignore" }))
    try {
      await until("the child listed", () => childPids().includes(child.pid ?? -1))
      const reaped: number[] = []
      await Effect.runPromise(
        Effect.scoped(Effect.map(startReaper({ ownsChild: () => false, log: () => undefined, libc: async () => fakeLibc(reaped) }), (r) => (r._tag === "Reaping" ? r.reapNow() : -1))),
      )
      expect(reaped).not.toContain(child.pid)
    } finally {
      child.kill("SIGKILL")
    }
  })

  it("a burst of SIGCHLDs shares one look at the children (a stop of 500 services must not read the list 500 times)", async () => {
    const child = spawn("sleep", ["30"], { stdio: "ignore" })
    try {
      await until("the child listed", () => childPids().includes(child.pid ?? -1))
      let looks = 0
      const ownsChild = (pid: number): boolean => {
        if (pid === child.pid) looks++
        return true
      }
      await Effect.runPromise(
        Effect.scoped(
          Effect.flatMap(startReaper({ ownsChild, log: () => undefined, libc: async () => fakeLibc([]), coalesceMs: 20 }), () =>
            Effect.promise(async () => {
              looks = 0 // the look at start
              for (let i = 0; i < 100; i++) process.emit("SIGCHLD", "SIGCHLD")
              await until("the burst looked at", () => looks > 0)
              await sleep(200)
              // One look (two if a real SIGCHLD, say of an earlier test's child, came meanwhile); a look per SIGCHLD made 100.
              expect(looks).toBeLessThanOrEqual(2)
              const before = looks
              process.emit("SIGCHLD", "SIGCHLD")
              await until("a later SIGCHLD looked at again", () => looks > before)
            }),
          ),
        ),
      )
    } finally {
      child.kill("SIGKILL")
    }
  })

  it("without koffi, says so and reaps nothing; the daemon goes on", async () => {
    const logs: string[] = []
    const reaper = await Effect.runPromise(
      Effect.scoped(
        startReaper({
          ownsChild: () => false,
          log: (what, message) => logs.push(`${what} ${message}`),
          libc: () => Promise.reject(new Error("no prebuilt binary for this platform")),
        }),
      ),
    )
    expect(reaper).toEqual({ _tag: "Off", reason: "cannot load koffi (no prebuilt binary for this platform)" })
    expect(logs).toEqual([expect.stringMatching(/^warning cannot load koffi \(no prebuilt binary for this platform\): orphaned processes are not reaped by isinitd; .* under tini/)])
  })
})
