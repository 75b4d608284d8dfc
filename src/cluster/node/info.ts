/**
 * What the node says about itself: the local status answer's `cluster` field (the shell turns the
 * monotonic `since` into a date) and the start-up choice of config.
 */
import type { Election, Local, NodeState, Running } from "./types.ts"
import type { ClusterSnapshot } from "./types.ts"

export interface NodeInfo {
  readonly node: string
  readonly connected: boolean
  /** Local monotonic ms when `connected` last changed. */
  readonly since: number
  readonly error: string | undefined
  readonly configSource: "etcd" | "file" | "none"
  readonly configSeq: number | null
  readonly configSha256: string | null
  /** Local tells not yet recorded in etcd as overrides, `group=level`. */
  readonly pendingOverrides: readonly string[]
  /** Per failover group: this node's part in its election. */
  readonly failover: readonly { readonly group: string; readonly election: Election["_tag"]; readonly epoch: number | null; readonly detail: string }[]
  /** Another daemon runs under this node name (it does not campaign). */
  readonly identity: "ok" | "conflict"
}

const secondsText = (ms: number): string => `${(Math.max(0, ms) / 1000).toFixed(1)} s`

/** The election in words, its times relative to `now` (monotonic readings mean nothing to a reader). */
const detailOf = (e: Election, now: number): string => {
  switch (e._tag) {
    case "Banned":
      return `banned for ${secondsText(e.until - now)} more: ${e.reason}`
    case "TakeoverWait":
      return `takes over in ${secondsText(e.until - now)}: ${e.reason}`
    case "Holding":
      return `holding for ${secondsText(now - e.since)}`
    case "Releasing":
    case "Resigning":
      return e.why._tag === "Move" ? `moving to ${e.why.to}` : e.why.reason
    default:
      return ""
  }
}

export const infoOf = (s: NodeState): NodeInfo => {
  const running = s.running
  return {
    node: s.node,
    connected: s.connection._tag === "Up",
    since: s.connection.since,
    error: s.connection._tag === "Down" ? s.connection.reason : undefined,
    configSource: running._tag === "Etcd" ? "etcd" : running._tag === "File" ? "file" : "none",
    configSeq: running._tag === "Etcd" ? running.config.value.seq : null,
    configSha256: running._tag === "Etcd" ? running.config.value.sha256 : running._tag === "File" ? running.sha256 : null,
    pendingOverrides: [...s.overrides.pending].map(([group, o]) => `${group}=${o.level}`),
    failover: [...s.failover.elections].map(([group, e]) => ({ group, election: e._tag, epoch: "epoch" in e ? e.epoch : null, detail: detailOf(e, s.now) })),
    identity: s.failover.claim._tag === "Conflict" ? "conflict" : "ok",
  }
}

/** At start: etcd's config if it has one; else (no config in etcd, or etcd unreachable) the local file. */
export const initialRunning = (snapshot: ClusterSnapshot | undefined, local: Local): Running => {
  const config = snapshot?.obeyed.config
  return config === undefined ? local : { _tag: "Etcd", config }
}
