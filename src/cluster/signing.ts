/**
 * Signed configs. A config in etcd runs commands as root on every node, so a stolen etcd
 * credential that may push one is a stolen fleet. A node given `--trusted-keys FILE` therefore
 * applies only configs signed with the private half of one of those Ed25519 keys; the key stays
 * with whoever approves configs (`isinit --etcd ... config push FILE --sign KEY`), off the etcd
 * hosts and out of etcd.
 *
 * What is signed: the cluster's name, the push number and the text's sha256 (signedText), so a
 * signature cannot be moved to another cluster or to another push number. What it cannot stop:
 * someone who may write the config key can put back an older signed config, exactly as it was
 * (its own number and signature): the nodes accept it, as they would have then. docs/cluster.md
 * says so.
 */
import type { KeyObject } from "node:crypto"
import { createHash, createPrivateKey, createPublicKey, sign, verify } from "node:crypto"
import { readFileSync } from "node:fs"
import * as E from "fp-ts/lib/Either.js"

/** A config's signature as stored beside it: which key, and the Ed25519 signature in base64. */
export interface ConfigSignature {
  readonly keyId: string
  readonly signature: string
}

/** Public keys a node accepts configs from, by key id. */
export type TrustedKeys = ReadonlyMap<string, KeyObject>

/** A short, stable name for a public key: the start of the sha256 of its DER form (SPKI). */
export const keyIdOf = (key: KeyObject): string =>
  createHash("sha256")
    .update((key.type === "private" ? createPublicKey(key) : key).export({ type: "spki", format: "der" }))
    .digest("hex")
    .slice(0, 16)

/** The bytes a signature covers. */
export const signedText = (cluster: string, seq: number, sha256: string): Buffer =>
  Buffer.from(`isinit config v1\ncluster ${cluster}\nseq ${seq}\nsha256 ${sha256}\n`, "utf8")

const messageOf = (error: unknown): string => (error instanceof Error ? error.message : String(error))

/** The private key of `config push --sign FILE`: PEM, Ed25519 (`openssl genpkey -algorithm ed25519`). */
export const loadSigningKey = (file: string): E.Either<string, KeyObject> => {
  try {
    const key = createPrivateKey(readFileSync(file))
    if (key.asymmetricKeyType !== "ed25519") return E.left(`--sign ${file}: an Ed25519 key is needed, not ${key.asymmetricKeyType ?? "?"} (openssl genpkey -algorithm ed25519)`)
    return E.right(key)
  } catch (error) {
    return E.left(`--sign ${file}: not a readable PEM private key: ${messageOf(error)}`)
  }
}

/** `--trusted-keys FILE`: one or more PEM Ed25519 public keys, one after the other. */
export const loadTrustedKeys = (file: string): E.Either<string, TrustedKeys> => {
  let text: string
  try {
    text = readFileSync(file, "utf8")
  } catch (error) {
    return E.left(`--trusted-keys: cannot read ${file}: ${messageOf(error)}`)
  }
  const blocks = text.match(/-----BEGIN PUBLIC KEY-----[\s\S]*?-----END PUBLIC KEY-----/g) ?? []
  if (blocks.length === 0) return E.left(`--trusted-keys ${file}: no PEM public key in it (openssl pkey -in KEY -pubout)`)
  const keys = new Map<string, KeyObject>()
  for (const [i, block] of blocks.entries()) {
    try {
      const key = createPublicKey(block)
      if (key.asymmetricKeyType !== "ed25519") return E.left(`--trusted-keys ${file}: key ${i + 1} is ${key.asymmetricKeyType ?? "?"}, not Ed25519`)
      keys.set(keyIdOf(key), key)
    } catch (error) {
      return E.left(`--trusted-keys ${file}: key ${i + 1} is not a PEM public key: ${messageOf(error)}`)
    }
  }
  return E.right(keys)
}

export const signConfig = (key: KeyObject, cluster: string, seq: number, sha256: string): ConfigSignature => ({
  keyId: keyIdOf(key),
  signature: sign(null, signedText(cluster, seq, sha256), key).toString("base64"),
})

/** Why a node refuses this config under `trusted`, or undefined when a trusted key signed it. */
export const signatureProblem = (
  trusted: TrustedKeys,
  cluster: string,
  value: { readonly seq: number; readonly sha256: string; readonly signature?: ConfigSignature | undefined },
): string | undefined => {
  const known = [...trusted.keys()].join(", ")
  if (value.signature === undefined) return `not signed, and this node accepts only configs signed by a trusted key (${known}): push it with --sign`
  const key = trusted.get(value.signature.keyId)
  if (key === undefined) return `signed by key ${value.signature.keyId}, which this node does not trust (trusted: ${known})`
  const ok = verify(null, signedText(cluster, value.seq, value.sha256), key, Buffer.from(value.signature.signature, "base64"))
  return ok ? undefined : `the signature by key ${value.signature.keyId} does not match this config (cluster ${cluster}, #${value.seq}, sha256 ${value.sha256.slice(0, 12)})`
}
