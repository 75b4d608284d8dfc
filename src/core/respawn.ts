/**
 * Rule 6's window, as one function (OTP's `add_restart`): may a respawn entry start now, given its
 * recent starts? The reducer asks it before every respawn start; adoption counts with it the
 * starts a crashed predecessor made (adoption.ts).
 */
import type { Limits } from "./config.ts"

export type Admission =
  /** Start it: `starts` is the window with this start counted (at most `respawnMax` starts). */
  | { readonly _tag: "Admitted"; readonly starts: readonly number[] }
  /**
   * Jail it until `until`: when the jail is over and the window admits a start again, whichever
   * is later (one jailing, with its real end, instead of a release that would only jail the entry
   * again while the window outlives a short jail). `starts` is the window without this start.
   */
  | { readonly _tag: "Jailed"; readonly starts: readonly number[]; readonly until: number }

/** The starts still inside the window at `now`, oldest first (a start exactly a window ago is out). */
const inWindow = (starts: readonly number[], now: number, { respawnWindowMs }: Limits): readonly number[] =>
  starts.filter((at) => now - at < respawnWindowMs)

export const admitStart = (starts: readonly number[], now: number, limits: Limits): Admission => {
  const recent = inWindow(starts, now, limits)
  if (recent.length < limits.respawnMax) return { _tag: "Admitted", starts: [...recent, now] }
  const admitsAt = (recent[recent.length - limits.respawnMax] ?? now) + limits.respawnWindowMs
  return { _tag: "Jailed", starts: recent, until: Math.max(now + limits.jailMs, admitsAt) }
}

/**
 * A start that happened whatever the window says (a predecessor admitted it before it crashed):
 * counted like an admitted one, keeping the latest `respawnMax`, which are all the window uses.
 */
export const countStart = (starts: readonly number[], now: number, limits: Limits): readonly number[] =>
  [...inWindow(starts, now, limits), now].slice(-limits.respawnMax)
