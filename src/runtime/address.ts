/**
 * The addresses of `--metrics ADDR` and `--http ADDR`: `PORT`, `:PORT`, `HOST:PORT` or
 * `[IPV6]:PORT`; without a host, 127.0.0.1. Loopback unless told otherwise: the metrics and the
 * page have no authentication, and they show group and tag names, states, pids and exit codes,
 * so a non-loopback address needs `--allow-remote` (the operator then puts a firewall or a TLS
 * proxy in front). A host name other than `localhost` counts as non-loopback: what it resolves to
 * can change.
 */

export interface ListenAddress {
  readonly host: string
  readonly port: number
  readonly loopback: boolean
}

const isLoopback = (host: string): boolean => host === "localhost" || host === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host)

/** The address, or why it is not one. */
export const parseListenAddress = (text: string): ListenAddress | string => {
  const match = /^(?:(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):)?(\d{1,5})$/.exec(text.trim())
  if (match === null) return `"${text}" is not an address: write PORT, HOST:PORT or [IPV6]:PORT (e.g. 127.0.0.1:9464)`
  const host = match[1] ?? (match[2] === undefined || match[2] === "" ? "127.0.0.1" : match[2])
  const port = Number(match[3])
  if (port > 65_535) return `"${text}": the port must be 0 to 65535 (0: any free port, named in the log)`
  return { host, port, loopback: isLoopback(host) }
}

/** How the log and `--help` name an address: `127.0.0.1:9464`, `[::1]:9464`. */
export const addressText = (host: string, port: number): string => (host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`)

export const sameAddress = (a: ListenAddress, b: ListenAddress): boolean => a.host === b.host && a.port === b.port && a.port !== 0

/**
 * Whether a request's Host header names this loopback server. A loopback server answers only to
 * loopback names: a web page elsewhere cannot then read it through DNS rebinding (a name of the
 * attacker's that resolves to 127.0.0.1). With --allow-remote any Host is taken.
 */
export const hostAllowed = (hostHeader: string | undefined, address: ListenAddress): boolean => {
  if (!address.loopback) return true
  if (hostHeader === undefined) return false
  const host = /^\[([^\]]+)\](?::\d+)?$/.exec(hostHeader)?.[1] ?? hostHeader.replace(/:\d+$/, "")
  return isLoopback(host.toLowerCase())
}
