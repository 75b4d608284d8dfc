/**
 * What each node command does in the real world (docs/cluster-wiring.md has the table): etcd
 * reads, the watch, leases and writes against the store; core commands through the daemon's loop;
 * the fencer; replies to local clients; log lines. Decides nothing: every rule is the reducer's.
 *
 * etcd commands run in their own fibers and answer through the runner's queue, each with the
 * event the reducer expects (a failure becomes `ReadFailed`, `GrantFailed`, `KeepAliveFailed`, or
 * a `Written` with `Unavailable`/`Refused`); the call deadline (store/client.ts) turns silence into
 * such a failure. Core commands answer at once, with the core's state after them.
 */
import * as Effect from "effect/Effect"
import * as Ref from "effect/Ref"
import type * as Scope from "effect/Scope"
import type { Parsed } from "../../core/config.ts"
import type { LoopService } from "../../runtime/ports.ts"
import type { LogService } from "../../log.ts"
import type { Fencing } from "../fencing.ts"
import { coreEventOf, coreOutcomeOf } from "../node/core.ts"
import { parsedOf } from "../node/step.ts"
import type { CoreCommand, Local, NodeCommand, NodeEvent, NodeState, Write, WriteOutcome } from "../node/types.ts"
import type { ClusterStore } from "../store.ts"
import { outcomeOfFailure } from "../store/election.ts"
import type { Input } from "./runner.ts"

export interface CommandDeps {
  readonly store: ClusterStore
  readonly node: string
  readonly loop: LoopService
  readonly fencing: Fencing
  readonly log: LogService
  readonly scope: Scope.Scope
  /** The node's state now (a tell uses the config that runs). */
  readonly state: () => NodeState
  readonly offer: (input: Input) => void
  /** Resolves the local client waiting for `request`'s note. */
  readonly reply: (request: number, note: string) => void
  /** The local isinittab, read again (a tell while etcd has no config: as single-host mode does). */
  readonly readLocal: () => Effect.Effect<Local>
}

/** The config a tell from etcd runs under: etcd's, else the local file read now (and the node told of it). */
const configForTell = (deps: CommandDeps): Effect.Effect<{ readonly parsed: Parsed; readonly local: Local | undefined }> => {
  const running = deps.state().running
  if (running._tag === "Etcd") return Effect.succeed({ parsed: running.config.parsed, local: undefined })
  return Effect.map(deps.readLocal(), (local) => ({ parsed: parsedOf(local), local }))
}

/**
 * A core command through the loop, answered with its outcome and the core's state after it. A
 * hold without a working fencer is refused: a group this node could not fence does not start.
 */
const toCore = (deps: CommandDeps, command: CoreCommand): Effect.Effect<Input> =>
  Effect.gen(function* () {
    if (command._tag === "HoldCore" && !deps.fencing.ready()) {
      if (deps.fencing.refusing(command.group)) deps.log.line({ what: "fenced", group: command.group, message: "hold refused until the fencer is ready: the group does not start here without it" })
      const core = yield* Ref.get(deps.loop.state)
      return (now: number): NodeEvent => ({ _tag: "CoreAnswered", now, command, outcome: { _tag: "Rejected", reason: "no fencer" }, core })
    }
    const config = command._tag === "TellCore" ? yield* configForTell(deps) : undefined
    const parsed = config?.parsed ?? parsedOf(deps.state().running)
    const applied = yield* deps.loop.submit(coreEventOf(command, parsed, deps.loop.now()))
    const outcome = coreOutcomeOf(applied.effects)
    const local = config?.local
    return (now: number): NodeEvent => {
      // The file read for the tell is what runs now (unless etcd's config arrived meanwhile).
      if (local !== undefined) deps.offer((later) => ({ _tag: "LocalFile", now: later, local }))
      return { _tag: "CoreAnswered", now, command, outcome, core: applied.after }
    }
  })

/**
 * An etcd operation in its own fiber; its answer goes through the queue. A defect in it (a bug)
 * is sent through the queue too, as an input that throws when handled: the runner then ends with
 * a ClusterBug (exit 70), instead of the node waiting for an answer that never comes.
 */
const answerLater = (deps: CommandDeps, operation: Effect.Effect<Input>): Effect.Effect<undefined> => {
  const answered = Effect.catchDefect(operation, (defect): Effect.Effect<Input> =>
    Effect.succeed(() => {
      throw defect
    }),
  )
  return Effect.as(Effect.forkIn(Effect.flatMap(answered, (input) => Effect.sync(() => deps.offer(input))), deps.scope), undefined)
}

const writeOutcome = (deps: CommandDeps, write: Write): Effect.Effect<WriteOutcome> => {
  if (write._tag !== "Override") return deps.store.election(deps.node).write(write)
  return Effect.match(deps.store.setDesired(write.group, write.level, { node: deps.node, by: `isinit on ${deps.node}` }), {
    onSuccess: ({ revision }): WriteOutcome => ({ _tag: "Done", revision, createRevision: 0 }),
    onFailure: (e): WriteOutcome => (e._tag === "EtcdUnavailable" || e._tag === "EtcdRefused" ? outcomeOfFailure(e) : { _tag: "Refused", reason: e.message }),
  })
}

type EtcdCommand = Extract<NodeCommand, { readonly _tag: "Read" | "Grant" | "KeepAlive" | "Write" }>

const etcdOperation = (deps: CommandDeps, command: EtcdCommand): Effect.Effect<Input> => {
  const { store } = deps
  switch (command._tag) {
    case "Read":
      return Effect.match(store.readAll(), {
        onSuccess: (snapshot): Input => (now) => ({ _tag: "Snapshot", now, snapshot }),
        onFailure: (e): Input => (now) => ({ _tag: "ReadFailed", now, reason: e.message }),
      })
    case "Grant":
      return Effect.match(store.leases.grant(command.ttlMs), {
        onSuccess: ({ id, ttlMs }): Input => (now) => ({ _tag: "Granted", now, lease: command.lease, id, ttlMs }),
        onFailure: (e): Input => (now) => ({ _tag: "GrantFailed", now, lease: command.lease, reason: e.message }),
      })
    case "KeepAlive": {
      const { lease, id, seq } = command
      return Effect.match(store.leases.keepAlive(id), {
        onSuccess: (ttlMs): Input => (now) => ({ _tag: "KeptAlive", now, lease, id, seq, ttlMs }),
        onFailure: (e): Input => (now) => ({ _tag: "KeepAliveFailed", now, lease, id, seq, reason: e.message }),
      })
    }
    case "Write":
      return Effect.map(writeOutcome(deps, command.write), (outcome): Input => (now) => ({ _tag: "Written", now, write: command.write, outcome }))
  }
}

/** Builds the runner's `perform`; `watch` keeps the one live watch (a new Watch replaces it). */
export const makePerform = (deps: CommandDeps) => {
  let cancelWatch: () => void = () => undefined
  /** Revokes under way: a stopping daemon waits for them, so its leases are gone when it exits. */
  const revoking = new Set<Promise<void>>()
  const revoke = (id: string): void => {
    const done = Effect.runPromise(Effect.ignore(deps.store.leases.revoke(id)))
    revoking.add(done)
    void done.then(() => revoking.delete(done))
  }
  const watch = (fromRevision: number): void => {
    cancelWatch()
    cancelWatch = deps.store.watchAll(fromRevision, {
      batch: (revision, changes) => deps.offer((now) => ({ _tag: "Watched", now, revision, changes })),
      lost: (reason) => deps.offer((now) => ({ _tag: "WatchLost", now, reason })),
    })
  }
  const perform = (command: NodeCommand): Effect.Effect<Input | undefined> => {
    switch (command._tag) {
      case "TellCore":
      case "ReloadCore":
      case "HoldCore":
      case "ReleaseCore":
        return toCore(deps, command)
      case "ArmFencer":
        return Effect.sync(() => deps.fencing.arm(command.group, command.epoch, command.termAt, command.killAt)).pipe(Effect.as(undefined))
      case "DisarmFencer":
        return Effect.sync(() => deps.fencing.disarm(command.group)).pipe(Effect.as(undefined))
      case "Reply":
        return Effect.sync(() => deps.reply(command.request, command.note)).pipe(Effect.as(undefined))
      case "Log":
        return Effect.sync(() => deps.log.line({ what: command.what, group: command.group, message: command.message })).pipe(Effect.as(undefined))
      case "Watch":
        return Effect.sync(() => watch(command.fromRevision)).pipe(Effect.as(undefined))
      case "Revoke":
        return Effect.sync(() => revoke(command.id)).pipe(Effect.as(undefined))
      default:
        return answerLater(deps, etcdOperation(deps, command))
    }
  }
  return {
    perform,
    stopWatching: (): void => cancelWatch(),
    /** Resolves once every revoke sent so far is answered (or failed). */
    revoked: (): Promise<void> => Promise.all(revoking).then(() => undefined),
  }
}
