/**
 * Reducer throughput: child-exit storms and tells at 100, 1,000 and 10,000 entries.
 * Targets (issue 2): at 10,000 entries >= 200,000 child-exit events/s; a tell over 10,000 entries,
 * parse included, under 50 ms. Run: `npm run bench:reducer`. Prints a Markdown table.
 */
import { performance } from "node:perf_hooks"
import { parseInittab } from "../src/core/inittab.ts"
import type { Event } from "../src/core/events.ts"
import { childExit, started, tell } from "../src/core/events.ts"
import { reduce } from "../src/core/reducer.ts"
import type { State } from "../src/core/state.ts"
import { entryOf, initialState } from "../src/core/state.ts"

const sizes = [100, 1_000, 10_000]
const groupsFor = (entries: number): number => Math.max(1, entries / 100)

const inittab = (entries: number): string => {
  const lines: string[] = ["# benchmark isinittab"]
  for (let i = 0; i < entries; i++) lines.push(`g${i % groupsFor(entries)}:t${i}:2:respawn:/bin/sleep ${i}`)
  return lines.join("\n") + "\n"
}

const median = (xs: readonly number[]): number => {
  const sorted = [...xs].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN
}

const apply = (state: State, event: Event): State => reduce(state, event)[0]

/** Every group told level 2 and every process reported started. */
const allRunning = (text: string, entries: number): State => {
  const parsed = parseInittab(text)
  let state = initialState
  for (let g = 0; g < groupsFor(entries); g++) state = apply(state, tell(`g${g}`, "2", parsed, 0))
  for (let i = 0; i < entries; i++) {
    const proc = entryOf(state, `t${i}`).proc
    if (proc._tag !== "Idle") state = apply(state, started(`t${i}`, proc.run, 1000 + i, 0))
  }
  return state
}

/** Each event: the live run of one entry exits and is respawned (spaced to stay out of jail). */
const childExitStorm = (start: State, entries: number, events: number): number => {
  let state = start
  const stepMs = 3_000 / entries // each entry restarts every 3 s: 4 starts per 10 s window
  let now = 1
  // What the runtime knows without asking the state: which run each tag has (from its spawns).
  const tags = Array.from({ length: entries }, (_, i) => `t${i}`)
  const runs = tags.map((tag) => {
    const proc = entryOf(state, tag).proc
    if (proc._tag === "Idle") throw new Error(`${tag} is not running`)
    return proc.run
  })
  const exited = { _tag: "Exited", code: 1 } as const
  const begin = performance.now()
  for (let k = 0; k < events; k++) {
    const i = k % entries
    now += stepMs
    state = apply(state, childExit(tags[i] ?? "", runs[i] ?? 0, exited, now))
    runs[i] = state.nextRun - 1
  }
  const seconds = (performance.now() - begin) / 1000
  if (entryOf(state, "t0").jail._tag !== "Free") throw new Error("the storm ran into the jail: benchmark is wrong")
  return events / seconds
}

/** Parse the file and tell one group that holds every entry (the worst case for one tell). */
const tellOneBigGroup = (entries: number): number => {
  const text = inittab(entries).replace(/^g\d+:/gm, "all:")
  const samples: number[] = []
  for (let i = 0; i < 15; i++) {
    const begin = performance.now()
    apply(initialState, tell("all", "2", parseInittab(text), 0))
    samples.push(performance.now() - begin)
  }
  return median(samples)
}

const rows: string[] = []
for (const entries of sizes) {
  const text = inittab(entries)
  const running = allRunning(text, entries)
  const events = Math.max(200_000, entries * 20)
  childExitStorm(running, entries, 20_000) // warm-up
  const exitRates = [0, 1, 2].map(() => childExitStorm(running, entries, events))
  rows.push(`| ${entries.toLocaleString("en")} | ${Math.round(median(exitRates)).toLocaleString("en")} | ${tellOneBigGroup(entries).toFixed(2)} |`)
}
console.log(`Node ${process.version}, ${new Date().toISOString().slice(0, 10)}`)
console.log("| entries | child-exit events/s (median of 3) | tell incl. parse, ms (median of 15) |")
console.log("|---:|---:|---:|")
for (const row of rows) console.log(row)
