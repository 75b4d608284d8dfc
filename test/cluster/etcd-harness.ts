/**
 * A throwaway etcd for tests: one member (`startEtcd`) or a cluster of three (`startEtcdCluster`,
 * for quorum loss, a member down, leader changes), on 127.0.0.1, free client and peer ports, a
 * temporary data directory, each member in its own process group. `start` waits (bounded) until
 * /health answers; `stop` ends a member and may be followed by `start` again on the same ports and
 * data (the outage tests); `destroy` stops and removes everything, and runs from afterAll even when
 * a test failed.
 *
 * Without an etcd binary the suites skip with the reason, unless ISINIT_REQUIRE_ETCD is set (CI),
 * in which case they fail loudly.
 *
 * TLS: a member started with `tls` serves https:// with etcd's `--client-cert-auth`. With
 * ISINIT_TEST_ETCD_TLS=1 every member does (certificates made once per test process by pki.ts),
 * and the helpers below hand the tests' clients what they need to connect (`clientSecurity` for
 * the store, `clientEnv` for isinit and isinitd, `rawEtcd` for etcd3): the same suite then runs
 * over TLS (vitest.config.ts's cluster-tls project).
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process"
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs"
import { request as httpRequest } from "node:http"
import { request as httpsRequest } from "node:https"
import { createServer } from "node:net"
import { tmpdir } from "node:os"
import { delimiter, join } from "node:path"
import { Etcd3 } from "etcd3"
import type { EtcdSecurity } from "../../src/cluster/connection.ts"
import type { Pair } from "./pki.ts"
import { makePki } from "./pki.ts"

/** What a TLS member serves with, and the client certificate the harness itself uses. */
export interface HarnessTls {
  readonly ca: string
  readonly server: Pair
  readonly client: Pair
}

let suitePki: (HarnessTls & { readonly destroy: () => void }) | undefined

/** The TLS every member uses when ISINIT_TEST_ETCD_TLS is set (made once per test file), else none. */
export const suiteTls = (): HarnessTls | undefined => {
  const flag = process.env["ISINIT_TEST_ETCD_TLS"]
  if (flag === undefined || flag === "" || flag === "0") return undefined
  if (suitePki === undefined) {
    const pki = makePki()
    suitePki = { ca: pki.ca, server: pki.server, client: pki.client("isinit-test"), destroy: pki.destroy }
  }
  return suitePki
}

/** The suite's certificates go with the etcd that used them (the next etcd makes new ones). */
const releaseSuiteTls = (): void => {
  suitePki?.destroy()
  suitePki = undefined
}

/** The store's connection options for the suite's members (none without TLS). */
export const clientSecurity = (tls: HarnessTls | undefined = suiteTls()): EtcdSecurity | undefined =>
  tls === undefined
    ? undefined
    : {
        tls: { ca: readFileSync(tls.ca), caFile: tls.ca, client: { cert: readFileSync(tls.client.cert), key: readFileSync(tls.client.key), certFile: tls.client.cert } },
        auth: undefined,
        identity: undefined,
      }

/** The environment that points isinit and isinitd at the suite's certificates (empty without TLS). */
export const clientEnv = (tls: HarnessTls | undefined = suiteTls()): Record<string, string> =>
  tls === undefined ? {} : { ISINIT_ETCD_CACERT: tls.ca, ISINIT_ETCD_CERT: tls.client.cert, ISINIT_ETCD_KEY: tls.client.key }

/** A plain etcd3 client on `url`, for writing what the store never would. */
export const rawEtcd = (url: string, tls: HarnessTls | undefined = suiteTls()): Etcd3 =>
  new Etcd3({
    hosts: url,
    ...(tls === undefined
      ? {}
      : { credentials: { rootCertificate: readFileSync(tls.ca), certChain: readFileSync(tls.client.cert), privateKey: readFileSync(tls.client.key) } }),
  })

/** One small JSON request to a member's HTTP gateway, over TLS with the harness's certificate if it has one. */
const requestJson = (url: string, tls: HarnessTls | undefined, method: "GET" | "POST", body?: string): Promise<unknown> =>
  new Promise((resolve, reject) => {
    const options = {
      method,
      timeout: 2_000,
      ...(tls === undefined ? {} : { ca: readFileSync(tls.ca), cert: readFileSync(tls.client.cert), key: readFileSync(tls.client.key) }),
    }
    const req = (url.startsWith("https:") ? httpsRequest : httpRequest)(url, options, (response) => {
      let text = ""
      response.setEncoding("utf8").on("data", (chunk: string) => (text += chunk))
      response.on("end", () => {
        try {
          resolve(JSON.parse(text))
        } catch (error) {
          reject(error instanceof Error ? error : new Error(String(error)))
        }
      })
    })
    req.on("timeout", () => req.destroy(new Error("timed out")))
    req.on("error", reject)
    req.end(body)
  })

export type EtcdBinary =
  | { readonly _tag: "Found"; readonly path: string; readonly version: string }
  | { readonly _tag: "Missing"; readonly reason: string }

const onPath = (name: string): string | undefined =>
  (process.env["PATH"] ?? "")
    .split(delimiter)
    .filter((dir) => dir !== "")
    .map((dir) => join(dir, name))
    .find((candidate) => existsSync(candidate))

export const findEtcd = (): EtcdBinary => {
  const explicit = process.env["ISINIT_ETCD"]
  const path = explicit !== undefined && explicit !== "" ? explicit : onPath("etcd")
  if (path === undefined) return { _tag: "Missing", reason: "no etcd binary on PATH (install it with scripts/install-etcd.sh)" }
  const probe = spawnSync(path, ["--version"], { encoding: "utf8", timeout: 10_000 })
  if (probe.status !== 0) return { _tag: "Missing", reason: `${path} --version failed: ${probe.stderr || String(probe.error)}` }
  return { _tag: "Found", path, version: probe.stdout.split("\n")[0] ?? "" }
}

export const etcdRequired = (): boolean => {
  const flag = process.env["ISINIT_REQUIRE_ETCD"]
  return flag !== undefined && flag !== "" && flag !== "0"
}

/**
 * Whether the etcd suites should skip. When etcd is required but missing this throws, so the
 * test file fails instead of passing silently.
 */
export const skipWithoutEtcd = (): boolean => {
  const binary = findEtcd()
  if (binary._tag === "Found") return false
  if (etcdRequired()) throw new Error(`ISINIT_REQUIRE_ETCD is set but etcd is unusable: ${binary.reason}`)
  console.warn(`cluster tests skipped: ${binary.reason}; set ISINIT_REQUIRE_ETCD=1 to make this an error`)
  return true
}

const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      server.close(() => (port > 0 ? resolve(port) : reject(new Error("no free port"))))
    })
  })

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** Polls `check` until it returns true, up to `timeoutMs`; then throws with `what`. */
export const eventually = async (what: string, check: () => boolean | Promise<boolean>, timeoutMs = 20_000): Promise<void> => {
  const deadline = Date.now() + timeoutMs
  let lastError: unknown
  while (Date.now() < deadline) {
    try {
      if (await check()) return
    } catch (error) {
      lastError = error
    }
    await sleep(100)
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError instanceof Error ? `: ${lastError.message}` : ""}`)
}

export interface EtcdServer {
  /** `http://127.0.0.1:PORT`, for the client. */
  readonly url: string
  readonly dataDir: string
  readonly log: () => string
  readonly start: () => Promise<void>
  readonly stop: () => Promise<void>
  readonly destroy: () => Promise<void>
  readonly running: () => boolean
}

const healthy = async (url: string, tls: HarnessTls | undefined): Promise<boolean> => {
  try {
    const body = (await requestJson(`${url}/health`, tls, "GET")) as { readonly health?: unknown }
    return body.health === "true"
  } catch {
    return false
  }
}

const exited = (child: ChildProcess): Promise<void> =>
  child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : new Promise((resolve) => child.once("exit", () => resolve()))

const killGroup = (child: ChildProcess, signal: NodeJS.Signals): void => {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return
  try {
    process.kill(-child.pid, signal)
  } catch {
    // Already gone.
  }
}

/** Every etcd still running in this test process, killed at exit if a test forgot. */
const live = new Set<ChildProcess>()
process.once("exit", () => {
  for (const child of live) killGroup(child, "SIGKILL")
})

interface Ports {
  readonly client: number
  readonly peer: number
}

/** `count` pairs of distinct free loopback ports (client, peer). */
const freePorts = async (count: number): Promise<readonly Ports[]> => {
  const taken = new Set<number>()
  const next = async (): Promise<number> => {
    for (;;) {
      const port = await freePort()
      if (!taken.has(port)) {
        taken.add(port)
        return port
      }
    }
  }
  const ports: Ports[] = []
  for (let i = 0; i < count; i++) ports.push({ client: await next(), peer: await next() })
  return ports
}

const urlOf = (port: number, scheme: "http" | "https" = "http"): string => `${scheme}://127.0.0.1:${port}`

interface MemberSpec {
  readonly binary: string
  readonly name: string
  readonly dataDir: string
  readonly ports: Ports
  /** `name=peerUrl,...` of every member. */
  readonly initialCluster: string
  readonly token: string
  /** Serve clients over TLS, requiring client certificates; peers stay on plain loopback http. */
  readonly tls: HarnessTls | undefined
  /** More etcd flags (e.g. --auth-token-ttl). */
  readonly extraArgs?: readonly string[] | undefined
}

/**
 * One etcd process that can be stopped and started again on the same ports and data. `start`
 * waits (30 s at most) until the member reports itself healthy, which needs a leader: start the
 * members of a multi-member cluster together.
 */
const makeMember = (spec: MemberSpec): EtcdServer => {
  const url = urlOf(spec.ports.client, spec.tls === undefined ? "http" : "https")
  const peerUrl = urlOf(spec.ports.peer)
  const tlsArgs =
    spec.tls === undefined
      ? []
      : ["--cert-file", spec.tls.server.cert, "--key-file", spec.tls.server.key, "--trusted-ca-file", spec.tls.ca, "--client-cert-auth"]
  const args = [
    "--name", spec.name,
    "--data-dir", spec.dataDir,
    "--listen-client-urls", url,
    "--advertise-client-urls", url,
    "--listen-peer-urls", peerUrl,
    "--initial-advertise-peer-urls", peerUrl,
    "--initial-cluster", spec.initialCluster,
    "--initial-cluster-state", "new",
    "--initial-cluster-token", spec.token,
    ...tlsArgs,
    ...(spec.extraArgs ?? []),
  ]
  let output = ""
  // Held in an array (at most one element): the running etcd, if any.
  const current: ChildProcess[] = []

  const stop = async (): Promise<void> => {
    const running = current.pop()
    if (running === undefined) return
    killGroup(running, "SIGTERM")
    const grace = setTimeout(() => killGroup(running, "SIGKILL"), 10_000)
    await exited(running)
    clearTimeout(grace)
  }

  const start = async (): Promise<void> => {
    if (current.length > 0) throw new Error(`etcd ${spec.name} is already running`)
    const spawned = spawn(spec.binary, args, { detached: true, stdio: ["ignore", "pipe", "pipe"] })
    current.push(spawned)
    live.add(spawned)
    const collect = (chunk: Buffer): void => {
      output = (output + chunk.toString("utf8")).slice(-20_000)
    }
    spawned.stdout?.on("data", collect)
    spawned.stderr?.on("data", collect)
    spawned.once("exit", () => live.delete(spawned))
    const deadline = Date.now() + 30_000
    while (!(await healthy(url, spec.tls))) {
      if (spawned.exitCode !== null || spawned.signalCode !== null) {
        current.length = 0
        throw new Error(`etcd ${spec.name} exited during start (${spawned.exitCode ?? spawned.signalCode}):\n${output}`)
      }
      if (Date.now() > deadline) {
        await stop()
        throw new Error(`etcd ${spec.name} not healthy after 30 s:\n${output}`)
      }
      await sleep(100)
    }
  }

  const destroy = async (): Promise<void> => {
    await stop()
    rmSync(spec.dataDir, { recursive: true, force: true })
  }

  return { url, dataDir: spec.dataDir, log: () => output, start, stop, destroy, running: () => current.length > 0 }
}

const foundEtcd = (): string => {
  const binary = findEtcd()
  if (binary._tag === "Missing") throw new Error(binary.reason)
  return binary.path
}

/** A one-member etcd on free loopback ports (over TLS with `tls`, or the suite's TLS: see the header). */
export const startEtcd = async (
  options: { readonly name?: string; readonly tls?: HarnessTls | undefined; readonly extraArgs?: readonly string[] } = {},
): Promise<EtcdServer> => {
  const binary = foundEtcd()
  const name = options.name ?? "isinit-test"
  const root = mkdtempSync(join(tmpdir(), "isinit-etcd-"))
  const [ports] = await freePorts(1)
  if (ports === undefined) throw new Error("no free ports")
  const member = makeMember({
    binary,
    name,
    dataDir: join(root, "data"),
    ports,
    initialCluster: `${name}=${urlOf(ports.peer)}`,
    token: `isinit-${ports.client}`,
    tls: "tls" in options ? options.tls : suiteTls(),
    extraArgs: options.extraArgs,
  })
  const destroy = async (): Promise<void> => {
    await member.destroy()
    rmSync(root, { recursive: true, force: true })
    if (!("tls" in options)) releaseSuiteTls()
  }
  try {
    await member.start()
  } catch (error) {
    await destroy()
    throw error
  }
  return { ...member, destroy }
}

export interface EtcdCluster {
  readonly members: readonly EtcdServer[]
  /** Every member's client URL, comma-separated: what `--etcd` takes. */
  readonly urls: string
  /** The member that is the raft leader now (asked over HTTP), if any answers. */
  readonly leader: () => Promise<EtcdServer | undefined>
  /** Whether `member` answers and knows of no leader (quorum lost, or an election under way). */
  readonly leaderless: (member: EtcdServer) => Promise<boolean>
  readonly destroy: () => Promise<void>
}

interface MemberStatus {
  readonly header?: { readonly member_id?: string }
  /** Absent while the member knows of no leader. */
  readonly leader?: string
}

const statusOf = async (url: string): Promise<MemberStatus | undefined> => {
  try {
    return (await requestJson(`${url}/v3/maintenance/status`, suiteTls(), "POST", "{}")) as MemberStatus
  } catch {
    return undefined
  }
}

/**
 * A `size`-member etcd cluster on loopback ports (3 by default), for quorum loss, a member down
 * and leader changes. Members start together; each can be stopped and started on its own.
 */
export const startEtcdCluster = async (size = 3): Promise<EtcdCluster> => {
  const binary = foundEtcd()
  const root = mkdtempSync(join(tmpdir(), "isinit-etcd-cluster-"))
  const ports = await freePorts(size)
  const names = ports.map((_, i) => `m${i + 1}`)
  const initialCluster = ports.map((p, i) => `${names[i]}=${urlOf(p.peer)}`).join(",")
  // One token for every member: etcd derives the cluster's id from it.
  const token = `isinit-${ports[0]?.client ?? 0}`
  const members = ports.map((p, i) =>
    makeMember({ binary, name: names[i] ?? `m${i + 1}`, dataDir: join(root, `m${i + 1}`), ports: p, initialCluster, token, tls: suiteTls() }),
  )
  const destroy = async (): Promise<void> => {
    await Promise.all(members.map((m) => m.stop()))
    rmSync(root, { recursive: true, force: true })
    releaseSuiteTls()
  }
  const leader = async (): Promise<EtcdServer | undefined> => {
    for (const member of members.filter((m) => m.running())) {
      const status = await statusOf(member.url)
      if (status?.leader !== undefined && status.leader === status.header?.member_id) return member
    }
    return undefined
  }
  const leaderless = async (member: EtcdServer): Promise<boolean> => {
    const status = await statusOf(member.url)
    return status !== undefined && (status.leader === undefined || status.leader === "0")
  }
  try {
    await Promise.all(members.map((m) => m.start()))
  } catch (error) {
    await destroy()
    throw error
  }
  return { members, urls: members.map((m) => m.url).join(","), leader, leaderless, destroy }
}
