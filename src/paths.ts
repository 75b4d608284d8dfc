/**
 * Where isinit's files are, and which version this is: what both programs need before anything
 * else. The client (`isinit`) imports this instead of the daemon's wiring, so `isinit --version`
 * or `isinit status` does not load the loop, the process table, the server, persistence and
 * adoption (see bench/client.ts). Node built-ins only.
 */
import { readFileSync } from "node:fs"
import { dirname, join, resolve } from "node:path"

export const defaultConfigPath = "/etc/isinittab"
export const defaultSocketPath = "/var/run/is/init.s"
/** Without `--initstat` or `:::initstat:`, the status file lives beside the socket. */
export const defaultInitstatName = "initstat"

export const version = ((): string => {
  try {
    const pkg: unknown = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8"))
    const v = typeof pkg === "object" && pkg !== null ? (pkg as { readonly version?: unknown }).version : undefined
    return typeof v === "string" ? v : "unknown"
  } catch {
    return "unknown"
  }
})()

export interface Paths {
  readonly config: string
  readonly socket: string
  readonly initstat: string
}

/** What the command line gave (`-c`, `-s`, `--initstat`); the rest comes from the isinittab or the defaults. */
export interface PathOptions {
  readonly configPath: string
  /** `-s`; else the config's `:::socket:`; else the default. */
  readonly socketPath?: string | undefined
  /** `--initstat`; else the config's `:::initstat:`; else `initstat` beside the socket. */
  readonly initstatPath?: string | undefined
}

/** `-c`, else `$ISINITTAB`, else /etc/isinittab. */
export const configPathFrom = (flag: string | undefined, env: NodeJS.ProcessEnv): string =>
  flag ?? (env["ISINITTAB"] !== undefined && env["ISINITTAB"] !== "" ? env["ISINITTAB"] : defaultConfigPath)

/** The isinittab's `:::socket:` and `:::initstat:` directives (a parsed config has both fields). */
export interface PathDirectives {
  readonly socket: string | undefined
  readonly initstat: string | undefined
}

export const resolvePaths = (options: PathOptions, directives: PathDirectives): Paths => {
  const socket = resolve(options.socketPath ?? directives.socket ?? defaultSocketPath)
  const initstat = resolve(options.initstatPath ?? directives.initstat ?? join(dirname(socket), defaultInitstatName))
  return { config: resolve(options.configPath), socket, initstat }
}
