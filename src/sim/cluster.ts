/**
 * A deterministic cluster: several hosts, each with the REAL core reducer and the REAL cluster node
 * reducer, a fencer per host, and a model of etcd (etcd.ts), all on one agenda in real
 * (simulated) time. Deterministic from a seed (mulberry32, random.ts): a failing run replays
 * exactly, and its trace says what happened.
 *
 * What is modelled, because failover safety depends on it:
 * - clocks: each host's monotonic clock runs at its own rate (within the drift bound) from its own
 *   offset; every event a reducer sees is stamped with the host's clock *when it is processed*;
 * - messages between a host and etcd take a random delay each way; requests that cannot arrive
 *   (partition, etcd down) or whose answer is lost are answered by the shell's deadline as failed;
 *   watches deliver in order with delays and break on a partition or an outage (noticed later);
 * - etcd leases counted down by the leader's clock, refreshed by an election (etcd.ts);
 * - processes: started by the core's effects, die on their own, after SIGTERM (or not) or SIGKILL;
 * - a paused daemon (SIGSTOP, a long GC) processes nothing: its inputs queue up; its children and
 *   its fencer run on. A killed host loses daemon, fencer and children at once;
 * - the fencer: armed by the node reducer with a deadline, it SIGTERMs and then SIGKILLs the
 *   group's processes on its own clock, and kills any process of the group started after that.
 *
 * Records for the properties: every interval during which a process of a failover group lived,
 * per host, and every start of one with the epoch it carried and whether etcd agreed.
 */
import type { Parsed } from "../core/config.ts"
import type { Effect as CoreEffect, Signal } from "../core/effects.ts"
import { describeRejection } from "../core/effects.ts"
import type { Event as CoreEvent, Outcome, ProbeOutcome } from "../core/events.ts"
import { childExit, probeResult, started, stopAll, tick } from "../core/events.ts"
import { parseInittab } from "../core/inittab.ts"
import { nextDeadline, reduce } from "../core/reducer.ts"
import type { State as CoreState } from "../core/state.ts"
import { initialStateWith } from "../core/state.ts"
import { coreEventOf, coreOutcomeOf } from "../cluster/node/core.ts"
import { initialRunning } from "../cluster/node/info.ts"
import { nextWakeup, reduceNode, startNode, stopped } from "../cluster/node/reduce.ts"
import { parsedOf } from "../cluster/node/step.ts"
import type { CoreCommand, NodeCommand, NodeEvent, NodeState } from "../cluster/node/types.ts"
import { Agenda } from "./agenda.ts"
import type { Behaviour } from "./behaviour.ts"
import { defaultForRunSync, defaultForSpawn } from "./behaviour.ts"
import type { KvChange } from "./etcd.ts"
import { EtcdModel, candidateKey, changeOf, moveKey, snapshotOf } from "./etcd.ts"
import type { Rng } from "./random.ts"
import { makeRng } from "./random.ts"

export interface HostSpec {
  readonly name: string
  /** The `--node` its daemon runs as (the host's name unless a test makes two daemons share one). */
  readonly node?: string
  /** Clock rate against real time, within 1 ± driftBound. */
  readonly rate: number
  /** The host's monotonic clock reading at real time 0. */
  readonly offset: number
}

export interface ClusterOptions {
  readonly seed: number
  readonly hosts: readonly HostSpec[]
  /** The isinittab pushed to etcd at the start (and each host's local file). */
  readonly config: string
  readonly etcdRate?: number
  /** One-way delay of each message between a host and etcd. */
  readonly delayMs?: { readonly min: number; readonly max: number }
  /** Extra delay of watch deliveries. */
  readonly watchDelayMs?: { readonly min: number; readonly max: number }
  /** The shell's deadline on a request. */
  readonly callTimeoutMs?: number
  /** How long a host takes to notice a broken watch. */
  readonly watchLossMs?: number
  readonly presenceTtlMs?: number
  /** How a process behaves, per host and tag; the world's defaults when undefined. */
  readonly behaviour?: (host: string, tag: string) => Behaviour | undefined
  /** From SIGKILL to gone (at most the reap slack of failover.ts). */
  readonly killDelayMs?: number
  /** How long a process that honours SIGTERM takes to exit after it. */
  readonly sigtermDelayMs?: number
  /** "off" only to prove, in a test, that the fencer is needed. */
  readonly fencer?: "on" | "off"
  /** The parser (a test may bend what `isinit check` would refuse, to show why it refuses it). */
  readonly parse?: (text: string) => Parsed
}

export interface Interval {
  readonly host: string
  readonly group: string
  readonly tag: string
  readonly run: number
  readonly epoch: number | undefined
  readonly start: number
  end: number | undefined
}

export interface StartCheck {
  readonly at: number
  readonly host: string
  readonly group: string
  readonly epoch: number | undefined
  /** Why etcd did not agree that this host led the group with this epoch at that moment. */
  readonly problem: string | undefined
}

export interface TraceLine {
  readonly at: number
  readonly host: string | undefined
  readonly text: string
}

interface Proc {
  readonly tag: string
  readonly run: number
  readonly group: string
  readonly behaviour: Behaviour
  readonly interval: Interval | undefined
  /** Planned death (real time) and its outcome; the earliest plan wins. */
  death: { readonly at: number; readonly outcome: Outcome; readonly id: number } | undefined
  state: "alive" | "dead"
}

interface Arm {
  readonly epoch: number
  readonly termAt: number
  readonly killAt: number
}

type Input = { readonly _tag: "Core"; readonly make: (now: number) => CoreEvent } | { readonly _tag: "Node"; readonly make: (now: number) => NodeEvent }

type WatchSession = { readonly _tag: "None" } | { readonly _tag: "Active"; readonly session: number; lastAt: number } | { readonly _tag: "Broken"; readonly session: number }

interface Host {
  readonly spec: HostSpec
  readonly instance: string
  life: "up" | "paused" | "dead"
  core: CoreState
  node: NodeState
  readonly queue: Input[]
  readonly procs: Map<string, Proc>
  readonly fencer: Map<string, Arm>
  readonly requests: Map<number, NodeCommand>
  watch: WatchSession
  partitioned: "linked" | "cut"
  /** A clean stop: stopall asked, then the node told once the core halted. */
  stop: "running" | "stopall" | "told"
  tickSeq: number
}

/** Behaviours, by default: daemons run until stopped; wait/test jobs succeed after 100 ms. */
const behaviourOf = (options: ClusterOptions, host: string, tag: string, sync: "Spawn" | "RunSync"): Behaviour =>
  options.behaviour?.(host, tag) ?? (sync === "RunSync" ? defaultForRunSync : defaultForSpawn)

const fakeSha = (text: string): string => {
  let h = 0x811c9dc5
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193) >>> 0
  return h.toString(16).padStart(8, "0").repeat(8)
}

export class ClusterWorld {
  readonly etcd: EtcdModel
  readonly rng: Rng
  readonly agenda = new Agenda()
  readonly hosts = new Map<string, Host>()
  readonly intervals: Interval[] = []
  readonly startChecks: StartCheck[] = []
  readonly trace: TraceLine[] = []
  readonly failoverGroups: ReadonlySet<string>
  readonly options: ClusterOptions
  readonly parsed: Parsed
  #now = 0
  #etcdState: "up" | "down" = "up"
  #requestSeq = 0
  #sessionSeq = 0
  #deathSeq = 0
  #instances = 0
  #configSeq = 0
  #expiryAt: number | undefined = undefined

  constructor(options: ClusterOptions) {
    this.options = options
    this.rng = makeRng(options.seed)
    this.etcd = new EtcdModel(options.etcdRate ?? 1)
    this.parsed = (options.parse ?? parseInittab)(options.config)
    this.failoverGroups = new Set(this.parsed.config.failover.groups.keys())
    this.pushConfig(options.config)
    for (const spec of options.hosts) this.#boot(spec)
  }

  get now(): number {
    return this.#now
  }

  host(name: string): Host {
    const host = this.hosts.get(name)
    if (host === undefined) throw new Error(`no host ${name}`)
    return host
  }

  localNow(host: Host): number {
    return host.spec.offset + host.spec.rate * this.#now
  }

  #toReal(host: Host, local: number): number {
    return Math.max(this.#now, (local - host.spec.offset) / host.spec.rate)
  }

  note(host: string | undefined, text: string): void {
    this.trace.push({ at: this.#now, host, text })
  }

  // -------------------------------------------------------------------------------------------
  // Running

  run(until: number): void {
    for (let steps = 0; steps < 5_000_000; steps++) {
      const item = this.agenda.take(until)
      if (item === undefined) break
      this.#now = Math.max(this.#now, item.at)
      item.action()
    }
    this.#now = Math.max(this.#now, until)
  }

  #at(at: number, action: () => void): void {
    this.agenda.schedule(Math.max(at, this.#now), action)
  }

  #delay(range: { readonly min: number; readonly max: number } | undefined, fallback: { readonly min: number; readonly max: number }): number {
    const r = range ?? fallback
    return r.min + this.rng.next() * (r.max - r.min)
  }

  // -------------------------------------------------------------------------------------------
  // Hosts

  #boot(spec: HostSpec): void {
    const instance = `${spec.name}-i${++this.#instances}`
    const core = initialStateWith(this.parsed.config)
    const [node, commands] = startNode({
      node: spec.node ?? spec.name,
      instance,
      presenceTtlMs: this.options.presenceTtlMs ?? 10_000,
      running: initialRunning(undefined, { _tag: "File", parsed: this.parsed, sha256: fakeSha(this.options.config) }),
      snapshot: undefined,
      core,
      now: spec.offset + spec.rate * this.#now,
    })
    const host: Host = { spec, instance, life: "up", core, node, queue: [], procs: new Map(), fencer: new Map(), requests: new Map(), watch: { _tag: "None" }, partitioned: "linked", stop: "running", tickSeq: 0 }
    this.hosts.set(spec.name, host)
    this.note(spec.name, `daemon starts (instance ${instance})`)
    this.#perform(host, commands)
    this.#scheduleTick(host)
  }

  #input(host: Host, input: Input): void {
    if (host.life === "dead") return
    host.queue.push(input)
    if (host.life === "up") this.#drain(host)
  }

  #drain(host: Host): void {
    while (host.life === "up") {
      const input = host.queue.shift()
      if (input === undefined) break
      const now = this.localNow(host)
      if (input._tag === "Core") this.#coreStep(host, input.make(now))
      else this.#nodeStep(host, input.make(now))
    }
    this.#scheduleTick(host)
  }

  /** A core event from the host itself (an exit, a tick): the node hears of the change. */
  #coreStep(host: Host, event: CoreEvent): void {
    const before = host.core
    this.#applyCore(host, event)
    if (before.groups !== host.core.groups || before.entries !== host.core.entries) this.#nodeStep(host, { _tag: "CoreChanged", now: event.now, core: host.core })
    if (host.stop === "stopall" && host.core.lifecycle === "halted") {
      host.stop = "told"
      this.#nodeStep(host, { _tag: "Stopping", now: event.now })
    }
  }

  #applyCore(host: Host, event: CoreEvent): readonly CoreEffect[] {
    const [after, effects] = reduce(host.core, event)
    host.core = after
    for (const effect of effects) this.#coreEffect(host, effect)
    return effects
  }

  /** One node event, then the answers of its core commands, in order, before anything else. */
  #nodeStep(host: Host, event: NodeEvent): void {
    const local: NodeEvent[] = [event]
    for (let next = local.shift(); next !== undefined; next = local.shift()) {
      const [after, commands] = reduceNode(host.node, next)
      host.node = after
      local.push(...this.#perform(host, commands))
    }
    if (host.stop === "told" && stopped(host.node) && host.life !== "dead") {
      this.note(host.spec.name, "daemon exits: every group handed over, every lease given back")
      host.life = "dead"
    }
  }

  #perform(host: Host, commands: readonly NodeCommand[]): NodeEvent[] {
    const answers: NodeEvent[] = []
    for (const command of commands) {
      const answer = this.#command(host, command)
      if (answer !== undefined) answers.push(answer)
    }
    return answers
  }

  #command(host: Host, command: NodeCommand): NodeEvent | undefined {
    switch (command._tag) {
      case "TellCore":
      case "ReloadCore":
      case "HoldCore":
      case "ReleaseCore":
        return this.#toCore(host, command)
      case "ArmFencer":
        this.#arm(host, command.group, { epoch: command.epoch, termAt: command.termAt, killAt: command.killAt })
        return undefined
      case "DisarmFencer":
        host.fencer.delete(command.group)
        return undefined
      case "Reply":
        this.note(host.spec.name, `reply to local tell #${command.request}: ${command.note}`)
        return undefined
      case "Log":
        this.note(host.spec.name, `${command.what}${command.group === undefined ? "" : ` ${command.group}`}: ${command.message}`)
        return undefined
      default:
        this.#send(host, command)
        return undefined
    }
  }

  #toCore(host: Host, command: CoreCommand): NodeEvent {
    const now = this.localNow(host)
    const effects = this.#applyCore(host, coreEventOf(command, parsedOf(host.node.running), now))
    return { _tag: "CoreAnswered", now, command, outcome: coreOutcomeOf(effects), core: host.core }
  }

  #scheduleTick(host: Host): void {
    if (host.life !== "up") return
    const core = nextDeadline(host.core)
    const node = nextWakeup(host.node)
    const due = core === undefined ? node : node === undefined ? core : Math.min(core, node)
    if (due === undefined) return
    const seq = ++host.tickSeq
    this.#at(this.#toReal(host, due), () => {
      if (host.life !== "up" || host.tickSeq !== seq) return
      const now = Math.max(this.localNow(host), due)
      if (core !== undefined && core <= now) this.#coreStep(host, tick(now))
      this.#nodeStep(host, { _tag: "Tick", now })
      this.#scheduleTick(host)
    })
  }

  // -------------------------------------------------------------------------------------------
  // Processes

  #coreEffect(host: Host, effect: CoreEffect): void {
    switch (effect._tag) {
      case "Spawn":
      case "RunSync":
        return this.#spawn(host, effect)
      case "Kill":
        return this.#signal(host, `${effect.tag}#${effect.run}`, effect.signal)
      case "Log":
        if (effect.entry.what === "fenced") this.note(host.spec.name, `core ${effect.entry.what}: ${effect.entry.message}`)
        return
      case "Rejected":
        this.note(host.spec.name, `core rejected: ${describeRejection(effect)}`)
        return
      case "WriteStatus":
        return
      case "Probe": {
        // Rules 20-22: a cluster host's virtual process passes every probe while it is alive.
        const alive = host.procs.get(`${effect.tag}#${effect.run}`)?.state === "alive"
        const result: ProbeOutcome = alive ? { _tag: "Passed" } : { _tag: "Failed", reason: "no process" }
        this.#input(host, { _tag: "Core", make: (now) => probeResult(effect.tag, effect.run, effect.attempt, result, now) })
        return
      }
    }
  }

  #spawn(host: Host, effect: Extract<CoreEffect, { readonly _tag: "Spawn" | "RunSync" }>): void {
    const name = host.spec.name
    const behaviour = behaviourOf(this.options, name, effect.tag, effect._tag)
    const key = `${effect.tag}#${effect.run}`
    const watched = this.failoverGroups.has(effect.group)
    const epoch = effect.hold?.epoch
    const interval: Interval | undefined = watched ? { host: name, group: effect.group, tag: effect.tag, run: effect.run, epoch, start: this.#now, end: undefined } : undefined
    if (interval !== undefined) {
      this.intervals.push(interval)
      this.startChecks.push({ at: this.#now, host: name, group: effect.group, epoch, problem: this.#leadProblem(host, effect.group, epoch) })
    }
    const proc: Proc = { tag: effect.tag, run: effect.run, group: effect.group, behaviour, interval, death: undefined, state: "alive" }
    host.procs.set(key, proc)
    this.note(name, `start ${key} (${effect.group}${epoch === undefined ? "" : `, epoch ${epoch}`})`)
    const life = behaviour.life
    if (life._tag === "FailsToSpawn") return this.#planDeath(host, key, this.#now, { _tag: "SpawnFailed", reason: life.reason })
    this.#input(host, { _tag: "Core", make: (now) => started(effect.tag, effect.run, 1000 + effect.run, now) })
    if (life._tag === "ExitsAfter") this.#planDeath(host, key, this.#now + life.ms / host.spec.rate, { _tag: "Exited", code: life.code })
    const arm = host.fencer.get(effect.group)
    if (arm !== undefined && this.localNow(host) >= arm.killAt) this.#signal(host, key, "SIGKILL", "fencer")
  }

  /** Whether etcd, at this instant, has this host's key first in the group's queue with this epoch. */
  #leadProblem(host: Host, group: string, epoch: number | undefined): string | undefined {
    if (epoch === undefined) return "started without an epoch"
    const queue = [...this.etcd.kv.values()].filter((kv) => /^failover-node\/[^/]+\/cand\//.test(kv.key) && kv.key.endsWith(`/cand/${group}`)).sort((a, b) => a.create - b.create)
    const first = queue[0]
    if (first === undefined) return `no candidate of ${group} in etcd`
    if (first.create !== epoch) return `etcd's leader of ${group} has epoch ${first.create}, not ${epoch}`
    const value = first.value
    if (value.kind !== "candidate" || value.instance !== host.instance || first.key !== candidateKey(host.node.node, group)) return `the leading key of ${group} is not this daemon's`
    return undefined
  }

  #signal(host: Host, key: string, signal: Signal, by = "core"): void {
    const proc = host.procs.get(key)
    if (proc === undefined || proc.state !== "alive") return
    this.note(host.spec.name, `${by}: ${signal} ${key}`)
    if (signal === "SIGKILL") return this.#planDeath(host, key, this.#now + (this.options.killDelayMs ?? 0), { _tag: "Signaled", signal })
    if (proc.behaviour.ignoresSigterm) return
    const ms = (proc.behaviour.sigtermDelayMs ?? this.options.sigtermDelayMs ?? 10) / host.spec.rate
    this.#planDeath(host, key, this.#now + ms, { _tag: "Signaled", signal })
  }

  #planDeath(host: Host, key: string, at: number, outcome: Outcome): void {
    const proc = host.procs.get(key)
    if (proc === undefined || proc.state !== "alive" || (proc.death !== undefined && proc.death.at <= at)) return
    const id = ++this.#deathSeq
    proc.death = { at, outcome, id }
    this.#at(at, () => {
      if (proc.death?.id !== id || proc.state !== "alive") return
      this.#die(proc)
      this.#input(host, { _tag: "Core", make: (now) => childExit(proc.tag, proc.run, outcome, now) })
      host.procs.delete(key)
    })
  }

  #die(proc: Proc): void {
    proc.state = "dead"
    if (proc.interval !== undefined) proc.interval.end = this.#now
  }

  // -------------------------------------------------------------------------------------------
  // The fencer: its own process, on the host's clock; not paused with the daemon

  #arm(host: Host, group: string, arm: Arm): void {
    if (this.options.fencer === "off") return
    host.fencer.set(group, arm)
    const fire = (signal: Signal, at: number): void =>
      this.#at(this.#toReal(host, at), () => {
        const current = host.fencer.get(group)
        if (host.life === "dead" || current === undefined || this.localNow(host) + 1e-6 < (signal === "SIGTERM" ? current.termAt : current.killAt)) return
        for (const [key, proc] of host.procs) if (proc.group === group) this.#signal(host, key, signal, "fencer")
      })
    fire("SIGTERM", arm.termAt)
    fire("SIGKILL", arm.killAt)
  }

  // -------------------------------------------------------------------------------------------
  // The network and etcd

  /** Whether messages get through between the host and etcd now (a message a daemon sent before it died still arrives). */
  #linked(host: Host): boolean {
    return this.#etcdState === "up" && host.partitioned === "linked"
  }

  #reachable(host: Host): boolean {
    return this.#linked(host) && host.life !== "dead"
  }

  #send(host: Host, command: NodeCommand): void {
    const id = ++this.#requestSeq
    if (command._tag !== "Revoke") host.requests.set(id, command)
    const d = this.options.delayMs
    this.#at(this.#now + this.#delay(d, { min: 1, max: 20 }), () => this.#atEtcd(host, id, command))
    this.#at(this.#now + (this.options.callTimeoutMs ?? 1_000), () => {
      if (host.requests.delete(id)) this.#input(host, { _tag: "Node", make: (now) => failureOf(command, now, "deadline passed") })
    })
  }

  #answer(host: Host, id: number, make: (now: number) => NodeEvent): void {
    this.#at(this.#now + this.#delay(this.options.delayMs, { min: 1, max: 20 }), () => {
      if (!this.#reachable(host) || !host.requests.delete(id)) return
      this.#input(host, { _tag: "Node", make })
    })
  }

  #atEtcd(host: Host, id: number, command: NodeCommand): void {
    if (!this.#linked(host)) return
    const name = host.node.node
    switch (command._tag) {
      case "Read": {
        const snapshot = snapshotOf(this.etcd)
        return this.#answer(host, id, (now) => ({ _tag: "Snapshot", now, snapshot }))
      }
      case "Watch":
        host.requests.delete(id)
        return this.#watch(host, command.fromRevision)
      case "Grant": {
        const lease = this.etcd.grant(command.ttlMs, this.#now)
        this.#scheduleExpiry()
        return this.#answer(host, id, (now) => ({ _tag: "Granted", now, lease: command.lease, id: lease, ttlMs: command.ttlMs }))
      }
      case "KeepAlive": {
        const ttlMs = this.etcd.keepAlive(command.id, this.#now)
        return this.#answer(host, id, (now) => ({ _tag: "KeptAlive", now, lease: command.lease, id: command.id, seq: command.seq, ttlMs }))
      }
      case "Revoke":
        return this.#changed(this.etcd.revoke(command.id))
      case "Write": {
        const before = this.etcd.history.length
        const outcome = this.etcd.write(name, command.write, this.#now)
        this.#changed(this.etcd.history.slice(before))
        this.#scheduleExpiry()
        if (outcome._tag === "Done" && command.write._tag !== "Publish") this.note(host.spec.name, `etcd: ${command.write._tag} ${"group" in command.write ? command.write.group : ""} done at revision ${outcome.revision}`)
        return this.#answer(host, id, (now) => ({ _tag: "Written", now, write: command.write, outcome }))
      }
      default:
        return
    }
  }

  #watch(host: Host, from: number): void {
    const session = ++this.#sessionSeq
    host.watch = { _tag: "Active", session, lastAt: this.#now }
    this.#deliver(host, this.etcd.history.filter((c) => c.revision > from))
  }

  /** Changes reach every active watch, batched by revision, in order, after a delay. */
  #changed(changes: readonly KvChange[]): void {
    if (changes.length === 0) return
    for (const host of this.hosts.values()) this.#deliver(host, changes)
  }

  #deliver(host: Host, changes: readonly KvChange[]): void {
    const watch = host.watch
    if (watch._tag !== "Active" || changes.length === 0) return
    const byRevision = new Map<number, KvChange[]>()
    for (const c of changes) byRevision.set(c.revision, [...(byRevision.get(c.revision) ?? []), c])
    for (const [revision, batch] of byRevision) {
      const events = batch.flatMap((c) => changeOf(c) ?? [])
      const at = Math.max(watch.lastAt, this.#now + this.#delay(this.options.watchDelayMs, { min: 1, max: 30 }))
      watch.lastAt = at
      this.#at(at, () => {
        if (host.watch !== watch || !this.#reachable(host)) return
        this.#input(host, { _tag: "Node", make: (now) => ({ _tag: "Watched", now, revision, changes: events }) })
      })
    }
  }

  /** A broken watch is noticed by the host's shell a little later. */
  #breakWatch(host: Host): void {
    const watch = host.watch
    if (watch._tag !== "Active") return
    const broken: WatchSession = { _tag: "Broken", session: watch.session }
    host.watch = broken
    this.#at(this.#now + (this.options.watchLossMs ?? 500), () => {
      if (host.watch !== broken) return
      host.watch = { _tag: "None" }
      this.#input(host, { _tag: "Node", make: (now) => ({ _tag: "WatchLost", now, reason: "watch stream broken" }) })
    })
  }

  /** One pending check, at the earliest lease expiry; keep-alives only make it early, never late. */
  #scheduleExpiry(): void {
    const next = this.etcd.nextExpiry()
    // Without a leader nothing counts down: the election that ends the outage schedules again.
    if (this.#etcdState === "down" || next === undefined || (this.#expiryAt !== undefined && this.#expiryAt <= next)) return
    const at = Math.max(next, this.#now)
    this.#expiryAt = at
    this.#at(at, () => {
      if (this.#expiryAt !== at) return
      this.#expiryAt = undefined
      if (this.#etcdState === "up") {
        const expired = this.etcd.expireDue(this.#now)
        if (expired.length > 0) this.note(undefined, `etcd: lease expiry deleted ${expired.map((c) => c.key).join(", ")}`)
        this.#changed(expired)
      }
      this.#scheduleExpiry()
    })
  }

  // -------------------------------------------------------------------------------------------
  // Operators (an etcd client elsewhere: no delay) and faults

  pushConfig(text: string): void {
    const parsed = (this.options.parse ?? parseInittab)(text)
    const value = { text, sha256: fakeSha(text), seq: ++this.#configSeq, pushedAt: "1970-01-01T00:00:00.000Z" }
    this.#operator(`config push #${value.seq}`, () => this.etcd.put("config", { kind: "config", config: { value, parsed } }))
  }

  tell(group: string, level: string, node?: string): void {
    const key = node === undefined ? `desired/${group}` : `desired-node/${node}/${group}`
    this.#operator(`tell ${group} ${level}${node === undefined ? "" : ` --node ${node}`}`, () => this.etcd.put(key, { kind: "desired", level }))
  }

  /** `isinit --etcd move GROUP NODE`: a preference on a lease of its own, so it expires by itself. */
  move(group: string, node: string, ttlMs = 60_000): void {
    this.#operator(`move ${group} ${node}`, () => this.etcd.put(moveKey(group), { kind: "move", node }, this.etcd.grant(ttlMs, this.#now)))
    this.#scheduleExpiry()
  }

  #operator(what: string, apply: () => readonly KvChange[]): void {
    if (this.#etcdState !== "up") return this.note(undefined, `operator: ${what} failed: etcd is down`)
    this.note(undefined, `operator: ${what}`)
    this.#changed(apply())
  }

  partition(name: string, ms: number): void {
    const host = this.host(name)
    if (host.partitioned === "cut") return
    host.partitioned = "cut"
    this.note(name, `partitioned from etcd for ${ms} ms`)
    this.#breakWatch(host)
    this.#at(this.#now + ms, () => {
      host.partitioned = "linked"
      this.note(name, "partition healed")
    })
  }

  pause(name: string, ms: number): void {
    const host = this.host(name)
    if (host.life !== "up") return
    host.life = "paused"
    this.note(name, `daemon paused (SIGSTOP) for ${ms} ms`)
    this.#at(this.#now + ms, () => {
      if (host.life !== "paused") return
      host.life = "up"
      this.note(name, "daemon resumed")
      this.#drain(host)
    })
  }

  /** The whole host dies: daemon, fencer and children. */
  kill(name: string): void {
    const host = this.host(name)
    if (host.life === "dead") return
    host.life = "dead"
    this.note(name, "host killed")
    for (const proc of host.procs.values()) if (proc.state === "alive") this.#die(proc)
    host.procs.clear()
    host.fencer.clear()
    host.requests.clear()
    host.watch = { _tag: "None" }
  }

  /** `isinit stopall` (or SIGTERM): every process stops, then the node hands over and leaves. */
  stopDaemon(name: string): void {
    const host = this.host(name)
    if (host.life === "dead" || host.stop !== "running") return
    host.stop = "stopall"
    this.note(name, "stopall")
    this.#input(host, { _tag: "Core", make: (now) => stopAll(now) })
  }

  /** A fresh daemon on a killed host (new instance, nothing adopted). */
  restart(name: string): void {
    const host = this.host(name)
    if (host.life !== "dead") return
    this.#boot(host.spec)
  }

  /** etcd loses its leader (quorum) for `ms`; the next leader refreshes every lease. */
  outage(ms: number): void {
    if (this.#etcdState === "down") return
    this.#etcdState = "down"
    this.note(undefined, `etcd down for ${ms} ms`)
    for (const host of this.hosts.values()) this.#breakWatch(host)
    this.#at(this.#now + ms, () => {
      this.#etcdState = "up"
      this.etcd.refreshAll(this.#now)
      this.#expiryAt = undefined
      this.note(undefined, "etcd has a leader again: every lease refreshed")
      this.#scheduleExpiry()
    })
  }

  // -------------------------------------------------------------------------------------------
  // Reading the record

  /** Failover intervals of two different hosts that overlap in time. */
  overlaps(): readonly (readonly [Interval, Interval])[] {
    const out: [Interval, Interval][] = []
    const list = this.intervals
    for (let i = 0; i < list.length; i++) {
      for (let j = i + 1; j < list.length; j++) {
        const a = list[i]
        const b = list[j]
        if (a === undefined || b === undefined || a.host === b.host || a.group !== b.group) continue
        if (a.start < (b.end ?? Infinity) && b.start < (a.end ?? Infinity)) out.push([a, b])
      }
    }
    return out
  }

  /** Hosts on which a process of the group is alive now. */
  runningOn(group: string): readonly string[] {
    return [...this.hosts.values()].filter((h) => [...h.procs.values()].some((p) => p.group === group && p.state === "alive")).map((h) => h.spec.name)
  }

  traceText(last = 200): string {
    return this.trace
      .slice(-last)
      .map((l) => `${(l.at / 1000).toFixed(3)}s ${l.host ?? "--"} ${l.text}`)
      .join("\n")
  }
}

const failureOf = (command: NodeCommand, now: number, reason: string): NodeEvent => {
  switch (command._tag) {
    case "Read":
      return { _tag: "ReadFailed", now, reason }
    case "Watch":
      return { _tag: "WatchLost", now, reason }
    case "Grant":
      return { _tag: "GrantFailed", now, lease: command.lease, reason }
    case "KeepAlive":
      return { _tag: "KeepAliveFailed", now, lease: command.lease, id: command.id, seq: command.seq, reason }
    case "Write":
      return { _tag: "Written", now, write: command.write, outcome: { _tag: "Unavailable", reason } }
    default:
      return { _tag: "Tick", now }
  }
}
