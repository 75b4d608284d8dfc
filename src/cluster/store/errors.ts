/**
 * Why a cluster store operation failed, as tagged errors: callers switch on `_tag`, and every
 * error's `message` is a sentence for the operator.
 */
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import { nameProblem } from "../keys.ts"

/** etcd did not answer (down, unreachable, deadline passed) or refused the call. */
export class EtcdUnavailable extends Data.TaggedError("EtcdUnavailable")<{
  readonly operation: string
  readonly reason: string
}> {
  override get message(): string {
    return `etcd unavailable (${this.operation}): ${this.reason}`
  }
}

/**
 * etcd answered and said no: the credentials are wrong (authentication failed) or the etcd user's
 * roles do not allow the operation (permission denied). Unlike an outage, trying again cannot help
 * until an operator changes the credentials or the roles, so callers report it instead of retrying.
 */
export class EtcdRefused extends Data.TaggedError("EtcdRefused")<{
  readonly operation: string
  readonly reason: "PermissionDenied" | "AuthenticationFailed"
  /** The etcd user the client acts as, when it knows (a user name or its certificate's CN). */
  readonly user: string | undefined
}> {
  override get message(): string {
    const user = this.user === undefined ? "this client" : `etcd user "${this.user}"`
    return this.reason === "PermissionDenied"
      ? `etcd refused (${this.operation}): permission denied: the roles of ${user} do not allow it (see docs/cluster.md, "Roles")`
      : `etcd refused (${this.operation}): authentication failed for ${user}: wrong user or password (--etcd-user, --etcd-password-file)`
  }
}

/** Every way one etcd call can fail. */
export type EtcdFailure = EtcdUnavailable | EtcdRefused

/** `config push` of an isinittab with errors: one `line N: message` per error. */
export class ConfigRejected extends Data.TaggedError("ConfigRejected")<{ readonly problems: readonly string[] }> {
  override get message(): string {
    return `config rejected:\n${this.problems.join("\n")}`
  }
}

export class InvalidName extends Data.TaggedError("InvalidName")<{ readonly reason: string }> {
  override get message(): string {
    return this.reason
  }
}

/** A desired level for a group that the stored config does not define. */
export class UnknownGroup extends Data.TaggedError("UnknownGroup")<{ readonly group: string; readonly configSeq: number }> {
  override get message(): string {
    return `unknown group "${this.group}": config #${this.configSeq} in etcd does not define it`
  }
}

/** A desired level for a failover group, which follows its election, not tells. */
export class FailoverGroupTold extends Data.TaggedError("FailoverGroupTold")<{ readonly group: string }> {
  override get message(): string {
    return `${this.group} is a failover group: it runs where its lease is held, not where it is told; move it with isinit --etcd URLS move ${this.group} NODE`
  }
}

/** A transaction kept losing races with other writers. */
export class Contended extends Data.TaggedError("Contended")<{ readonly operation: string }> {
  override get message(): string {
    return `${this.operation}: too many concurrent writers, try again`
  }
}

/** `forget` of a node that is live: it would vanish from both lists when it stops. */
export class NodeLive extends Data.TaggedError("NodeLive")<{ readonly node: string }> {
  override get message(): string {
    return `${this.node} is live: stop it first (its daemon, on its host), then forget it`
  }
}

/** `forget` of a node name that never joined this cluster (a typo, or another cluster). */
export class UnknownNode extends Data.TaggedError("UnknownNode")<{ readonly node: string; readonly cluster: string }> {
  override get message(): string {
    return `no node ${this.node} was ever seen in cluster ${this.cluster}`
  }
}

/** `name`, or InvalidName saying why it cannot be a group, level, node or cluster name. */
export const validName = (what: string, name: string): Effect.Effect<string, InvalidName> => {
  const problem = nameProblem(what, name)
  return problem === undefined ? Effect.succeed(name) : Effect.fail(new InvalidName({ reason: problem }))
}
