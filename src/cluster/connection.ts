/**
 * How isinit and isinitd reach etcd: the URLs, TLS (a CA, and a client certificate and key) and
 * credentials (an etcd user and its password), checked and read before any connection is made.
 *
 * Settings come from three places, the first that has one winning: the command line (flags in
 * etcdctl's style), the environment (`ISINIT_ETCD_CACERT`, ...), and a small config file
 * (`--etcd-config FILE` or `$ISINIT_ETCD_CONFIG`: one `name = value` a line, the names being the
 * long flags without their dashes), so that nothing secret need appear in `ps`. A password never
 * comes from the command line: only from a file or `$ISINIT_ETCD_PASSWORD`.
 *
 * Never unverified: an `https://` URL without a CA is refused (etcd's certificates come from a
 * private CA; trusting the system's public CAs would let any publicly signed certificate for that
 * address in). A client certificate is checked here (readable, not expired, matching its key), so
 * the common mistakes get a precise message instead of a TLS alert from etcd.
 */
import { X509Certificate, createPrivateKey } from "node:crypto"
import { readFileSync, statSync } from "node:fs"
import { dirname, resolve } from "node:path"
import * as E from "fp-ts/lib/Either.js"

/** What the etcd client needs for TLS and authentication (store/client.ts). */
export interface EtcdSecurity {
  readonly tls:
    | {
        readonly ca: Buffer
        readonly caFile: string
        /** The client certificate: with etcd's `--client-cert-auth` and auth on, its CN is the etcd user. */
        readonly client: { readonly cert: Buffer; readonly key: Buffer; readonly certFile: string } | undefined
      }
    | undefined
  readonly auth: { readonly user: string; readonly password: string } | undefined
  /** Whom etcd sees: the user, else the client certificate's CN; undefined without either. */
  readonly identity: string | undefined
}

/** Every setting, named as its long flag. */
export const settingNames = [
  "etcd",
  "cluster",
  "node",
  "lease-ttl",
  "etcd-cacert",
  "etcd-cert",
  "etcd-key",
  "etcd-user",
  "etcd-password-file",
  "trusted-keys",
] as const
export type SettingName = (typeof settingNames)[number]
export type Settings = Partial<Record<SettingName, string>>

/** The environment variables for settings that may come from the environment. */
const envOf: Partial<Record<SettingName, string>> = {
  "etcd-cacert": "ISINIT_ETCD_CACERT",
  "etcd-cert": "ISINIT_ETCD_CERT",
  "etcd-key": "ISINIT_ETCD_KEY",
  "etcd-user": "ISINIT_ETCD_USER",
  "etcd-password-file": "ISINIT_ETCD_PASSWORD_FILE",
  "trusted-keys": "ISINIT_TRUSTED_KEYS",
}
export const passwordEnv = "ISINIT_ETCD_PASSWORD"

/** The settings given as flags among `names` (parseArgs values; a flag not given is absent). */
export const flagSettings = (values: Readonly<Partial<Record<SettingName, unknown>>>, names: readonly SettingName[]): Settings => {
  const flags: Settings = {}
  for (const name of names) {
    const value = values[name]
    if (typeof value === "string") flags[name] = value
  }
  return flags
}
export const configFileEnv = "ISINIT_ETCD_CONFIG"

/** Settings whose values are file paths: relative ones in a config file are relative to that file. */
const pathSettings = new Set<SettingName>(["etcd-cacert", "etcd-cert", "etcd-key", "etcd-password-file", "trusted-keys"])

const isSettingName = (name: string): name is SettingName => (settingNames as readonly string[]).includes(name)

/** A config file's settings; errors name the file and line. */
export const parseSettingsFile = (text: string, file: string): E.Either<string, Settings> => {
  const settings: Settings = {}
  const lines = text.split("\n")
  for (let i = 0; i < lines.length; i++) {
    const line = (lines[i] ?? "").trim()
    if (line === "" || line.startsWith("#")) continue
    const where = `${file}:${i + 1}`
    const eq = line.indexOf("=")
    if (eq < 0) return E.left(`${where}: expected NAME = VALUE, e.g. etcd-cacert = /etc/isinit/ca.crt`)
    const name = line.slice(0, eq).trim()
    const value = line.slice(eq + 1).trim()
    if (name === "etcd-password") return E.left(`${where}: no passwords in this file: put it in a file of its own, named by etcd-password-file`)
    if (!isSettingName(name)) return E.left(`${where}: unknown setting "${name}" (known: ${settingNames.join(", ")})`)
    if (settings[name] !== undefined) return E.left(`${where}: ${name} is set twice`)
    if (value === "") return E.left(`${where}: ${name} has no value`)
    settings[name] = pathSettings.has(name) ? resolve(dirname(file), value) : value
  }
  return E.right(settings)
}

/** Flags over the environment over the file. */
export const mergeSettings = (flags: Settings, env: NodeJS.ProcessEnv, file: Settings): Settings => {
  const merged: Settings = {}
  for (const name of settingNames) {
    const envName = envOf[name]
    const fromEnv = envName === undefined ? undefined : env[envName]
    const value = flags[name] ?? (fromEnv === undefined || fromEnv === "" ? undefined : fromEnv) ?? file[name]
    if (value !== undefined) merged[name] = value
  }
  return merged
}

/** The settings of `--etcd-config` (or `$ISINIT_ETCD_CONFIG`), none without either. */
export const readSettingsFile = (file: string | undefined): E.Either<string, Settings> => {
  if (file === undefined || file === "") return E.right({})
  try {
    return parseSettingsFile(readFileSync(file, "utf8"), file)
  } catch (error) {
    return E.left(`cannot read the etcd config file ${file}: ${messageOf(error)}`)
  }
}

const messageOf = (error: unknown): string => (error instanceof Error ? error.message : String(error))

/** The URLs, and whether they use TLS; mixed schemes are refused (one client, one kind of channel). */
const schemeOf = (hosts: string): E.Either<string, "http" | "https"> => {
  const urls = hosts.split(",").map((h) => h.trim()).filter((h) => h !== "")
  if (urls.length === 0) return E.left("--etcd takes etcd client URLs, e.g. https://10.0.0.1:2379")
  const schemes = new Set(urls.map((u) => (u.startsWith("https://") ? "https" : "http")))
  const bad = urls.find((u) => /^[a-z][a-z0-9+.-]*:\/\//i.test(u) && !/^https?:\/\//.test(u))
  if (bad !== undefined) return E.left(`--etcd: "${bad}" is not an http:// or https:// URL`)
  if (schemes.size > 1) return E.left("--etcd mixes http:// and https:// URLs: use https:// for every member")
  return E.right(schemes.has("https") ? "https" : "http")
}

const readFile = (what: string, file: string): E.Either<string, Buffer> => {
  try {
    return E.right(readFileSync(file))
  } catch (error) {
    return E.left(`${what}: cannot read ${file}: ${messageOf(error)}`)
  }
}

/** A warning when a secret file may be read by other users (ssh refuses such keys; we say so). */
const exposure = (what: string, file: string): string | undefined => {
  try {
    return (statSync(file).mode & 0o004) === 0 ? undefined : `${what} ${file} is readable by every user: chmod o-r ${file}`
  } catch {
    return undefined
  }
}

const commonName = (cert: X509Certificate): string | undefined => /(?:^|\n)CN=([^\n]+)/.exec(cert.subject)?.[1]

type ClientCert = NonNullable<NonNullable<EtcdSecurity["tls"]>["client"]>

/** The client certificate and key: both or neither; parsed, in date, and belonging together. */
const clientCert = (settings: Settings, now: Date): E.Either<string, { readonly client: ClientCert; readonly cn: string | undefined } | undefined> => {
  const certFile = settings["etcd-cert"]
  const keyFile = settings["etcd-key"]
  if (certFile === undefined && keyFile === undefined) return E.right(undefined)
  if (certFile === undefined || keyFile === undefined) return E.left("--etcd-cert and --etcd-key go together: give both, or neither")
  const cert = readFile("--etcd-cert", certFile)
  if (E.isLeft(cert)) return cert
  const key = readFile("--etcd-key", keyFile)
  if (E.isLeft(key)) return key
  let x509: X509Certificate
  try {
    x509 = new X509Certificate(cert.right)
  } catch (error) {
    return E.left(`--etcd-cert ${certFile} is not a PEM certificate: ${messageOf(error)}`)
  }
  if (new Date(x509.validTo) < now) return E.left(`--etcd-cert ${certFile} expired on ${new Date(x509.validTo).toISOString()}: etcd will refuse it`)
  if (new Date(x509.validFrom) > now) return E.left(`--etcd-cert ${certFile} is not valid before ${new Date(x509.validFrom).toISOString()} (check the clocks)`)
  try {
    if (!x509.checkPrivateKey(createPrivateKey(key.right))) return E.left(`--etcd-key ${keyFile} is not the key of --etcd-cert ${certFile}`)
  } catch (error) {
    return E.left(`--etcd-key ${keyFile} is not a PEM private key: ${messageOf(error)}`)
  }
  return E.right({ client: { cert: cert.right, key: key.right, certFile }, cn: commonName(x509) })
}

/** `--etcd-user` and its password: from `--etcd-password-file` or `$ISINIT_ETCD_PASSWORD`. */
const credentials = (settings: Settings, env: NodeJS.ProcessEnv): E.Either<string, EtcdSecurity["auth"]> => {
  const user = settings["etcd-user"]
  const file = settings["etcd-password-file"]
  const fromEnv = env[passwordEnv]
  if (user === undefined) {
    return file === undefined ? E.right(undefined) : E.left("--etcd-password-file needs --etcd-user NAME")
  }
  if (file === undefined && (fromEnv === undefined || fromEnv === "")) {
    return E.left(`--etcd-user ${user} needs a password: --etcd-password-file FILE or $${passwordEnv} (never on the command line)`)
  }
  if (file === undefined) return E.right({ user, password: fromEnv ?? "" })
  const text = readFile("--etcd-password-file", file)
  if (E.isLeft(text)) return text
  // A trailing newline is an editor's, not part of the password.
  const password = text.right.toString("utf8").replace(/\r?\n$/, "")
  return password === "" ? E.left(`--etcd-password-file ${file} is empty`) : E.right({ user, password })
}

export interface EtcdAccess {
  /** The etcd client URLs, comma-separated. */
  readonly hosts: string
  readonly security: EtcdSecurity | undefined
  /** Set when nothing protects the connection: isinitd says so once at start. */
  readonly insecure: string | undefined
  /** Things to fix that do not stop the connection (secret files others may read). */
  readonly warnings: readonly string[]
}

const tlsOf = (settings: Settings, scheme: "http" | "https", now: Date): E.Either<string, { readonly tls: EtcdSecurity["tls"]; readonly cn: string | undefined }> => {
  const caFile = settings["etcd-cacert"]
  if (scheme === "http") {
    const tlsFlag = (["etcd-cacert", "etcd-cert", "etcd-key"] as const).find((n) => settings[n] !== undefined)
    return tlsFlag === undefined ? E.right({ tls: undefined, cn: undefined }) : E.left(`--${tlsFlag} needs https:// etcd URLs: over http:// nothing is encrypted`)
  }
  if (caFile === undefined) {
    return E.left("https:// etcd URLs need --etcd-cacert FILE, the CA that signed etcd's certificates: isinit does not connect unverified")
  }
  const ca = readFile("--etcd-cacert", caFile)
  if (E.isLeft(ca)) return ca
  try {
    new X509Certificate(ca.right)
  } catch (error) {
    return E.left(`--etcd-cacert ${caFile} is not a PEM certificate: ${messageOf(error)}`)
  }
  const client = clientCert(settings, now)
  if (E.isLeft(client)) return client
  return E.right({ tls: { ca: ca.right, caFile, client: client.right?.client }, cn: client.right?.cn })
}

/** Checks the settings and reads the files they name: how to reach etcd, or why not. */
export const loadAccess = (settings: Settings, env: NodeJS.ProcessEnv, now = new Date()): E.Either<string, EtcdAccess> => {
  const hosts = settings.etcd
  if (hosts === undefined) return E.left("no etcd URLs: give --etcd URLS, or etcd = URLS in the --etcd-config file")
  const scheme = schemeOf(hosts)
  if (E.isLeft(scheme)) return scheme
  const tls = tlsOf(settings, scheme.right, now)
  if (E.isLeft(tls)) return tls
  const auth = credentials(settings, env)
  if (E.isLeft(auth)) return auth
  const identity = auth.right?.user ?? tls.right.cn
  const security: EtcdSecurity | undefined =
    tls.right.tls === undefined && auth.right === undefined ? undefined : { tls: tls.right.tls, auth: auth.right, identity }
  const warnings = [
    ...(settings["etcd-key"] === undefined ? [] : [exposure("--etcd-key", settings["etcd-key"])]),
    ...(settings["etcd-password-file"] === undefined ? [] : [exposure("--etcd-password-file", settings["etcd-password-file"])]),
  ].filter((w): w is string => w !== undefined)
  return E.right({ hosts, security, insecure: insecurityOf(scheme.right, auth.right !== undefined), warnings })
}

/**
 * grpc-js names an IP address as the TLS server name when a URL holds one, and Node then warns
 * (DEP0123) on every connection: a note for grpc's authors that would read to an operator as
 * trouble on every command. The CLIs call this once TLS is in use; it silences deprecation
 * warnings only, which are meant for developers.
 */
export const quietTlsDeprecation = (access: EtcdAccess): void => {
  if (access.security?.tls !== undefined) process.noDeprecation = true
}

const insecurityOf = (scheme: "http" | "https", authenticated: boolean): string | undefined => {
  if (scheme === "https") return undefined
  return authenticated
    ? "etcd over plain http: the etcd password and every config travel unencrypted; use https:// with --etcd-cacert (docs/cluster.md, \"Security\")"
    : "etcd over plain http without authentication: anyone who can reach etcd can push a config that runs commands as root on every node; see docs/cluster.md, \"Security\""
}

/**
 * What a failed TLS handshake means, in the operator's terms; undefined when `detail` is not a
 * TLS failure. gRPC reports them all as UNAVAILABLE with OpenSSL's words inside.
 */
export const tlsProblem = (detail: string, security: EtcdSecurity | undefined): string | undefined => {
  const tls = security?.tls
  const said = /alert [a-z ]+|unable to verify the first certificate|unable to get local issuer certificate|self[- ]signed certificate[a-z ]*|certificate has expired|Hostname\/IP does not match certificate's altnames[^.:]*|wrong version number/i.exec(detail)?.[0]
  if (said === undefined) return undefined
  if (/verify|issuer|self[- ]signed/i.test(said)) {
    return `TLS: etcd's certificate is not signed by the CA in --etcd-cacert ${tls?.caFile ?? "(none)"} (${said})`
  }
  if (/altnames/i.test(said)) return `TLS: etcd's certificate is not made out to the address in --etcd (${said})`
  if (/wrong version number/i.test(said)) return `TLS: the etcd member does not speak TLS on that port (${said}): is it an http:// URL?`
  if (tls?.client === undefined) return `TLS: etcd refused the connection (${said}): it wants a client certificate: --etcd-cert and --etcd-key`
  return `TLS: etcd refused the client certificate --etcd-cert ${tls.client.certFile} (${said}): is it signed by a CA etcd trusts (its --trusted-ca-file), in date, and made for client use?`
}
