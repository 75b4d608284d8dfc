/**
 * The core's timers: a persistent min-heap of deadlines (heap.ts). Timers are never cancelled: a
 * timer whose reason has gone is recognised as stale when it is popped, which keeps cancellation
 * O(1) and every event's cost independent of fleet size.
 */
import type { Heap } from "./heap.ts"
import * as H from "./heap.ts"

export type TimerReason =
  | { readonly _tag: "JailEnds"; readonly tag: string }
  | { readonly _tag: "KillDue"; readonly tag: string; readonly run: number }
  /** A failover group's hold reaches its renew deadline (see `Hold` in events.ts). */
  | { readonly _tag: "HoldEnds"; readonly group: string }
  /** Rules 20-22: the next readiness or health attempt of a run is due. */
  | { readonly _tag: "ProbeDue"; readonly tag: string; readonly run: number; readonly attempt: number }
  /** Rule 21: the entry is still not ready at its `ready-timeout`. */
  | { readonly _tag: "ReadyDeadline"; readonly tag: string }

export interface Timer {
  readonly at: number
  readonly reason: TimerReason
}

export type TimerQueue = Heap<Timer>

export const empty: TimerQueue = H.empty

export const add = (queue: TimerQueue, timer: Timer): TimerQueue => H.add(queue, timer)

export const peek = (queue: TimerQueue): Timer | undefined => H.peek(queue)

export const pop = (queue: TimerQueue): TimerQueue => H.pop(queue)
