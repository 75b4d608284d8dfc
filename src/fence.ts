/**
 * What the daemon's cluster mode (cluster/fencing.ts, cluster/agent.ts) and its fencer
 * (`isinitd --fencer`, runtime/fencer.ts) share: the marker a failover group's children carry in
 * their environment, and the messages on the channel between them. A neutral module, like
 * src/log.ts: cluster mode does not import the runtime (.oxlintrc.json), and the fencer loads
 * nothing it does not need (no effect: this module has no imports but a type).
 */
import type { ClockKind } from "./clocks.ts"

/** Environment variable of the marker every failover child carries. */
export const fenceMarkerVariable = "ISINIT_FENCE"

/**
 * The marker of GROUP's processes started by the daemon process `instance` under `epoch`. The
 * epoch is in it so that the fencer, acting on the deadline of one epoch, never touches a child of
 * a later hold of the same group by the same daemon.
 */
export const fenceMarker = (instance: string, group: string, epoch: number): string => `${fenceMarkerPrefix(instance, group)}${epoch}`

/** The part of GROUP's markers that every epoch shares: `instance:group:`. */
export const fenceMarkerPrefix = (instance: string, group: string): string => `${instance}:${group}:`

/** One JSON line from the daemon to its fencer (the fencer answers `{"op":"ready"}` after hello). */
export type FencerMessage =
  | { readonly op: "hello"; readonly daemon: number; readonly instance: string; readonly clock: ClockKind }
  | { readonly op: "arm"; readonly group: string; readonly epoch: number; readonly termAt: number; readonly killAt: number }
  | { readonly op: "disarm"; readonly group: string }
