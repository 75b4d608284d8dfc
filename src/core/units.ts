/**
 * The isinittab's units, read one way everywhere (directives, failover directives, per-entry
 * options): durations (`500ms`, `10s`, `2m`, a bare number is seconds), sizes (`512`, `64K`,
 * `10M`, `1G`: bytes, binary multiples) and respawn limits (`N/DURATION`). Pure; each returns
 * `undefined` for text it does not accept, so callers word their own errors.
 */

/** Node arms no timer longer than this; a longer one would fire at once. */
export const maxDurationMs = 2_147_483_647
export const maxRespawnCount = 1000

const unitMs: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000 }
const durationPattern = /^(\d+)(ms|s|m)?$/

/** A duration in ms, at most `maxDurationMs`; 0 only where `zero` allows it. */
export const durationMs = (text: string, zero: "zero-ok" | "positive" = "positive"): number | undefined => {
  const match = durationPattern.exec(text.trim())
  if (match === null) return undefined
  const ms = Number(match[1]) * (unitMs[match[2] ?? "s"] ?? 1000)
  if (ms > maxDurationMs || (ms === 0 && zero === "positive")) return undefined
  return ms
}

export const durationHelp = "an integer with unit ms, s or m (e.g. 500ms, 10s, 2m; bare means seconds), positive, at most 2147483647ms"

export interface RespawnLimit {
  readonly max: number
  readonly windowMs: number
}

/** `N/DURATION`, e.g. `5/10s`: N from 1 to `maxRespawnCount`. */
export const respawnLimitOf = (text: string): RespawnLimit | undefined => {
  const [count, window, ...rest] = text.trim().split("/")
  if (count === undefined || window === undefined || rest.length > 0 || !/^\d+$/.test(count)) return undefined
  const max = Number(count)
  const windowMs = durationMs(window)
  if (max < 1 || max > maxRespawnCount || windowMs === undefined) return undefined
  return { max, windowMs }
}

export const respawnLimitHelp = `N/DURATION with N from 1 to ${maxRespawnCount} and DURATION ${durationHelp}`

const sizeUnits: Readonly<Record<string, number>> = { "": 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 }
const sizePattern = /^(\d+)([KMGT]?)B?$/i

/** Bytes: `512`, `64K`, `10M`, `1G` (binary multiples, case-insensitive, an optional `B`), a safe integer. */
export const sizeBytes = (text: string): number | undefined => {
  const match = sizePattern.exec(text.trim())
  if (match === null) return undefined
  const bytes = Number(match[1]) * (sizeUnits[(match[2] ?? "").toUpperCase()] ?? 1)
  return Number.isSafeInteger(bytes) ? bytes : undefined
}

/** `10485760` bytes as `10M`: the largest unit that divides it. */
export const showSize = (bytes: number): string => {
  for (const unit of ["T", "G", "M", "K"] as const) {
    const size = sizeUnits[unit] ?? 1
    if (bytes >= size && bytes % size === 0) return `${bytes / size}${unit}`
  }
  return String(bytes)
}

export const showDuration = (ms: number): string => (ms % 60_000 === 0 ? `${ms / 60_000}m` : ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`)
