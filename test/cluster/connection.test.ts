/**
 * How isinit reaches etcd, before any connection: settings from flags over the environment over
 * the config file; https needs a CA; TLS flags need https; a password never from the command line
 * and never empty; and signed configs: a signature binds cluster, push number and text.
 */
import { generateKeyPairSync } from "node:crypto"
import { chmodSync, mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as E from "fp-ts/lib/Either.js"
import { describe, expect, it } from "vitest"
import { loadAccess, mergeSettings, parseSettingsFile } from "../../src/cluster/connection.ts"
import { keyIdOf, loadTrustedKeys, signConfig, signatureProblem } from "../../src/cluster/signing.ts"
import { sha256Of } from "../../src/cluster/codecs.ts"

const dir = mkdtempSync(join(tmpdir(), "isinit-connection-"))
const file = (name: string, text: string, mode = 0o600): string => {
  const path = join(dir, name)
  writeFileSync(path, text)
  chmodSync(path, mode)
  return path
}
const left = <A>(either: E.Either<string, A>): string => (E.isLeft(either) ? either.left : `unexpected success: ${JSON.stringify(either.right)}`)

describe("etcd settings", () => {
  it("reads name = value lines, paths relative to the file, and names the line of a mistake", () => {
    const parsed = parseSettingsFile("# comment\n\netcd = https://10.0.0.1:2379\netcd-cacert = pki/ca.crt\ncluster=prod\n", "/etc/isinit/etcd.conf")
    expect(parsed).toEqual(E.right({ etcd: "https://10.0.0.1:2379", "etcd-cacert": "/etc/isinit/pki/ca.crt", cluster: "prod" }))
    expect(left(parseSettingsFile("etcd = x\ncacert = y\n", "f"))).toMatch(/^f:2: unknown setting "cacert" \(known: etcd, cluster/)
    expect(left(parseSettingsFile("etcd-password = hunter2\n", "f"))).toMatch(/^f:1: no passwords in this file/)
    expect(left(parseSettingsFile("etcd = a\netcd = b\n", "f"))).toMatch(/^f:2: etcd is set twice/)
    expect(left(parseSettingsFile("just words\n", "f"))).toMatch(/^f:1: expected NAME = VALUE/)
  })

  it("takes a flag over the environment over the file", () => {
    const fileSettings = { "etcd-cacert": "/file/ca", "etcd-cert": "/file/cert", "etcd-key": "/file/key", etcd: "https://file" }
    const env = { ISINIT_ETCD_CACERT: "/env/ca", ISINIT_ETCD_CERT: "/env/cert", ISINIT_ETCD: "https://ignored" }
    expect(mergeSettings({ "etcd-cacert": "/flag/ca" }, env, fileSettings)).toEqual({
      etcd: "https://file",
      "etcd-cacert": "/flag/ca",
      "etcd-cert": "/env/cert",
      "etcd-key": "/file/key",
    })
  })

  it("refuses https without a CA, TLS files with http, mixed schemes, half a certificate and passwords without users", () => {
    const ca = file("not-a-cert.pem", "nonsense")
    expect(left(loadAccess({ etcd: "https://10.0.0.1:2379" }, {}))).toMatch(/need --etcd-cacert FILE.*does not connect unverified/)
    expect(left(loadAccess({ etcd: "http://10.0.0.1:2379", "etcd-cacert": ca }, {}))).toMatch(/--etcd-cacert needs https:\/\/ etcd URLs/)
    expect(left(loadAccess({ etcd: "https://a:1,http://b:2", "etcd-cacert": ca }, {}))).toMatch(/mixes http:\/\/ and https:\/\//)
    expect(left(loadAccess({ etcd: "https://a:1", "etcd-cacert": ca }, {}))).toMatch(/--etcd-cacert .* is not a PEM certificate/)
    expect(left(loadAccess({ etcd: "unix://x" }, {}))).toMatch(/not an http:\/\/ or https:\/\/ URL/)
    expect(left(loadAccess({ etcd: "http://a:1", "etcd-user": "bob" }, {}))).toMatch(/--etcd-user bob needs a password: --etcd-password-file FILE or \$ISINIT_ETCD_PASSWORD/)
    expect(left(loadAccess({ etcd: "http://a:1", "etcd-password-file": "/x" }, {}))).toMatch(/--etcd-password-file needs --etcd-user/)
    expect(left(loadAccess({ etcd: "http://a:1", "etcd-user": "bob", "etcd-password-file": file("empty", "\n") }, {}))).toMatch(/is empty/)
  })

  it("reads the password from its file (without the final newline) or the environment, and says what is insecure", () => {
    const plain = loadAccess({ etcd: "http://a:1" }, {})
    expect(E.isRight(plain) && plain.right.insecure).toMatch(/plain http without authentication: anyone who can reach etcd can push a config/)
    expect(E.isRight(plain) && plain.right.security).toBeUndefined()
    const withFile = loadAccess({ etcd: "http://a:1", "etcd-user": "bob", "etcd-password-file": file("pw", "s3cret\n", 0o644) }, {})
    expect(E.isRight(withFile) && withFile.right.security?.auth).toEqual({ user: "bob", password: "s3cret" })
    expect(E.isRight(withFile) && withFile.right.security?.identity).toBe("bob")
    expect(E.isRight(withFile) && withFile.right.insecure).toMatch(/password and every config travel unencrypted/)
    expect(E.isRight(withFile) && withFile.right.warnings).toEqual([expect.stringMatching(/--etcd-password-file .* is readable by every user: chmod o-r/)])
    const fromEnv = loadAccess({ etcd: "http://a:1", "etcd-user": "bob" }, { ISINIT_ETCD_PASSWORD: "from-env" })
    expect(E.isRight(fromEnv) && fromEnv.right.security?.auth?.password).toBe("from-env")
  })
})

describe("signed configs", () => {
  const { privateKey, publicKey } = generateKeyPairSync("ed25519")
  const other = generateKeyPairSync("ed25519")
  const trusted = new Map([[keyIdOf(publicKey), publicKey]])
  const sha256 = sha256Of("web:a:1:respawn:sleep 1\n")

  it("accepts a config signed by a trusted key for this cluster and push number, and nothing else", () => {
    const signature = signConfig(privateKey, "prod", 3, sha256)
    expect(signature.keyId).toBe(keyIdOf(publicKey))
    expect(signatureProblem(trusted, "prod", { seq: 3, sha256, signature })).toBeUndefined()
    expect(signatureProblem(trusted, "prod", { seq: 4, sha256, signature })).toMatch(/does not match this config \(cluster prod, #4/)
    expect(signatureProblem(trusted, "test", { seq: 3, sha256, signature })).toMatch(/does not match/)
    expect(signatureProblem(trusted, "prod", { seq: 3, sha256: sha256Of("other"), signature })).toMatch(/does not match/)
    expect(signatureProblem(trusted, "prod", { seq: 3, sha256 })).toMatch(/^not signed/)
    expect(signatureProblem(trusted, "prod", { seq: 3, sha256, signature: signConfig(other.privateKey, "prod", 3, sha256) })).toMatch(/which this node does not trust/)
  })

  it("reads several trusted keys from one file and refuses a key that is not Ed25519", () => {
    const pem = (key: typeof publicKey): string => key.export({ type: "spki", format: "pem" }).toString()
    const keys = loadTrustedKeys(file("trusted.pem", `${pem(publicKey)}\n${pem(other.publicKey)}`))
    expect(E.isRight(keys) && [...keys.right.keys()].sort()).toEqual([keyIdOf(publicKey), keyIdOf(other.publicKey)].sort())
    const rsa = generateKeyPairSync("rsa", { modulusLength: 1024 }).publicKey
    expect(left(loadTrustedKeys(file("rsa.pem", pem(rsa))))).toMatch(/key 1 is rsa, not Ed25519/)
    expect(left(loadTrustedKeys(file("none.pem", "nothing")))).toMatch(/no PEM public key in it/)
  })
})
