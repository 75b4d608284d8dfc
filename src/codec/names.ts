/**
 * io-ts codecs of names: the rule itself is the core's (core/names.ts), so a name accepted by one
 * edge is never refused by another.
 */
import { t } from "../lib/ioTs.ts"

export { maxNameLength, nameProblem } from "../core/names.ts"

/** An io-ts codec for strings that `problemOf` accepts, failing with its sentence. */
export const checkedString = (what: string, problemOf: (what: string, value: string) => string | undefined): t.Type<string, string, unknown> =>
  new t.Type<string, string, unknown>(
    what,
    (u): u is string => typeof u === "string" && problemOf(what, u) === undefined,
    (u, c) => {
      if (typeof u !== "string") return t.failure(u, c, `${what} must be a string`)
      const problem = problemOf(what, u)
      return problem === undefined ? t.success(u) : t.failure(u, c, problem)
    },
    t.identity,
  )
