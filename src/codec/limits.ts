/**
 * The socket protocol's bounds, apart from its codecs (protocol.ts): the client checks its
 * arguments against them before it loads anything that decodes.
 */

/** A request line longer than this (newline excluded) is refused. */
export const maxLineBytes = 4096
/** Longest `timeoutMs` a waiting tell may ask for: one day. */
export const maxTimeoutMs = 86_400_000
