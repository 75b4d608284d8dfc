/**
 * Today's cluster convergence (docs/cluster.md "The daemon"), as rules over the node's state:
 *
 * - The config in etcd runs; a new one (another sha256) reaches the core as a `Reload`. Groups
 *   whose desired level the core refused are told again under the new config.
 * - Each ordinary group's effective desired level (the node's override, else the cluster-wide
 *   one) is told once per etcd revision, in group name order (../desired.ts `pendingTells`).
 * - Converging, not replaying: a group already starting or running at that level only takes the
 *   revision; so does the watch echo of this node's own local tell.
 * - Failover groups do not follow desired levels: their level comes from the election.
 */
import { groupOf } from "../../core/state.ts"
import type { Effective, StoredConfig } from "../desired.ts"
import { effectiveFor, pendingTells } from "../desired.ts"
import type { Step } from "./step.ts"
import { configOf, emit, log, withEntry } from "./step.ts"
import type { CoreCommand, CoreOutcome, Convergence } from "./types.ts"

export const noConvergence: Convergence = { applied: new Map(), taken: new Map(), refused: new Set(), echoes: new Map() }

const take = (c: Convergence, group: string, wanted: Effective): Convergence => ({
  ...c,
  applied: withEntry(c.applied, group, { level: wanted.level, revision: wanted.revision }),
  taken: withEntry(c.taken, group, wanted),
})

/** A config from etcd: the core reloads it; refused levels get another chance; new failover groups stand by. */
const applyConfig = (step: Step, config: StoredConfig): void => {
  const before = configOf(step.s).failover.groups
  step.s.running = { _tag: "Etcd", config }
  emit(step, { _tag: "ReloadCore", config })
  for (const group of config.parsed.config.failover.groups.keys()) if (!before.has(group)) emit(step, { _tag: "ReleaseCore", group })
  for (const group of before.keys()) if (!config.parsed.config.failover.groups.has(group)) emit(step, { _tag: "DisarmFencer", group })
  const c = step.s.convergence
  if (c.refused.size === 0) return
  step.s.convergence = { ...c, applied: new Map([...c.applied].filter(([group]) => !c.refused.has(group))), refused: new Set() }
}

const tellOne = (step: Step, group: string, wanted: Effective): void => {
  const c = step.s.convergence
  const echo = c.echoes.get(group)
  step.s.convergence = take({ ...c, echoes: withEntry(c.echoes, group, undefined) }, group, wanted)
  const at = groupOf(step.s.core, group)
  const where = wanted.source === "node" ? `override for ${step.s.node}` : "cluster-wide"
  if (configOf(step.s).failover.groups.has(group)) {
    log(step, "rejected", `desired ${group}=${wanted.level} from etcd (${where}) ignored: ${group} is a failover group; move it with isinit --etcd URLS move`, group)
    return
  }
  if (wanted.source === "node" && echo === wanted.level && at.level === wanted.level) return
  if (at.level === wanted.level && (at.phase === "start" || at.phase === "run")) return
  emit(step, { _tag: "TellCore", group, level: wanted.level, revision: wanted.revision, source: wanted.source })
}

/** After the view or the running config changed: apply etcd's config, then tell what is pending. */
export const converge = (step: Step): void => {
  const view = step.s.view
  if (view === undefined) return
  const config = view.obeyed.config
  const running = step.s.running
  if (config !== undefined && !(running._tag === "Etcd" && running.config.value.sha256 === config.value.sha256)) applyConfig(step, config)
  else if (config !== undefined) step.s.running = { _tag: "Etcd", config }
  const effective = effectiveFor(view.obeyed, step.s.node)
  const c = step.s.convergence
  const keep = <V>(map: ReadonlyMap<string, V>): ReadonlyMap<string, V> => new Map([...map].filter(([group]) => effective.has(group)))
  step.s.convergence = { ...c, applied: keep(c.applied), taken: keep(c.taken) }
  for (const pending of pendingTells(effective, step.s.convergence.applied)) {
    const wanted = effective.get(pending.group)
    if (wanted !== undefined) tellOne(step, pending.group, wanted)
  }
}

/** The core's answer to a tell or reload from etcd: logged; a refused level waits for a config change. */
export const coreAnswered = (step: Step, command: CoreCommand, outcome: CoreOutcome): void => {
  if (command._tag === "ReloadCore") {
    const seq = command.config.value.seq
    if (outcome._tag === "Rejected") log(step, "rejected", `config #${seq} from etcd: ${outcome.reason}`)
    else log(step, "cluster", `config #${seq} from etcd applied (sha256 ${command.config.value.sha256.slice(0, 12)})`)
    return
  }
  if (command._tag !== "TellCore") return
  const { group, level, revision, source } = command
  const what = `desired ${group}=${level} from etcd (${source === "node" ? `override for ${step.s.node}` : "cluster-wide"}, revision ${revision})`
  const c = step.s.convergence
  const refused = new Set(c.refused)
  if (outcome._tag === "Rejected") refused.add(group)
  else refused.delete(group)
  step.s.convergence = { ...c, refused }
  if (outcome._tag === "Rejected") log(step, "rejected", `${what} rejected: ${outcome.reason}; nothing was changed`, group)
  else log(step, "cluster", `${what}: told`, group)
}
