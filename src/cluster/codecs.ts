/**
 * The JSON values of cluster mode's etcd keys (see keys.ts), decoded with io-ts. Anything can be
 * written to etcd by hand, so decoding is total: a bad value becomes a reason in words, never a
 * throw, and the caller rejects the key with that reason.
 *
 * A stored config is accepted only if its text matches its sha256 and parses without errors with
 * the same parser `isinit check` uses: a daemon never applies a config that `config push` would
 * have refused, whoever wrote it.
 */
import { createHash } from "node:crypto"
import * as E from "fp-ts/lib/Either.js"
import * as t from "io-ts"
import { decodeJson } from "../codec/json.ts"
import { statusReportCodec } from "../codec/protocol.ts"
import type { Parsed } from "../core/config.ts"
import { hasErrors } from "../core/config.ts"
import { parseInittab } from "../core/inittab.ts"
import type { StatusReport } from "../core/report.ts"
import { checkedString } from "../codec/names.ts"
import { nameProblem } from "./keys.ts"

const nameCodec = (what: string): t.Type<string, string, unknown> => checkedString(what, nameProblem)

const positiveInt = (what: string): t.Type<number, number, unknown> =>
  new t.Type<number, number, unknown>(
    what,
    (u): u is number => typeof u === "number" && Number.isSafeInteger(u) && u > 0,
    (u, c) =>
      typeof u === "number" && Number.isSafeInteger(u) && u > 0 ? t.success(u) : t.failure(u, c, `${what} must be a whole number above 0`),
    t.identity,
  )

const isoTime = new t.Type<string, string, unknown>(
  "time",
  (u): u is string => typeof u === "string" && !Number.isNaN(Date.parse(u)),
  (u, c) => (typeof u === "string" && !Number.isNaN(Date.parse(u)) ? t.success(u) : t.failure(u, c, "time must be an ISO 8601 date")),
  t.identity,
)

const sha256Hex = new t.Type<string, string, unknown>(
  "sha256",
  (u): u is string => typeof u === "string" && /^[0-9a-f]{64}$/.test(u),
  (u, c) => (typeof u === "string" && /^[0-9a-f]{64}$/.test(u) ? t.success(u) : t.failure(u, c, "sha256 must be 64 lowercase hex digits")),
  t.identity,
)

// ---------------------------------------------------------------------------------------------
// desired/<group> and desired-node/<node>/<group>

/**
 * Audit fields of a value a client writes: `by` (user@host, or the daemon writing a local tell),
 * `at` (its clock), and `etcdUser`, whom etcd authenticated the writer as (user or certificate CN).
 * The client writes them: they are as trustworthy as the credentials allowed to write the key.
 */
const auditFields = { by: t.string, at: isoTime, etcdUser: t.string }

const desiredValueCodec = t.intersection([t.type({ level: nameCodec("level") }), t.partial(auditFields)])
type DesiredValue = t.TypeOf<typeof desiredValueCodec>

// ---------------------------------------------------------------------------------------------
// config and history/<seq>

const configValueCodec = t.intersection([
  t.type({ text: t.string, sha256: sha256Hex, seq: positiveInt("seq"), pushedAt: isoTime }),
  t.partial({ by: t.string, etcdUser: t.string, signature: t.type({ keyId: t.string, signature: t.string }) }),
])
export type ConfigValue = t.TypeOf<typeof configValueCodec>

/** A config as daemons use it: the stored value, and the parse that proved it sound. */
export interface ValidConfig {
  readonly value: ConfigValue
  readonly parsed: Parsed
}

export const sha256Of = (text: string): string => createHash("sha256").update(text, "utf8").digest("hex")

// ---------------------------------------------------------------------------------------------
// nodes/<node>

const groupDesiredCodec = t.type({
  level: t.string,
  /** etcd revision of the desired key the node is converging to. */
  revision: t.number,
  source: t.keyof({ cluster: null, node: null }),
})

const nullable = <C extends t.Mixed>(codec: C): t.UnionC<[C, t.NullC]> => t.union([codec, t.null])

const nodeStatusCodec = t.type({
  node: nameCodec("node"),
  /** When the node published this (its own clock). */
  at: isoTime,
  /**
   * The config the node runs: its hash (etcd's config, or its local file while etcd has none;
   * null if it runs nothing) and its push number (null unless it comes from etcd).
   */
  configSha256: nullable(sha256Hex),
  configSeq: nullable(positiveInt("configSeq")),
  /** Per group, the level the node is converging to and where that level came from. */
  desired: t.record(t.string, groupDesiredCodec),
  /** What runs: the same report `isinit status --json` shows for one host. */
  report: statusReportCodec,
})
export type NodeStatus = t.TypeOf<typeof nodeStatusCodec>

// The cluster status must carry the core's report unchanged: this stops compiling if they drift.
const _reportFits = (r: NodeStatus["report"]): StatusReport => r
export type _CodecChecks = typeof _reportFits

// ---------------------------------------------------------------------------------------------
// seen/<node>

const seenValueCodec = t.type({ node: nameCodec("node"), joinedAt: isoTime })
export type SeenValue = t.TypeOf<typeof seenValueCodec>

// ---------------------------------------------------------------------------------------------
// audit/<time>-<random>

const auditValueCodec = t.intersection([
  t.type({
    /** What kind of write: tell, clear, config push, forget (and, with failover, move). */
    op: t.string,
    /** The write in words, e.g. `web=2 on n1`. */
    what: t.string,
    by: t.string,
    at: isoTime,
  }),
  t.partial({ etcdUser: t.string }),
])
export type AuditValue = t.TypeOf<typeof auditValueCodec>

// ---------------------------------------------------------------------------------------------
// Failover: failover/<group>/move (operators) and failover-node/<node>/... (each node its own)

const nonNegativeInt = (what: string): t.Type<number, number, unknown> =>
  new t.Type<number, number, unknown>(
    what,
    (u): u is number => typeof u === "number" && Number.isSafeInteger(u) && u >= 0,
    (u, c) =>
      typeof u === "number" && Number.isSafeInteger(u) && u >= 0 ? t.success(u) : t.failure(u, c, `${what} must be a whole number, at least 0`),
    t.identity,
  )

/** `failover-node/N/claim` and `failover-node/N/cand/G`: which daemon (random per start) wrote it. */
const instanceValueCodec = t.intersection([t.type({ instance: t.string }), t.partial({ node: nameCodec("node") })])
export type InstanceValue = t.TypeOf<typeof instanceValueCodec>

/** `failover-node/N/active/G`: a holder's proclamation (node/types.ts `Active`), and when. */
const activeValueCodec = t.intersection([
  t.type({
    node: nameCodec("node"),
    epoch: positiveInt("epoch"),
    state: t.keyof({ running: null, released: null }),
    ttlMs: positiveInt("ttlMs"),
    renewDeadlineMs: positiveInt("renewDeadlineMs"),
    killGraceMs: nonNegativeInt("killGraceMs"),
    reason: t.string,
  }),
  t.partial({ at: isoTime }),
])
export type ActiveValue = t.TypeOf<typeof activeValueCodec>

/** `failover/G/move`: where an operator sends the group (on a lease of its own). */
const moveValueCodec = t.intersection([t.type({ node: nameCodec("node") }), t.partial(auditFields)])
export type MoveValue = t.TypeOf<typeof moveValueCodec>

/** `failover-node/N/ban/G`: why N sits out G's election (on a lease as long as the ban). */
const banValueCodec = t.intersection([t.type({ reason: t.string }), t.partial({ at: isoTime })])
export type BanValue = t.TypeOf<typeof banValueCodec>

export const decodeInstance = (text: string): E.Either<string, InstanceValue> => decodeJson(instanceValueCodec, text)
export const decodeActive = (text: string): E.Either<string, ActiveValue> => decodeJson(activeValueCodec, text)
export const decodeMove = (text: string): E.Either<string, MoveValue> => decodeJson(moveValueCodec, text)
export const decodeBan = (text: string): E.Either<string, BanValue> => decodeJson(banValueCodec, text)

// ---------------------------------------------------------------------------------------------
// Decoding

export const decodeDesired = (text: string): E.Either<string, DesiredValue> => decodeJson(desiredValueCodec, text)

export const decodeNodeStatus = (text: string): E.Either<string, NodeStatus> => decodeJson(nodeStatusCodec, text)

/** A stored config value as written (history entries): no hash or parse check. */
export const decodeConfigValue = (text: string): E.Either<string, ConfigValue> => decodeJson(configValueCodec, text)

export const decodeSeen = (text: string): E.Either<string, SeenValue> => decodeJson(seenValueCodec, text)

export const decodeAudit = (text: string): E.Either<string, AuditValue> => decodeJson(auditValueCodec, text)

/** Errors of a parse, one line each, `line N: message` (the line-numbered form `check` prints). */
export const describeProblems = (parsed: Parsed): readonly string[] =>
  parsed.problems.filter((p) => p.severity === "error").map((p) => `line ${p.line}: ${p.message}`)

/** Why a node refuses a stored config beyond its form (signing.ts: an untrusted signature). */
export type ConfigCheck = (value: ConfigValue) => string | undefined

/**
 * A config value that is well-formed, matches its hash, passes `check` (a node that requires
 * signed configs checks the signature here, so a refused config is refused like a broken one),
 * and parses without errors.
 */
export const decodeConfig = (text: string, check: ConfigCheck = () => undefined): E.Either<string, ValidConfig> => {
  const decoded = decodeJson(configValueCodec, text)
  if (E.isLeft(decoded)) return decoded
  const value = decoded.right
  if (sha256Of(value.text) !== value.sha256) return E.left("sha256 does not match the text")
  const refused = check(value)
  if (refused !== undefined) return E.left(refused)
  const parsed = parseInittab(value.text)
  if (hasErrors(parsed)) return E.left(`the isinittab has errors: ${describeProblems(parsed).join("; ")}`)
  return E.right({ value, parsed })
}

export const encodeValue = (
  value: DesiredValue | ConfigValue | NodeStatus | SeenValue | AuditValue | InstanceValue | ActiveValue | MoveValue | BanValue,
): string => JSON.stringify(value)
