/**
 * The isinittab as the daemon reads it: at start, and again at every tell, plan, reload and
 * SIGHUP, so that each sees the file as it is at that moment (as the original did). As root, a
 * file others may write is refused each time (strictModes.ts). Failures are tagged errors; the
 * socket handler turns them into an answer once (handler.ts), startup into its exit message.
 */
import { readFile } from "node:fs/promises"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import type { Parsed } from "../core/config.ts"
import { parseInittab } from "../core/inittab.ts"
import type { ClusterConfigUnavailable } from "./ports.ts"
import { insecureConfigReason } from "./strictModes.ts"
import { describeError } from "./errors.ts"

/** The file could not be checked (its ownership and mode) or read. */
export class ConfigUnreadable extends Data.TaggedError("ConfigUnreadable")<{
  readonly path: string
  readonly step: "check" | "read"
  readonly reason: string
}> {
  override get message(): string {
    return `cannot ${this.step} the isinittab ${this.path}: ${this.reason}`
  }
}

/** A root daemon refuses a file that others may write (StrictModes). */
export class ConfigInsecure extends Data.TaggedError("ConfigInsecure")<{ readonly path: string; readonly reason: string }> {
  override get message(): string {
    return this.reason
  }
}

/** Why no config could be had: from the file, or in cluster mode from the agent. */
export type ConfigError = ConfigUnreadable | ConfigInsecure | ClusterConfigUnavailable


/** The isinittab at `path`, read and parsed now. */
export const readConfig = (path: string): Effect.Effect<Parsed, ConfigUnreadable | ConfigInsecure> =>
  Effect.flatMap(
    Effect.tryPromise({ try: () => insecureConfigReason(path), catch: (e) => new ConfigUnreadable({ path, step: "check", reason: describeError(e) }) }),
    (insecure): Effect.Effect<Parsed, ConfigUnreadable | ConfigInsecure> =>
      insecure !== undefined
        ? Effect.fail(new ConfigInsecure({ path, reason: insecure }))
        : Effect.tryPromise({
            try: async () => parseInittab(await readFile(path, "utf8")),
            catch: (e) => new ConfigUnreadable({ path, step: "read", reason: describeError(e) }),
          }),
  )

/** Where a tell, plan, reload or SIGHUP takes its config from: the file, or cluster mode. */
export type ConfigSource = () => Effect.Effect<Parsed, ConfigError>
