/**
 * The accumulator of one node reduction (as the core's `Step`): a draft of the state and the
 * commands so far. Local to `reduceNode`, so its mutation is invisible outside the call.
 */
import type { Config, Parsed } from "../../core/config.ts"
import { emptyParsed } from "../../core/config.ts"
import type { FailoverGroup } from "../../core/failover.ts"
import * as Heap from "../../core/heap.ts"
import type { NodeCommand, NodeLogWhat, NodeState, Running } from "./types.ts"

export type Draft = { -readonly [K in keyof NodeState]: NodeState[K] }

export interface Step {
  readonly s: Draft
  readonly out: NodeCommand[]
}

export const emit = (step: Step, command: NodeCommand): void => void step.out.push(command)

export const log = (step: Step, what: NodeLogWhat, message: string, group?: string): void =>
  emit(step, group === undefined ? { _tag: "Log", what, message } : { _tag: "Log", what, group, message })

/** Something in the state falls due at `at`: the shell delivers a Tick then. */
export const wake = (step: Step, at: number): void => {
  step.s.wakeups = Heap.add(step.s.wakeups, { at })
}

export const parsedOf = (running: Running): Parsed =>
  running._tag === "Etcd" ? running.config.parsed : running._tag === "File" ? running.parsed : emptyParsed

export const configOf = (s: Pick<NodeState, "running">): Config => parsedOf(s.running).config

export const failoverGroup = (s: Pick<NodeState, "running">, group: string): FailoverGroup | undefined =>
  configOf(s).failover.groups.get(group)

/** Retries after an etcd failure: 200 ms, doubling, at most 5 s (today's backoff). */
export const retryDelay = (attempt: number): number => Math.min(5_000, 200 * 2 ** Math.min(attempt, 20))

export const withEntry = <K, V>(map: ReadonlyMap<K, V>, key: K, value: V | undefined): ReadonlyMap<K, V> => {
  const next = new Map(map)
  if (value === undefined) next.delete(key)
  else next.set(key, value)
  return next
}
