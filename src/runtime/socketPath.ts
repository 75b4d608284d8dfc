/**
 * The kernel's limit on a UNIX socket's path, checked by the daemon and the client before they
 * create or connect anything.
 *
 * `sockaddr_un.sun_path` holds 108 bytes on Linux, the terminating NUL included. libuv copies a
 * longer path cut to fit instead of failing, so without this check `isinitd` binds a socket at
 * the cut path (often in a parent directory), and every later start on the real path fails
 * with EADDRINUSE or finds nothing.
 */
/** The longest path, in bytes, that `bind` and `connect` take whole. */
const maxSocketPathBytes = 107

/** Tagged like effect's errors, without effect: the client loads this too (see client.ts). */
export class SocketPathTooLong extends Error {
  readonly _tag = "SocketPathTooLong"
  readonly path: string
  readonly bytes: number
  constructor(fields: { readonly path: string; readonly bytes: number }) {
    super(
      `the socket path ${fields.path} is ${fields.bytes} bytes long; a UNIX socket path may have at most ${maxSocketPathBytes} (the kernel's sun_path): choose a shorter one with -s or :::socket:`,
    )
    this.path = fields.path
    this.bytes = fields.bytes
  }
}

/** Why `path` (absolute, as it will be bound) cannot be a socket path, if it cannot. */
export const socketPathProblem = (path: string): SocketPathTooLong | undefined => {
  const bytes = Buffer.byteLength(path, "utf8")
  return bytes > maxSocketPathBytes ? new SocketPathTooLong({ path, bytes }) : undefined
}
