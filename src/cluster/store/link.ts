/**
 * The watch's link to etcd, as one small state machine: `nextLink(link, event, backoff)` says what
 * the link becomes and, when a session is lost, when to resync and whether that loss begins an
 * outage (logged and reported) or continues one (silent).
 *
 * Why: with one etcd member down, a new watch stream may land on that member and be lost at once,
 * again and again. Resyncing at once after each loss made bursts (5 resyncs in 50 ms, each logged).
 * Now the first loss after a stable session resyncs at once, and each further loss in a row waits
 * longer (`initialMs`, doubling, at most `maxMs`). A session that etcd confirmed and that stayed up
 * for `maxMs` ends the run: the next loss is a new outage. Pure: time comes in the events.
 */

export interface Backoff {
  readonly initialMs: number
  readonly maxMs: number
}

export type Link =
  /** A session was opened; etcd has not confirmed it yet. `losses` in a row came before it. */
  | { readonly _tag: "Opening"; readonly losses: number }
  /** etcd confirmed the session at `since` (ms). */
  | { readonly _tag: "Up"; readonly losses: number; readonly since: number }
  /** The session was lost; a resync is under way. */
  | { readonly _tag: "Down"; readonly losses: number }

export const initialLink: Link = { _tag: "Opening", losses: 0 }

export type LinkEvent =
  | { readonly _tag: "Opened" }
  | { readonly _tag: "Confirmed"; readonly now: number }
  | { readonly _tag: "Lost"; readonly now: number }

/** After a loss: resync after `delayMs`; `New` when the loss begins an outage. */
export interface Resync {
  readonly outage: "New" | "Continued"
  readonly delayMs: number
}

/** The pause before the resync that follows the `losses`-th loss in a row (the first: none). */
const resyncDelayMs = (losses: number, backoff: Backoff): number =>
  losses <= 1 ? 0 : Math.min(backoff.maxMs, backoff.initialMs * 2 ** Math.min(losses - 2, 30))

const stable = (link: Link, now: number, backoff: Backoff): boolean => link._tag === "Up" && now - link.since >= backoff.maxMs

export const nextLink = (link: Link, event: LinkEvent, backoff: Backoff): readonly [Link, Resync | undefined] => {
  switch (event._tag) {
    case "Opened":
      return [{ _tag: "Opening", losses: link.losses }, undefined]
    case "Confirmed":
      return [link._tag === "Opening" ? { _tag: "Up", losses: link.losses, since: event.now } : link, undefined]
    case "Lost": {
      const losses = link.losses === 0 || stable(link, event.now, backoff) ? 1 : link.losses + 1
      return [{ _tag: "Down", losses }, { outage: losses === 1 ? "New" : "Continued", delayMs: resyncDelayMs(losses, backoff) }]
    }
  }
}
