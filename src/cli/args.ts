/** Command-line pieces shared by `isinit` and `isinit --etcd`. */
import { maxTimeoutMs } from "../codec/limits.ts"

/** A mistake in the command line: printed with the synopsis, exit code 2. */
export class UsageError extends Error {}

/** How long `--wait` waits without `--timeout`. */
export const defaultWaitSeconds = 600

/** Refuses each of `flags` given on the command line that `command` does not take (`allowed`). */
export const onlyFlags = <Flag extends string>(values: Partial<Record<Flag, unknown>>, flags: readonly Flag[], allowed: readonly Flag[], command: string): void => {
  for (const flag of flags) {
    if (values[flag] !== undefined && !allowed.includes(flag)) throw new UsageError(`--${flag} does not apply to ${command}`)
  }
}

export const expectCount = (name: string, args: readonly string[], count: number, shape: string): readonly string[] => {
  if (args.length !== count) throw new UsageError(`${name} takes ${shape}, got ${args.length === 0 ? "nothing" : args.join(" ")}`)
  return args
}

/** `--timeout S` in milliseconds. */
export const timeoutOptionMs = (text: string): number => {
  const seconds = Number(text)
  if (!Number.isFinite(seconds) || seconds <= 0 || seconds * 1000 > maxTimeoutMs) {
    throw new UsageError(`--timeout takes a number of seconds from 0.001 to ${maxTimeoutMs / 1000}, not "${text}"`)
  }
  return Math.max(1, Math.round(seconds * 1000))
}

/** `--timeout S` (only with `--wait`) in milliseconds, or the default. */
export const waitTimeoutMs = (values: { readonly timeout?: string | undefined; readonly wait?: boolean | undefined }): number => {
  if (values.timeout === undefined) return defaultWaitSeconds * 1000
  if (values.wait !== true) throw new UsageError("--timeout applies only with --wait")
  return timeoutOptionMs(values.timeout)
}
