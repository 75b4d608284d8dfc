/**
 * Group and level names as they may travel: on the socket, on the command line, in etcd keys.
 * One rule for every edge, so a name accepted by one is never refused by another.
 */
import { t } from "../ioTs.ts"

/** Longest group, level, node or cluster name accepted. */
export const maxNameLength = 256

const controlChar = /\p{Cc}/u
const whitespace = /\s/

/** Why a name is unacceptable, or undefined if it is fine. */
export const nameProblem = (what: string, name: string): string | undefined => {
  if (name.length === 0) return `${what} is empty`
  if (name.length > maxNameLength) return `${what} is longer than ${maxNameLength} characters`
  if (controlChar.test(name)) return `${what} contains a control character`
  if (whitespace.test(name)) return `${what} contains whitespace`
  return undefined
}

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
