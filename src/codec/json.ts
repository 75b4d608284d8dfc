/**
 * The one way isinit reads JSON it did not write itself (socket lines, the state file, etcd
 * values): parse, decode with io-ts, and say what is wrong in words a person can act on. Never
 * throws.
 */
import { E, t } from "../lib/ioTs.ts"

/** io-ts puts the index of an intersection's or union's member into the path: not a field. */
const isMemberIndex = (parent: t.ContextEntry | undefined): boolean => {
  const tag = (parent?.type as { readonly _tag?: unknown } | undefined)?._tag
  return tag === "IntersectionType" || tag === "UnionType"
}

const pathOf = (context: t.Context): string =>
  context
    .filter((entry, i) => entry.key !== "" && !isMemberIndex(context[i - 1]))
    .map((entry) => entry.key)
    .join(".")

/**
 * One sentence per problem, joined with "; ": a missing field, a codec's own message (with the
 * field's path when the message does not start with it), or the type the field must have.
 */
export const describeErrors = (errors: t.Errors): string => {
  const messages = new Set<string>()
  for (const error of errors) {
    const path = pathOf(error.context)
    if (error.value === undefined) messages.add(`missing field "${path}"`)
    else if (error.message !== undefined) {
      messages.add(path === "" || error.message.startsWith(`${path} `) ? error.message : `${path}: ${error.message}`)
    } else messages.add(`field "${path}" must be ${error.context[error.context.length - 1]?.type.name ?? "valid"}`)
  }
  return [...messages].join("; ")
}

/**
 * Compile-time checks that a codec describes exactly the type it stands for, both ways (a field
 * or a value missing on either side fails): `type _Checks = [Assert<Same<t.TypeOf<typeof c>, T>>]`.
 */
export type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false
export type Assert<T extends true> = T

/** A codec for one of a list of strings (the list an enumeration is defined by). */
export const literals = <A extends string>(name: string, values: readonly A[]): t.Type<A, A, unknown> =>
  new t.Type<A, A, unknown>(
    name,
    (u): u is A => typeof u === "string" && (values as readonly string[]).includes(u),
    (u, c) => (typeof u === "string" && (values as readonly string[]).includes(u) ? t.success(u as A) : t.failure(u, c)),
    t.identity,
  )

/** Parses JSON text; the left side says why it is not JSON. */
export const parseJson = (text: string): E.Either<string, unknown> => {
  try {
    return E.right(JSON.parse(text) as unknown)
  } catch (error) {
    return E.left(`not JSON: ${error instanceof Error ? error.message : String(error)}`)
  }
}

/** Parses JSON text and decodes it with `codec`; the left side says what is wrong. */
export const decodeJson = <A>(codec: t.Decoder<unknown, A>, text: string): E.Either<string, A> => {
  const parsed = parseJson(text)
  if (E.isLeft(parsed)) return parsed
  const decoded = codec.decode(parsed.right)
  return E.isLeft(decoded) ? E.left(describeErrors(decoded.left)) : decoded
}
