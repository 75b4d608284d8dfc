/**
 * The core's enumerations, each listed once; its type is derived from the list, so the codecs,
 * invariants and tables built from a list cover every value by construction. No imports: codecs
 * and the client load these for free. (The log's verbs live with the effects, in effects.ts.)
 */

/** How an isinittab entry runs (config.ts). */
export const modes = ["respawn", "once", "wait", "test", "off"] as const
export type Mode = (typeof modes)[number]

/** Where a group stands (state.ts; the transitions between them: phases.ts). */
export const groupPhases = ["stopped", "start", "run", "fail", "stopping"] as const
export type GroupPhase = (typeof groupPhases)[number]

/** The daemon as a whole: running, stopping every process (stopall), or halted once they are gone. */
export const lifecycles = ["running", "stopping", "halted"] as const
export type Lifecycle = (typeof lifecycles)[number]

/**
 * An entry's process as the status shows it (report.ts); `leader-exited`: rule 14; `starting`: a
 * run whose `ready` probe has not passed yet, `not-ready`: one that missed its ready-timeout (rules 20, 21).
 */
export const entryProcStates = ["idle", "starting", "running", "not-ready", "stopping", "leader-exited", "jailed", "done", "failed"] as const
export type EntryProcState = (typeof entryProcStates)[number]

/**
 * The signals a stop sends (rule 7): the entry's stop signal (`stop-signal`, SIGTERM by default;
 * options.ts), then SIGKILL when the grace is over.
 */
export const signals = ["SIGTERM", "SIGINT", "SIGQUIT", "SIGHUP", "SIGUSR1", "SIGUSR2", "SIGWINCH", "SIGKILL"] as const
export type Signal = (typeof signals)[number]
