/**
 * Assertions: a broken invariant is a bug in isinit, never bad input (bad input gets a reason and
 * changes nothing). TIGER_STYLE: the only correct way to handle corrupt code is to crash; with
 * crash re-adoption a successor takes over every process, so failing fast is cheap and safe,
 * while going on with a corrupt state could orphan or double-run processes.
 */

/** Thrown by a failed assertion; `problems` says what broke, for the log line before the exit. */
export class InvariantViolation extends Error {
  readonly problems: readonly string[]
  constructor(problems: readonly string[]) {
    super(`invariant broken: ${problems.join("; ")}`)
    this.name = "InvariantViolation"
    this.problems = problems
  }
}

export function assert(condition: boolean, problem: () => string): asserts condition {
  if (!condition) throw new InvariantViolation([problem()])
}

/** Throws when `problems` is not empty. */
export const assertNone = (problems: readonly string[]): void => {
  if (problems.length > 0) throw new InvariantViolation(problems)
}
