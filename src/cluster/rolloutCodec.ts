/**
 * The JSON values of `rollout/<group>` (a rolling tell's plan and progress, rollout.ts) and
 * `rollout-driver/<group>` (who drives it), decoded with io-ts. As for every key (codecs.ts),
 * decoding is total: a value written by hand that does not fit is refused with a reason.
 *
 * The record is the domain type written as it is (times in epoch ms, steps by tag), so a reader
 * with `etcdctl get` sees what `isinit --etcd status --json` shows.
 */
import * as E from "fp-ts/lib/Either.js"
import * as t from "io-ts"
import { checkedString } from "../codec/names.ts"
import { decodeJson } from "../codec/json.ts"
import { nameProblem } from "./keys.ts"
import type { NodeStep, Phase, Rollout, RolloutNode } from "./rollout.ts"
import { maxBatchSize } from "./rollout.ts"

const name = (what: string): t.Type<string, string, unknown> => checkedString(what, nameProblem)

const count = (what: string, min: number, max: number): t.Type<number, number, unknown> =>
  new t.Type<number, number, unknown>(
    what,
    (u): u is number => typeof u === "number" && Number.isSafeInteger(u) && u >= min && u <= max,
    (u, c) =>
      typeof u === "number" && Number.isSafeInteger(u) && u >= min && u <= max ? t.success(u) : t.failure(u, c, `${what} must be a whole number from ${min} to ${max}`),
    t.identity,
  )

const ms = count("time", 0, Number.MAX_SAFE_INTEGER)
const revision = count("revision", 1, Number.MAX_SAFE_INTEGER)

const stepCodec = t.union([
  t.type({ _tag: t.literal("Pending") }),
  t.intersection([t.type({ _tag: t.literal("Moving") }), t.partial({ revision })]),
  t.type({ _tag: t.literal("Done"), revision }),
  t.type({ _tag: t.literal("Failed"), revision, reason: t.string }),
  t.type({ _tag: t.literal("Skipped"), reason: t.string }),
])

const phaseCodec = t.union([
  t.intersection([t.type({ _tag: t.literal("Running"), since: ms }), t.partial({ pauseUntil: ms })]),
  t.type({ _tag: t.literal("Finishing"), clearing: t.array(name("node")) }),
  t.type({ _tag: t.literal("Done"), at: ms }),
  t.type({ _tag: t.literal("Stopped"), at: ms, reason: t.string }),
  t.type({ _tag: t.literal("Aborted"), at: ms, by: t.string }),
])

const rolloutCodec = t.type({
  group: name("group"),
  level: name("level"),
  batchSize: count("batchSize", 1, maxBatchSize),
  pauseMs: ms,
  maxFailures: count("maxFailures", 1, Number.MAX_SAFE_INTEGER),
  batchTimeoutMs: count("batchTimeoutMs", 1, Number.MAX_SAFE_INTEGER),
  clusterRevision: count("clusterRevision", 0, Number.MAX_SAFE_INTEGER),
  started: t.type({ by: t.string, at: ms }),
  batches: count("batches", 0, Number.MAX_SAFE_INTEGER),
  nodes: t.array(t.intersection([t.type({ node: name("node"), step: stepCodec }), t.partial({ adopted: revision })])),
  phase: phaseCodec,
})

const driverCodec = t.type({ by: t.string, since: ms })
export type DriverValue = t.TypeOf<typeof driverCodec>

/** io-ts's optional fields as the domain's explicit `undefined`s. */
const stepOf = (s: t.TypeOf<typeof stepCodec>): NodeStep => (s._tag === "Moving" ? { _tag: "Moving", revision: s.revision } : s)

const phaseOf = (p: t.TypeOf<typeof phaseCodec>): Phase => (p._tag === "Running" ? { _tag: "Running", since: p.since, pauseUntil: p.pauseUntil } : p)

/** A stored rollout, `group` being the group its key names (a record moved to another key is refused). */
export const decodeRollout = (text: string, group: string): E.Either<string, Rollout> => {
  const decoded = decodeJson(rolloutCodec, text)
  if (E.isLeft(decoded)) return decoded
  const v = decoded.right
  if (v.group !== group) return E.left(`a rollout of group "${v.group}" under the key of "${group}"`)
  const nodes: RolloutNode[] = v.nodes.map((n) => ({ node: n.node, step: stepOf(n.step), adopted: n.adopted }))
  if (new Set(nodes.map((n) => n.node)).size !== nodes.length) return E.left("a node is listed twice")
  return E.right({ ...v, nodes, phase: phaseOf(v.phase) })
}

export const decodeDriver = (text: string): E.Either<string, DriverValue> => decodeJson(driverCodec, text)

export const encodeRollout = (r: Rollout): string => JSON.stringify(r)

export const encodeDriver = (d: DriverValue): string => JSON.stringify(d)
