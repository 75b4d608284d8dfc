/**
 * `isinit --etcd` for failover groups (docs/cluster.md "Failover groups"): `move GROUP NODE`, and
 * the failover part of `status` (text and `--json`).
 *
 * A move writes `failover/GROUP/move` on a lease of its own, then waits until NODE has proclaimed
 * itself the holder after the move (the holder stopped the group, confirmed its processes gone,
 * and resigned; NODE started without the takeover delay), and deletes the preference. If the move
 * cannot complete, its lease expires and nothing pins the group.
 */
import * as Effect from "effect/Effect"
import { eligible } from "../core/failover.ts"
import type { FailoverRow } from "../cluster/view.ts"
import { failoverRows } from "../cluster/view.ts"
import type { EtcdFailure, InvalidName } from "../cluster/store.ts"
import type { Env } from "./clusterEnv.ts"
import { whoami, withinDeadline } from "./clusterEnv.ts"
import { table } from "./format.ts"

/** How long a move preference lives: the time the holder has to hand over. */
export const moveLeaseMs = 60_000

const seconds = (ms: number | null): string => (ms === null ? "-" : `${(ms / 1000).toFixed(1)} s`)

export const failoverJson = (rows: readonly FailoverRow[]) =>
  rows.map((r) => ({ group: r.group, level: r.level ?? null, nodes: r.nodes, holder: r.holder, candidates: r.candidates, bans: r.bans, move: r.move, last: r.last }))

/** The failover section of `status`: one line per group, then bans and moves under way. */
export const failoverText = (rows: readonly FailoverRow[]): string => {
  if (rows.length === 0) return ""
  const lines = rows.map((r) => [
    r.group,
    r.holder?.node ?? "none",
    r.holder === null ? "-" : String(r.holder.epoch),
    r.holder?.since ?? "-",
    seconds(r.holder?.leaseLeftMs ?? null),
    r.candidates.length === 0 ? "-" : r.candidates.map((c) => c.node).join(", "),
    r.last === null ? "never ran" : `${r.last.node}: ${r.last.reason}${r.last.state === "released" ? " (released)" : ""}`,
  ])
  const extra = rows.flatMap((r) => [
    ...r.bans.map((b) => `  ${r.group}: ${b.node} banned for ${seconds(b.leftMs)} more: ${b.reason}\n`),
    ...(r.move === null ? [] : [`  ${r.group}: moving to ${r.move.node}${r.move.by === null ? "" : ` (by ${r.move.by})`}; the preference expires in ${seconds(r.move.leftMs)}\n`]),
  ])
  return `failover:\n${table(["GROUP", "HOLDER", "EPOCH", "SINCE", "LEASE LEFT", "QUEUE", "LAST CHANGE"], lines, "  ")}${extra.join("")}`
}

type MoveCommand = { readonly group: string; readonly node: string; readonly timeoutMs: number }

/** Why a move must not be written, or undefined. */
const moveRefusal = (env: Env, command: MoveCommand) =>
  Effect.gen(function* () {
    const { group, node } = command
    const [view, nodes, read] = yield* withinDeadline(Effect.all([env.store.readDesired(), env.store.nodes(), env.store.readFailover()]))
    const declared = view.obeyed.config?.parsed.config.failover.groups.get(group)
    if (declared === undefined) return { refused: `${group} is not a failover group in the cluster's config` }
    if (!eligible(declared, node)) return { refused: `${node} is not eligible for ${group} (${declared.nodes.join(", ")})` }
    if (!nodes.live.some((n) => n.node === node)) return { refused: `${node} is not live (isinit --etcd ... status lists the live nodes)` }
    const ban = (read.bans.get(group) ?? []).find((b) => b.node === node)
    if (ban !== undefined) return { refused: `${node} is banned from ${group} for ${seconds(ban.leftMs ?? null)} more: ${ban.reason}` }
    const row = failoverRows(view.obeyed.config?.parsed.config, read).find((r) => r.group === group)
    return row?.holder?.node === node ? { already: row.holder.epoch } : { level: declared.level }
  })

type MoveEnd = { readonly _tag: "Moved"; readonly epoch: number } | { readonly _tag: "GaveUp"; readonly reason: string } | { readonly _tag: "TimedOut" }

/** Polls until NODE proclaimed itself holder after the move (or took the group and gave it up again), or the timeout. */
const awaitMove = (env: Env, command: MoveCommand, level: string, written: number): Effect.Effect<MoveEnd, EtcdFailure> =>
  Effect.gen(function* () {
    const deadline = Date.now() + command.timeoutMs
    for (;;) {
      const [read, nodes] = yield* withinDeadline(Effect.all([env.store.readFailover(), env.store.nodes()]))
      const mine = (read.proclamations.get(command.group) ?? []).find((p) => p.node === command.node)
      const after = mine !== undefined && mine.modRevision > written ? mine : undefined
      const standing = (read.candidates.get(command.group) ?? []).some((c) => c.node === command.node && c.createRevision === after?.epoch)
      // Moved once NODE holds it and runs it (its tests passed): its published status says `run`.
      const there = nodes.live.find((n) => n.node === command.node)?.report.groups.find((g) => g.group === command.group)
      if (after?.state === "running" && standing && there?.level === level && there.state === "run") return { _tag: "Moved", epoch: after.epoch }
      if (after?.state === "released") return { _tag: "GaveUp", reason: after.reason }
      if (Date.now() >= deadline) return { _tag: "TimedOut" }
      yield* Effect.sleep(Math.min(100, Math.max(1, deadline - Date.now())))
    }
  })

export const moveCommand = (env: Env, command: MoveCommand): Effect.Effect<number, EtcdFailure | InvalidName> =>
  Effect.gen(function* () {
    const { io, store } = env
    const { group, node } = command
    const check = yield* moveRefusal(env, command)
    if ("refused" in check) {
      io.err(`isinit: move ${group} ${node} refused: ${check.refused}\n`)
      return 1
    }
    if ("already" in check) {
      io.out(`${group} already runs on ${node} (epoch ${check.already})\n`)
      return 0
    }
    const started = Date.now()
    const { revision } = yield* withinDeadline(store.moveGroup(group, node, moveLeaseMs, whoami()))
    io.err(`isinit: moving ${group} to ${node} (revision ${revision}; the preference expires in ${moveLeaseMs / 1000} s)\n`)
    const end = yield* awaitMove(env, command, check.level, revision)
    if (end._tag === "TimedOut") {
      io.err(`isinit: ${group} does not run on ${node} after ${command.timeoutMs / 1000} s; see isinit --etcd ... status ${group} (the preference expires by itself)\n`)
      return 1
    }
    yield* Effect.ignore(withinDeadline(store.clearMove(group, revision)))
    if (end._tag === "GaveUp") {
      io.err(`isinit: ${node} took ${group} and gave it up again: ${end.reason}; see isinit --etcd ... status ${group}\n`)
      return 1
    }
    io.out(`${group} moved to ${node} (epoch ${end.epoch}) in ${Date.now() - started} ms\n`)
    return 0
  })
