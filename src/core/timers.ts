/**
 * A persistent min-heap of deadlines (a leftist heap: O(log n) insert and pop, nothing copied).
 * Timers are never cancelled: a timer whose reason has gone is recognised as stale when it is
 * popped, which keeps cancellation O(1) and every event's cost independent of fleet size.
 */

export type TimerReason =
  | { readonly _tag: "JailEnds"; readonly tag: string }
  | { readonly _tag: "KillDue"; readonly tag: string; readonly run: number }

export interface Timer {
  readonly at: number
  readonly reason: TimerReason
}

type Node = { readonly timer: Timer; readonly rank: number; readonly left: Heap; readonly right: Heap }
type Heap = Node | undefined

export type TimerQueue = Heap

export const empty: TimerQueue = undefined

const rank = (heap: Heap): number => (heap === undefined ? 0 : heap.rank)

const node = (timer: Timer, a: Heap, b: Heap): Node =>
  rank(a) >= rank(b) ? { timer, rank: rank(b) + 1, left: a, right: b } : { timer, rank: rank(a) + 1, left: b, right: a }

const merge = (a: Heap, b: Heap): Heap => {
  if (a === undefined) return b
  if (b === undefined) return a
  return a.timer.at <= b.timer.at ? node(a.timer, a.left, merge(a.right, b)) : node(b.timer, b.left, merge(a, b.right))
}

export const add = (queue: TimerQueue, timer: Timer): TimerQueue => merge(queue, { timer, rank: 1, left: undefined, right: undefined })

export const peek = (queue: TimerQueue): Timer | undefined => queue?.timer

export const pop = (queue: TimerQueue): TimerQueue => (queue === undefined ? undefined : merge(queue.left, queue.right))

export const toArray = (queue: TimerQueue): readonly Timer[] => {
  const out: Timer[] = []
  const walk = (heap: Heap): void => {
    if (heap === undefined) return
    out.push(heap.timer)
    walk(heap.left)
    walk(heap.right)
  }
  walk(queue)
  return out.sort((a, b) => a.at - b.at)
}
