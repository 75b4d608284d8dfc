/**
 * How a process ended (apart from the events, so that the state can read it without them).
 * `SpawnFailed` counts as an exit for the respawn rules.
 */
export type Outcome =
  | { readonly _tag: "Exited"; readonly code: number }
  | { readonly _tag: "Signaled"; readonly signal: string }
  | { readonly _tag: "SpawnFailed"; readonly reason: string }
  /** An adopted process (not our child) vanished: its exit status cannot be known. */
  | { readonly _tag: "Vanished" }

export const succeeded = (outcome: Outcome): boolean => outcome._tag === "Exited" && outcome.code === 0

export const describeOutcome = (outcome: Outcome): string => {
  switch (outcome._tag) {
    case "Exited":
      return `exit ${outcome.code}`
    case "Signaled":
      return `signal ${outcome.signal}`
    case "SpawnFailed":
      return `spawn failed: ${outcome.reason}`
    case "Vanished":
      return "ended while adopted (exit status unknown)"
  }
}
