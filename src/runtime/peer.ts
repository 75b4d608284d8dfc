/**
 * Who is on the other end of a connection to the daemon's socket: the kernel's answer to
 * getsockopt(SO_PEERCRED) on Linux (the pid, uid and gid of the process that connected, which it
 * cannot forge). Local tells are logged with it, so the log says who switched what.
 *
 * Node has no API for it, hence koffi (a maintained FFI with prebuilt binaries in its npm
 * package) calling libc's getsockopt on the socket's descriptor. Loaded once, on the daemon's
 * first request. Where it cannot work (not Linux, koffi missing, no descriptor) the
 * peer is `Unknown` with the reason, and the daemon logs that instead: it never fails a request.
 */
import { createRequire } from "node:module"
import type * as net from "node:net"
import { messageOf } from "./errors.ts"

export type Peer =
  | { readonly _tag: "Known"; readonly pid: number; readonly uid: number; readonly gid: number }
  | { readonly _tag: "Unknown"; readonly reason: string }

type Reader = (fd: number) => Peer

const SOL_SOCKET = 1
const SO_PEERCRED = 17


/** Binds getsockopt through koffi; a reader that says why not when that is impossible here. */
const makeReader = (): Reader => {
  if (process.platform !== "linux") return () => ({ _tag: "Unknown", reason: `SO_PEERCRED is Linux's; this is ${process.platform}` })
  try {
    // koffi is CommonJS with a native part: required, not imported, so a failure stays here.
    const koffi = createRequire(import.meta.url)("koffi") as typeof import("koffi")
    // The C library already in the process (dlopen(NULL)), as reaper.ts does: glibc and musl alike.
    const libc = koffi.load(null)
    koffi.struct("isinit_ucred", { pid: "int32", uid: "uint32", gid: "uint32" })
    const getsockopt = libc.func("int getsockopt(int fd, int level, int name, _Out_ isinit_ucred *cred, _Inout_ uint32 *len)")
    return (fd) => {
      const cred: { pid?: number; uid?: number; gid?: number } = {}
      const length = [12]
      const rc = getsockopt(fd, SOL_SOCKET, SO_PEERCRED, cred, length) as number
      if (rc !== 0 || cred.pid === undefined || cred.uid === undefined || cred.gid === undefined) return { _tag: "Unknown", reason: `getsockopt(SO_PEERCRED) failed (${rc})` }
      return { _tag: "Known", pid: cred.pid, uid: cred.uid, gid: cred.gid }
    }
  } catch (error) {
    const reason = `cannot call getsockopt: ${messageOf(error)}`
    return () => ({ _tag: "Unknown", reason })
  }
}

let reader: Reader | undefined

/** The credentials of the process at the other end of `socket` (a UNIX stream socket). */
export const peerOf = (socket: net.Socket): Peer => {
  // Node keeps the descriptor of a connected socket on its internal handle; no public API has it.
  const fd = (socket as unknown as { readonly _handle?: { readonly fd?: unknown } })._handle?.fd
  if (typeof fd !== "number" || fd < 0) return { _tag: "Unknown", reason: "the socket has no descriptor" }
  reader ??= makeReader()
  return reader(fd)
}

/** `uid 1000 (pid 4242)`, or why the peer is unknown: for log lines. */
export const describePeer = (peer: Peer): string =>
  peer._tag === "Known" ? `uid ${peer.uid} gid ${peer.gid} (pid ${peer.pid})` : `an unknown peer (${peer.reason})`
