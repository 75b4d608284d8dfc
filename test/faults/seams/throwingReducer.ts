/**
 * The core's reducer with one bug planted: it throws on a tell of the group `boom`. Loaded in
 * place of src/core/reducer.ts by the loader hook beside it (a link seam), so that the real
 * isinitd runs with a reducer that throws, without a line of test code in the daemon.
 */
import type { Effect } from "../../../src/core/effects.ts"
import type { Event } from "../../../src/core/events.ts"
import { reduce as realReduce } from "../../../src/core/reducer.ts"
import type { State } from "../../../src/core/state.ts"

export * from "../../../src/core/reducer.ts"

export const reduce = (state: State, event: Event): readonly [State, readonly Effect[]] => {
  if (event._tag === "Tell" && event.group === "boom") throw new Error("a bug planted in the reducer (test/faults/seams)")
  return realReduce(state, event)
}
