#!/usr/bin/env node
/**
 * isinit: the client. Tells the daemon to switch a group's runlevel (starting the daemon first
 * if none listens, as IS::Init does), stops everything, shows status, checks an isinittab, plans
 * a tell without doing it, and runs scenarios in the simulator. This entry parses the arguments
 * (invocation.ts) and loads the module of the command: local.ts (the daemon on this host),
 * simulate.ts, logs.ts, or cluster.ts (`--etcd`).
 *
 * Exit codes: 0 ok, 1 rejected or failed, 2 usage.
 */
import { realpathSync } from "node:fs"
import { fileURLToPath } from "node:url"
import { version } from "../paths.ts"
import { UsageError } from "./args.ts"
import type { Invocation } from "./invocation.ts"
import { parseInvocation, synopsis, usage } from "./invocation.ts"
import type { Io } from "./io.ts"

const processIo: Io = {
  out: (text) => void process.stdout.write(text),
  err: (text) => void process.stderr.write(text),
  env: process.env,
}

/** Runs `isinit` with these arguments; resolves to the exit code. */
export const main = async (argv: readonly string[], io: Io = processIo): Promise<number> => {
  // Cluster commands talk to etcd; loaded on demand so local commands do not pay for the client.
  if (argv.some((a) => /^--etcd(-config)?(=|$)/.test(a))) return (await import("./cluster.ts")).clusterMain(argv, io)
  let invocation: Invocation
  try {
    invocation = parseInvocation(argv)
  } catch (error) {
    if (!(error instanceof UsageError)) throw error
    io.err(`isinit: ${error.message}\n${synopsis}Run isinit --help for more.\n`)
    return 2
  }
  const { command } = invocation
  if (command._tag === "Help") {
    io.out(usage)
    return 0
  }
  if (command._tag === "Version") {
    io.out(`isinit ${version}\n`)
    return 0
  }
  // Each command loads what it needs, and only then (bench/client.ts): the simulator for
  // simulate; the socket client, the protocol's codecs and the isinittab's parser for the others.
  if (command._tag === "Simulate") return (await import("./simulate.ts")).simulate(io, command)
  if (command._tag === "Logs") return (await import("./logs.ts")).showLogs(invocation, command, io)
  return (await import("./local.ts")).runLocal(invocation, command, io)
}

const invokedDirectly = (): boolean => {
  const script = process.argv[1]
  if (script === undefined) return false
  try {
    return realpathSync(script) === realpathSync(fileURLToPath(import.meta.url))
  } catch {
    return false
  }
}

if (invokedDirectly()) {
  // `isinit status | head`: a reader that went away is not an error of ours.
  process.stdout.on("error", (error: NodeJS.ErrnoException) => {
    if (error.code === "EPIPE") process.exit(process.exitCode ?? 0)
    throw error
  })
  // Nobody reads our messages any more (`isinit ... 2>&1 | head`): nothing left to tell them.
  process.stderr.on("error", () => undefined)
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code
    },
    (error: unknown) => {
      process.stderr.write(`isinit: unexpected failure: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`)
      process.exitCode = 1
    },
  )
}
