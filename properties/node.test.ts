/**
 * The cluster node reducer keeps every behaviour of today's cluster agent for ordinary groups
 * (docs/cluster.md "The daemon", "Precedence", "Local tells"), driven event by event with the real
 * core reducer behind it; and it fixes defects of today's agent: it is connected only while etcd
 * acknowledges its keep-alives, a local tell's note says where its override went, and watches
 * lost again and again are resynced with backoff as one outage, logged once.
 */
import { fc, test } from "@fast-check/vitest"
import { expect } from "vitest"
import { clusterTarget, nodeTarget } from "../src/cluster/keys.ts"
import type { Change } from "../src/cluster/node/types.ts"
import { infoOf } from "../src/cluster/node/info.ts"
import { nearArb } from "./helpers.ts"
import { NodeBench, storedConfig } from "./node.ts"

const text = "g1:a:1:respawn:a\ng1:b:2:respawn:b\ng2:c:1:respawn:c\ng2:d:2:respawn:d\ng4:t:1:test:check\ng4:e:1:respawn:e\n"
const config = storedConfig(text, 1, 1)
const configChange: Change = { _tag: "ConfigSet", config }

/** A node that has read the config (revision 1) and watches from there. */
const started = (): NodeBench => {
  const bench = new NodeBench(config)
  bench.snapshot(1, [configChange])
  return bench
}

const levelArb = fc.constantFrom("1", "2")
const groupArb = fc.constantFrom("g1", "g2")
type Audience = "cluster" | "n1" | "n2"
const audienceArb = fc.constantFrom<Audience>("cluster", "n1", "n2")

const desired = (audience: Audience, group: string, level: string | undefined, revision: number): Change => {
  const target = audience === "cluster" ? clusterTarget : nodeTarget(audience)
  return level === undefined ? { _tag: "DesiredCleared", target, group, revision } : { _tag: "DesiredSet", target, group, desired: { level, revision } }
}

test.prop([fc.array(fc.tuple(audienceArb, groupArb, fc.option(levelArb, { nil: undefined })), { minLength: 1, maxLength: 25 })], { numRuns: 200 })(
  "overrides win: each group ends at this node's override if it has one, else at the cluster-wide level, else where it was",
  (writes) => {
    const bench = started()
    const model = new Map<string, string | undefined>()
    writes.forEach(([scope, group, level], i) => {
      bench.watch(i + 2, [desired(scope, group, level, i + 2)])
      model.set(`${scope}/${group}`, level)
    })
    for (const group of ["g1", "g2"]) {
      const wanted = model.get(`n1/${group}`) ?? model.get(`cluster/${group}`)
      const last = [...writes].reverse().find(([scope, g, level]) => g === group && scope !== "n2" && level !== undefined)
      if (wanted !== undefined) expect(bench.levelOf(group)).toBe(wanted)
      else if (last === undefined) expect(bench.levelOf(group)).toBeUndefined()
    }
  },
)

test.prop([groupArb, levelArb, levelArb, audienceArb.filter((s) => s !== "n2"), fc.integer({ min: 0, max: 5_000 })], { numRuns: 100 })(
  "converging, not replaying: a desired level the group already starts or runs at only takes the revision; another level is told",
  (group, at, wanted, scope, later) => {
    const bench = started()
    bench.watch(2, [desired(scope, group, at, 2)])
    bench.advance(later)
    const mark = bench.commands.length
    bench.watch(3, [desired(scope === "cluster" ? "n1" : "cluster", group, wanted, 3)])
    const tells = bench.since(mark, "TellCore").filter((t) => t.group === group)
    const overrideWins = scope === "n1"
    const effective = overrideWins ? at : wanted
    expect(tells.length).toBe(overrideWins || wanted === at ? 0 : 1)
    expect(bench.levelOf(group)).toBe(effective)
    const taken = bench.node.convergence.taken.get(group)
    expect(taken?.revision).toBe(overrideWins ? 2 : 3)
  },
)

test.prop([groupArb, levelArb, levelArb, fc.integer({ min: 100, max: 99_999 })], { numRuns: 100 })(
  "local tells: recorded as this node's override, the client told where (with the revision), and the watch echo not told again",
  (group, level, echoed, revision) => {
    const bench = started()
    bench.localTell(7, group, level)
    const write = bench.since(0, "Write").find((w) => w.write._tag === "Override")
    expect(write?.write).toEqual({ _tag: "Override", group, level })
    bench.answerWrite("Override", { _tag: "Done", revision, createRevision: revision })
    expect(bench.since(0, "Reply")).toEqual([{ _tag: "Reply", request: 7, note: `recorded in etcd as n1's override (revision ${revision})` }])
    const mark = bench.commands.length
    bench.watch(revision, [desired("n1", group, echoed, revision)])
    expect(bench.since(mark, "TellCore").length).toBe(echoed === level ? 0 : 1)
    expect(bench.levelOf(group)).toBe(echoed)
  },
)

test.prop([fc.constantFrom<Audience>("n1", "cluster"), fc.integer({ min: 2, max: 999 })], { numRuns: 40 })(
  "the echo of a local tell is not told again even where its test failed; a cluster-wide tell of that level is (the tests run again)",
  (scope, revision) => {
    const bench = started()
    bench.localTell(1, "g4", "1")
    bench.exit("t", 1)
    expect(bench.phaseOf("g4")).toBe("fail")
    bench.answerWrite("Override", { _tag: "Done", revision, createRevision: revision })
    const mark = bench.commands.length
    bench.watch(revision, [desired(scope, "g4", "1", revision)])
    expect(bench.since(mark, "TellCore").length).toBe(scope === "n1" ? 0 : 1)
  },
)

test.prop([fc.integer({ min: 1, max: 6 }), fc.integer({ min: 0, max: 3 })], { numRuns: 60 })(
  "a tell the core refused waits for a config change, and is told again under the new config",
  (unrelated, reloads) => {
    const bench = started()
    bench.watch(2, [desired("cluster", "g3", "1", 2)])
    const refusedAt = bench.commands.length
    expect(bench.since(0, "TellCore").filter((t) => t.group === "g3").length).toBe(1)
    for (let i = 0; i < unrelated; i++) bench.watch(3 + i, [desired("cluster", i % 2 === 0 ? "g1" : "g2", String((i % 2) + 1), 3 + i)])
    for (let i = 0; i < reloads; i++) bench.snapshot(20 + i, [configChange, desired("cluster", "g3", "1", 2)])
    expect(bench.since(refusedAt, "TellCore").filter((t) => t.group === "g3")).toEqual([])
    const withG3 = storedConfig(`${text}g3:f:1:respawn:f\n`, 2, 40)
    bench.watch(40, [{ _tag: "ConfigSet", config: withG3 }])
    expect(bench.since(refusedAt, "TellCore").filter((t) => t.group === "g3").length).toBe(1)
    expect(bench.levelOf("g3")).toBe("1")
  },
)

type Trouble = "watch-lost" | "read-failed" | "keepalive-failed" | "publish-failed" | "time"
const troubleArb = fc.tuple(fc.constantFrom<Trouble>("watch-lost", "read-failed", "keepalive-failed", "publish-failed", "time"), nearArb([200, 5_000, 10_000], 120_000))

test.prop([fc.array(troubleArb, { minLength: 1, maxLength: 30 })], { numRuns: 150 })(
  "outages change nothing that runs: lost watches, failed reads, keep-alives and publishes, and time, tell and stop nothing; a resync to the same revisions neither",
  (troubles) => {
    const bench = started()
    bench.watch(2, [desired("cluster", "g1", "1", 2), desired("cluster", "g2", "2", 2)])
    const entries = bench.core.entries
    const mark = bench.commands.length
    for (const [trouble, ms] of troubles) {
      if (trouble === "watch-lost") bench.feed((now) => ({ _tag: "WatchLost", now, reason: "cut" }))
      else if (trouble === "read-failed") bench.feed((now) => ({ _tag: "ReadFailed", now, reason: "down" }))
      else if (trouble === "keepalive-failed") bench.feed((now) => ({ _tag: "KeepAliveFailed", now, lease: "presence", id: "x", seq: 1, reason: "down" }))
      else if (trouble === "publish-failed") bench.answerWrite("Publish", { _tag: "Unavailable", reason: "down" })
      bench.advance(ms)
    }
    bench.snapshot(2, [configChange, desired("cluster", "g1", "1", 2), desired("cluster", "g2", "2", 2)])
    const touching = bench.commands.slice(mark).filter((c) => c.command._tag === "TellCore" || c.command._tag === "ReloadCore")
    expect(touching).toEqual([])
    expect(bench.core.entries).toBe(entries)
  },
)

test.prop([fc.integer({ min: 1, max: 20 }), nearArb([0, 6_000], 30_000)], { numRuns: 100 })(
  "connected means etcd acknowledged a keep-alive sent within the renew deadline, even while the watch stream stays open",
  (healthy, silence) => {
    const bench = started()
    const grant = bench.since(0, "Grant").find((g) => g.lease === "presence")
    expect(grant).toBeDefined()
    bench.feed((now) => ({ _tag: "Granted", now, lease: "presence", id: "P1", ttlMs: 10_000 }))
    bench.answerWrite("Publish", { _tag: "Done", revision: 5, createRevision: 5 })
    // Keep-alives are answered for a while, then no more (quorum lost behind a member that still holds the watch).
    for (let i = 0; i < healthy; i++) {
      bench.advance(2_000)
      const sent = bench.since(0, "KeepAlive").at(-1)
      if (sent !== undefined) bench.feed((now) => ({ _tag: "KeptAlive", now, lease: "presence", id: "P1", seq: sent.seq, ttlMs: 10_000 }))
    }
    expect(infoOf(bench.node).connected).toBe(true)
    const lease = bench.node.presence.lease
    const confirmed = lease._tag === "Live" ? lease.confirmed : 0
    bench.advance(silence)
    expect(infoOf(bench.node).connected).toBe(bench.now < confirmed + 6_000)
  },
)

test.prop([fc.integer({ min: 0, max: 4_999 })], { numRuns: 30 })(
  "watches that break as soon as they start are resynced with a growing backoff, not in bursts",
  (lifeMs) => {
    const bench = started()
    let reads = 0
    let answered = bench.since(0, "Read").length
    bench.advance(lifeMs)
    bench.feed((now) => ({ _tag: "WatchLost", now, reason: "member down" }))
    while (bench.now < 20_000 && reads < 100) {
      const pending = bench.since(0, "Read").length
      if (pending > answered) {
        answered = pending
        reads++
        bench.snapshot(1, [configChange])
        bench.advance(lifeMs)
        bench.feed((now) => ({ _tag: "WatchLost", now, reason: "member down" }))
      } else bench.advance(Math.max(1, (bench.node.wakeups?.item.at ?? bench.now + 100) - bench.now))
    }
    // Backoffs of 200, 400, 800 ms ... 5 s between reads: a few per 20 s, never dozens.
    expect(reads).toBeGreaterThan(1)
    expect(reads).toBeLessThanOrEqual(12)
    // One outage: logged once, with its first resync; the losses after it are the same outage.
    expect(bench.since(0, "Log").filter((l) => l.what === "etcd-outage")).toHaveLength(1)
    expect(bench.since(0, "Log").filter((l) => l.what === "etcd-resync")).toHaveLength(1)
  },
)

/** One outage: watches lost again and again (each after `lifeMs`), each resync after some failed reads. */
const outageArb = fc.array(fc.record({ lifeMs: fc.integer({ min: 0, max: 4_999 }), failedReads: fc.integer({ min: 0, max: 3 }) }), { minLength: 1, maxLength: 6 })

test.prop([fc.array(outageArb, { minLength: 1, maxLength: 4 }), fc.integer({ min: 5_000, max: 60_000 })], { numRuns: 100 })(
  "an outage is logged once with its first resync, however often its watch is lost again or its reads fail; a watch that ran steadily ends it",
  (outages, steadyMs) => {
    const bench = started()
    let answered = bench.since(0, "Read").length
    /** Serves the read the node asks for next (after its backoff): as a failure, or as a snapshot. */
    const answerRead = (outcome: "Failed" | "Read"): void => {
      for (let waited = 0; bench.since(0, "Read").length === answered; waited++) {
        expect(waited, "the node asks for a read again").toBeLessThan(100)
        bench.advance(Math.max(1, (bench.node.wakeups?.item.at ?? bench.now + 100) - bench.now))
      }
      answered = bench.since(0, "Read").length
      if (outcome === "Failed") bench.feed((now) => ({ _tag: "ReadFailed", now, reason: "member down" }))
      else bench.snapshot(1, [configChange])
    }
    for (const losses of outages) {
      bench.advance(steadyMs)
      for (const [i, { lifeMs, failedReads }] of losses.entries()) {
        if (i > 0) bench.advance(lifeMs)
        bench.feed((now) => ({ _tag: "WatchLost", now, reason: "member down" }))
        for (let f = 0; f < failedReads; f++) answerRead("Failed")
        answerRead("Read")
      }
    }
    const logged = (what: string): number => bench.since(0, "Log").filter((l) => l.what === what).length
    expect(logged("etcd-outage")).toBe(outages.length)
    expect(logged("etcd-resync")).toBe(outages.length)
  },
)

test.prop([fc.array(fc.tuple(audienceArb.filter((s) => s !== "n2"), groupArb, levelArb), { minLength: 1, maxLength: 15 })], { numRuns: 150 })(
  "a published status never shows a desired revision as taken beside a core that has not yet been told it (a rollout would read the old state as the new level's outcome)",
  (writes) => {
    const bench = started()
    bench.feed((now) => ({ _tag: "Granted", now, lease: "presence", id: "P1", ttlMs: 10_000 }))
    writes.forEach(([scope, group, level], i) => {
      bench.answerWrite("Publish", { _tag: "Done", revision: 100 + i, createRevision: 5 })
      bench.watch(i + 2, [desired(scope, group, level, i + 2)])
    })
    let checked = 0
    for (const publish of bench.since(0, "Write").flatMap((w) => (w.write._tag === "Publish" ? [w.write.status] : []))) {
      for (const [group, taken] of Object.entries(publish.desired)) {
        expect(publish.report.groups.find((g) => g.group === group)?.level, `${group} taken at ${taken.level} (revision ${taken.revision})`).toBe(taken.level)
        checked++
      }
    }
    // Not vacuous: at least one published status carried a taken revision to check.
    expect(checked).toBeGreaterThan(0)
  },
)
