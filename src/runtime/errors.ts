/**
 * Failures of the outside world in words, one way everywhere in the shell: a system error by its
 * errno code, with or without its message. Node built-ins only (the client loads it too).
 */

/** The errno code of a Node system error (`ENOENT`, `EPIPE`...), if it is one. */
export const errnoOf = (error: unknown): string | undefined =>
  typeof error === "object" && error !== null && "code" in error && typeof error.code === "string" ? error.code : undefined

/** The error's message (or the thrown value as text). */
export const messageOf = (error: unknown): string => (error instanceof Error ? error.message : String(error))

/** A system error as `CODE (message)`; anything else as its text. */
export const describeError = (error: unknown): string => {
  const code = errnoOf(error)
  return code === undefined ? String(error) : `${code} (${messageOf(error)})`
}

/** A thrown value for a bug report: the error's stack (else its message), or the value as text. */
export const stackOf = (error: unknown): string => (error instanceof Error ? (error.stack ?? error.message) : String(error))

/** A system error by its errno code alone (`EPIPE`), anything else as its text: for short notes. */
export const codeOf = (error: unknown): string => errnoOf(error) ?? String(error)
