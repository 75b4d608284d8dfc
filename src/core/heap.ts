/**
 * A persistent min-heap of things due at a time (a leftist heap: O(log n) insert and pop, nothing
 * copied). Items are never removed early: an item whose reason has gone is recognised as stale
 * when it is popped, which keeps cancellation O(1) and every event's cost independent of fleet
 * size. The core's timers (timers.ts) and the cluster node's (src/cluster/node) are both this heap.
 */

export interface Due {
  readonly at: number
}

type Node<T extends Due> = { readonly item: T; readonly rank: number; readonly left: Heap<T>; readonly right: Heap<T> }

export type Heap<T extends Due> = Node<T> | undefined

export const empty = undefined

const rank = <T extends Due>(heap: Heap<T>): number => (heap === undefined ? 0 : heap.rank)

const node = <T extends Due>(item: T, a: Heap<T>, b: Heap<T>): Node<T> =>
  rank(a) >= rank(b) ? { item, rank: rank(b) + 1, left: a, right: b } : { item, rank: rank(a) + 1, left: b, right: a }

const merge = <T extends Due>(a: Heap<T>, b: Heap<T>): Heap<T> => {
  if (a === undefined) return b
  if (b === undefined) return a
  return a.item.at <= b.item.at ? node(a.item, a.left, merge(a.right, b)) : node(b.item, b.left, merge(a, b.right))
}

export const add = <T extends Due>(heap: Heap<T>, item: T): Heap<T> => merge(heap, { item, rank: 1, left: undefined, right: undefined })

export const peek = <T extends Due>(heap: Heap<T>): T | undefined => heap?.item

export const pop = <T extends Due>(heap: Heap<T>): Heap<T> => (heap === undefined ? undefined : merge(heap.left, heap.right))
