/**
 * One socket connection's life, as one small state machine (after h11's state table): reading its
 * request line, the handler at work, the answer out (lingering until the peer closes), closed.
 *
 * The server bounds connections by the slot each holds: `Active` counts toward `maxConnections`,
 * `Waiting` (a tell waiting for its transition) toward `maxWaiting`, so that waiters, however many
 * and for however long, never lock out a stopall. A connection holds its slot until its handler
 * has answered, even if its peer left meanwhile: a flood of requests whose clients hang up cannot
 * run more handlers at once than the limit. The server applies the change of slot of each
 * transition to its counters (`slotOf` before and after): the counters cannot drift from the states.
 */

/** Which limit a connection counts toward. */
export type Slot = "Active" | "Waiting" | "None"

export type Connection =
  | { readonly _tag: "Reading" }
  | { readonly _tag: "Handling"; readonly slot: "Active" | "Waiting"; readonly peer: "Open" | "Gone" }
  /** The answer is out; the connection lingers until the peer closes (a waiting tell's slot is already free). */
  | { readonly _tag: "Answered"; readonly slot: "Active" | "None" }
  | { readonly _tag: "Closed" }

export type ConnectionInput =
  /** A request line decoded and handed to the handler; a waiting tell takes a `Waiting` slot. */
  | { readonly _tag: "Request"; readonly slot: "Active" | "Waiting" }
  /** Answered (or dropped) without the handler: bad input, a timeout, too many waiters, nothing sent. */
  | { readonly _tag: "Refuse" }
  /** The handler's answer went out (or the peer was gone). */
  | { readonly _tag: "Answer" }
  /** The socket closed. */
  | { readonly _tag: "Close" }

export const reading: Connection = { _tag: "Reading" }

/** The connection after `input`; an input that cannot happen in a state leaves it unchanged. */
export const nextConnection = (conn: Connection, input: ConnectionInput): Connection => {
  switch (conn._tag) {
    case "Reading":
      if (input._tag === "Request") return { _tag: "Handling", slot: input.slot, peer: "Open" }
      if (input._tag === "Refuse") return { _tag: "Answered", slot: "Active" }
      return input._tag === "Close" ? { _tag: "Closed" } : conn
    case "Handling":
      if (input._tag === "Close") return { ...conn, peer: "Gone" }
      if (input._tag !== "Answer") return conn
      return conn.peer === "Gone" ? { _tag: "Closed" } : { _tag: "Answered", slot: conn.slot === "Active" ? "Active" : "None" }
    case "Answered":
      return input._tag === "Close" ? { _tag: "Closed" } : conn
    case "Closed":
      return conn
  }
}

export const slotOf = (conn: Connection): Slot => {
  switch (conn._tag) {
    case "Reading":
      return "Active"
    case "Handling":
    case "Answered":
      return conn.slot
    case "Closed":
      return "None"
  }
}
