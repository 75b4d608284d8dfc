/**
 * Group and level names as they may travel: on the socket, on the command line, in etcd keys.
 * One rule for every edge, so a name accepted by one is never refused by another.
 */
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
