/**
 * `isinit --etcd URLS ...`: the client side of cluster mode. It talks to etcd only, never to a
 * daemon: it writes desired levels and configs, and reads what the nodes publish (see
 * docs/cluster.md and src/cluster/keys.ts for the layout and the precedence of overrides).
 *
 * Exit codes: 0 ok, 1 rejected, failed, timed out or etcd unavailable, 2 usage.
 */
import type { KeyObject } from "node:crypto"
import { readFileSync } from "node:fs"
import { parseArgs } from "node:util"
import * as Effect from "effect/Effect"
import * as E from "fp-ts/lib/Either.js"
import type { EtcdAccess, Settings } from "../cluster/connection.ts"
import { configFileEnv, flagSettings, loadAccess, mergeSettings, quietTlsDeprecation, readSettingsFile } from "../cluster/connection.ts"
import type { NodeStatus, SeenValue } from "../cluster/codecs.ts"
import type { Obeyed, StoredConfig } from "../cluster/desired.ts"
import type {
  ConfigRead,
  ConfigRejected,
  Contended,
  EtcdFailure,
  FailoverGroupTold,
  InvalidName,
  NodeLive,
  Nodes,
  UnknownGroup,
  UnknownNode,
} from "../cluster/store.ts"
import { keyIdOf, loadSigningKey, signConfig } from "../cluster/signing.ts"
import type { AuditEntry, Signer } from "../cluster/store.ts"
import { makeClusterStore } from "../cluster/store.ts"
import type { Row, Superseding, TellProgress } from "../cluster/view.ts"
import { clusterRows, failoverRows, nodeTellProgress, tellProgress } from "../cluster/view.ts"
import type { Parsed } from "../core/config.ts"
import { hasErrors } from "../core/config.ts"
import { checkSummary, formatProblem, parseInittab } from "../core/inittab.ts"
import { describeRemoval, exceedsGuard, guardShare, removalOf, runnableTags } from "../core/reread.ts"
import { UsageError, expectCount, onlyFlags, timeoutOptionMs, waitTimeoutMs } from "./args.ts"
import type { Env } from "./clusterEnv.ts"
import { etcdFlags, passwordFlagRefusal } from "./etcdFlags.ts"
import { deadlineMs, whoami, withinDeadline } from "./clusterEnv.ts"
import { failoverJson, failoverText, moveCommand, moveLeaseMs } from "./failover.ts"
import { table } from "./format.ts"
import type { Io } from "./io.ts"
import type { RolloutCommand } from "./rollout.ts"
import { noRollingFlags, rollingFlags, rollingTellOf, rolloutCommandOf, rolloutsJson, rolloutsText, runRolloutCommand } from "./rollout.ts"

const clusterUsage = `Usage (cluster mode, talking to etcd):
  isinit --etcd URLS [--cluster NAME] tell GROUP LEVEL [--node NAME ...] [--wait [--timeout S]]
  isinit --etcd URLS [--cluster NAME] tell GROUP LEVEL --rolling N [--pause S] [--max-failures K] [--order A,B,...] [--timeout S] [--wait]
  isinit --etcd URLS [--cluster NAME] rollout resume GROUP [--wait] | rollout abort GROUP
  isinit --etcd URLS [--cluster NAME] clear GROUP [--node NAME ...]
  isinit --etcd URLS [--cluster NAME] status [GROUP] [--json]
  isinit --etcd URLS [--cluster NAME] config push FILE [--sign KEY] [--force] | config show | config history [--json]
  isinit --etcd URLS [--cluster NAME] forget NODE
  isinit --etcd URLS [--cluster NAME] move GROUP NODE [--timeout S]

Commands:
  tell      set GROUP's desired level on every node, or with --node only on those nodes (an
            override that wins over the cluster-wide level). --wait returns when every live node
            that runs the group reports LEVEL as run; exit 1 listing the nodes that failed or did
            not answer within --timeout S (default 600 s), or at once when a later tell of the
            group supersedes this one.
            --rolling N: a rollout, N nodes at a time (node-name order, or --order first):
            each batch gets an override; the next starts once every node of this one runs
            LEVEL (or failed, or did not within --timeout S, default 600); --pause S between
            batches; K failed nodes (--max-failures, default 1) stop it, the rest untouched.
            A node not live when its turn comes is skipped and reported. At the end LEVEL is
            set cluster-wide and the overrides cleared. This client drives it to its end; the
            record is in etcd, so if the client dies, rollout resume goes on. Exit 0 when it
            finished, 1 when it stopped; --wait: 0 only when every node got there.
  rollout   resume: go on with GROUP's rollout (after a failure: the failed nodes first; a
            node that got there is never touched again), or follow the client driving it.
            abort: the rollout writes nothing more (moved nodes keep their overrides).
  clear     remove GROUP's cluster-wide level (nodes keep what they run), or with --node remove
            those nodes' overrides (they go back to the cluster-wide level).
  status    a node x group table of the live nodes (state and level; * marks a node lagging
            behind its desired level), the config each runs (DRIFT when it is not the cluster's:
            also when a node refused it), who set each desired level and pushed the config, the
            recent changes (the audit trail: every tell, clear, push, forget and move), the
            nodes seen before that are missing now, each group's last rollout, and per failover
            group: its holder, epoch, since when, the holder's lease time left, the candidates in
            order, bans (why, time left), a move under way and why the group last moved.
  config    push: check FILE (errors with line numbers, exit 1) and store it as the cluster's
            config; every daemon switches to it. A FILE that drops more than half of the stored
            config's entries (as a file cut by a rewrite does; the share: :::removal-guard:) is
            refused unless --force. --sign KEY signs it with an Ed25519 private key (daemons
            started with --trusted-keys refuse any config not signed by a key they trust).
            show: print the stored config. history: every push, by whom, signed by what.
  forget    stop listing a missing NODE (decommissioned); refused for a live node and for a
            node that was never seen.
  move      move failover group GROUP to NODE: the holder stops the group, confirms its
            processes gone and hands over; NODE starts it without the takeover delay. Waits until
            NODE runs it (exit 0) or --timeout S passes (default 60 s; exit 1). The preference
            lives on a 60 s lease: if the move cannot complete, it expires by itself. Refuses a
            group that is not a failover group, and a NODE that is not live, not eligible or banned.

Options:
  --etcd URLS       etcd client URLs, comma-separated, e.g. https://10.0.0.1:2379
  --cluster NAME    the cluster's name in etcd (default: default)
  --etcd-cacert FILE   the CA that signed etcd's certificates; needed for https:// URLs
  --etcd-cert FILE     client certificate, with --etcd-key FILE (its CN is the etcd user when
  --etcd-key FILE      etcd runs with --client-cert-auth and auth enabled)
  --etcd-user NAME     etcd user, with --etcd-password-file FILE or $ISINIT_ETCD_PASSWORD
  --etcd-password-file FILE   (a password is never taken from the command line)
  --etcd-config FILE   these settings as "name = value" lines, e.g. etcd-cacert = /etc/isinit/ca.crt
                       (default $ISINIT_ETCD_CONFIG); flags win over $ISINIT_ETCD_CACERT, _CERT,
                       _KEY, _USER, _PASSWORD_FILE, which win over the file
  --sign KEY        (config push) sign with this Ed25519 private key (PEM)
  --node NAME       (tell, clear) only this node; repeat for several
  --wait            (tell, rollout resume) wait for the nodes to reach the level
  --timeout S       (tell --wait, move) give up after S seconds; (--rolling) each batch's time
  --rolling N       (tell) N nodes at a time (1 to 100)
  --pause S         (tell --rolling) seconds between batches (default 0)
  --max-failures K  (tell --rolling) stop after K failed nodes (default 1)
  --order A,B,...   (tell --rolling) these nodes first, in this order
  --json            (status, config history) machine-readable output
  --force           (config push) store FILE even if it drops most of the stored config's entries
`

const options = {
  ...etcdFlags,
  node: { type: "string", multiple: true },
  wait: { type: "boolean" },
  timeout: { type: "string" },
  json: { type: "boolean" },
  sign: { type: "string" },
  force: { type: "boolean" },
  rolling: { type: "string" },
  pause: { type: "string" },
  "max-failures": { type: "string" },
  order: { type: "string" },
  help: { type: "boolean", short: "h" },
} as const

type Values = ReturnType<typeof parseArgs<{ options: typeof options; allowPositionals: true }>>["values"]


type Command =
  | { readonly _tag: "Tell"; readonly group: string; readonly level: string; readonly nodes: readonly string[]; readonly wait: boolean; readonly timeoutMs: number }
  | { readonly _tag: "Clear"; readonly group: string; readonly nodes: readonly string[] }
  | { readonly _tag: "Status"; readonly group: string | undefined; readonly json: boolean }
  | { readonly _tag: "ConfigPush"; readonly file: string; readonly sign: string | undefined; readonly force: boolean }
  | { readonly _tag: "ConfigShow" }
  | { readonly _tag: "ConfigHistory"; readonly json: boolean }
  | { readonly _tag: "Forget"; readonly node: string }
  | RolloutCommand
  | { readonly _tag: "Move"; readonly group: string; readonly node: string; readonly timeoutMs: number }
  | { readonly _tag: "Help" }


/** The flags that only some commands take. */
const commandFlags = ["node", "wait", "timeout", "json", "sign", "force", ...rollingFlags] as const

const only = (values: Values, allowed: readonly (typeof commandFlags)[number][], command: string): void => onlyFlags(values, commandFlags, allowed, command)

const commandOf = (values: Values, positionals: readonly string[]): Command => {
  if (values.help === true) return { _tag: "Help" }
  const [first, ...rest] = positionals
  switch (first) {
    case undefined:
      throw new UsageError("missing command: tell, clear, status, config, forget, rollout or move")
    case "tell": {
      const [group = "", level = ""] = expectCount("tell", rest, 2, "GROUP LEVEL")
      only(values, ["node", "wait", "timeout", ...rollingFlags], "tell")
      if (values.rolling !== undefined) return rollingTellOf(group, level, values)
      noRollingFlags(values)
      return { _tag: "Tell", group, level, nodes: values.node ?? [], wait: values.wait === true, timeoutMs: waitTimeoutMs(values) }
    }
    case "clear": {
      const [group = ""] = expectCount("clear", rest, 1, "GROUP")
      only(values, ["node"], "clear")
      return { _tag: "Clear", group, nodes: values.node ?? [] }
    }
    case "status":
      if (rest.length > 1) throw new UsageError(`status takes at most one GROUP, got ${rest.join(" ")}`)
      only(values, ["json"], "status")
      return { _tag: "Status", group: rest[0], json: values.json === true }
    case "config": {
      const [verb, ...args] = rest
      if (verb === "push") {
        const [file = ""] = expectCount("config push", args, 1, "FILE")
        only(values, ["sign", "force"], "config push")
        return { _tag: "ConfigPush", file, sign: values.sign, force: values.force === true }
      }
      if (verb === "show") {
        expectCount("config show", args, 0, "no arguments")
        only(values, [], "config show")
        return { _tag: "ConfigShow" }
      }
      if (verb === "history") {
        expectCount("config history", args, 0, "no arguments")
        only(values, ["json"], "config history")
        return { _tag: "ConfigHistory", json: values.json === true }
      }
      throw new UsageError(`config takes push FILE, show or history${verb === undefined ? "" : `, not "${verb}"`}`)
    }
    case "forget": {
      const [node = ""] = expectCount("forget", rest, 1, "NODE")
      only(values, [], "forget")
      return { _tag: "Forget", node }
    }
    case "rollout":
      only(values, ["wait"], "rollout")
      return rolloutCommandOf(rest, values)
    case "move": {
      const [group = "", node = ""] = expectCount("move", rest, 2, "GROUP NODE")
      only(values, ["timeout"], "move")
      return { _tag: "Move", group, node, timeoutMs: values.timeout === undefined ? moveLeaseMs : timeoutOptionMs(values.timeout) }
    }
    default:
      throw new UsageError(
        `"${first}" is not a cluster command (tell, clear, status, config, forget, rollout, move); a local daemon's commands take no --etcd`,
      )
  }
}

// ---------------------------------------------------------------------------------------------
// Commands

const sleep = (ms: number): Effect.Effect<void> => Effect.sleep(ms)

const listOr = (names: readonly string[], none: string): string => (names.length === 0 ? none : names.join(", "))

type ProgressOf = (obeyed: Obeyed, nodes: Nodes) => TellProgress
type TellCommand = Extract<Command, { readonly _tag: "Tell" }>

/** The later tell (or clear) that replaced this one, in words. */
const supersedingText = (group: string, by: Superseding): string => {
  if (by._tag === "Cleared") return `${group}'s desired level was cleared`
  const { level, revision, by: who, at } = by.by
  return `a later tell: ${group}=${level} (revision ${revision}${who === undefined ? "" : `, by ${who}`}${at === undefined ? "" : `, at ${at}`})`
}

/** Prints how a `tell --wait` ended; resolves to the exit code. */
const reportWait = (io: Io, command: TellCommand, progress: TellProgress, vanished: readonly string[]): number => {
  const what = `${command.group}=${command.level}`
  const pending = [...progress.pending, ...vanished.map((n) => `${n} (gone)`)]
  for (const n of progress.overridden) io.err(`isinit: ${n} keeps its own override for ${command.group} (isinit --etcd ... clear ${command.group} --node ${n} hands it back)\n`)
  if (progress.done.length + progress.failed.length + pending.length + progress.superseded.length === 0) {
    io.err(`isinit: no live node runs group ${command.group}: nothing to wait for\n`)
    return 0
  }
  if (pending.length + progress.failed.length + progress.superseded.length === 0) {
    io.out(`${what} reached (run) on ${listOr(progress.done, "no node")}\n`)
    return 0
  }
  if (progress.failed.length > 0) io.err(`isinit: ${what} failed on: ${progress.failed.join(", ")} (see isinit --etcd ... status ${command.group})\n`)
  const byReason = new Map<string, string[]>()
  for (const s of progress.superseded) {
    const reason = supersedingText(command.group, s.by)
    byReason.set(reason, [...(byReason.get(reason) ?? []), s.node])
  }
  for (const [reason, nodes] of byReason) io.err(`isinit: ${what} superseded on ${nodes.join(", ")} by ${reason}\n`)
  if (pending.length > 0) io.err(`isinit: ${what} not reached within ${command.timeoutMs / 1000} s on: ${pending.join(", ")}\n`)
  if (progress.done.length > 0) io.err(`isinit: ${what} reached on: ${progress.done.join(", ")}\n`)
  return 1
}

/**
 * Polls until no node is on its way to the level any more (reached, failed, superseded) or the
 * timeout passes. A node that was expected and is no longer live has not answered, unless the
 * tell was superseded meanwhile: then it never will.
 */
const waitForNodes = (env: Env, command: TellCommand, progressOf: ProgressOf) =>
  Effect.gen(function* () {
    const { store } = env
    const deadline = Date.now() + command.timeoutMs
    const expected = new Set<string>()
    for (;;) {
      const [view, nodes] = yield* withinDeadline(Effect.all([store.readDesired(), store.nodes()]))
      const progress = progressOf(view.obeyed, nodes)
      const listed = [...progress.done, ...progress.failed, ...progress.pending, ...progress.superseded.map((s) => s.node)]
      for (const n of listed) expected.add(n)
      const absent = [...expected].filter((n) => !listed.includes(n) && !progress.overridden.includes(n))
      const vanished = progress.superseded.length > 0 ? [] : absent
      if (progress.pending.length + vanished.length === 0 || Date.now() >= deadline) return reportWait(env.io, command, progress, vanished)
      yield* sleep(Math.min(100, Math.max(1, deadline - Date.now())))
    }
  })

const tellCommand = (env: Env, command: TellCommand) =>
  Effect.gen(function* () {
    const { io, store } = env
    const by = whoami()
    if (command.nodes.length === 0) {
      const { revision } = yield* store.setDesired(command.group, command.level, { by })
      io.err(`isinit: ${command.group}=${command.level} set cluster-wide (revision ${revision})\n`)
      if (!command.wait) return 0
      return yield* waitForNodes(env, command, (obeyed, nodes) => tellProgress(obeyed, nodes.live, command.group, command.level, revision))
    }
    const written = new Map<string, number>()
    for (const node of new Set(command.nodes)) written.set(node, (yield* store.setDesired(command.group, command.level, { node, by })).revision)
    io.err(`isinit: ${command.group}=${command.level} set on ${[...written.keys()].join(", ")} (override; from revision ${Math.min(...written.values())})\n`)
    if (!command.wait) return 0
    return yield* waitForNodes(env, command, (obeyed, nodes) => nodeTellProgress(obeyed, nodes.live, written, command.group, command.level))
  })

const clearCommand = (env: Env, command: Extract<Command, { readonly _tag: "Clear" }>) =>
  Effect.gen(function* () {
    const targets: readonly (string | undefined)[] = command.nodes.length === 0 ? [undefined] : [...new Set(command.nodes)]
    for (const node of targets) {
      const { deleted } = yield* env.store.clearDesired(command.group, node === undefined ? {} : { node })
      const what = node === undefined ? "cluster-wide level" : `override on ${node}`
      env.io.err(`isinit: ${command.group}: ${deleted ? `${what} removed` : `no ${what} to remove`}\n`)
    }
    return 0
  })

const cellText = (row: Row, group: string): string => {
  const cell = row.cells.get(group)
  if (cell === undefined) return "-"
  return `${cell.state}${cell.level === "" ? "" : ` ${cell.level}`}${cell.lagging ? "*" : ""}`
}

const configText = (row: Row, status: NodeStatus | undefined): string => {
  const base = row.configSeq !== null ? `#${row.configSeq}` : status?.configSha256 === null || status === undefined ? "none" : `file ${status.configSha256.slice(0, 12)}`
  return row.drift ? `${base} DRIFT` : base
}

/** Every desired level of `groups` with who set it and when: the cluster-wide ones, then each node's. */
const desiredLevels = (obeyed: Obeyed, groups: readonly string[]) =>
  [
    ...[...obeyed.cluster].map(([group, d]) => ({ group, node: null, ...d })),
    ...[...obeyed.nodes].flatMap(([node, m]) => [...m].map(([group, d]) => ({ group, node, ...d }))),
  ]
    .filter((d) => groups.includes(d.group))
    .map((d) => ({ group: d.group, node: d.node, level: d.level, revision: d.revision, by: d.by ?? null, etcdUser: d.etcdUser ?? null, at: d.at ?? null }))

const configJson = (config: StoredConfig) => {
  const v = config.value
  return { seq: v.seq, sha256: v.sha256, pushedAt: v.pushedAt, by: v.by ?? null, etcdUser: v.etcdUser ?? null, signedBy: v.signature?.keyId ?? null }
}

const statusJson = (obeyed: Obeyed, nodes: Nodes, rows: readonly Row[], groups: readonly string[], cluster: string, recent: readonly AuditEntry[]) => ({
  cluster,
  revision: nodes.revision,
  config: obeyed.config === undefined ? null : configJson(obeyed.config),
  desiredLevels: desiredLevels(obeyed, groups),
  recent,
  desired: {
    cluster: Object.fromEntries([...obeyed.cluster].map(([g, d]) => [g, d.level])),
    nodes: Object.fromEntries([...obeyed.nodes].map(([n, m]) => [n, Object.fromEntries([...m].map(([g, d]) => [g, d.level]))])),
  },
  nodes: rows.map((row) => ({
    node: row.node,
    at: row.at,
    configSeq: row.configSeq,
    configSha256: nodes.live.find((s) => s.node === row.node)?.configSha256 ?? null,
    drift: row.drift,
    groups: Object.fromEntries(
      groups.filter((g) => row.cells.has(g)).map((g) => {
        const cell = row.cells.get(g)
        return [g, cell === undefined ? null : { state: cell.state, level: cell.level, wanted: cell.wanted ?? null, lagging: cell.lagging }]
      }),
    ),
  })),
  missing: nodes.missing,
  lagging: rows.flatMap((row) => groups.filter((g) => row.cells.get(g)?.lagging === true).map((group) => ({ node: row.node, group }))),
  drift: rows.filter((row) => row.drift).map((row) => row.node),
})

/** How many audit records `status` reads: the text shows the newest 5, --json all of them. */
const recentShown = 20

const whoText = (by: string | null | undefined, etcdUser: string | null | undefined): string =>
  `${by ?? "?"}${etcdUser === null || etcdUser === undefined ? "" : ` (etcd user ${etcdUser})`}`

const configLine = (config: StoredConfig | undefined): string => {
  if (config === undefined) return "no config in etcd"
  const c = configJson(config)
  const signed = c.signedBy === null ? "unsigned" : `signed by key ${c.signedBy}`
  return `config #${c.seq} (sha256 ${c.sha256.slice(0, 12)}, ${signed}, pushed by ${whoText(c.by, c.etcdUser)} at ${c.pushedAt})`
}

/** The desired levels, with who set each and when. */
const desiredText = (obeyed: Obeyed, groups: readonly string[]): string => {
  const levels = desiredLevels(obeyed, groups)
  if (levels.length === 0) return ""
  return `desired:\n${table(
    ["GROUP", "LEVEL", "FOR", "SET BY", "AT"],
    levels.map((d) => [d.group, d.level, d.node === null ? "every node" : d.node, whoText(d.by, d.etcdUser), d.at ?? "-"]),
    "  ",
  )}`
}

const recentText = (entries: readonly AuditEntry[]): string =>
  `recent changes (newest first):\n${table(
    ["AT", "BY", "CHANGE"],
    entries.map((e) => [e.at, whoText(e.by, e.etcdUser), `${e.op} ${e.what}`]),
    "  ",
  )}`

const missingText = (missing: readonly SeenValue[]): string =>
  `missing (seen before, no live status): ${missing.map((m) => `${m.node} (joined ${m.joinedAt})`).join(", ")}\n`

const statusCommand = (env: Env, command: Extract<Command, { readonly _tag: "Status" }>) =>
  Effect.gen(function* () {
    const { io, store } = env
    const { obeyed } = yield* store.readDesired()
    const nodes = yield* store.nodes()
    const { entries: recent } = yield* store.auditTrail(recentShown)
    const { rollouts } = yield* store.rollouts()
    const failover = failoverRows(obeyed.config?.parsed.config, yield* store.readFailover())
    const rows = clusterRows(obeyed, nodes.live)
    const all = [...new Set(rows.flatMap((r) => [...r.cells.keys()]))].sort()
    if (command.group !== undefined && !all.includes(command.group) && obeyed.config?.parsed.config.byGroup.has(command.group) !== true) {
      io.err(`isinit: no group "${command.group}" on any live node or in the cluster's config (groups: ${listOr(all, "none")})\n`)
      return 1
    }
    const groups = command.group === undefined ? all : [command.group]
    const failed = failover.filter((f) => command.group === undefined || f.group === command.group)
    if (command.json) {
      io.out(`${JSON.stringify({ ...statusJson(obeyed, nodes, rows, groups, store.cluster, recent), rollouts: rolloutsJson(rollouts, groups), failover: failoverJson(failed) }, null, 2)}\n`)
      return 0
    }
    io.out(`cluster ${store.cluster}: ${rows.length} live ${rows.length === 1 ? "node" : "nodes"}, ${configLine(obeyed.config)}\n`)
    if (rows.length > 0) {
      io.out(
        table(
          ["NODE", ...groups.map((g) => g.toUpperCase()), "CONFIG"],
          rows.map((row) => [row.node, ...groups.map((g) => cellText(row, g)), configText(row, nodes.live.find((s) => s.node === row.node))]),
        ),
      )
    }
    const lagging = rows.flatMap((row) =>
      groups.flatMap((g) => {
        const cell = row.cells.get(g)
        if (cell?.lagging !== true || cell.wanted === undefined) return []
        return [`${row.node} ${g} (${cell.state} ${cell.level || "-"}, wants ${cell.wanted.level}${cell.wanted.source === "node" ? " by override" : ""})`]
      }),
    )
    if (lagging.length > 0) io.out(`* lagging: ${lagging.join("; ")}\n`)
    const drift = rows.filter((r) => r.drift).map((r) => r.node)
    if (drift.length > 0) {
      io.out(`drift: ${drift.join(", ")} ${drift.length === 1 ? "runs" : "run"} another config than ${obeyed.config === undefined ? "most nodes" : `#${obeyed.config.value.seq}`}\n`)
    }
    io.out(desiredText(obeyed, groups))
    io.out(rolloutsText(rollouts, groups))
    io.out(failoverText(failed))
    if (nodes.missing.length > 0) io.out(missingText(nodes.missing))
    if (recent.length > 0) io.out(recentText(recent.slice(0, 5)))
    return 0
  })

const readText = (io: Io, file: string): string | undefined => {
  try {
    return readFileSync(file, "utf8")
  } catch (error) {
    io.err(`isinit: cannot read ${file}: ${error instanceof Error ? error.message : String(error)}\n`)
    return undefined
  }
}

const signerOf = (key: KeyObject, cluster: string): Signer => ({ keyId: keyIdOf(key), sign: (seq, sha256) => signConfig(key, cluster, seq, sha256) })

/**
 * The re-read guard of a single host (core/reread.ts), at the push: a file cut by a rewrite drops
 * the entries past the cut. Measured against the stored config's entries that can run (not `off`),
 * since what runs differs from node to node; the daemons apply an accepted push without asking.
 */
const pushRefusal = (stored: ConfigRead, parsed: Parsed): string | undefined => {
  if (stored._tag !== "Valid") return undefined
  const removal = removalOf(runnableTags(stored.config.parsed.config), parsed.config)
  if (!exceedsGuard(removal, parsed.config)) return undefined
  return (
    `it drops ${describeRemoval(removal, `entries of config #${stored.config.value.seq}`)}, more than the ` +
    `${guardShare(parsed.config)} a push may drop unconfirmed, as a file cut by a rewrite would; if you meant it, push it with --force`
  )
}

const pushCommand = (env: Env, command: Extract<Command, { readonly _tag: "ConfigPush" }>) =>
  Effect.gen(function* () {
    const { io, store } = env
    const text = readText(io, command.file)
    if (text === undefined) return 1
    const parsed = parseInittab(text)
    for (const problem of parsed.problems) io.err(`${formatProblem(command.file, problem)}\n`)
    if (hasErrors(parsed)) {
      io.err(`${checkSummary(command.file, parsed)}\nisinit: config not pushed; nothing was changed\n`)
      return 1
    }
    const key = command.sign === undefined ? undefined : loadSigningKey(command.sign)
    if (key !== undefined && E.isLeft(key)) {
      io.err(`isinit: ${key.left}\nisinit: config not pushed; nothing was changed\n`)
      return 1
    }
    const cut = command.force ? undefined : pushRefusal(yield* store.currentConfig(), parsed)
    if (cut !== undefined) {
      io.err(`isinit: config not pushed; nothing was changed: ${cut}\n`)
      return 1
    }
    const signer = key === undefined ? undefined : signerOf(key.right, store.cluster)
    const pushed = yield* store.pushConfig(text, { by: whoami(), sign: signer })
    const signed = signer === undefined ? "" : `, signed by key ${signer.keyId}`
    io.out(
      pushed._tag === "Pushed"
        ? `pushed config #${pushed.seq} (sha256 ${pushed.sha256.slice(0, 12)}${signed}, revision ${pushed.revision})\n`
        : `unchanged: config #${pushed.seq} is already this text${signed}\n`,
    )
    return 0
  })

const showCommand = (env: Env) =>
  Effect.gen(function* () {
    const read = yield* env.store.currentConfig()
    switch (read._tag) {
      case "None":
        env.io.err(`isinit: no config in etcd for cluster ${env.store.cluster}; push one with config push FILE\n`)
        return 1
      case "Invalid":
        env.io.err(`isinit: the config in etcd is refused by every daemon: ${read.rejection.reason}\n`)
        return 1
      case "Valid": {
        const v = read.config.value
        env.io.err(`# ${configLine(read.config)}, sha256 ${v.sha256}\n`)
        env.io.out(v.text)
        return 0
      }
    }
  })

const historyCommand = (env: Env, command: Extract<Command, { readonly _tag: "ConfigHistory" }>) =>
  Effect.gen(function* () {
    const { entries } = yield* env.store.configHistory()
    if (command.json) {
      env.io.out(`${JSON.stringify(entries, null, 2)}\n`)
      return 0
    }
    if (entries.length === 0) {
      env.io.err(`isinit: no config was ever pushed to cluster ${env.store.cluster}\n`)
      return 0
    }
    env.io.out(
      table(
        ["SEQ", "PUSHED", "BY", "ETCD USER", "SIGNED BY", "SHA256", "LINES"],
        entries.map((e) => [
          `#${e.seq}`,
          e.pushedAt,
          e.by ?? "-",
          e.etcdUser ?? "-",
          e.signature?.keyId ?? "-",
          e.sha256.slice(0, 12),
          String(e.text.split("\n").filter((l) => l.trim() !== "").length),
        ]),
      ),
    )
    return 0
  })

const forgetCommand = (env: Env, command: Extract<Command, { readonly _tag: "Forget" }>) =>
  Effect.gen(function* () {
    yield* env.store.forgetNode(command.node)
    env.io.err(`isinit: ${command.node} is no longer listed as missing\n`)
    return 0
  })

/** Every way a command can fail; each has a message for the operator. */
type CommandError = ConfigRejected | Contended | EtcdFailure | FailoverGroupTold | InvalidName | NodeLive | UnknownGroup | UnknownNode

const runCommand = (env: Env, command: Exclude<Command, { readonly _tag: "Help" }>): Effect.Effect<number, CommandError> => {
  switch (command._tag) {
    case "Tell":
      return tellCommand(env, command)
    case "Clear":
      return clearCommand(env, command)
    case "Status":
      return statusCommand(env, command)
    case "ConfigPush":
      return pushCommand(env, command)
    case "ConfigShow":
      return showCommand(env)
    case "ConfigHistory":
      return historyCommand(env, command)
    case "Forget":
      return forgetCommand(env, command)
    case "RollingTell":
    case "RolloutResume":
    case "RolloutAbort":
      return runRolloutCommand({ io: env.io, store: env.store, by: whoami() }, command)
    case "Move":
      return moveCommand(env, command)
  }
}

/** How to reach etcd: flags over the environment over the `--etcd-config` file (connection.ts). */
const accessOf = (values: Values, env: NodeJS.ProcessEnv): E.Either<string, EtcdAccess & { readonly settings: Settings }> => {
  if (values["etcd-password"] !== undefined) return E.left(passwordFlagRefusal)
  const file = readSettingsFile(values["etcd-config"] ?? env[configFileEnv])
  if (E.isLeft(file)) return file
  const flags = flagSettings(values, ["etcd", "cluster", "etcd-cacert", "etcd-cert", "etcd-key", "etcd-user", "etcd-password-file"])
  const settings = mergeSettings(flags, env, file.right)
  const access = loadAccess(settings, env)
  return E.isLeft(access) ? access : E.right({ ...access.right, settings })
}

/** Runs `isinit --etcd ...` with these arguments; resolves to the exit code. */
export const clusterMain = async (argv: readonly string[], io: Io): Promise<number> => {
  let command: Command
  let values: Values
  try {
    const parsed = parseArgs({ args: [...argv], options, allowPositionals: true, strict: true })
    values = parsed.values
    command = commandOf(values, parsed.positionals)
  } catch (error) {
    io.err(`isinit: ${error instanceof Error ? error.message : String(error)}\n${clusterUsage.slice(0, clusterUsage.indexOf("\nCommands:") + 1)}Run isinit --etcd URLS --help for more.\n`)
    return 2
  }
  if (command._tag === "Help") {
    io.out(clusterUsage)
    return 0
  }
  const access = accessOf(values, io.env)
  if (access._tag === "Left") {
    io.err(`isinit: ${access.left}\n`)
    return 2
  }
  const { hosts, security, settings } = access.right
  for (const warning of access.right.warnings) io.err(`isinit: warning: ${warning}\n`)
  quietTlsDeprecation(access.right)
  const run = Effect.scoped(
    Effect.gen(function* () {
      const author = { _tag: "Audited", by: whoami() } as const
      const store = yield* makeClusterStore({ hosts, cluster: settings.cluster, callTimeoutMs: deadlineMs, security, author })
      return yield* withinDeadline(runCommand({ io, store, hosts }, command))
    }),
  ).pipe(
    Effect.catch((error: { readonly message: string }) =>
      Effect.sync(() => {
        io.err(`isinit: ${error.message}\n`)
        return 1
      }),
    ),
  )
  return Effect.runPromise(run)
}
