import { describe, expect, it } from "vitest"
import { decodeConfig, decodeDesired, decodeNodeStatus, encodeValue, sha256Of } from "../../src/cluster/codecs.ts"
import type { Obeyed, WatchEvent } from "../../src/cluster/desired.ts"
import { applyEvent, effectiveFor, emptyObeyed, pendingTells } from "../../src/cluster/desired.ts"
import {
  clusterTarget,
  configHistoryKey,
  configKey,
  desiredKey,
  nodeDesiredKey,
  nodeTarget,
  nodeStatusKey,
  obeyedRange,
  auditKey,
  activeKey,
  banKey,
  candidateKey,
  claimKey,
  failoverPrefix,
  moveKey,
  nodeFailoverPrefix,
  parseKey,
  rolloutDriverKey,
  rolloutKey,
  seenKey,
  watchedRange,
} from "../../src/cluster/keys.ts"
import type { RolloutNode } from "../../src/cluster/rollout.ts"
import { newRollout } from "../../src/cluster/rollout.ts"
import { decodeRollout, encodeRollout } from "../../src/cluster/rolloutCodec.ts"
import type { Target } from "../../src/cluster/keys.ts"
import { goodConfig, statusInput } from "./helpers.ts"

const inRange = (key: string, range = obeyedRange("c")): boolean => {
  const { start, end } = range
  const bytes = (s: string): Buffer => Buffer.from(s, "utf8")
  return Buffer.compare(bytes(key), bytes(start)) >= 0 && Buffer.compare(bytes(key), bytes(end)) < 0
}

describe("key layout", () => {
  it("round-trips every key kind through parseKey", () => {
    expect(parseKey("c", configKey("c"))).toEqual({ _tag: "Config" })
    expect(parseKey("c", configHistoryKey("c", 12))).toEqual({ _tag: "ConfigHistory", seq: 12 })
    expect(parseKey("c", desiredKey("c", "web"))).toEqual({ _tag: "Desired", target: clusterTarget, group: "web" })
    expect(parseKey("c", nodeDesiredKey("c", "n1", "web"))).toEqual({ _tag: "Desired", target: nodeTarget("n1"), group: "web" })
    expect(parseKey("c", nodeStatusKey("c", "n1"))).toEqual({ _tag: "NodeStatus", node: "n1" })
    expect(parseKey("c", seenKey("c", "n1"))).toEqual({ _tag: "Seen", node: "n1" })
    expect(parseKey("c", auditKey("c", 1_700_000_000_000, "0a1b2c"))).toEqual({ _tag: "Audit", id: "001700000000000-0a1b2c" })
    expect(parseKey("c", rolloutKey("c", "web"))).toEqual({ _tag: "Rollout", group: "web" })
    expect(parseKey("c", rolloutDriverKey("c", "web"))).toEqual({ _tag: "RolloutDriver", group: "web" })
    expect(parseKey("c", moveKey("c", "web"))).toEqual({ _tag: "Move", group: "web" })
    expect(parseKey("c", claimKey("c", "n1"))).toEqual({ _tag: "Claim", node: "n1" })
    expect(parseKey("c", candidateKey("c", "n1", "web"))).toEqual({ _tag: "Candidate", node: "n1", group: "web" })
    expect(parseKey("c", activeKey("c", "n1", "web"))).toEqual({ _tag: "Active", node: "n1", group: "web" })
    expect(parseKey("c", banKey("c", "n1", "web"))).toEqual({ _tag: "Ban", node: "n1", group: "web" })
  })

  it("classifies anything else as Unknown with a reason", () => {
    for (const key of ["/isinit/c/desired/", "/isinit/c/desired/a/b", "/isinit/c/desired-node/n1", "/isinit/c/desired-node/n1/g/x",
      "/isinit/c/config/x", "/isinit/c/history/abc", "/isinit/c/history/0", "/isinit/c/dump", "/isinit/other/config",
      "/isinit/c/desired/a b", "/isinit/c/nodes/..", "/isinit/c/audit/", "/isinit/c/audit/123-x", "/isinit/c/failover/web",
      "/isinit/c/failover/web/active", "/isinit/c/failover-node/n1", "/isinit/c/failover-node/n1/cand", "/isinit/c/failover-node/n1/claim/x",
      "/isinit/c/failover-node/n1/vote/web", "/isinit/c/failover-node/n1/cand/web/x"]) {
      const parsed = parseKey("c", key)
      expect(parsed._tag, key).toBe("Unknown")
      if (parsed._tag === "Unknown") expect(parsed.reason.length).toBeGreaterThan(0)
    }
  })

  it("puts config and desired levels, and nothing else of a cluster, in the watched range", () => {
    expect(inRange(configKey("c"))).toBe(true)
    expect(inRange(desiredKey("c", "web"))).toBe(true)
    expect(inRange(nodeDesiredKey("c", "n1", "web"))).toBe(true)
    expect(inRange(configHistoryKey("c", 1))).toBe(false)
    expect(inRange(nodeStatusKey("c", "n1"))).toBe(false)
    expect(inRange(seenKey("c", "n1"))).toBe(false)
    expect(inRange(auditKey("c", 1, "ab"))).toBe(false)
    // A rollout's progress never wakes a daemon: nodes do not obey it, the client drives it.
    expect(inRange(rolloutKey("c", "web"))).toBe(false)
    expect(inRange(rolloutDriverKey("c", "web"))).toBe(false)
    // What a node writes under its own name: a per-node etcd role's prefixes never cover another node's keys.
    expect(inRange(nodeFailoverPrefix("c", "n1"))).toBe(false)
    expect(`${nodeFailoverPrefix("c", "n10")}g`.startsWith(nodeFailoverPrefix("c", "n1"))).toBe(false)
    expect(`${failoverPrefix("c")}g`.startsWith(nodeFailoverPrefix("c", "n1"))).toBe(false)
    expect(inRange(desiredKey("c2", "web"))).toBe(false)
  })

  it("puts every key a daemon follows in its one watched range, and no node's status", () => {
    const watched = watchedRange("c")
    for (const key of [configKey("c"), desiredKey("c", "web"), nodeDesiredKey("c", "n1", "web"), moveKey("c", "web"), claimKey("c", "n1"),
      candidateKey("c", "n1", "web"), activeKey("c", "n1", "web"), banKey("c", "n1", "web")]) expect(inRange(key, watched), key).toBe(true)
    // A rollout's progress never wakes a daemon either: nodes do not obey it, the client drives it.
    for (const key of [configHistoryKey("c", 1), nodeStatusKey("c", "n1"), seenKey("c", "n1"), auditKey("c", 1, "ab"), moveKey("c2", "web"),
      rolloutKey("c", "web"), rolloutDriverKey("c", "web")]) {
      expect(inRange(key, watched), key).toBe(false)
    }
    // Everything a node writes for failover is under its own prefix, which no other node's covers.
    for (const key of [claimKey("c", "n1"), candidateKey("c", "n1", "web"), activeKey("c", "n1", "web"), banKey("c", "n1", "web")]) {
      expect(key.startsWith(nodeFailoverPrefix("c", "n1")), key).toBe(true)
      expect(key.startsWith(nodeFailoverPrefix("c", "n10")), key).toBe(false)
    }
    expect(moveKey("c", "web").startsWith(failoverPrefix("c"))).toBe(true)
  })

  it("orders history keys by push number", () => {
    expect(configHistoryKey("c", 9) < configHistoryKey("c", 10)).toBe(true)
  })
})

describe("value codecs", () => {
  it("round-trips a rollout record and refuses one moved to another group's key or with a node twice", () => {
    const options = { group: "web", level: "2", batchSize: 2, pauseMs: 0, maxFailures: 1, batchTimeoutMs: 600_000 }
    const moving: RolloutNode = { node: "n1", step: { _tag: "Moving", revision: undefined } }
    const pending: RolloutNode = { node: "n2", step: { _tag: "Pending" } }
    const nodes = [moving, pending]
    const r = newRollout(options, { nodes, overridden: [], notRunning: [] }, 7, { by: "ann@h1", at: 1_000 })
    const decoded = decodeRollout(encodeRollout(r), "web")
    expect(decoded).toEqual({ _tag: "Right", right: { ...r, nodes: [{ ...moving, adopted: undefined }, { ...pending, adopted: undefined }] } })
    expect(decodeRollout(encodeRollout(r), "db")._tag).toBe("Left")
    expect(decodeRollout(encodeRollout({ ...r, nodes: [pending, pending] }), "web")._tag).toBe("Left")
    expect(decodeRollout(encodeRollout({ ...r, batchSize: 101 }), "web")).toEqual({ _tag: "Left", left: expect.stringMatching(/batchSize must be a whole number from 1 to 100/) as string })
  })

  it("decodes a desired level and refuses bad ones with a reason", () => {
    expect(decodeDesired('{"level":"3","by":"me"}')).toEqual({ _tag: "Right", right: { level: "3", by: "me" } })
    const bad = ["nope", "{}", '{"level":""}', '{"level":"a b"}', '{"level":3}', '{"level":"3","at":"yesterday"}']
    for (const text of bad) {
      const decoded = decodeDesired(text)
      expect(decoded._tag, text).toBe("Left")
    }
  })

  it("accepts a config only if its hash matches and it parses without errors", () => {
    const value = { text: goodConfig, sha256: sha256Of(goodConfig), seq: 1, pushedAt: new Date().toISOString() }
    const ok = decodeConfig(encodeValue(value))
    expect(ok._tag).toBe("Right")
    if (ok._tag === "Right") expect([...ok.right.parsed.config.byGroup.keys()].sort()).toEqual(["db", "web"])
    const tampered = decodeConfig(encodeValue({ ...value, text: `${goodConfig}x:y:1:once:true\n` }))
    expect(tampered).toEqual({ _tag: "Left", left: "sha256 does not match the text" })
    const broken = "web:a:1:bogus:true\n"
    const invalid = decodeConfig(encodeValue({ ...value, text: broken, sha256: sha256Of(broken) }))
    expect(invalid._tag).toBe("Left")
    if (invalid._tag === "Left") expect(invalid.left).toMatch(/line 1: .*bogus/)
  })

  it("decodes a node status with the core's report", () => {
    const status = { ...statusInput("3"), node: "n1", at: new Date().toISOString() }
    expect(decodeNodeStatus(encodeValue(status))._tag).toBe("Right")
    expect(decodeNodeStatus(JSON.stringify({ ...status, report: { lifecycle: "running", groups: [{ group: "web" }] } }))._tag).toBe("Left")
    expect(decodeNodeStatus(JSON.stringify({ ...status, node: "a/b" }))._tag).toBe("Left")
  })
})

describe("desired view and convergence", () => {
  const set = (target: Target, group: string, level: string, revision: number): WatchEvent => ({
    _tag: "DesiredSet", target, group, desired: { level, revision },
  })
  const fold = (events: readonly WatchEvent[], from: Obeyed = emptyObeyed): Obeyed => events.reduce(applyEvent, from)

  it("gives a node's override precedence over the cluster-wide level, for that node only", () => {
    const view = fold([set(clusterTarget, "web", "3", 5), set(nodeTarget("n1"), "web", "maint", 6), set(clusterTarget, "db", "2", 7)])
    expect(effectiveFor(view, "n1").get("web")).toEqual({ level: "maint", revision: 6, source: "node" })
    expect(effectiveFor(view, "n2").get("web")).toEqual({ level: "3", revision: 5, source: "cluster" })
    expect(effectiveFor(view, "n1").get("db")).toEqual({ level: "2", revision: 7, source: "cluster" })
    // A later cluster-wide write does not override the node's override...
    const later = fold([set(clusterTarget, "web", "4", 8)], view)
    expect(effectiveFor(later, "n1").get("web")?.level).toBe("maint")
    // ...and clearing the override hands the group back to the cluster-wide level.
    const cleared = fold([{ _tag: "DesiredCleared", target: nodeTarget("n1"), group: "web", revision: 9 }], later)
    expect(effectiveFor(cleared, "n1").get("web")).toEqual({ level: "4", revision: 8, source: "cluster" })
  })

  it("tells each revision once: nothing again after a resync that changed nothing", () => {
    const view = fold([set(clusterTarget, "web", "3", 5), set(clusterTarget, "db", "2", 6)])
    const first = pendingTells(effectiveFor(view, "n1"), new Map())
    expect(first).toEqual([{ group: "db", level: "2", revision: 6 }, { group: "web", level: "3", revision: 5 }])
    const applied = new Map(first.map((t) => [t.group, { level: t.level, revision: t.revision }]))
    // A resync replaces the view with one read afresh (the node reducer's Snapshot): same levels, a later revision.
    const resynced: Obeyed = { ...view, revision: 40 }
    expect(pendingTells(effectiveFor(resynced, "n1"), applied)).toEqual([])
    // The same level written again is a new tell (e.g. to re-run a failed test entry).
    expect(pendingTells(effectiveFor(fold([set(clusterTarget, "web", "3", 41)], resynced), "n1"), applied)).toEqual([
      { group: "web", level: "3", revision: 41 },
    ])
  })

  it("leaves a group alone when its desired level is deleted or a write is rejected", () => {
    const view = fold([set(clusterTarget, "web", "3", 5)])
    const applied = new Map([["web", { level: "3", revision: 5 }]])
    const rejected = applyEvent(view, { _tag: "Rejected", rejection: { key: "k", revision: 6, reason: "bad" } })
    expect(rejected.revision).toBe(6)
    expect(pendingTells(effectiveFor(rejected, "n1"), applied)).toEqual([])
    const deleted = applyEvent(view, { _tag: "DesiredCleared", target: clusterTarget, group: "web", revision: 7 })
    expect(pendingTells(effectiveFor(deleted, "n1"), applied)).toEqual([])
  })
})
