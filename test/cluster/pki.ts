/**
 * Certificates for the TLS tests, made with `openssl` as an operator would: a CA, etcd's server
 * certificate for 127.0.0.1, and client certificates whose CN is the etcd user. Also the odd ones
 * the tests need: an expired certificate, and one signed by a foreign CA.
 */
import { spawnSync } from "node:child_process"
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { delimiter, join } from "node:path"

const openssl = (dir: string, args: readonly string[]): void => {
  const run = spawnSync("openssl", args, { cwd: dir, encoding: "utf8", timeout: 30_000 })
  if (run.status !== 0) throw new Error(`openssl ${args.join(" ")} failed: ${run.stderr || String(run.error)}`)
}

export const hasCommand = (name: string): boolean =>
  (process.env["PATH"] ?? "").split(delimiter).some((dir) => dir !== "" && existsSync(join(dir, name)))

export interface Pair {
  readonly cert: string
  readonly key: string
}

export interface Pki {
  readonly dir: string
  readonly ca: string
  /** Another CA, which etcd does not trust. */
  readonly foreignCa: string
  readonly server: Pair
  /** A client certificate signed by the CA; `days` below zero makes one that has expired. */
  readonly client: (cn: string, options?: { readonly days?: number; readonly foreign?: boolean }) => Pair
  /** Removes every key and certificate. */
  readonly destroy: () => void
}

const newKey = (dir: string, name: string): void => openssl(dir, ["genpkey", "-algorithm", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", `${name}.key`])

const makeCa = (dir: string, name: string): string => {
  newKey(dir, name)
  openssl(dir, ["req", "-x509", "-new", "-key", `${name}.key`, "-subj", `/CN=${name}`, "-days", "2", "-out", `${name}.crt`])
  return join(dir, `${name}.crt`)
}

/** A leaf certificate for `cn`, signed by `ca`, good for both ends of TLS on 127.0.0.1. */
const makeLeaf = (dir: string, name: string, cn: string, ca: string, days: number): Pair => {
  writeFileSync(
    join(dir, `${name}.ext`),
    "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n",
  )
  newKey(dir, name)
  openssl(dir, ["req", "-new", "-key", `${name}.key`, "-subj", `/CN=${cn}`, "-out", `${name}.csr`])
  openssl(dir, ["x509", "-req", "-in", `${name}.csr`, "-CA", `${ca}.crt`, "-CAkey", `${ca}.key`, "-CAcreateserial", "-days", String(days), "-extfile", `${name}.ext`, "-out", `${name}.crt`])
  return { cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) }
}

export const makePki = (): Pki => {
  const dir = mkdtempSync(join(tmpdir(), "isinit-pki-"))
  const ca = makeCa(dir, "ca")
  const foreignCa = makeCa(dir, "foreign")
  const server = makeLeaf(dir, "server", "etcd", "ca", 2)
  let count = 0
  const client: Pki["client"] = (cn, options = {}) => {
    count += 1
    return makeLeaf(dir, `client${count}`, cn, options.foreign === true ? "foreign" : "ca", options.days ?? 2)
  }
  return { dir, ca, foreignCa, server, client, destroy: () => rmSync(dir, { recursive: true, force: true }) }
}
