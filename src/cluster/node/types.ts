/**
 * The cluster node's vocabulary: its state, the events the shell feeds it and the commands it
 * returns. All plain data. The shell performs each command and answers it with an event; time
 * enters only as `now` (local monotonic ms) in every event. See reduce.ts for the rules.
 */
import type { Parsed } from "../../core/config.ts"
import type { FailoverTiming } from "../../core/failover.ts"
import type { StatusReport } from "../../core/report.ts"
import type { State as CoreState } from "../../core/state.ts"
import type { Heap } from "../../core/heap.ts"
import type { Effective, Obeyed, StoredConfig, WatchEvent } from "../desired.ts"

// ---------------------------------------------------------------------------------------------
// What etcd holds for failover (keys: ../keys.ts), as the watch shows it

/** A candidate key `failover-node/NODE/cand/GROUP`: its create revision orders the queue and is the epoch. */
export interface Candidate {
  readonly key: string
  readonly createRevision: number
  readonly node: string
  readonly instance: string
}

/** `failover-node/NODE/active/GROUP`: a holder's proclamation, written only under its candidate key's guard. */
export interface Active {
  readonly node: string
  readonly epoch: number
  /** `released`: the holder confirmed its processes gone and resigned (a clean hand-over, no takeover delay). */
  readonly state: "running" | "released"
  /** The holder's lease terms, so a taker computes a safe delay even if its own config differs. */
  readonly ttlMs: number
  readonly renewDeadlineMs: number
  readonly killGraceMs: number
  /** Why the group came to (or left) this holder, for `status`. */
  readonly reason: string
}

/** `failover/GROUP/move`, written by `isinit --etcd move GROUP NODE` on a lease of its own: it expires by itself. */
export interface Move {
  readonly node: string
  readonly modRevision: number
}

/** One node's proclamation for a group, with the etcd revision that wrote it. */
export interface Proclamation {
  readonly active: Active
  readonly modRevision: number
}

export interface FailoverView {
  /** Per group, the candidates of every node in create-revision order (the first one leads). */
  readonly candidates: ReadonlyMap<string, readonly Candidate[]>
  /** Per group, each node's last proclamation (every node writes only its own). */
  readonly proclamations: ReadonlyMap<string, ReadonlyMap<string, Proclamation>>
  /** Per group, the last holder: the proclamation with the highest epoch. */
  readonly active: ReadonlyMap<string, Active>
  /** Moves as written; one counts only until its target proclaimed after it (view.ts `moveOf`). */
  readonly moves: ReadonlyMap<string, Move>
  /** `failover-node/NODE/claim`: the instance that claimed a node name (on its failover lease). */
  readonly claims: ReadonlyMap<string, string>
}

export const emptyFailoverView: FailoverView = { candidates: new Map(), proclamations: new Map(), active: new Map(), moves: new Map(), claims: new Map() }

/** Everything a node watches, read at one revision. */
export interface ClusterSnapshot {
  readonly revision: number
  readonly obeyed: Obeyed
  readonly failover: FailoverView
}

export type ObeyedChange = WatchEvent

export type FailoverChange =
  | { readonly _tag: "CandidateSet"; readonly group: string; readonly candidate: Candidate }
  | { readonly _tag: "CandidateGone"; readonly group: string; readonly key: string }
  | { readonly _tag: "ActiveSet"; readonly group: string; readonly active: Active; readonly modRevision: number }
  | { readonly _tag: "ActiveGone"; readonly group: string; readonly node: string }
  | { readonly _tag: "MoveSet"; readonly group: string; readonly move: Move }
  | { readonly _tag: "MoveGone"; readonly group: string }
  | { readonly _tag: "ClaimSet"; readonly node: string; readonly instance: string }
  | { readonly _tag: "ClaimGone"; readonly node: string }

export type Change = ObeyedChange | FailoverChange

// ---------------------------------------------------------------------------------------------
// Commands

export type LeaseName = "presence" | "failover"

/** Writes to etcd; each is answered by `Written` with the same `write`. */
export type Write =
  /** If `failover-node/NODE/claim` does not exist, create it with our instance on the failover lease. */
  | { readonly _tag: "Claim"; readonly lease: string; readonly instance: string }
  /** If our candidate key for GROUP does not exist, create it on the failover lease; either way answer its create revision. */
  | { readonly _tag: "Campaign"; readonly group: string; readonly lease: string; readonly instance: string }
  /** If our candidate key still has `epoch` as create revision, write our proclamation `failover-node/NODE/active/GROUP`. */
  | { readonly _tag: "Proclaim"; readonly group: string; readonly key: string; readonly epoch: number; readonly active: Active }
  /** Under the same guard: write our proclamation (released) and delete our candidate key, in one transaction. */
  | { readonly _tag: "Resign"; readonly group: string; readonly key: string; readonly epoch: number; readonly active: Active }
  /** Under the same guard: delete our candidate key (to stand aside, or to queue again behind a preferred node). */
  | { readonly _tag: "Withdraw"; readonly group: string; readonly key: string; readonly epoch: number }
  /** `failover-node/NODE/ban/GROUP` on a lease of `ttlMs`, for `status` (the node keeps its own timer). */
  | { readonly _tag: "Ban"; readonly group: string; readonly reason: string; readonly ttlMs: number }
  /** `desired-node/NODE/GROUP` = level: a local tell recorded as this node's override. */
  | { readonly _tag: "Override"; readonly group: string; readonly level: string }
  /** `nodes/NODE` on the presence lease (and `seen/NODE` when `seen` is "mark"). */
  | { readonly _tag: "Publish"; readonly seq: number; readonly lease: string; readonly status: PublishedStatus; readonly seen: "mark" | "keep" }

export interface PublishedStatus {
  readonly configSha256: string | null
  readonly configSeq: number | null
  readonly desired: Readonly<Record<string, Effective>>
  readonly report: StatusReport
}

/** Events the local core reducer must handle, in order; each is answered by `CoreAnswered`. */
export type CoreCommand =
  | { readonly _tag: "TellCore"; readonly group: string; readonly level: string; readonly revision: number; readonly source: Effective["source"] }
  | { readonly _tag: "ReloadCore"; readonly config: StoredConfig }
  | { readonly _tag: "HoldCore"; readonly group: string; readonly epoch: number; readonly until: number }
  | { readonly _tag: "ReleaseCore"; readonly group: string }

export type NodeCommand =
  | { readonly _tag: "Read" }
  | { readonly _tag: "Watch"; readonly fromRevision: number }
  | { readonly _tag: "Grant"; readonly lease: LeaseName; readonly ttlMs: number }
  | { readonly _tag: "KeepAlive"; readonly lease: LeaseName; readonly id: string; readonly seq: number }
  | { readonly _tag: "Revoke"; readonly lease: LeaseName; readonly id: string }
  | { readonly _tag: "Write"; readonly write: Write }
  | CoreCommand
  /** The fencer stops GROUP's processes (SIGTERM at termAt, SIGKILL at killAt, local monotonic) unless armed again later. */
  | { readonly _tag: "ArmFencer"; readonly group: string; readonly epoch: number; readonly termAt: number; readonly killAt: number }
  | { readonly _tag: "DisarmFencer"; readonly group: string }
  /** Answer a local tell's client. */
  | { readonly _tag: "Reply"; readonly request: number; readonly note: string }
  | { readonly _tag: "Log"; readonly what: NodeLogWhat; readonly group?: string; readonly message: string }

export type NodeLogWhat = "cluster" | "rejected" | "etcd-outage" | "etcd-resync" | "failover"

// ---------------------------------------------------------------------------------------------
// Events

export type WriteOutcome =
  | { readonly _tag: "Done"; readonly revision: number; readonly createRevision: number }
  /** A guard failed: the key was not ours (any more), or a claim/create found another value. */
  | { readonly _tag: "Lost" }
  | { readonly _tag: "Unavailable"; readonly reason: string }
  /** etcd or the store refused it for good (a bad name, an unknown group). */
  | { readonly _tag: "Refused"; readonly reason: string }

export type CoreOutcome = { readonly _tag: "Applied" } | { readonly _tag: "Rejected"; readonly reason: string }

/** What runs on this host when etcd has no config (or could not be read at start). */
export type Local = { readonly _tag: "File"; readonly parsed: Parsed; readonly sha256: string } | { readonly _tag: "None"; readonly reason: string }

export type NodeEvent =
  | { readonly _tag: "Tick"; readonly now: number }
  | { readonly _tag: "Snapshot"; readonly now: number; readonly snapshot: ClusterSnapshot }
  | { readonly _tag: "ReadFailed"; readonly now: number; readonly reason: string }
  | { readonly _tag: "Watched"; readonly now: number; readonly revision: number; readonly changes: readonly Change[] }
  | { readonly _tag: "WatchLost"; readonly now: number; readonly reason: string }
  | { readonly _tag: "Granted"; readonly now: number; readonly lease: LeaseName; readonly id: string; readonly ttlMs: number }
  | { readonly _tag: "GrantFailed"; readonly now: number; readonly lease: LeaseName; readonly reason: string }
  /** A keep-alive answer; `ttlMs` ≤ 0 means etcd no longer has the lease (its keys are gone). */
  | { readonly _tag: "KeptAlive"; readonly now: number; readonly lease: LeaseName; readonly id: string; readonly seq: number; readonly ttlMs: number }
  | { readonly _tag: "KeepAliveFailed"; readonly now: number; readonly lease: LeaseName; readonly id: string; readonly seq: number; readonly reason: string }
  | { readonly _tag: "Written"; readonly now: number; readonly write: Write; readonly outcome: WriteOutcome }
  | { readonly _tag: "CoreAnswered"; readonly now: number; readonly command: CoreCommand; readonly outcome: CoreOutcome; readonly core: CoreState }
  /** The core's state after a batch that changed it (exits, ticks, socket tells). */
  | { readonly _tag: "CoreChanged"; readonly now: number; readonly core: CoreState }
  /** A tell on the local socket that the core accepted: record it as this node's override. */
  | { readonly _tag: "LocalTell"; readonly now: number; readonly request: number; readonly group: string; readonly level: string }
  /** The local isinittab, read again (the shell reads it for a tell while etcd has no config). */
  | { readonly _tag: "LocalFile"; readonly now: number; readonly local: Local }
  /** The daemon stops (stopall, SIGTERM): hand held groups over cleanly, then give the leases back. */
  | { readonly _tag: "Stopping"; readonly now: number }

// ---------------------------------------------------------------------------------------------
// State

/** Which config runs: etcd's, or while etcd has none the local file, or nothing readable. */
export type Running = { readonly _tag: "Etcd"; readonly config: StoredConfig } | Local

/**
 * Where the session stands in an outage's log: `None` (no outage yet: the start-up read and its
 * watch; a failure begins one), `Begun` (the outage was just logged: the read that ends it is
 * logged as the resync), `Continued` (a watch lost again soon after its resync: the same outage,
 * already logged). A watch that runs steadily ends the outage: its loss begins a new one.
 */
export type OutageLog = "None" | "Begun" | "Continued"

/** The read-then-watch session with etcd. */
export type Sync =
  | { readonly _tag: "Reading"; readonly attempt: number; readonly reason: string | undefined; readonly outage: OutageLog }
  | { readonly _tag: "Backoff"; readonly attempt: number; readonly until: number; readonly reason: string; readonly outage: OutageLog }
  /** `attempt` counts watches lost soon after they began: the next resync backs off by it. */
  | { readonly _tag: "Watching"; readonly since: number; readonly attempt: number; readonly outage: OutageLog }

export interface View {
  /** The etcd revision this view is complete up to. */
  readonly revision: number
  readonly obeyed: Obeyed
  readonly failover: FailoverView
}

/** Today's convergence bookkeeping (docs/cluster.md "Converging, not replaying"). */
export interface Convergence {
  /** What was last told per group from etcd: level and revision. */
  readonly applied: ReadonlyMap<string, { readonly level: string; readonly revision: number }>
  /** The desired level each group converges to, as published. */
  readonly taken: ReadonlyMap<string, Effective>
  /** Groups whose desired level the core refused: told again when the config changes. */
  readonly refused: ReadonlySet<string>
  /** Local tells recorded as overrides whose watch echo must not be told again. */
  readonly echoes: ReadonlyMap<string, string>
}

/** A lease this node keeps alive with its own keep-alives, measured from when each was sent. */
export type Lease =
  | { readonly _tag: "None" }
  | { readonly _tag: "Granting"; readonly sentAt: number; readonly attempt: number }
  | { readonly _tag: "Backoff"; readonly attempt: number; readonly until: number }
  | {
      readonly _tag: "Live"
      readonly id: string
      readonly ttlMs: number
      /** Valid (our keys alive) until `confirmed + renewDeadlineMs`: that bound is all we rely on. */
      readonly renewDeadlineMs: number
      /** Send time of the latest keep-alive (or grant) etcd acknowledged. */
      readonly confirmed: number
      readonly nextKeepAlive: number
      readonly nextSeq: number
      /** Send times of keep-alives not yet answered, by sequence number. */
      readonly sent: ReadonlyMap<number, number>
    }

export type Publishing =
  | { readonly _tag: "Idle" }
  | { readonly _tag: "InFlight"; readonly seq: number; readonly text: string; readonly attempt: number }
  | { readonly _tag: "Backoff"; readonly attempt: number; readonly until: number; readonly reason: string }

export interface Presence {
  readonly lease: Lease
  readonly ttlMs: number
  /** The last status text etcd acknowledged (the latest state wins; one publish in flight). */
  readonly published: string | undefined
  readonly publishing: Publishing
  readonly seq: number
  /** The lease whose `seen` mark was written. */
  readonly seenOn: string | undefined
  /** Why the last publish failed; undefined once one goes through. */
  readonly lastError: string | undefined
  /** The status last computed, and what it was computed from (recomputed only when one of them changes). */
  readonly basis: StatusBasis | undefined
}

export interface StatusBasis {
  readonly core: CoreState
  readonly taken: Convergence["taken"]
  readonly running: Running
  readonly status: PublishedStatus
  readonly text: string
}

export interface PendingOverride {
  readonly level: string
  /** Local tells waiting for their reply. */
  readonly requests: readonly number[]
}

export type Writer =
  | { readonly _tag: "Idle" }
  | { readonly _tag: "Writing"; readonly group: string; readonly level: string }
  | { readonly _tag: "Backoff"; readonly attempt: number; readonly until: number }

export interface Overrides {
  readonly pending: ReadonlyMap<string, PendingOverride>
  readonly writer: Writer
  /** Requests not answered yet, with the time their "taking long" reply is due. */
  readonly replyBy: ReadonlyMap<number, number>
}

/** Why a holder stops and hands over. */
export type Handover =
  | { readonly _tag: "Move"; readonly to: string }
  | { readonly _tag: "Failed"; readonly reason: string }
  | { readonly _tag: "Leaving"; readonly reason: string }

/** One failover group's election, on this node. The epoch is our candidate key's create revision. */
export type Election =
  | { readonly _tag: "Idle" }
  | { readonly _tag: "Banned"; readonly until: number; readonly reason: string }
  | { readonly _tag: "Campaigning" }
  | { readonly _tag: "Queued"; readonly epoch: number }
  | { readonly _tag: "TakeoverWait"; readonly key: string; readonly epoch: number; readonly until: number; readonly reason: string }
  | { readonly _tag: "Proclaiming"; readonly key: string; readonly epoch: number; readonly reason: string }
  | { readonly _tag: "Holding"; readonly key: string; readonly epoch: number; readonly since: number }
  | { readonly _tag: "Releasing"; readonly key: string; readonly epoch: number; readonly why: Handover }
  | { readonly _tag: "Resigning"; readonly key: string; readonly epoch: number; readonly why: Handover }
  | { readonly _tag: "Withdrawing"; readonly key: string; readonly epoch: number }

export type Claim =
  | { readonly _tag: "Unclaimed" }
  | { readonly _tag: "Claiming" }
  | { readonly _tag: "Claimed" }
  /** Another daemon runs under this node name: this one does not campaign (docs/cluster.md, "Identity"). */
  | { readonly _tag: "Conflict"; readonly instance: string }

export interface FailoverNode {
  readonly lease: Lease
  /** The timing the lease was granted under: D and G of every hold on it. */
  readonly terms: FailoverTiming | undefined
  readonly claim: Claim
  /** Idle elections are not kept. */
  readonly elections: ReadonlyMap<string, Election>
  /** After etcd did not answer a failover write, the next waits until `until`. */
  readonly backoff: { readonly attempt: number; readonly until: number }
}

export type Connection = { readonly _tag: "Up"; readonly since: number } | { readonly _tag: "Down"; readonly since: number; readonly reason: string }

export interface NodeState {
  readonly node: string
  /** This daemon process (random per start): tells two daemons with one node name apart. */
  readonly instance: string
  readonly lifecycle: "running" | "stopping"
  readonly now: number
  readonly running: Running
  readonly sync: Sync
  readonly view: View | undefined
  readonly convergence: Convergence
  readonly overrides: Overrides
  readonly presence: Presence
  readonly failover: FailoverNode
  /** The core's state as last reported. */
  readonly core: CoreState
  readonly connection: Connection
  /** Wake-ups: times at which some state above has something due (stale ones are harmless). */
  readonly wakeups: Heap<{ readonly at: number }>
}
