/**
 * A bench for the cluster node reducer alone: it plays the shell's part for the core (core
 * commands go to the real core reducer and are answered at once, in order) and records every
 * command; etcd's side is whatever events a property feeds it.
 */
import type { StoredConfig } from "../src/cluster/desired.ts"
import { emptyObeyed } from "../src/cluster/desired.ts"
import { reduceNode, startNode } from "../src/cluster/node/reduce.ts"
import { parsedOf } from "../src/cluster/node/step.ts"
import type { Change, ClusterSnapshot, NodeCommand, NodeEvent, NodeState, WriteOutcome } from "../src/cluster/node/types.ts"
import { emptyFailoverView } from "../src/cluster/node/types.ts"
import { applyChanges } from "../src/cluster/node/view.ts"
import { reduce } from "../src/core/reducer.ts"
import { parseInittab } from "../src/core/inittab.ts"
import type { State as CoreState } from "../src/core/state.ts"
import { groupOf, initialStateWith, lookup } from "../src/core/state.ts"
import { childExit, tell } from "../src/core/events.ts"
import { coreEventOf, coreOutcomeOf } from "../src/cluster/node/core.ts"

export const storedConfig = (text: string, seq: number, revision: number): StoredConfig => ({
  value: { text, sha256: String(seq).padStart(64, "0"), seq, pushedAt: "1970-01-01T00:00:00.000Z" },
  parsed: parseInittab(text),
  revision,
})

export const snapshotOf = (revision: number, changes: readonly Change[]): ClusterSnapshot => {
  const view = applyChanges({ revision: 0, obeyed: emptyObeyed, failover: emptyFailoverView }, revision, changes)
  return { revision, obeyed: { ...view.obeyed, revision }, failover: view.failover }
}

export class NodeBench {
  node: NodeState
  core: CoreState
  now = 0
  readonly commands: { readonly at: number; readonly command: NodeCommand }[] = []

  constructor(config: StoredConfig, name = "n1") {
    this.core = initialStateWith(config.parsed.config)
    const [node, commands] = startNode({ node: name, instance: `${name}-i`, presenceTtlMs: 10_000, running: { _tag: "Etcd", config }, snapshot: undefined, core: this.core, now: 0 })
    this.node = node
    this.#perform(commands)
  }

  feed(make: (now: number) => NodeEvent): void {
    const queue: NodeEvent[] = [make(this.now)]
    for (let event = queue.shift(); event !== undefined; event = queue.shift()) {
      const [after, commands] = reduceNode(this.node, event)
      this.node = after
      queue.push(...this.#perform(commands))
    }
  }

  #perform(commands: readonly NodeCommand[]): NodeEvent[] {
    const answers: NodeEvent[] = []
    for (const command of commands) {
      this.commands.push({ at: this.now, command })
      if (command._tag !== "TellCore" && command._tag !== "ReloadCore" && command._tag !== "HoldCore" && command._tag !== "ReleaseCore") continue
      const [core, effects] = reduce(this.core, coreEventOf(command, parsedOf(this.node.running), this.now))
      this.core = core
      answers.push({ _tag: "CoreAnswered", now: this.now, command, outcome: coreOutcomeOf(effects), core })
    }
    return answers
  }

  advance(ms: number): void {
    this.now += ms
    this.feed((now) => ({ _tag: "Tick", now }))
  }

  snapshot(revision: number, changes: readonly Change[]): void {
    this.feed((now) => ({ _tag: "Snapshot", now, snapshot: snapshotOf(revision, changes) }))
  }

  watch(revision: number, changes: readonly Change[]): void {
    this.feed((now) => ({ _tag: "Watched", now, revision, changes }))
  }

  /** A tell on the host's socket: the core applies it, then the node records it. */
  localTell(request: number, group: string, level: string): void {
    const [core] = reduce(this.core, tell(group, level, { config: this.core.config, problems: [] }, this.now))
    this.core = core
    this.feed((now) => ({ _tag: "CoreChanged", now, core }))
    this.feed((now) => ({ _tag: "LocalTell", now, request, group, level }))
  }

  /** The live run of `tag` exits with `code` (the core hears it; the node hears of the change). */
  exit(tag: string, code: number): void {
    const proc = lookup(this.core.entries, tag)?.proc
    if (proc === undefined || proc._tag === "Idle") return
    const [core] = reduce(this.core, childExit(tag, proc.run, { _tag: "Exited", code }, this.now))
    this.core = core
    this.feed((now) => ({ _tag: "CoreChanged", now, core }))
  }

  /** Answers the latest write of this kind that is still unanswered. */
  answerWrite(kind: string, outcome: WriteOutcome): void {
    const write = [...this.commands].reverse().find((c) => c.command._tag === "Write" && c.command.write._tag === kind)?.command
    if (write?._tag === "Write") this.feed((now) => ({ _tag: "Written", now, write: write.write, outcome }))
  }

  /** Commands since index `from`, of one tag. */
  since<K extends NodeCommand["_tag"]>(from: number, tag: K): Extract<NodeCommand, { readonly _tag: K }>[] {
    return this.commands.slice(from).flatMap((c) => (c.command._tag === tag ? [c.command as Extract<NodeCommand, { readonly _tag: K }>] : []))
  }

  levelOf(group: string): string | undefined {
    return groupOf(this.core, group).level
  }

  phaseOf(group: string): string {
    return groupOf(this.core, group).phase
  }
}
