#!/usr/bin/env node
/**
 * isinitd: the isinit daemon, in the foreground (for systemd, containers, or `isinit` starting it
 * in the background). Exit codes: 0 after a stopall/SIGTERM/SIGINT once every process is gone,
 * 1 when it cannot start, 2 on a usage error.
 */
import { parseArgs } from "node:util"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import { configPathFrom, defaultConfigPath, defaultInitstatName, defaultSocketPath, runDaemon, version } from "../runtime/daemon.ts"
import { streamLog } from "../runtime/log.ts"

const usage = `Usage: isinitd [-c FILE] [-s SOCKET] [--initstat FILE] [--socket-mode MODE]
       isinitd --help | --version

Runs the isinit daemon in the foreground: starts and stops the processes of the isinittab's
resource groups as \`isinit GROUP LEVEL\` tells it, respawns and jails them, and logs one line
per event to stderr.

Options:
  -c, --config FILE     the isinittab (default: $ISINITTAB, else ${defaultConfigPath})
  -s, --socket PATH     UNIX socket to listen on (default: the isinittab's :::socket: directive,
                        else ${defaultSocketPath}); a missing directory is created with mode 0700
      --initstat FILE   status file (default: the isinittab's :::initstat: directive, else
                        "${defaultInitstatName}" beside the socket; unlike IS::Init, which writes
                        none without the directive, isinitd always writes one)
      --socket-mode M   permission bits of the socket, octal (default 0600: only the owner may
                        talk to the daemon; e.g. 0660 lets the socket's group in as well)
  -h, --help            this text
  -V, --version         print the version

Signals: SIGTERM or SIGINT stop every process (as \`isinit stopall\`), then the daemon exits 0;
SIGHUP re-reads the isinittab and re-applies every group's current level.
A second daemon on the same socket is refused; a stale socket file is replaced.
`

const fail = (message: string, code: number): never => {
  process.stderr.write(`isinitd: ${message}\n`)
  process.exit(code)
}

const parse = () => {
  try {
    return parseArgs({
      args: process.argv.slice(2),
      allowPositionals: false,
      options: {
        config: { type: "string", short: "c" },
        socket: { type: "string", short: "s" },
        initstat: { type: "string" },
        "socket-mode": { type: "string" },
        help: { type: "boolean", short: "h" },
        version: { type: "boolean", short: "V" },
      },
    }).values
  } catch (e) {
    return fail(`${(e as Error).message}\n${usage}`, 2)
  }
}

const values = parse()
if (values.help === true) {
  process.stdout.write(usage)
  process.exit(0)
}
if (values.version === true) {
  process.stdout.write(`isinitd ${version}\n`)
  process.exit(0)
}

const socketModeText = values["socket-mode"]
let socketMode: number | undefined
if (socketModeText !== undefined) {
  if (!/^0?[0-7]{3}$/.test(socketModeText)) fail(`--socket-mode takes octal permission bits such as 0600 or 0660, not "${socketModeText}"`, 2)
  socketMode = Number.parseInt(socketModeText, 8)
}

const exit = await Effect.runPromiseExit(
  runDaemon({
    configPath: configPathFrom(values.config, process.env),
    socketPath: values.socket,
    initstatPath: values.initstat,
    socketMode,
    log: streamLog(process.stderr),
  }),
)
if (Exit.isSuccess(exit)) process.exit(0)
const failureMessage = Exit.findErrorOption(exit)
fail(failureMessage._tag === "Some" ? failureMessage.value.message : `unexpected failure: ${String(exit.cause)}`, 1)
