/**
 * Time and identity of the current boot, shared by every daemon process on it.
 *
 * A daemon that restarts after a crash continues its predecessor's jails, windows and grace
 * timers, so both must read the same clock. `performance.timeOrigin` is per process; the kernel's
 * CLOCK_MONOTONIC (`process.hrtime`, time since boot) is the same in every process of a boot and
 * never jumps when the wall clock is set. It is anchored at the boot's wall time (`btime` in
 * /proc/stat) so that its values read like epoch milliseconds. `btime` itself moves when the wall
 * clock is set, so a successor takes its predecessor's anchor from the state file instead of
 * reading it again.
 */
import { readFileSync } from "node:fs"

/** Milliseconds of CLOCK_MONOTONIC: since boot, the same in every process. */
const monotonicMs = (): number => Number(process.hrtime.bigint() / 1_000_000n)

/** The boot's wall time in ms (/proc/stat `btime`), or the equivalent from this process's clocks. */
export const bootAnchorMs = (): number => {
  try {
    const match = /^btime (\d+)$/m.exec(readFileSync("/proc/stat", "latin1"))
    if (match?.[1] !== undefined) return Number(match[1]) * 1000
  } catch {
    // not Linux, or /proc not mounted
  }
  return Date.now() - monotonicMs()
}

/** The kernel's random id of this boot; a state file from another boot describes no live process. */
export const bootId = (): string | undefined => {
  try {
    const id = readFileSync("/proc/sys/kernel/random/boot_id", "latin1").trim()
    return id === "" ? undefined : id
  } catch {
    return undefined
  }
}

export type BootClock = (() => number) & { readonly anchorMs: number }

/** `anchorMs + CLOCK_MONOTONIC`: epoch-like milliseconds that never go backwards within a boot. */
export const makeBootClock = (anchorMs: number = bootAnchorMs()): BootClock =>
  Object.assign(() => anchorMs + monotonicMs(), { anchorMs })
