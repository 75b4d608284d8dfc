/**
 * Failover groups as the config declares them, and the timing rule that makes them safe.
 *
 * `:::failover:GROUP:LEVEL[:NODE,NODE,...]` makes GROUP run at LEVEL on exactly one node of the
 * cluster (the listed ones, in order of preference; any node when none is listed). Every other
 * node keeps GROUP at the level `standby`, which no entry of a failover group may list. Whether
 * this node may run the group is decided by the cluster node reducer (src/cluster/node), which
 * hands the core a *hold* (`Hold` in events.ts): the group's epoch and the local monotonic time
 * until which its lease is known to be alive. The core starts a failover group's processes only
 * while it holds, and stops them by itself when the hold runs out (docs/cluster.md, "Failover
 * groups", has the whole argument).
 *
 * The timing rule. With TTL T (etcd's lease), renew deadline D (a holder stops its group D after
 * the *send* of its last acknowledged keep-alive, on its own clock), failover kill grace G
 * (SIGTERM to SIGKILL), takeover delay W (a new holder waits W after the old lease is gone) and
 * the reap slack K (SIGKILL to gone, the fencer's scan period), and clock rates that differ from
 * real time by at most `driftBound` (ρ), two holders never overlap when
 *
 *     (D + G) × (1 + ρ) / (1 − ρ) + K × (1 + ρ)  ≤  T + W        and       D × (1 + ρ) / (1 − ρ) < T
 *
 * `isinit check` refuses timings that break it; the defaults (D = 60 %, G = 30 %, W = 10 % of T)
 * keep it for every TTL of at least 2 s.
 */

export interface FailoverGroup {
  readonly group: string
  /** The level the holder runs the group at. */
  readonly level: string
  /** Eligible nodes in order of preference; empty means every node, with equal preference. */
  readonly nodes: readonly string[]
  /** Line of the directive, for messages. */
  readonly line: number
}

export interface FailoverTiming {
  /** TTL of each node's failover lease in etcd. */
  readonly ttlMs: number
  /** A holder stops its group this long after sending its last acknowledged keep-alive. */
  readonly renewDeadlineMs: number
  /** SIGTERM-to-SIGKILL grace when a failover group stops (the fencer uses it too). */
  readonly killGraceMs: number
  /** How long a new holder waits after the previous holder's lease is gone (not after a clean hand-over). */
  readonly takeoverDelayMs: number
  /** How long a node whose group failed (a test failed, an entry was jailed) stays out of that group's election. */
  readonly banMs: number
}

export interface Failover {
  readonly groups: ReadonlyMap<string, FailoverGroup>
  readonly timing: FailoverTiming
}

/** The level of a failover group on every node that does not hold it: no entry lists it. */
export const standbyLevel = "standby"

/** ρ: how far any clock's rate (a node's monotonic clock, the etcd leader's) may stray from real time. */
export const driftBound = 0.01

/** K: from SIGKILL to every process of the group gone, including the fencer's scan period. */
export const reapSlackMs = 250

/** etcd refuses shorter leases (⌈1.5 × election timeout⌉ with its defaults). */
export const minTtlMs = 2_000

export const defaultTtlMs = 10_000
export const defaultBanMs = 300_000

/** The defaults for a TTL: D 60 %, G 30 %, W 10 % of it (Kubernetes' 10/15 ratio for D). */
export const timingFor = (ttlMs: number): FailoverTiming => ({
  ttlMs,
  renewDeadlineMs: Math.round(ttlMs * 0.6),
  killGraceMs: Math.round(ttlMs * 0.3),
  takeoverDelayMs: Math.round(ttlMs * 0.1),
  banMs: defaultBanMs,
})

export const defaultTiming: FailoverTiming = timingFor(defaultTtlMs)

export const noFailover: Failover = { groups: new Map(), timing: defaultTiming }

/** (1 + ρ) / (1 − ρ): the most one clock's interval can stretch against another's. */
export const stretch = (1 + driftBound) / (1 - driftBound)

/** The left side of the rule: the latest (in TTL units of etcd time) a holder's processes may live. */
export const worstStopMs = (t: Pick<FailoverTiming, "renewDeadlineMs" | "killGraceMs">): number =>
  (t.renewDeadlineMs + t.killGraceMs) * stretch + reapSlackMs * (1 + driftBound)

/**
 * The takeover delay a new holder must wait after a lease with this timing vanished: at least the
 * configured one, and at least what the previous holder's own D and G need (its proclamation
 * carries them, so nodes whose configs disagree are still safe).
 */
export const takeoverDelayAfter = (
  previous: Pick<FailoverTiming, "ttlMs" | "renewDeadlineMs" | "killGraceMs">,
  own: Pick<FailoverTiming, "takeoverDelayMs">,
): number => Math.max(own.takeoverDelayMs, Math.ceil(worstStopMs(previous) - previous.ttlMs))

/** Why a timing cannot be safe, in words an operator can act on; empty when it is safe. */
export const timingProblems = (t: FailoverTiming): readonly string[] => {
  const problems: string[] = []
  const s = (ms: number): string => `${Number((ms / 1000).toFixed(3))}s`
  if (t.ttlMs < minTtlMs) problems.push(`failover TTL ${s(t.ttlMs)} is below etcd's minimum lease of ${s(minTtlMs)}`)
  if (t.renewDeadlineMs * stretch >= t.ttlMs) {
    problems.push(`renew deadline ${s(t.renewDeadlineMs)} must stay below the TTL ${s(t.ttlMs)} by the clock drift (×${stretch.toFixed(4)}): lower it`)
  }
  const stop = worstStopMs(t)
  if (stop > t.ttlMs + t.takeoverDelayMs) {
    const need = Math.ceil(stop - t.ttlMs)
    problems.push(
      `failover timing cannot be safe: (renew deadline ${s(t.renewDeadlineMs)} + kill grace ${s(t.killGraceMs)}) × ${stretch.toFixed(4)} + ` +
        `reap slack ${s(reapSlackMs * (1 + driftBound))} = ${s(stop)} exceeds TTL ${s(t.ttlMs)} + takeover delay ${s(t.takeoverDelayMs)}; ` +
        `raise :::failover-takeover-delay to at least ${s(need)}, or lower the renew deadline or the kill grace`,
    )
  }
  return problems
}

/** Whether `node` may hold the group. */
export const eligible = (group: FailoverGroup, node: string): boolean => group.nodes.length === 0 || group.nodes.includes(node)

/** Rank of a node in the group's preference (0 is first); every node ranks equal without a list. */
export const preferenceOf = (group: FailoverGroup, node: string): number => {
  const rank = group.nodes.indexOf(node)
  return group.nodes.length === 0 ? 0 : rank < 0 ? group.nodes.length : rank
}
