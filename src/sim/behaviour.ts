/**
 * How a simulated process behaves: how its life ends on its own, and how it takes SIGTERM.
 * Every run of an entry behaves the same way, so `crashesEvery` is simply a short life with code 1.
 */

export type Life =
  | { readonly _tag: "RunsForever" }
  | { readonly _tag: "ExitsAfter"; readonly ms: number; readonly code: number }
  | { readonly _tag: "FailsToSpawn"; readonly reason: string }
  /** A shell-wrapped service: the leader exits after `ms`, the rest of its process group lives on until stopped. */
  | { readonly _tag: "LeaderExitsAfter"; readonly ms: number; readonly code: number }

export interface Behaviour {
  readonly life: Life
  /** A process that ignores SIGTERM ends only by SIGKILL (or by its own exit). */
  readonly ignoresSigterm: boolean
  /** How long it takes to die after SIGTERM; the world's default when undefined. */
  readonly sigtermDelayMs: number | undefined
  /** Rules 20-22: its `ready` probe passes from this long after its start (`Infinity`: never). */
  readonly readyAfterMs: number
  /** Its `health` probe fails from this long after its start (`Infinity`: it stays healthy). */
  readonly unhealthyAfterMs: number
}

const make = (life: Life): Behaviour => ({ life, ignoresSigterm: false, sigtermDelayMs: undefined, readyAfterMs: 0, unhealthyAfterMs: Infinity })

export const runsForever = (): Behaviour => make({ _tag: "RunsForever" })
export const exitsAfter = (ms: number, code: number): Behaviour => make({ _tag: "ExitsAfter", ms, code })
export const crashesEvery = (ms: number): Behaviour => exitsAfter(ms, 1)
export const failsToSpawn = (reason: string): Behaviour => make({ _tag: "FailsToSpawn", reason })
export const leaderExitsAfter = (ms: number, code: number): Behaviour => make({ _tag: "LeaderExitsAfter", ms, code })
export const ignoresSigterm = (base: Behaviour = runsForever()): Behaviour => ({ ...base, ignoresSigterm: true })
export const stopsAfter = (ms: number, base: Behaviour = runsForever()): Behaviour => ({ ...base, sigtermDelayMs: ms })

export const readyAfter = (ms: number, base: Behaviour = runsForever()): Behaviour => ({ ...base, readyAfterMs: ms })
export const neverReady = (base: Behaviour = runsForever()): Behaviour => ({ ...base, readyAfterMs: Infinity })
export const unhealthyAfter = (ms: number, base: Behaviour = runsForever()): Behaviour => ({ ...base, unhealthyAfterMs: ms })

/** What a probe of a process `ageMs` old finds (the world answers `Probe` effects with it). */
export const probePasses = (behaviour: Behaviour, purpose: "ready" | "health", ageMs: number): boolean =>
  purpose === "ready" ? ageMs >= behaviour.readyAfterMs : ageMs < behaviour.unhealthyAfterMs

/** Defaults when nothing is said: daemons (`Spawn`) run until stopped; `wait`/`test` jobs succeed after 100 ms. */
export const defaultForSpawn: Behaviour = runsForever()
export const defaultForRunSync: Behaviour = exitsAfter(100, 0)
