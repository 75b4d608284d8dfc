/**
 * The clock a failover deadline is kept on, shared by the daemon and its fencer (runtime/fencer.ts,
 * cluster/fencing.ts): a neutral module, as cluster mode does not import the runtime.
 *
 * Both read the kernel's clocks, which are system-wide: CLOCK_MONOTONIC (`process.hrtime`, what
 * the daemon's own clock is built on, runtime/boot.ts) reads the same in every process. Better is
 * CLOCK_BOOTTIME, the same clock plus the time the host spent suspended: a holder that is
 * suspended past its deadline and resumes finds its fencer's deadline passed at once, where
 * CLOCK_MONOTONIC would not have counted the suspension. Node has no API for it, so it is read
 * through koffi (clock_gettime(CLOCK_BOOTTIME)); without koffi both sides use CLOCK_MONOTONIC, and
 * the daemon tells its fencer which (a fencer that cannot read the daemon's clock refuses to run).
 */
import { createRequire } from "node:module"

export type ClockKind = "boottime" | "monotonic"

export interface KernelClock {
  readonly kind: ClockKind
  /** Milliseconds on that clock (since boot). */
  readonly nowMs: () => number
}

const CLOCK_BOOTTIME = 7

const monotonic: KernelClock = { kind: "monotonic", nowMs: () => Number(process.hrtime.bigint()) / 1e6 }

/** CLOCK_BOOTTIME through koffi, or why not. */
const boottime = (): KernelClock | string => {
  if (process.platform !== "linux") return `CLOCK_BOOTTIME is Linux's; this is ${process.platform}`
  try {
    // koffi is CommonJS with a native part: required, not imported, so a failure stays here.
    const koffi = createRequire(import.meta.url)("koffi") as typeof import("koffi")
    const libc = koffi.load(null)
    koffi.struct("isinit_timespec", { tv_sec: "int64_t", tv_nsec: "long" })
    const clockGettime = libc.func("int clock_gettime(int clk, _Out_ isinit_timespec *ts)")
    const read = (): number => {
      const ts: { tv_sec?: number | bigint; tv_nsec?: number } = {}
      if ((clockGettime(CLOCK_BOOTTIME, ts) as number) !== 0) throw new Error("clock_gettime(CLOCK_BOOTTIME) failed")
      return Number(ts.tv_sec ?? 0) * 1000 + (ts.tv_nsec ?? 0) / 1e6
    }
    read()
    return { kind: "boottime", nowMs: read }
  } catch (error) {
    return `cannot read CLOCK_BOOTTIME: ${error instanceof Error ? error.message : String(error)}`
  }
}

let chosen: { readonly clock: KernelClock; readonly note: string | undefined } | undefined

/** The best clock this host offers (CLOCK_BOOTTIME if it can be read), and why not when it cannot. */
export const kernelClock = (): { readonly clock: KernelClock; readonly note: string | undefined } => {
  if (chosen !== undefined) return chosen
  const boot = boottime()
  chosen = typeof boot === "string" ? { clock: monotonic, note: `${boot}; failover deadlines use CLOCK_MONOTONIC (a suspended host is not caught)` } : { clock: boot, note: undefined }
  return chosen
}

/** A clock of `kind`, or undefined when this process cannot read it. */
export const clockOf = (kind: ClockKind): KernelClock | undefined => {
  if (kind === "monotonic") return monotonic
  const { clock } = kernelClock()
  return clock.kind === kind ? clock : undefined
}
