/**
 * What one etcd key-value pair means to the store: a watch event for the keys daemons obey, or an
 * accepted value of the kind a prefix read expects. Bad keys and values never fail an operation:
 * they become rejections with a reason, and are logged.
 */
import type { IKeyValue } from "etcd3"
import type * as E from "fp-ts/lib/Either.js"
import type { LogService } from "../../log.ts"
import type { ConfigCheck } from "../codecs.ts"
import { decodeActive, decodeConfig, decodeDesired, decodeInstance, decodeMove } from "../codecs.ts"
import type { Rejection, WatchEvent } from "../desired.ts"
import type { ClusterKey } from "../keys.ts"
import { parseKey } from "../keys.ts"
import type { Change, ObeyedChange } from "../node/types.ts"
import { revisionOf } from "./client.ts"

type KeyOf<K extends ClusterKey["_tag"]> = Extract<ClusterKey, { readonly _tag: K }>

/** A value read under a prefix that decoded and passed its check. */
interface Accepted<K extends ClusterKey["_tag"], A> {
  readonly key: KeyOf<K>
  readonly value: A
  readonly revision: number
}

export interface KeyValues {
  /** The watch event a put or delete of `kv` means; undefined for keys outside the obeyed set. */
  readonly classify: (kv: IKeyValue, change: "Put" | "Delete") => WatchEvent | undefined
  /**
   * What a put or delete of `kv` in a daemon's watched range means to the node reducer: the
   * obeyed changes of `classify`, and the failover keys; undefined for keys it does not follow (bans).
   */
  readonly change: (kv: IKeyValue, change: "Put" | "Delete") => Change | undefined
  /**
   * One pair of a prefix read: its parsed key if it is of `kind`, and its value if it decodes and
   * `check` accepts it (undefined, or why not); otherwise nothing, the refusal logged into `rejections`.
   */
  readonly accept: <K extends ClusterKey["_tag"], A>(
    kv: IKeyValue,
    kind: K,
    decode: (text: string) => E.Either<string, A>,
    rejections: Rejection[],
    check?: (key: KeyOf<K>, value: A) => string | undefined,
  ) => Accepted<K, A> | undefined
}

/** A failover key's change; a value that does not decode (or names another node) is rejected. */
const failoverChange = (kv: IKeyValue, parsed: ClusterKey, change: "Put" | "Delete", reject: (rejection: Rejection) => Rejection): Change | undefined => {
  const key = kv.key.toString("utf8")
  const revision = revisionOf(kv.mod_revision)
  const text = kv.value.toString("utf8")
  const rejected = (reason: string): Change => ({ _tag: "Rejected", rejection: reject({ key, revision, reason }) })
  switch (parsed._tag) {
    case "Move": {
      if (change === "Delete") return { _tag: "MoveGone", group: parsed.group }
      const move = decodeMove(text)
      return move._tag === "Left" ? rejected(move.left) : { _tag: "MoveSet", group: parsed.group, move: { node: move.right.node, modRevision: revision } }
    }
    case "Claim": {
      if (change === "Delete") return { _tag: "ClaimGone", node: parsed.node }
      const claim = decodeInstance(text)
      return claim._tag === "Left" ? rejected(claim.left) : { _tag: "ClaimSet", node: parsed.node, instance: claim.right.instance }
    }
    case "Candidate": {
      if (change === "Delete") return { _tag: "CandidateGone", group: parsed.group, key }
      const value = decodeInstance(text)
      if (value._tag === "Left") return rejected(value.left)
      const candidate = { key, createRevision: revisionOf(kv.create_revision), node: parsed.node, instance: value.right.instance }
      return { _tag: "CandidateSet", group: parsed.group, candidate }
    }
    case "Active": {
      if (change === "Delete") return { _tag: "ActiveGone", group: parsed.group, node: parsed.node }
      const value = decodeActive(text)
      if (value._tag === "Left") return rejected(value.left)
      if (value.right.node !== parsed.node) return rejected(`a proclamation of node "${value.right.node}" under ${parsed.node}'s keys`)
      const { at: _at, ...active } = value.right
      return { _tag: "ActiveSet", group: parsed.group, active, modRevision: revision }
    }
    default:
      return undefined
  }
}

/** `checkConfig`: what a config must pass beyond its form to be obeyed (signatures, when required). */
export const keyValues = (cluster: string, log: LogService | undefined, checkConfig?: ConfigCheck): KeyValues => {
  const reject = (rejection: Rejection): Rejection => {
    log?.line({ what: "etcd-rejected", message: `${rejection.key} (revision ${rejection.revision}): ${rejection.reason}` })
    return rejection
  }

  const classify = (kv: IKeyValue, change: "Put" | "Delete"): ObeyedChange | undefined => {
    const key = kv.key.toString("utf8")
    const revision = revisionOf(kv.mod_revision)
    const rejected = (reason: string): ObeyedChange => ({ _tag: "Rejected", rejection: reject({ key, revision, reason }) })
    const parsed = parseKey(cluster, key)
    switch (parsed._tag) {
      case "Desired": {
        if (change === "Delete") return { _tag: "DesiredCleared", target: parsed.target, group: parsed.group, revision }
        const decoded = decodeDesired(kv.value.toString("utf8"))
        if (decoded._tag === "Left") return rejected(decoded.left)
        const { level, by, at, etcdUser } = decoded.right
        return { _tag: "DesiredSet", target: parsed.target, group: parsed.group, desired: { level, revision, by, at, etcdUser } }
      }
      case "Config": {
        if (change === "Delete") return { _tag: "ConfigCleared", revision }
        const decoded = decodeConfig(kv.value.toString("utf8"), checkConfig)
        return decoded._tag === "Left" ? rejected(decoded.left) : { _tag: "ConfigSet", config: { ...decoded.right, revision } }
      }
      case "Unknown":
        return change === "Delete" ? undefined : rejected(`unknown key: ${parsed.reason}`)
      case "ConfigHistory":
      case "NodeStatus":
      case "Seen":
      case "Audit":
      case "Rollout":
      case "RolloutDriver":
      case "Move":
      case "Claim":
      case "Candidate":
      case "Active":
      case "Ban":
        return undefined
    }
  }

  const changeOf: KeyValues["change"] = (kv, change) => {
    const parsed = parseKey(cluster, kv.key.toString("utf8"))
    return parsed._tag === "Move" || parsed._tag === "Claim" || parsed._tag === "Candidate" || parsed._tag === "Active" || parsed._tag === "Ban"
      ? failoverChange(kv, parsed, change, reject)
      : classify(kv, change)
  }

  const accept: KeyValues["accept"] = (kv, kind, decode, rejections, check = () => undefined) => {
    const key = kv.key.toString("utf8")
    const revision = revisionOf(kv.mod_revision)
    const refuse = (reason: string): undefined => void rejections.push(reject({ key, revision, reason }))
    const parsed = parseKey(cluster, key)
    const isKind = (k: ClusterKey): k is KeyOf<typeof kind> => k._tag === kind
    if (!isKind(parsed)) return refuse(`unknown key: ${parsed._tag === "Unknown" ? parsed.reason : parsed._tag}`)
    const decoded = decode(kv.value.toString("utf8"))
    if (decoded._tag === "Left") return refuse(decoded.left)
    const problem = check(parsed, decoded.right)
    return problem === undefined ? { key: parsed, value: decoded.right, revision } : refuse(problem)
  }

  return { classify, change: changeOf, accept }
}
