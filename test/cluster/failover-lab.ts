/**
 * What the failover tests and the failover benchmark share: a TCP proxy per node and etcd member
 * that the test can sever (a node cut off from etcd), and a witness process for a failover group
 * that appends its node, epoch and start and stop times to a shared file, and takes an exclusive
 * lock on a shared file while it runs, so two witnesses alive at once is seen exactly (the kernel
 * drops the lock when a process dies, SIGKILL included), not guessed from timestamps.
 */
import { readdirSync, readFileSync } from "node:fs"
import type { Server, Socket } from "node:net"
import { createConnection, createServer } from "node:net"

export interface Proxy {
  /** `http://127.0.0.1:PORT`, what the node is given instead of the member's URL. */
  readonly url: string
  /** Cut off: nothing goes through any more, connections hang (as behind a dead switch). */
  readonly sever: () => void
  /** Back: the hung connections are reset, new ones go through. */
  readonly heal: () => void
  readonly close: () => Promise<void>
}

/** A TCP proxy on a free loopback port to `target` (a member's client URL). */
export const startProxy = async (target: string): Promise<Proxy> => {
  const { hostname, port } = new URL(target)
  const sockets = new Set<Socket>()
  let severed = false
  const server: Server = createServer((client) => {
    sockets.add(client)
    client.on("close", () => sockets.delete(client))
    client.on("error", () => undefined)
    if (severed) return client.pause()
    const upstream = createConnection({ host: hostname, port: Number(port) })
    sockets.add(upstream)
    upstream.on("close", () => (sockets.delete(upstream), severed || client.destroy()))
    upstream.on("error", () => client.destroy())
    client.on("close", () => severed || upstream.destroy())
    client.pipe(upstream)
    upstream.pipe(client)
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const address = server.address()
  const url = `http://127.0.0.1:${typeof address === "object" && address !== null ? address.port : 0}`
  return {
    url,
    sever: () => {
      severed = true
      for (const socket of sockets) {
        socket.unpipe()
        socket.pause()
      }
    },
    heal: () => {
      severed = false
      for (const socket of sockets) socket.destroy()
    },
    close: async () => {
      for (const socket of sockets) socket.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}

/** The witness: a failover group's only entry, `/bin/sh WITNESS LOG LOCK`. */
export const witnessScript = `#!/bin/sh
log="$1"; lock="$2"
mono() { cut -d' ' -f1 /proc/uptime; }
exec 9>>"$lock"
if ! flock -n 9; then echo "OVERLAP $ISINIT_NODE $ISINIT_EPOCH $(mono) $$" >> "$log"; flock 9; fi
echo "START $ISINIT_NODE $ISINIT_EPOCH $(mono) $$" >> "$log"
trap 'echo "STOP $ISINIT_NODE $ISINIT_EPOCH $(mono) $$" >> "$log"; exit 0' TERM
sleep 100000 9>&- &
wait $!
`

export interface WitnessLine {
  readonly kind: "START" | "STOP" | "OVERLAP"
  readonly node: string
  readonly epoch: number
  /** Seconds since boot (/proc/uptime: CLOCK_BOOTTIME). */
  readonly at: number
  readonly pid: number
}

export const witnessLines = (file: string): readonly WitnessLine[] => {
  let text = ""
  try {
    text = readFileSync(file, "utf8")
  } catch {
    return []
  }
  return text
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => {
      const [kind, node = "", epoch = "0", at = "0", pid = "0"] = l.split(" ")
      return { kind: kind as WitnessLine["kind"], node, epoch: Number(epoch), at: Number(at), pid: Number(pid) }
    })
}

/** Nodes on which a witness runs now (its shell, by command line; zombies do not count). */
export const witnessesAlive = (script: string): readonly string[] => {
  const nodes: string[] = []
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue
    try {
      if (!readFileSync(`/proc/${name}/cmdline`, "latin1").includes(script)) continue
      const stat = readFileSync(`/proc/${name}/stat`, "latin1")
      if (/^[ZX]/.test(stat.slice(stat.lastIndexOf(")") + 2))) continue
      const node = /(?:^|\0)ISINIT_NODE=([^\0]*)/.exec(readFileSync(`/proc/${name}/environ`, "latin1"))?.[1]
      if (node !== undefined) nodes.push(node)
    } catch {
      // gone meanwhile
    }
  }
  return nodes.sort()
}

/** Monotonic seconds now, on the witnesses' clock. */
export const uptime = (): number => Number(readFileSync("/proc/uptime", "latin1").split(" ")[0])
