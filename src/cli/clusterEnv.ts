/**
 * What every `isinit --etcd` command runs with (cluster.ts, and the commands in modules of their
 * own such as failover.ts): the open store, who the operator is, and one deadline for a command's
 * etcd calls. A module of its own so that those command modules and cluster.ts, which dispatches
 * to them, do not import each other.
 */
import { hostname, userInfo } from "node:os"
import * as Effect from "effect/Effect"
import type { ClusterStore } from "../cluster/store.ts"
import { Deadline } from "../cluster/store/client.ts"
import type { Io } from "./io.ts"

export interface Env {
  readonly io: Io
  readonly store: ClusterStore
  readonly hosts: string
}

/** Who runs the command, for the audit trail: `user@host`. */
export const whoami = (): string => {
  try {
    return `${userInfo().username}@${hostname()}`
  } catch {
    return hostname()
  }
}

/** How long a command's etcd calls may take, together (with --wait: each poll's calls). */
export const deadlineMs = 5_000

/** Runs `effect` with one deadline, `deadlineMs` from now, shared by all its etcd calls. */
export const withinDeadline = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.suspend(() => Effect.provideService(effect, Deadline, Date.now() + deadlineMs))
