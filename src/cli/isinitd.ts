#!/usr/bin/env node
/**
 * isinitd: the isinit daemon, in the foreground (for systemd, containers, or `isinit` starting it
 * in the background). Exit codes: 0 after a stopall/SIGTERM/SIGINT once every process is gone,
 * 1 when it cannot start, 2 on a usage error, 3 after a hand-over (every process left running
 * for the next isinitd; examples/isinitd.service restarts on it), 70 on a bug (every process left
 * running too, for the next isinitd to adopt).
 *
 * The daemon's composition root: the only module that imports both the runtime (src/runtime) and
 * cluster mode (src/cluster). In cluster mode it builds the agent and hands the runtime a
 * `ClusterPort` filled from it (runtime/ports.ts); neither layer imports the other (lint).
 */
import { hostname } from "node:os"
import { dirname, join, resolve } from "node:path"
import { parseArgs } from "node:util"
import { setFlagsFromString } from "node:v8"
import type { AgentStartFailure, ClusterAgent } from "../cluster/agent.ts"
import { configPathFrom, defaultConfigPath, defaultInitstatName, defaultSocketPath, version } from "../paths.ts"
import type { DaemonError } from "../runtime/daemon.ts"
import type { ClusterPort } from "../runtime/ports.ts"
import { etcdFlags, passwordFlagRefusal } from "./etcdFlags.ts"

// V8 lets its young generation grow to 16 MB semi-spaces when much survives a scavenge (loading
// effect, starting 1,000 children at once); those pages stay resident, and every fork then copies
// their page tables. Kept at its initial 1 MB, isinitd's RSS with 1,000 children drops from about
// 90 to 70 MB and bring-up costs less CPU (docs/bench.md). Set before the rest of isinitd is
// loaded, hence the dynamic imports: `node --max-semi-space-size=1` does the same, but a shebang
// cannot pass flags portably (BusyBox env has no -S).
setFlagsFromString("--semi-space-growth-factor=1")
// The fencer (runtime/fencer.ts) a cluster daemon starts: it loads nothing of the daemon, and the
// promise never settles (it exits by itself), so the rest of this file never runs in it.
if (process.argv[2] === "--fencer") await import("../runtime/fencer.ts").then(async ({ runFencer }) => runFencer())
const Effect = await import("effect/Effect")
const Exit = await import("effect/Exit")
const { daemon } = await import("../runtime/daemon.ts")
const { resilientLog } = await import("../runtime/log.ts")
const { ClusterConfigUnavailable } = await import("../runtime/ports.ts")

const usage = `Usage: isinitd [-c FILE] [-s SOCKET] [--initstat FILE] [--state FILE] [--socket-mode MODE] [--chdir DIR]
               [--metrics ADDR] [--http ADDR] [--allow-remote]
       isinitd --etcd URLS [--cluster NAME] [--node NAME] [--lease-ttl S] [-c FILE] [-s SOCKET] [--initstat FILE]
               [--etcd-cacert FILE [--etcd-cert FILE --etcd-key FILE]] [--etcd-user NAME --etcd-password-file FILE]
               [--trusted-keys FILE] [--etcd-config FILE] [--metrics ADDR] [--http ADDR] [--allow-remote]
       isinitd --help | --version

Runs the isinit daemon in the foreground: starts and stops the processes of the isinittab's
resource groups as \`isinit GROUP LEVEL\` tells it, respawns and jails them, and logs one line
per event to stderr. Should stderr go away (its reader exits, the terminal closes), it logs to
isinitd.log beside the status file instead, saying so there, and keeps supervising.
Each entry's stdout and stderr go to its own file, log/TAG.log beside the status file (or its
:::option:TAG:log=...), opened by isinitd for each start and rotated past log-max (10M, 5 kept):
the services keep logging whatever happens to isinitd (README: Logs).
Orphans (a service's processes that outlive their parent) are reaped: as PID 1 all of them, on a
host those of its services, as it makes itself a child subreaper (through koffi; without it,
the ready line says orphans are not reaped).

Options:
  -c, --config FILE     the isinittab (default: $ISINITTAB, else ${defaultConfigPath})
  -s, --socket PATH     UNIX socket to listen on (default: the isinittab's :::socket: directive,
                        else ${defaultSocketPath}); a missing directory is created with mode 0700
      --initstat FILE   status file (default: the isinittab's :::initstat: directive, else
                        "${defaultInitstatName}" beside the socket; unlike IS::Init, which writes
                        none without the directive, isinitd always writes one)
      --state FILE      the daemon's own record of its processes (default: "isinitd.state"
                        beside the status file); a daemon restarted after a crash re-adopts the
                        processes still alive from it instead of starting them twice
      --socket-mode M   permission bits of the socket, octal (default 0600: only the owner may
                        talk to the daemon; e.g. 0660 lets the socket's group in as well)
      --chdir DIR       change to DIR once started (paths given on the command line are taken
                        from where isinitd was started). Services start in / whatever the
                        daemon's directory, unless an entry's cwd option says otherwise.
                        isinit's auto-start passes / (and a clean environment, see README)
      --etcd URLS       cluster mode: etcd client URLs, comma-separated (e.g. http://10.0.0.1:2379);
                        the config and desired levels come from etcd, and the node publishes its
                        status there (see docs/cluster.md). -c is used only while etcd has no config
      --cluster NAME    the cluster's name in etcd (default: default)
      --node NAME       this node's name (default: the host name); children get it as $ISINIT_NODE
      --lease-ttl S     seconds before a dead node drops out of the cluster's live nodes (default 10)
      --etcd-cacert FILE  the CA that signed etcd's certificates; needed for https:// URLs
      --etcd-cert FILE    client certificate (with --etcd-key); with etcd's --client-cert-auth and
      --etcd-key FILE     auth enabled, its CN is the etcd user
      --etcd-user NAME    etcd user (a role per node: scripts/etcd-roles.sh), with its password in
      --etcd-password-file FILE  (or $ISINIT_ETCD_PASSWORD; never on the command line)
      --trusted-keys FILE apply only configs signed by one of these Ed25519 public keys (PEM);
                        any other config is refused and logged, and the node keeps the one it runs
      --etcd-config FILE  the settings above as "name = value" lines (default $ISINIT_ETCD_CONFIG);
                        the command line wins over $ISINIT_ETCD_CACERT, _CERT, _KEY, _USER,
                        _PASSWORD_FILE and $ISINIT_TRUSTED_KEYS, which win over the file
      --metrics ADDR    serve Prometheus metrics at http://ADDR/metrics (groups, entries, restarts,
                        jails, last exits, the loop's lag and queue, hooks, etcd, failover holds);
                        ADDR is PORT, HOST:PORT or [IPV6]:PORT, 127.0.0.1 without a host, port 0 for
                        any free port (the log names it). Off by default
      --http ADDR       serve a read-only status page at http://ADDR/ (groups, entries, recent
                        events, live through server-sent events; in cluster mode the node x group
                        table). The same ADDR as --metrics: one server for both. Off by default
      --allow-remote    let --metrics and --http listen on a non-loopback address. They have no
                        authentication: anyone who can reach them reads group and tag names,
                        states, pids and exit codes (put a firewall or a TLS proxy in front)
  -h, --help            this text
  -V, --version         print the version

Signals: SIGTERM or SIGINT stop every process (as \`isinit stopall\`), then the daemon exits 0;
SIGHUP re-reads the isinittab and re-applies every group's current level; SIGUSR2 hands over
(as \`isinit handover\`): the state file is written, the daemon exits 3 and leaves every process
running, and the next isinitd on the same state file adopts them all (restarts and upgrades
without bouncing services; see examples/isinitd.service). In cluster mode failover groups are the
exception: the fencer stops them at their lease deadline and they move (docs/cluster.md).
Exit codes: 0 after a stopall, 1 when it cannot start, 2 on a usage error, 3 after a hand-over,
70 on a bug (logged; every process keeps running for the next isinitd to adopt).
A second daemon on the same socket is refused; a stale socket file is replaced.
With failover groups in its config (:::failover:), an isinitd --etcd starts a fencer,
"isinitd --fencer" (started by isinitd itself; not a command for operators): a small process in
its own session that stops a failover group's processes when their lease was not renewed by its
deadline, even while isinitd is stopped or stalled (docs/cluster.md, "Failover groups").
With plain http:// etcd URLs and no --etcd-user, isinitd warns once at start: anyone who can
reach etcd can then push a config that runs commands as root on every node (docs/cluster.md).
Run as root, isinitd refuses an isinittab (or its directory) that is not owned by root or is
writable by group or others, at startup and at every re-read (fix: chown root, chmod go-w).
`

const fail = (message: string, code: number): never => {
  process.stderr.write(`isinitd: ${message}\n`)
  process.exit(code)
}

const parse = () => {
  try {
    return parseArgs({
      args: process.argv.slice(2),
      allowPositionals: false,
      options: {
        config: { type: "string", short: "c" },
        socket: { type: "string", short: "s" },
        initstat: { type: "string" },
        state: { type: "string" },
        "socket-mode": { type: "string" },
        chdir: { type: "string" },
        ...etcdFlags,
        "trusted-keys": { type: "string" },
        node: { type: "string" },
        "lease-ttl": { type: "string" },
        metrics: { type: "string" },
        http: { type: "string" },
        "allow-remote": { type: "boolean" },
        help: { type: "boolean", short: "h" },
        version: { type: "boolean", short: "V" },
      },
    }).values
  } catch (e) {
    return fail(`${(e as Error).message}\n${usage}`, 2)
  }
}

const values = parse()
if (values.help === true) {
  process.stdout.write(usage)
  process.exit(0)
}
if (values.version === true) {
  process.stdout.write(`isinitd ${version}\n`)
  process.exit(0)
}

const socketModeText = values["socket-mode"]
let socketMode: number | undefined
if (socketModeText !== undefined) {
  if (!/^0?[0-7]{3}$/.test(socketModeText)) fail(`--socket-mode takes octal permission bits such as 0600 or 0660, not "${socketModeText}"`, 2)
  socketMode = Number.parseInt(socketModeText, 8)
}

const clusterFlags = ["cluster", "node", "lease-ttl", "etcd-cacert", "etcd-cert", "etcd-key", "etcd-user", "etcd-password-file", "trusted-keys"] as const

// The log survives losing stderr (see resilientLog); nothing else may die of a dead stream either:
// isinitd writes nothing to stdout after startup, but an unhandled 'error' there would kill it.
process.stdout.on("error", () => undefined)
const log = resilientLog(process.stderr)

/**
 * Cluster mode's settings: flags over the environment over the --etcd-config file, checked and
 * read now (connection.ts, signing.ts), so a mistake stops the start with exit 2. Loaded only in
 * cluster mode, like the etcd client.
 */
const clusterOptionsOf = async () => {
  const E = await import("fp-ts/lib/Either.js")
  const { configFileEnv, flagSettings, loadAccess, mergeSettings, passwordEnv, quietTlsDeprecation, readSettingsFile } = await import("../cluster/connection.ts")
  const { loadTrustedKeys } = await import("../cluster/signing.ts")
  const file = readSettingsFile(values["etcd-config"] ?? process.env[configFileEnv])
  if (E.isLeft(file)) return fail(file.left, 2)
  const settings = mergeSettings(flagSettings(values, ["etcd", ...clusterFlags]), process.env, file.right)
  const leaseText = settings["lease-ttl"]
  const leaseTtlSeconds = leaseText === undefined ? undefined : Number(leaseText)
  if (leaseTtlSeconds !== undefined && !(Number.isInteger(leaseTtlSeconds) && leaseTtlSeconds >= 1 && leaseTtlSeconds <= 3600)) {
    return fail(`--lease-ttl takes a whole number of seconds from 1 to 3600, not "${leaseText ?? ""}"`, 2)
  }
  const access = loadAccess(settings, process.env)
  if (E.isLeft(access)) return fail(access.left, 2)
  // Read once: services, hooks and probes inherit the daemon's environment, and must not get the
  // etcd credential (a config pushed with it runs commands as root on every node).
  delete process.env[passwordEnv]
  const trusted = settings["trusted-keys"] === undefined ? undefined : loadTrustedKeys(settings["trusted-keys"])
  if (trusted !== undefined && E.isLeft(trusted)) return fail(trusted.left, 2)
  // Said once, at start: the operator must know when nothing protects the cluster.
  if (access.right.insecure !== undefined) log.line({ what: "warning", message: access.right.insecure })
  for (const warning of access.right.warnings) log.line({ what: "warning", message: warning })
  quietTlsDeprecation(access.right)
  const node = settings.node ?? hostname()
  // Children may need to know where they run (per-node behaviour in one shared config).
  process.env["ISINIT_NODE"] = node
  process.env["ISINIT_CLUSTER"] = settings.cluster ?? "default"
  return {
    hosts: access.right.hosts,
    cluster: settings.cluster,
    node,
    leaseTtlSeconds,
    secure: { security: access.right.security, trustedKeys: trusted === undefined ? undefined : trusted.right },
  }
}

if (values["etcd-password"] !== undefined) {
  fail(passwordFlagRefusal, 2)
}
const clusterMode = values.etcd !== undefined || values["etcd-config"] !== undefined
if (!clusterMode) {
  for (const flag of clusterFlags) if (values[flag] !== undefined) fail(`--${flag} applies only with --etcd`, 2)
}
// Before a --chdir, so relative paths in the settings mean what they meant where isinitd started.
const clusterOptions = clusterMode ? await clusterOptionsOf() : undefined

// Paths from the command line mean what they meant where isinitd was started, before a --chdir.
const absolute = (path: string | undefined): string | undefined => (path === undefined ? undefined : resolve(path))
const configPath = resolve(configPathFrom(values.config, process.env))
if (values.chdir !== undefined) {
  try {
    process.chdir(values.chdir)
  } catch (e) {
    fail(`--chdir ${values.chdir}: ${(e as Error).message}`, 1)
  }
}

/**
 * --metrics, --http and --allow-remote, checked now (a mistake exits 2). address.ts is loaded
 * only when one of them is given, as everything behind them (runtime/ops.ts).
 */
const operationsSettingsOf = async () => {
  const { parseListenAddress } = await import("../runtime/address.ts")
  const addressOf = (flag: "metrics" | "http") => {
    const text = values[flag]
    if (text === undefined) return undefined
    const address = parseListenAddress(text)
    if (typeof address === "string") return fail(`--${flag}: ${address}`, 2)
    if (!address.loopback && values["allow-remote"] !== true) {
      return fail(`--${flag} ${text}: ${address.host} is not a loopback address, and the metrics and the status page have no authentication (anyone who can reach them reads group and tag names, states, pids and exit codes); add --allow-remote to listen there anyway, behind a firewall or a TLS proxy`, 2)
    }
    return address
  }
  return { metrics: addressOf("metrics"), http: addressOf("http") }
}

const operationsAsked = values.metrics !== undefined || values.http !== undefined
if (values["allow-remote"] === true && !operationsAsked) fail("--allow-remote applies only with --metrics or --http", 2)
const operationsSettings = operationsAsked ? await operationsSettingsOf() : undefined

/** The agent as the daemon sees it: a config source, a converger started once the daemon serves, a reporter. */
const clusterPort = (agent: ClusterAgent): ClusterPort => ({
  initialConfig: agent.initialConfig,
  currentConfig: () => Effect.mapError(agent.currentConfig(), (reason) => new ClusterConfigUnavailable({ reason })),
  start: agent.start,
  recordLocalTell: agent.recordLocalTell,
  info: agent.info,
  failoverEnvironment: agent.failoverEnvironment,
  stop: agent.stop,
})

type Settings = NonNullable<Awaited<ReturnType<typeof clusterOptionsOf>>>

/** Loaded only in cluster mode, so a single-host daemon never loads the etcd client. */
const startCluster = (settings: Settings) =>
  Effect.flatMap(
    Effect.promise(() => import("../cluster/agent.ts")),
    ({ makeClusterAgent }) => Effect.map(makeClusterAgent({ ...settings, localConfigPath: configPath, log }), clusterPort),
  )

type OperationsSettings = NonNullable<typeof operationsSettings>

/**
 * --metrics and --http, loaded only when asked for. In cluster mode the page reads the cluster's
 * table through a reader of its own (cluster/table.ts); one that cannot be made leaves the page
 * with this node only, and says why in the log.
 */
const startOperations = (ops: OperationsSettings, settings: Settings | undefined) =>
  Effect.gen(function* () {
    const { operationsPort } = yield* Effect.promise(() => import("../runtime/ops.ts"))
    if (settings === undefined || ops.http === undefined) return operationsPort({ ...ops, log })
    const { makeClusterTableReader } = yield* Effect.promise(() => import("../cluster/table.ts"))
    const reader = yield* Effect.catch(makeClusterTableReader({ hosts: settings.hosts, cluster: settings.cluster, log, ...settings.secure }), (reason) =>
      Effect.sync((): undefined => {
        log.line({ what: "http", message: `the status page shows this node only: ${reason}` })
      }),
    )
    return operationsPort({ ...ops, log, clusterReader: reader })
  })

/** The agent first (it settles the config the daemon starts with), then the daemon, in one scope. */
const run = Effect.scoped(
  Effect.gen(function* () {
    const cluster = clusterOptions === undefined ? undefined : yield* startCluster(clusterOptions)
    const operations = operationsSettings === undefined ? undefined : yield* startOperations(operationsSettings, clusterOptions)
    return yield* daemon({
      configPath,
      socketPath: absolute(values.socket),
      initstatPath: absolute(values.initstat),
      statePath: absolute(values.state),
      socketMode,
      log,
      output: log.childOutput,
      onReady: (paths) => log.fallbackTo(join(dirname(paths.initstat), "isinitd.log")),
      cluster,
      operations,
    })
  }),
)

const exit = await Effect.runPromiseExit(run)
/** A hand-over is no failure, yet its own code: a systemd unit restarts on it (RestartForceExitStatus=3). */
const exitCodes = { halted: 0, handedOver: 3 } as const
if (Exit.isSuccess(exit)) process.exit(exitCodes[exit.value])
const failed = Exit.findErrorOption(exit)
/** A bug (loop.ts), already logged with its stack: EX_SOFTWARE, and a restart (systemd's Restart=on-failure) adopts. */
const isBug = (error: DaemonError | AgentStartFailure): boolean => error._tag === "ReducerThrew" || error._tag === "StateInvalid" || error._tag === "ClusterBug"
if (failed._tag === "Some" && isBug(failed.value)) fail("stopped by a bug (logged above); every process keeps running for the next isinitd to adopt", 70)
fail(failed._tag === "Some" ? failed.value.message : `unexpected failure: ${String(exit.cause)}`, 1)
