/**
 * Soak: random tells (some invalid), kill -9 of children, config edits (changed commands, removed
 * and `off` entries) with SIGHUP, clean stopall/restart and kill -9/restart of the daemon itself,
 * from a seeded PRNG, against real processes. After every action the daemon's own model
 * (`status` over the socket: the reducer's state) is compared with /proc:
 * - no orphan: every process of the lab's children belongs to a run the daemon reports;
 * - no ghost: every run the daemon reports as running has a live process group;
 * - no duplicate: never two live process groups for one entry;
 * - no zombie child of the daemon left unreaped;
 * - no leaked file descriptor and stable memory (fd count and RSS of each daemon instance).
 * Disagreements get a grace (an exit or a start may be in flight), then fail.
 *
 * Phase 1 keeps one daemon for half the time (leaks show on a long-lived instance); phase 2 adds
 * daemon crashes and restarts. Length: ISINIT_SOAK_MS (default 150 s); seed: ISINIT_SOAK_SEED.
 */
import { readdirSync, readFileSync } from "node:fs"
import { afterEach, describe, expect, it } from "vitest"
import { makeRng } from "../../src/sim/random.ts"
import { livePgids } from "../../src/runtime/procfs.ts"
import type { Daemon, GroupView, Lab } from "../runtime/daemonHarness.ts"
import { askJson, fireAndForget, makeLab, markedPids, statusOf } from "../runtime/daemonHarness.ts"
import { procStat, sleep, until } from "../runtime/helpers.ts"
import { crash, envOf } from "./faultHarness.ts"

const soakMs = Number(process.env["ISINIT_SOAK_MS"] ?? 150_000)
const seed = Number(process.env["ISINIT_SOAK_SEED"] ?? 20_260_501)
/** How long a disagreement between the model and /proc may last (an exit or start in flight). */
const graceMs = 5_000

let lab: Lab | undefined
afterEach(async () => {
  await lab?.cleanup()
  lab = undefined
})

const variants = (runs: string, v: number): string => {
  const lines = [
    ":::respawn-limit:5/5s",
    ":::jail:3s",
    ":::kill-grace:1s",
    `web:w-srv:1,2:${v === 2 ? "off" : "respawn"}:sleep 1000`,
    `web:w-flap:1:respawn:sleep 0.${3 + v}; exit 1`,
    `web:w-once:2:once:echo w-once >> ${runs}; sleep 2`,
    `web:w-wait:1,2:wait:sleep 0.2`,
    `web:w-test:2:test:${v === 1 ? "false" : "true"}`,
    `web:w-kids:1,2:respawn:sleep 1000 & exec sleep 100${v}`,
    `db:d-main:a,b:respawn:sleep 10${v}0`,
    `db:d-b:b:respawn:sleep 1000`,
    `db:d-stubborn:a:respawn:trap "" TERM; exec sleep 1000`,
  ]
  if (v !== 3) lines.push(`db:d-extra:a,b:respawn:sleep 1000`)
  return `${lines.join("\n")}\n`
}
const levels: Readonly<Record<string, readonly [string, ...string[]]>> = { web: ["1", "2", "3"], db: ["a", "b", "c"] }

interface Figures {
  actions: number
  tells: number
  badTells: number
  childKills: number
  configEdits: number
  sighups: number
  daemonCrashes: number
  cleanRestarts: number
  checks: number
  maxRssMb: number
  maxRssGrowthMb: number
  maxFds: number
  maxFdGrowth: number
  maxProcesses: number
}

/** Status entries that hold a process: their pgid (the leader's pid) per tag. */
const reportedRuns = (groups: readonly GroupView[]): Map<number, string> => {
  const runs = new Map<number, string>()
  for (const g of groups) for (const e of g.entries) if ((e.state === "running" || e.state === "stopping") && e.pid !== null) runs.set(e.pid, e.tag)
  return runs
}

const rssMb = (pid: number): number => {
  const match = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, "latin1"))
  return Number(match?.[1] ?? 0) / 1024
}

describe("soak", () => {
  it(`random tells, crashes, config edits and restarts for ${Math.round(soakMs / 1000)} s: the model and /proc agree`, async () => {
    const l = (lab = makeLab())
    const rng = makeRng(seed)
    const runs = l.path("runs")
    let variant = 0
    l.writeTab(variants(runs, variant))
    let d: Daemon = await l.start()
    const figures: Figures = {
      actions: 0, tells: 0, badTells: 0, childKills: 0, configEdits: 0, sighups: 0, daemonCrashes: 0, cleanRestarts: 0, checks: 0, maxRssMb: 0, maxRssGrowthMb: 0, maxFds: 0, maxFdGrowth: 0, maxProcesses: 0,
    }
    /** First moment each disagreement was seen; it fails once it outlasts the grace. */
    const suspects = new Map<string, number>()
    /** Per daemon instance: fds at its first check; RSS after its warm-up (tsx compiles at first). */
    let instance = { pid: d.child.pid ?? 0, checks: 0, firstFds: -1, warmRss: 0 }
    const warmUpChecks = 10
    const started = Date.now()

    const suspect = (key: string, now: number, seen: Set<string>): void => {
      seen.add(key)
      const first = suspects.get(key) ?? now
      suspects.set(key, first)
      if (now - first > graceMs) throw new Error(`for over ${graceMs} ms: ${key}\ndaemon log tail:\n${d.log().split("\n").slice(-30).join("\n")}`)
    }

    const check = async (): Promise<void> => {
      const report = await statusOf(d.socket)
      const now = Date.now()
      const seen = new Set<string>()
      const reported = reportedRuns(report.groups)
      const daemonPid = d.child.pid ?? 0
      const groupsByTag = new Map<string, Set<number>>()
      const children = markedPids(d.marker).filter((pid) => pid !== daemonPid)
      figures.maxProcesses = Math.max(figures.maxProcesses, children.length)
      for (const pid of children) {
        const tag = envOf(pid, "ISINIT_TAG")
        const pgrp = procStat(pid)?.pgrp
        if (tag === undefined || pgrp === undefined) continue
        const set = groupsByTag.get(tag) ?? new Set<number>()
        set.add(pgrp)
        groupsByTag.set(tag, set)
        if (!reported.has(pgrp)) suspect(`orphan: pid ${pid} (${tag}, group ${pgrp}) is not a run the daemon reports`, now, seen)
      }
      for (const [tag, set] of groupsByTag) if (set.size > 1) suspect(`duplicate: ${set.size} live groups for ${tag}: ${[...set].join(", ")}`, now, seen)
      const live = livePgids()
      for (const [pgid, tag] of reported) if (!live.has(pgid)) suspect(`ghost: ${tag} reported with pid ${pgid}, whose group is gone`, now, seen)
      for (const name of readdirSync("/proc")) {
        if (!/^\d+$/.test(name)) continue
        const stat = procStat(Number(name))
        if (stat?.ppid === daemonPid && stat.state === "Z") suspect(`zombie: child ${name} of the daemon not reaped`, now, seen)
      }
      for (const key of suspects.keys()) if (!seen.has(key)) suspects.delete(key)
      const fds = readdirSync(`/proc/${daemonPid}/fd`).length
      const rss = rssMb(daemonPid)
      instance.checks++
      if (instance.firstFds < 0) instance.firstFds = fds
      if (instance.checks === warmUpChecks) instance.warmRss = rss
      figures.maxFds = Math.max(figures.maxFds, fds)
      figures.maxFdGrowth = Math.max(figures.maxFdGrowth, fds - instance.firstFds)
      figures.maxRssMb = Math.max(figures.maxRssMb, rss)
      if (instance.checks > warmUpChecks) figures.maxRssGrowthMb = Math.max(figures.maxRssGrowthMb, rss - instance.warmRss)
      expect(fds - instance.firstFds, "file descriptors of the daemon grow").toBeLessThanOrEqual(12)
      // Generous: the test daemon runs under tsx (about 120 MB with the compiler loaded).
      expect(rss, "daemon RSS (MB)").toBeLessThan(250)
      if (instance.checks > warmUpChecks) expect(rss - instance.warmRss, "daemon RSS growth after warm-up (MB)").toBeLessThan(48)
      figures.checks++
    }

    const newInstance = async (fresh: boolean): Promise<void> => {
      d = await l.start()
      instance = { pid: d.child.pid ?? 0, checks: 0, firstFds: -1, warmRss: 0 }
      suspects.clear()
      if (fresh) for (const group of ["web", "db"]) if (rng.chance(0.7)) await askJson(d.socket, { op: "tell", group, level: rng.pick(levels[group] ?? ["1"]) })
    }

    const act = async (phase2: boolean): Promise<void> => {
      const action = rng.weighted<string>([
        [30, "tell"],
        [4, "bad-tell"],
        [25, "kill-child"],
        [8, "edit"],
        [30, "pause"],
        [phase2 ? 4 : 0, "crash-daemon"],
        [phase2 ? 2 : 0, "stopall"],
      ])
      figures.actions++
      switch (action) {
        case "tell": {
          const group = rng.pick(["web", "db"] as const)
          const level = rng.pick(levels[group] ?? ["1"])
          figures.tells++
          if (rng.chance(0.3)) await fireAndForget(d.socket, `${group} ${level}\n`)
          else await askJson(d.socket, { op: "tell", group, level })
          return
        }
        case "bad-tell":
          figures.badTells++
          await askJson(d.socket, { op: "tell", group: rng.pick(["nope", "web x", "\u0000"] as const), level: "1" })
          return
        case "kill-child": {
          const victims = markedPids(d.marker).filter((pid) => pid !== d.child.pid && envOf(pid, "ISINIT_TAG") !== undefined)
          const victim = victims[rng.int(0, Math.max(0, victims.length - 1))]
          if (victim === undefined) return
          figures.childKills++
          try {
            process.kill(victim, "SIGKILL")
          } catch {
            // just exited
          }
          return
        }
        case "edit": {
          variant = rng.int(0, 3)
          l.writeTab(variants(runs, variant))
          figures.configEdits++
          if (rng.chance(0.5)) {
            figures.sighups++
            process.kill(d.child.pid ?? 0, "SIGHUP")
          }
          return
        }
        case "pause":
          await sleep(rng.int(50, 600))
          return
        case "crash-daemon":
          figures.daemonCrashes++
          await crash(d)
          await newInstance(false)
          return
        case "stopall": {
          figures.cleanRestarts++
          const stopping = d
          await askJson(stopping.socket, { op: "stopall" })
          expect(await stopping.exited()).toBe(0)
          // stopall leaves nothing behind (zombies waiting for init to reap them do not count).
          await until("every process gone after stopall", () => markedPids(stopping.marker).filter((p) => p !== stopping.child.pid).length === 0, 20_000)
          await newInstance(true)
          return
        }
      }
    }

    while (Date.now() - started < soakMs) {
      await act(Date.now() - started > soakMs / 2)
      await check()
    }

    // Settle: one last tell per group; the transitions end, and the model matches /proc exactly.
    await askJson(d.socket, { op: "tell", group: "web", level: "1" })
    await askJson(d.socket, { op: "tell", group: "db", level: "a" })
    await until("both groups settled", async () => (await statusOf(d.socket)).groups.every((g) => g.state === "run" || g.state === "fail"), 30_000)
    await until("model and /proc agree exactly", async () => {
      const report = await statusOf(d.socket)
      const reported = reportedRuns(report.groups)
      const live = livePgids()
      const children = markedPids(d.marker).filter((pid) => pid !== d.child.pid)
      const groups = new Set(children.flatMap((pid) => procStat(pid)?.pgrp ?? []))
      return [...reported.keys()].every((pgid) => live.has(pgid)) && [...groups].every((pgid) => reported.has(pgid))
    }, 30_000)
    await check()
    const seconds = Math.round((Date.now() - started) / 1000)
    const faults = figures.childKills + figures.configEdits + figures.daemonCrashes + figures.cleanRestarts + figures.badTells
    console.log(
      [
        `soak (seed ${seed}): ${seconds} s, ${figures.actions} actions, ${figures.checks} checks against /proc`,
        `faults injected: ${faults} (${figures.childKills} child kill -9, ${figures.daemonCrashes} daemon kill -9 + restart, ${figures.cleanRestarts} stopall + restart, ${figures.configEdits} config edits with ${figures.sighups} SIGHUP, ${figures.badTells} bad tells), ${figures.tells} tells`,
        `daemon: max RSS ${figures.maxRssMb.toFixed(1)} MB (under tsx), max RSS growth after warm-up ${figures.maxRssGrowthMb.toFixed(1)} MB, max ${figures.maxFds} fds, max fd growth within an instance ${figures.maxFdGrowth}; up to ${figures.maxProcesses} child processes at once`,
      ].join("\n"),
    )
    expect(figures.daemonCrashes + figures.cleanRestarts).toBeGreaterThan(0)
  }, soakMs + 180_000)
})
