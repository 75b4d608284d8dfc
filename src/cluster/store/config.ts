/**
 * The cluster's config in etcd: `config push` (checked first, numbered after the history, written
 * with its history entry in one transaction), the current config as daemons would take it, and
 * the history of pushes.
 */
import * as Effect from "effect/Effect"
import { hasErrors } from "../../core/config.ts"
import { parseInittab } from "../../core/inittab.ts"
import type { ConfigValue } from "../codecs.ts"
import type { ConfigSignature } from "../signing.ts"
import { decodeConfig, decodeConfigValue, describeProblems, encodeValue, sha256Of } from "../codecs.ts"
import type { Rejection, StoredConfig } from "../desired.ts"
import { configHistoryKey, configHistoryPrefix, configKey, parseKey } from "../keys.ts"
import type { Auditing } from "./audit.ts"
import type { EtcdClient } from "./client.ts"
import { revisionOf } from "./client.ts"
import type { EtcdFailure } from "./errors.ts"
import { ConfigRejected, Contended } from "./errors.ts"
import type { KeyValues } from "./kv.ts"

export interface PushedConfig {
  readonly _tag: "Pushed" | "Unchanged"
  readonly seq: number
  readonly revision: number
  readonly sha256: string
  /** Warnings of the parse, `line N: message`. */
  readonly warnings: readonly string[]
}

export type ConfigRead =
  | { readonly _tag: "None" }
  | { readonly _tag: "Valid"; readonly config: StoredConfig }
  | { readonly _tag: "Invalid"; readonly rejection: Rejection }

export interface HistoryEntry extends ConfigValue {
  readonly revision: number
}

export interface Configs {
  /** Validates and stores an isinittab; identical text is not pushed again. */
  readonly pushConfig: (
    text: string,
    options?: { readonly by?: string | undefined; readonly sign?: Signer | undefined },
  ) => Effect.Effect<PushedConfig, ConfigRejected | EtcdFailure | Contended>
  readonly currentConfig: () => Effect.Effect<ConfigRead, EtcdFailure>
  /** Every pushed config, oldest first. */
  readonly configHistory: () => Effect.Effect<{ readonly entries: readonly HistoryEntry[]; readonly rejections: readonly Rejection[] }, EtcdFailure>
}

/** Signs a push once its number is known (signing.ts's signConfig, with the operator's key). */
export interface Signer {
  readonly keyId: string
  readonly sign: (seq: number, sha256: string) => ConfigSignature
}

/** How many times a push re-reads and tries again after losing a race with another writer. */
const pushAttempts = 10

const lastHistorySeq = (client: EtcdClient, cluster: string): Effect.Effect<number, EtcdFailure> =>
  Effect.map(
    client.call("read history", () => client.etcd.getAll().prefix(configHistoryPrefix(cluster)).sort("Key", "Descend").limit(1).keys()),
    (keys) => {
      const key = keys[0]
      if (key === undefined) return 0
      const parsed = parseKey(cluster, key)
      return parsed._tag === "ConfigHistory" ? parsed.seq : 0
    },
  )

/** One attempt: unchanged, pushed, or undefined when another writer changed the config meanwhile. */
const tryPush = (
  client: EtcdClient,
  cluster: string,
  value: Omit<ConfigValue, "seq" | "signature">,
  warnings: readonly string[],
  sign: Signer | undefined,
  audit: Auditing,
): Effect.Effect<PushedConfig | undefined, EtcdFailure> =>
  Effect.gen(function* () {
    const { etcd, call } = client
    const current = yield* call("read config", () => etcd.get(configKey(cluster)).exec())
    const kvNow = current.kvs[0]
    const stored = kvNow === undefined ? undefined : decodeConfig(kvNow.value.toString("utf8"))
    const storedSeq = stored?._tag === "Right" ? stored.right.value.seq : 0
    // The same text is pushed again only to sign it (or sign it with another key).
    const sameSignature = sign === undefined || stored?._tag !== "Right" || stored.right.value.signature?.keyId === sign.keyId
    if (kvNow !== undefined && stored?._tag === "Right" && stored.right.value.sha256 === value.sha256 && sameSignature) {
      return { _tag: "Unchanged", seq: storedSeq, revision: revisionOf(kvNow.mod_revision), sha256: value.sha256, warnings }
    }
    // Numbered after the history, so a hand-damaged config value cannot make a push overwrite it.
    const seq = Math.max(storedSeq, yield* lastHistorySeq(client, cluster)) + 1
    const encoded = encodeValue({ ...value, seq, ...(sign === undefined ? {} : { signature: sign.sign(seq, value.sha256) }) })
    const result = yield* call("push config", () =>
      etcd
        .if(configKey(cluster), "Mod", "==", revisionOf(kvNow?.mod_revision))
        .and(configHistoryKey(cluster, seq), "Create", "==", 0)
        .then(
          etcd.put(configKey(cluster)).value(encoded),
          etcd.put(configHistoryKey(cluster, seq)).value(encoded),
          ...audit.record("config push", `config #${seq} (sha256 ${value.sha256.slice(0, 12)}${sign === undefined ? ", unsigned" : `, signed by key ${sign.keyId}`})`),
        )
        .commit(),
    )
    return result.succeeded ? { _tag: "Pushed", seq, revision: revisionOf(result.header.revision), sha256: value.sha256, warnings } : undefined
  })

export const makeConfigs = (client: EtcdClient, kv: KeyValues, cluster: string, audit: Auditing): Configs => {
  const { etcd, call } = client

  const currentConfig: Configs["currentConfig"] = () =>
    Effect.map(call("read config", () => etcd.get(configKey(cluster)).exec()), (response): ConfigRead => {
      const stored = response.kvs[0]
      if (stored === undefined) return { _tag: "None" }
      const event = kv.classify(stored, "Put")
      if (event?._tag === "ConfigSet") return { _tag: "Valid", config: event.config }
      if (event?._tag === "Rejected") return { _tag: "Invalid", rejection: event.rejection }
      return { _tag: "None" }
    })

  const pushConfig: Configs["pushConfig"] = (text, opts = {}) =>
    Effect.gen(function* () {
      const parsed = parseInittab(text)
      if (hasErrors(parsed)) return yield* Effect.fail(new ConfigRejected({ problems: describeProblems(parsed) }))
      const warnings = parsed.problems.filter((p) => p.severity === "warning").map((p) => `line ${p.line}: ${p.message}`)
      const value = {
        text,
        sha256: sha256Of(text),
        pushedAt: new Date().toISOString(),
        ...(opts.by === undefined ? {} : { by: opts.by }),
        ...(client.identity === undefined ? {} : { etcdUser: client.identity }),
      }
      for (let attempt = 0; attempt < pushAttempts; attempt++) {
        const pushed = yield* tryPush(client, cluster, value, warnings, opts.sign, audit)
        if (pushed?._tag === "Pushed") yield* audit.trim()
        if (pushed !== undefined) return pushed
      }
      return yield* Effect.fail(new Contended({ operation: "push config" }))
    })

  const configHistory: Configs["configHistory"] = () =>
    Effect.map(call("read history", () => etcd.getAll().prefix(configHistoryPrefix(cluster)).sort("Key", "Ascend").exec()), (response) => {
      const entries: HistoryEntry[] = []
      const rejections: Rejection[] = []
      for (const pair of response.kvs) {
        const ok = kv.accept(pair, "ConfigHistory", decodeConfigValue, rejections, (key, value) => (value.seq === key.seq ? undefined : `holds push #${value.seq}`))
        if (ok !== undefined) entries.push({ ...ok.value, revision: ok.revision })
      }
      return { entries, rejections }
    })

  return { pushConfig, currentConfig, configHistory }
}
