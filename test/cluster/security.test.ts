/**
 * A secure control plane against a real etcd: TLS with client certificates made here by openssl,
 * authentication on (a root user), and the roles of scripts/etcd-roles.sh. Nodes and clients log
 * in by certificate (the CN is the etcd user) or by user and password; the wrong CA, an expired
 * or foreign certificate and a wrong password each fail saying so; a node's role may not push,
 * tell, clear or forget, and a daemon that writes outside its rights logs the refusal and keeps
 * running; configs not signed by a key the node trusts are refused and show as drift; every
 * client write names its author in status, config history and the audit trail.
 */
import { spawnSync } from "node:child_process"
import { readFileSync, writeFileSync } from "node:fs"
import { join, resolve } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { EtcdServer, HarnessTls } from "./etcd-harness.ts"
import { eventually, rawEtcd, skipWithoutEtcd, startEtcd } from "./etcd-harness.ts"
import type { Lab, Node } from "./nodes.ts"
import type { OpenStore } from "./helpers.ts"
import { failure, openStore, run } from "./helpers.ts"
import { isinit, makeLab } from "./nodes.ts"
import type { Pair, Pki } from "./pki.ts"
import { hasCommand, makePki } from "./pki.ts"

const cluster = "sec"
const repoRoot = resolve(import.meta.dirname, "../..")

/** Skips (or, with ISINIT_REQUIRE_ETCD, fails) without openssl and etcdctl as well as etcd. */
const skip = (): boolean => {
  if (skipWithoutEtcd()) return true
  const missing = ["openssl", "etcdctl"].filter((c) => !hasCommand(c))
  if (missing.length === 0) return false
  if (process.env["ISINIT_REQUIRE_ETCD"]) throw new Error(`ISINIT_REQUIRE_ETCD is set but ${missing.join(" and ")} missing (scripts/install-etcd.sh)`)
  console.warn(`security tests skipped: no ${missing.join(" or ")}`)
  return true
}

interface Status {
  readonly config: { readonly seq: number; readonly by: string | null; readonly etcdUser: string | null; readonly signedBy: string | null } | null
  readonly desiredLevels: readonly { readonly group: string; readonly level: string; readonly by: string | null; readonly etcdUser: string | null; readonly at: string | null }[]
  readonly recent: readonly { readonly op: string; readonly what: string; readonly by: string; readonly etcdUser?: string; readonly at: string }[]
  readonly nodes: readonly { readonly node: string; readonly configSeq: number | null; readonly drift: boolean }[]
}

describe.skipIf(skip())("a secure control plane: TLS, authentication, roles, signed configs, audit", () => {
  let pki: Pki
  let etcd: EtcdServer
  let lab: Lab
  let root: Pair
  let passwords: string
  const certs: Record<string, Pair> = {}
  const keys: Record<string, string> = {}
  let n1: Node
  let tab: string

  /** `isinit` with TLS settings from flags, and a client certificate whose CN is `user`. */
  const as = (user: string, extra: readonly string[] = []): string[] => {
    const pair = certs[user]
    if (pair === undefined) throw new Error(`no certificate for ${user}`)
    return ["--etcd", etcd.url, "--cluster", cluster, "--etcd-cacert", pki.ca, "--etcd-cert", pair.cert, "--etcd-key", pair.key, ...extra]
  }
  const etcdctl = (...args: string[]): string => {
    const env = { ...process.env, ETCDCTL_API: "3", ETCDCTL_ENDPOINTS: etcd.url, ETCDCTL_CACERT: pki.ca, ETCDCTL_CERT: root.cert, ETCDCTL_KEY: root.key }
    const run = spawnSync(args[0] === "sh" ? "sh" : "etcdctl", args[0] === "sh" ? args.slice(1) : args, { env, encoding: "utf8", timeout: 60_000 })
    if (run.status !== 0) throw new Error(`${args.join(" ")} failed: ${run.stderr}`)
    return run.stdout
  }
  const status = async (): Promise<Status> => {
    const run = await isinit([...as("isinit-sec-operator"), "status", "--json"])
    if (run.code !== 0) throw new Error(`status failed: ${run.err}`)
    return JSON.parse(run.out) as Status
  }
  const newKey = (name: string): void => {
    const key = join(pki.dir, `${name}.key`)
    for (const args of [["genpkey", "-algorithm", "ed25519", "-out", key], ["pkey", "-in", key, "-pubout", "-out", join(pki.dir, `${name}.pub`)]]) {
      const run = spawnSync("openssl", args, { encoding: "utf8" })
      if (run.status !== 0) throw new Error(run.stderr)
    }
    keys[name] = key
  }

  beforeAll(async () => {
    pki = makePki()
    root = pki.client("root")
    for (const user of ["isinit-sec-operator", "isinit-sec-node-n1", "nobody"]) certs[user] = pki.client(user)
    const tls: HarnessTls = { ca: pki.ca, server: pki.server, client: root }
    // Tokens of password logins expire after 2 idle seconds (etcd's default is 5 minutes), so
    // a daemon that logs in by password must log in again by itself.
    etcd = await startEtcd({ tls, extraArgs: ["--auth-token-ttl", "2"] })
    passwords = join(pki.dir, "passwords")
    etcdctl("user", "add", "root", "--new-user-password=root-secret")
    etcdctl("user", "grant-role", "root", "root")
    etcdctl("sh", join(repoRoot, "scripts/etcd-roles.sh"), "-p", passwords, cluster, "n1", "n2")
    etcdctl("auth", "enable")
    newKey("trusted")
    newKey("other")
    lab = makeLab(etcd.url, cluster)
    tab = lab.write("isinittab", "web:web-server:1:respawn:exec sleep 3600\n")
    // n1 reads its TLS settings from a config file whose paths are relative to it.
    writeFileSync(join(pki.dir, "n1.conf"), `# n1\netcd-cacert = ca.crt\netcd-cert = ${certs["isinit-sec-node-n1"]?.cert}\netcd-key = ${certs["isinit-sec-node-n1"]?.key}\ntrusted-keys = trusted.pub\n`)
    n1 = lab.node("n1", { tab, env: {}, args: ["--etcd-config", join(pki.dir, "n1.conf")] })
  })

  afterAll(async () => {
    await lab?.cleanup()
    await etcd?.destroy()
    pki?.destroy()
  })

  const configUser = (cert = "nobody"): string[] => [
    ...as(cert),
    "--etcd-user", "isinit-sec-config", "--etcd-password-file", join(passwords, "isinit-sec-config.password"),
  ]

  it("connects by certificate and by password; status, config history and the audit trail name every writer", async () => {
    // The certificate's CN "nobody" has no rights: the push works by the password alone.
    const push = await isinit([...configUser(), "config", "push", tab, "--sign", keys["trusted"] ?? ""])
    expect(push.code, push.err).toBe(0)
    expect(push.out).toMatch(/pushed config #1 .*signed by key [0-9a-f]{16}/)
    await n1.start()
    expect(n1.log()).toMatch(/running config #1 from etcd/)
    expect(n1.log()).not.toMatch(/plain http/)
    const tell = await isinit([...as("isinit-sec-operator"), "tell", "web", "1", "--wait", "--timeout", "30"])
    expect(tell.code, tell.err).toBe(0)
    expect((await isinit([...as("isinit-sec-operator"), "clear", "web", "--node", "n2"])).code).toBe(0)

    const s = await status()
    expect(s.config).toMatchObject({ seq: 1, etcdUser: "isinit-sec-config", by: expect.stringMatching(/@/) as string, signedBy: expect.stringMatching(/^[0-9a-f]{16}$/) as string })
    expect(s.desiredLevels).toEqual([expect.objectContaining({ group: "web", level: "1", etcdUser: "isinit-sec-operator", by: expect.stringMatching(/@/) as string })])
    expect(s.recent.map((r) => [r.op, r.what, r.etcdUser])).toEqual([
      ["clear", "web on n2", "isinit-sec-operator"],
      ["tell", "web=1", "isinit-sec-operator"],
      ["config push", expect.stringMatching(/^config #1 \(sha256 [0-9a-f]{12}, signed by key /) as string, "isinit-sec-config"],
    ])
    const text = await isinit([...as("isinit-sec-operator"), "status"])
    expect(text.out).toMatch(/config #1 \(sha256 \w+, signed by key \w+, pushed by \S+ \(etcd user isinit-sec-config\) at /)
    expect(text.out).toMatch(/web +1 +every node +\S+ \(etcd user isinit-sec-operator\)/)
    expect(text.out).toMatch(/recent changes[^]*clear web on n2/)
    const history = await isinit([...as("isinit-sec-operator"), "config", "history"])
    expect(history.out).toMatch(/#1 +\S+ +\S+ +isinit-sec-config +[0-9a-f]{16} /)
  })

  it("a wrong CA, an expired or foreign certificate, a missing CA and a wrong password fail saying so", async () => {
    const operator = certs["isinit-sec-operator"] as Pair
    const tlsArgs = (ca: string, pair: Pair): string[] => ["--etcd", etcd.url, "--cluster", cluster, "--etcd-cacert", ca, "--etcd-cert", pair.cert, "--etcd-key", pair.key, "status"]
    const wrongCa = await isinit(tlsArgs(pki.foreignCa, operator))
    expect([wrongCa.code, wrongCa.err]).toEqual([1, expect.stringMatching(/TLS: etcd's certificate is not signed by the CA in --etcd-cacert .*foreign\.crt/) as string])
    const expired = await isinit(tlsArgs(pki.ca, pki.client("isinit-sec-operator", { days: -1 })))
    expect([expired.code, expired.err]).toEqual([2, expect.stringMatching(/--etcd-cert .* expired on 20\d\d-/) as string])
    const foreign = await isinit(tlsArgs(pki.ca, pki.client("isinit-sec-operator", { foreign: true })))
    expect([foreign.code, foreign.err]).toEqual([1, expect.stringMatching(/TLS: etcd refused the client certificate --etcd-cert .*: is it signed by a CA etcd trusts/) as string])
    const noCa = await isinit(["--etcd", etcd.url, "status"])
    expect([noCa.code, noCa.err]).toEqual([2, expect.stringMatching(/https:\/\/ etcd URLs need --etcd-cacert FILE.*does not connect unverified/) as string])
    const badPassword = join(pki.dir, "wrong.password")
    writeFileSync(badPassword, "not-it\n", { mode: 0o600 })
    const wrong = await isinit([...as("nobody"), "--etcd-user", "isinit-sec-config", "--etcd-password-file", badPassword, "status"])
    expect([wrong.code, wrong.err]).toEqual([1, expect.stringMatching(/authentication failed for etcd user "isinit-sec-config": wrong user or password/) as string])
    const onCommandLine = await isinit([...as("nobody"), "--etcd-user", "x", "--etcd-password", "y", "status"])
    expect([onCommandLine.code, onCommandLine.err]).toEqual([2, expect.stringMatching(/never on the command line/) as string])
    // The same settings from the environment reach etcd as well.
    const fromEnv = await isinit(["--etcd", etcd.url, "--cluster", cluster, "status"], { ISINIT_ETCD_CACERT: pki.ca, ISINIT_ETCD_CERT: operator.cert, ISINIT_ETCD_KEY: operator.key })
    expect(fromEnv.code, fromEnv.err).toBe(0)

    // A daemon with the wrong CA runs its local file and says why etcd stays out of reach.
    const lost = lab.node("lost", { tab, args: ["--etcd-cacert", pki.foreignCa, "--etcd-cert", operator.cert, "--etcd-key", operator.key] })
    await lost.start()
    await eventually("the TLS problem in the log", () => /etcd-outage.*TLS: etcd's certificate is not signed by the CA/.test(lost.log()))
    expect((await isinit(["-s", lost.socket, "status"])).code).toBe(0)
    await lost.kill("SIGTERM")
  })

  it("a node's role may not push, tell, clear or forget; a daemon writing outside its rights logs it and keeps running", async () => {
    const other = lab.write("node.tab", "web:web-server:1:respawn:exec sleep 3600\n# a node's own idea\n")
    for (const command of [["config", "push", other], ["tell", "web", "1"], ["clear", "web"], ["forget", "n2"]]) {
      const run = await isinit([...as("isinit-sec-node-n1"), ...command])
      expect([command.join(" "), run.code, run.err]).toEqual([
        command.join(" "),
        1,
        expect.stringMatching(/etcd refused \(.*\): permission denied: the roles of etcd user "isinit-sec-node-n1" do not allow it/) as string,
      ])
    }
    // Nor may an operator push a config: that is the config role's.
    const byOperator = await isinit([...as("isinit-sec-operator"), "config", "push", other])
    expect([byOperator.code, byOperator.err]).toEqual([1, expect.stringMatching(/permission denied: the roles of etcd user "isinit-sec-operator"/) as string])
    // n1's own override is within its rights.
    const own = await isinit(["-s", n1.socket, "web", "1"])
    expect(own.err).toMatch(/recorded in etcd as n1's override/)

    // n1's certificate used as node n2: every write of n2's keys is refused.
    const impostor = lab.node("n2", { tab, args: ["--etcd-cacert", pki.ca, "--etcd-cert", certs["isinit-sec-node-n1"]?.cert ?? "", "--etcd-key", certs["isinit-sec-node-n1"]?.key ?? ""] })
    await impostor.start()
    await eventually("the refusal logged", () => /publishing the status failed: etcd refused \(.*\): permission denied/.test(impostor.log()))
    const local = await isinit(["-s", impostor.socket, "web", "1"])
    expect(local.code, local.err).toBe(0)
    expect(local.err).toMatch(/applied here only: etcd refused the override: .*permission denied/)
    expect(impostor.running()).toBe(true)
    expect((await status()).nodes.map((n) => n.node)).toEqual(["n1"])
    await impostor.kill("SIGTERM")
  })

  it("a node's role lets it take part in failover elections with its own keys only; a move is the operator's", async () => {
    const asUser = async (user: string): Promise<OpenStore> => {
      const pair = certs[user] as Pair
      const security = { tls: { ca: readFileSync(pki.ca), caFile: pki.ca, client: { cert: readFileSync(pair.cert), key: readFileSync(pair.key), certFile: pair.cert } }, auth: undefined, identity: user }
      return openStore(etcd.url, { cluster, security })
    }
    const node = await asUser("isinit-sec-node-n1")
    const operator = await asUser("isinit-sec-operator")
    try {
      const lease = await run(node.store.leases.grant(5_000))
      const own = node.store.election("n1")
      const made = await run(own.write({ _tag: "Campaign", group: "web", lease: lease.id, instance: "i1" }))
      expect(made._tag).toBe("Done")
      expect(await run(own.write({ _tag: "Claim", lease: lease.id, instance: "i1" }))).toMatchObject({ _tag: "Done" })
      expect(await run(own.write({ _tag: "Ban", group: "web", reason: "test", ttlMs: 2_000 }))).toMatchObject({ _tag: "Done" })
      // Everything a daemon follows, in its one range: readable by the node's role.
      expect((await run(node.store.readAll())).failover.candidates.get("web")?.map((c) => c.node)).toEqual(["n1"])
      // Another node's keys, and a move: refused, as refusals (not outages).
      for (const write of [{ _tag: "Campaign", group: "web", lease: lease.id, instance: "i1" }, { _tag: "Claim", lease: lease.id, instance: "i1" }] as const) {
        expect(await run(node.store.election("n2").write(write))).toMatchObject({ _tag: "Refused", reason: expect.stringMatching(/permission denied/) as string })
      }
      expect((await failure(node.store.moveGroup("web", "n1", 5_000, "n1"))).message).toMatch(/permission denied/)
      expect((await run(operator.store.moveGroup("web", "n1", 5_000, "op"))).revision).toBeGreaterThan(0)
      await run(node.store.leases.revoke(lease.id))
    } finally {
      await node.close()
      await operator.close()
    }
  })

  it("a node logged in by password goes on working after its etcd token expired", async () => {
    const nobody = certs["nobody"] as Pair
    const n2 = lab.node("n2", {
      tab,
      args: ["--etcd-cacert", pki.ca, "--etcd-cert", nobody.cert, "--etcd-key", nobody.key, "--etcd-user", "isinit-sec-node-n2"],
      env: { ISINIT_ETCD_PASSWORD_FILE: join(passwords, "isinit-sec-node-n2.password") },
    })
    await n2.start()
    await eventually("n2 live", async () => (await status()).nodes.some((n) => n.node === "n2"))
    // Idle for longer than the token lives.
    await new Promise((resolve) => setTimeout(resolve, 5_000))
    const tell = await isinit([...as("isinit-sec-operator"), "tell", "web", "1", "--node", "n2", "--wait", "--timeout", "30"])
    expect(tell.code, `${tell.err}\n${n2.log()}`).toBe(0)
    expect(n2.log()).not.toMatch(/etcd refused/)
    await n2.kill("SIGTERM")
  })

  it("a password given in ISINIT_ETCD_PASSWORD reaches no service: the daemon reads it, then drops it from its environment", async () => {
    const nobody = certs["nobody"] as Pair
    const secret = readFileSync(join(passwords, "isinit-sec-node-n2.password"), "utf8").trim()
    const n2 = lab.node("n2", {
      tab,
      args: ["--etcd-cacert", pki.ca, "--etcd-cert", nobody.cert, "--etcd-key", nobody.key, "--etcd-user", "isinit-sec-node-n2"],
      env: { ISINIT_ETCD_PASSWORD: secret },
    })
    await n2.start()
    const tell = await isinit([...as("isinit-sec-operator"), "tell", "web", "1", "--node", "n2", "--wait", "--timeout", "30"])
    expect(tell.code, `${tell.err}\n${n2.log()}`).toBe(0)
    const pid = await eventually("the service started", () => /web web-server started pid=(\d+)/.exec(n2.log())?.[1] !== undefined)
      .then(() => Number(/web web-server started pid=(\d+)/.exec(n2.log())?.[1]))
    const environ = readFileSync(`/proc/${pid}/environ`, "latin1").split("\0")
    expect(environ.some((v) => v.startsWith("ISINIT_NODE=n2"))).toBe(true)
    expect(environ.filter((v) => v.startsWith("ISINIT_ETCD_PASSWORD"))).toEqual([])
    await n2.kill("SIGTERM")
  })

  it("the operator's role drives a rolling tell (its record, driver key, overrides and audit records); a node's role may not", async () => {
    // n1's own override (its local tell, above) would keep it out of the rollout.
    expect((await isinit([...as("isinit-sec-operator"), "clear", "web", "--node", "n1"])).code).toBe(0)
    const roll = await isinit([...as("isinit-sec-operator"), "tell", "web", "1", "--rolling", "1", "--wait", "--timeout", "30"])
    expect(roll.code, roll.err).toBe(0)
    expect(roll.out).toMatch(/web=1 rolled out: reached \(run\) on n1/)
    const recent = (await status()).recent.filter((r) => r.op === "rollout")
    expect(recent.map((r) => [r.what, r.etcdUser])).toEqual([
      ["web=1 rolled out: set cluster-wide, 1 override cleared", "isinit-sec-operator"],
      ["web=1 batch 1: n1", "isinit-sec-operator"],
      ["web=1 rolling over 1 node, 1 at a time", "isinit-sec-operator"],
    ])
    for (const command of [["tell", "web", "1", "--rolling", "1"], ["rollout", "abort", "web"]]) {
      const run = await isinit([...as("isinit-sec-node-n1"), ...command])
      expect([command.join(" "), run.code, run.err]).toEqual([command.join(" "), 1, expect.stringMatching(/etcd refused \(read rollout\): permission denied/) as string])
    }
  })

  it("refuses an unsigned, a foreign-signed and a tampered config on every node: logged, shown as drift", async () => {
    const changed = lab.write("changed.tab", "web:web-server:1:respawn:exec sleep 3600\n# changed\n")
    const attempts: readonly (readonly [string, readonly string[], RegExp])[] = [
      ["unsigned", [], /not signed, and this node accepts only configs signed by a trusted key/],
      ["foreign-signed", ["--sign", keys["other"] ?? ""], /signed by key [0-9a-f]{16}, which this node does not trust/],
    ]
    for (const [what, sign, reason] of attempts) {
      const push = await isinit([...configUser(), "config", "push", changed, ...sign])
      expect(push.code, `${what}: ${push.err}`).toBe(0)
      await eventually(`${what} refused by n1`, () => reason.test(n1.log()))
      const s = await status()
      expect(s.nodes).toEqual([expect.objectContaining({ node: "n1", configSeq: 1, drift: true })])
    }
    expect((await isinit([...as("isinit-sec-operator"), "status"])).out).toMatch(/^n1 .*#1 DRIFT/m)

    // The trusted key's signature moved onto another push number no longer matches.
    const raw = rawEtcd(etcd.url, { ca: pki.ca, server: pki.server, client: root })
    try {
      const stored = JSON.parse((await raw.get(`/isinit/${cluster}/history/0000000001`).string()) ?? "{}") as Record<string, unknown>
      await raw.put(`/isinit/${cluster}/config`).value(JSON.stringify({ ...stored, seq: 9 }))
    } finally {
      raw.close()
    }
    await eventually("the tampered config refused", () => /does not match this config \(cluster sec, #9/.test(n1.log()))

    const signed = await isinit([...configUser(), "config", "push", changed, "--sign", keys["trusted"] ?? ""])
    expect(signed.code, signed.err).toBe(0)
    await eventually("n1 on the signed config", async () => (await status()).nodes.some((n) => n.node === "n1" && !n.drift && n.configSeq === 10))
  })
})
