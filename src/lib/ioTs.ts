/**
 * io-ts and fp-ts's `Either`, loaded with `require`. Every module of core/ and codec/ takes them
 * from here rather than with `import`; lint forbids importing them directly there.
 *
 * Why: both packages are CommonJS. Imported from an ES module, Node 20 sends io-ts and each file
 * it requires through the ES module loader's CommonJS translator, which scans every file's source
 * for its exports first: about 50 ms of CPU here, paid on every `isinit` call (a bare `node -e 0`
 * takes about 120 ms), against about 15 ms through `require`. Measured with bench/client.ts; see
 * docs/bench.md. The values are the packages' own, and so are the types: the namespaces below
 * only name the types this code uses (a namespace of types merges with the value).
 */
import { createRequire } from "node:module"
import type * as FpEither from "fp-ts/lib/Either.js"
import type * as IoTs from "io-ts"

const require = createRequire(import.meta.url)

export const t: typeof IoTs = require("io-ts")
export declare namespace t {
  export type Type<A, O = A, I = unknown> = IoTs.Type<A, O, I>
  export type TypeOf<C extends IoTs.Any> = IoTs.TypeOf<C>
  export type Mixed = IoTs.Mixed
  export type Errors = IoTs.Errors
  export type Decoder<I, A> = IoTs.Decoder<I, A>
  export type Context = IoTs.Context
  export type ContextEntry = IoTs.ContextEntry
}

export const E: typeof FpEither = require("fp-ts/lib/Either.js")
export declare namespace E {
  export type Either<L, R> = FpEither.Either<L, R>
}
