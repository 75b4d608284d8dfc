import type { Effect } from "./effects.ts"
import type { Event } from "./events.ts"
import type { State } from "./state.ts"
import * as Timers from "./timers.ts"

// STUB: being written; signatures are final.
export const reduce = (state: State, _event: Event): readonly [State, readonly Effect[]] => [state, []]

/** When the runtime must deliver the next Tick; `undefined` when nothing is pending. */
export const nextDeadline = (state: State): number | undefined => Timers.peek(state.timers)?.at
