/**
 * `isinitd --metrics ADDR`: what `/metrics` says, read from the daemon's state at scrape time.
 *
 * Nothing is counted per event: every figure is in the state already (a group's state, level and
 * tells, an entry's state, restarts, jail and last exit, a failover hold) or read when asked (the
 * loop's queue and batches, the hooks' counters, the process's memory and CPU). A scrape costs
 * one status report, O(entries); between scrapes the metrics cost nothing. Loaded only with
 * `--metrics` (runtime/ops.ts).
 *
 * Conventions: states are state sets (one series per possible state, 1 for the current one, as
 * kube-state-metrics does), so `sum by (state)` and alerts on `== 1` work and a state change
 * never leaves a stale series; strings that are not states (a level, an exit) are `_info` series
 * with the value 1.
 */
import { readdirSync } from "node:fs"
import { performance } from "node:perf_hooks"
import type { EventLoopUtilization } from "node:perf_hooks"
import * as Ref from "effect/Ref"
import type { ClusterInfo } from "../codec/protocol.ts"
import type { EntryProcState, GroupReport } from "../core/report.ts"
import { report } from "../core/report.ts"
import type { GroupPhase, State } from "../core/state.ts"
import { groupOf } from "../core/state.ts"
import type { MetricFamily, Sample } from "./exposition.ts"
import { exposition, expositionContentType } from "./exposition.ts"
import type { Route } from "./http.ts"
import { answer } from "./http.ts"
import type { HookStats } from "./hooks.ts"
import type { DaemonView } from "./observe.ts"

/** Every state, so that each is a series; a Record so that a new state (issue 11's `starting`) fails to type-check until listed. */
const groupStates: readonly GroupPhase[] = Object.keys({ stopped: 0, start: 0, run: 0, fail: 0, stopping: 0 } satisfies Record<GroupPhase, 0>) as GroupPhase[]
export const entryStates: readonly EntryProcState[] = Object.keys({
  idle: 0, starting: 0, running: 0, "not-ready": 0, stopping: 0, "leader-exited": 0, jailed: 0, done: 0, failed: 0,
} satisfies Record<EntryProcState, 0>) as EntryProcState[]

const gauge = (name: string, help: string, samples: readonly Sample[]): MetricFamily => ({ name, help, type: "gauge", samples })
const counter = (name: string, help: string, samples: readonly Sample[]): MetricFamily => ({ name, help, type: "counter", samples })
const seconds = (ms: number): number => ms / 1000

const groupFamilies = (groups: readonly GroupReport[]): readonly MetricFamily[] => [
  gauge("isinit_group_state", "1 for the state the group is in (start, run, fail, stopping, stopped), 0 for the others.",
    groups.flatMap((g) => groupStates.map((state) => ({ labels: { group: g.group, state }, value: state === g.state ? 1 : 0 })))),
  gauge("isinit_group_level_info", "The level the group was last told (empty if never told).", groups.map((g) => ({ labels: { group: g.group, level: g.level }, value: 1 }))),
  counter("isinit_group_tells_total", "Tells of the group that began a transition.", groups.map((g) => ({ labels: { group: g.group }, value: g.seq }))),
]

const entryFamilies = (groups: readonly GroupReport[], now: number): readonly MetricFamily[] => {
  const entries = groups.flatMap((g) => g.entries.map((e) => ({ ...e, group: g.group })))
  const id = (e: { readonly group: string; readonly tag: string }) => ({ group: e.group, tag: e.tag })
  return [
    gauge("isinit_entry_state", "1 for the state the entry is in, 0 for the others (mode: respawn, once, wait, test, off, removed).",
      entries.flatMap((e) => entryStates.map((state) => ({ labels: { ...id(e), mode: e.mode, state }, value: state === e.state ? 1 : 0 })))),
    counter("isinit_entry_restarts_total", "Restarts of a respawn entry since it entered its level.", entries.map((e) => ({ labels: id(e), value: e.restarts }))),
    gauge("isinit_entry_jailed", "1 while the entry is jailed for respawning too fast.", entries.map((e) => ({ labels: id(e), value: e.jailedUntil === null ? 0 : 1 }))),
    gauge("isinit_entry_jail_remaining_seconds", "Seconds until a jailed entry's jail ends.",
      entries.flatMap((e) => (e.jailedUntil === null ? [] : [{ labels: id(e), value: Math.max(0, seconds(e.jailedUntil - now)) }]))),
    gauge("isinit_entry_last_exit_code", "The exit code of the entry's last run, when it exited (not killed by a signal).",
      entries.flatMap((e) => {
        const code = /^exit (\d+)$/.exec(e.lastExit ?? "")?.[1]
        return code === undefined ? [] : [{ labels: id(e), value: Number(code) }]
      })),
    gauge("isinit_entry_last_exit_info", "How the entry's last run ended: exit N, signal NAME, spawn failed: REASON.",
      entries.flatMap((e) => (e.lastExit === null ? [] : [{ labels: { ...id(e), outcome: e.lastExit }, value: 1 }]))),
    // Readiness (rules 20-21) is in isinit_entry_state (`starting`, `not-ready`); health (rule 22):
    gauge("isinit_entry_health_failures", "Failures in a row of the entry's health probe (it is restarted at health-fails).",
      entries.flatMap((e) => (e.healthFailures === undefined ? [] : [{ labels: id(e), value: e.healthFailures }]))),
  ]
}

/** Failover groups as the core holds them on this node: the lease's health is the time left on the hold. */
const failoverFamilies = (state: State, now: number): readonly MetricFamily[] => {
  const groups = [...state.config.failover.groups.keys()].sort()
  const holds = groups.map((group) => ({ group, hold: groupOf(state, group).hold }))
  return [
    gauge("isinit_failover_holding", "1 while this node holds the failover group's lease.", holds.map(({ group, hold }) => ({ labels: { group }, value: hold === undefined ? 0 : 1 }))),
    gauge("isinit_failover_epoch", "The epoch (fencing token) of the hold this node has.", holds.flatMap(({ group, hold }) => (hold === undefined ? [] : [{ labels: { group }, value: hold.epoch }]))),
    gauge("isinit_failover_hold_remaining_seconds", "Seconds until this node's hold runs out unless renewed (the renew deadline).",
      holds.flatMap(({ group, hold }) => (hold === undefined ? [] : [{ labels: { group }, value: Math.max(0, seconds(hold.until - now)) }]))),
  ]
}

/**
 * Cluster mode (the agent's ClusterInfo). Failover holds are not here: the agent hands them to the
 * core as Hold and Release events, and failoverFamilies reads them from the state.
 */
const clusterFamilies = (info: ClusterInfo): readonly MetricFamily[] => [
  gauge("isinit_etcd_connected", "1 while etcd answers the watch and the status publishes.", [{ value: info.connected ? 1 : 0 }]),
  gauge("isinit_etcd_connection_changed_timestamp_seconds", "When the etcd connection last changed (Unix time).", [{ value: seconds(Date.parse(info.since)) }]),
  gauge("isinit_cluster_config_seq", "The sequence number of the etcd config this node runs (absent while it runs its local file).",
    info.configSeq === null ? [] : [{ value: info.configSeq }]),
  gauge("isinit_cluster_pending_overrides", "Local tells not yet recorded in etcd.", [{ value: info.pendingOverrides.length }]),
]

const hookFamilies = (stats: readonly HookStats[]): readonly MetricFamily[] => {
  const of = (pick: (s: HookStats) => number) => stats.map((s) => ({ labels: { hook: s.name }, value: pick(s) }))
  return [
    counter("isinit_hook_runs_total", "Runs of the hook started.", of((s) => s.runs)),
    counter("isinit_hook_failures_total", "Runs of the hook that failed: exit other than 0, a signal, a spawn failure, a timeout.", of((s) => s.failures)),
    counter("isinit_hook_timeouts_total", "Runs of the hook killed at its timeout.", of((s) => s.timeouts)),
    counter("isinit_hook_dropped_total", "Events the hook was not run for, over its rate limit or the cap on running hooks.", of((s) => s.dropped)),
    gauge("isinit_hook_running", "Runs of the hook running now.", of((s) => s.running)),
  ]
}

/** The loop's lag as a timer-free probe: how long a callback queued now waits for the event loop. */
const measureLag = (): Promise<number> =>
  new Promise((resolve) => {
    const start = performance.now()
    setImmediate(() => resolve(seconds(performance.now() - start)))
  })

const openFds = (): number | undefined => {
  try {
    return readdirSync("/proc/self/fd").length - 1
  } catch {
    return undefined
  }
}

const processFamilies = (view: DaemonView, lagSeconds: number, utilization: EventLoopUtilization): readonly MetricFamily[] => {
  const cpu = process.cpuUsage()
  const fds = openFds()
  return [
    gauge("isinit_info", "The daemon: its version, and in cluster mode its node and cluster.", [
      { labels: { version: view.version, node: view.cluster?.().node ?? "", cluster: view.cluster?.().cluster ?? "" }, value: 1 },
    ]),
    gauge("isinit_loop_queue_length", "Events waiting for the daemon's loop.", [{ value: view.loop.queued() }]),
    counter("isinit_loop_batches_total", "Batches of events the loop has applied.", [{ value: view.loop.batches() }]),
    gauge("isinit_event_loop_lag_seconds", "How long a callback queued at the scrape waited for Node's event loop.", [{ value: lagSeconds }]),
    gauge("isinit_event_loop_utilization", "Share of the time since the previous scrape Node's event loop was busy (0 to 1).", [{ value: utilization.utilization }]),
    gauge("process_start_time_seconds", "When isinitd started (Unix time).", [{ value: seconds(view.startedAt) }]),
    gauge("process_resident_memory_bytes", "Resident memory of isinitd.", [{ value: process.memoryUsage.rss() }]),
    counter("process_cpu_seconds_total", "CPU time of isinitd, user and system.", [{ value: (cpu.user + cpu.system) / 1e6 }]),
    gauge("process_open_fds", "Open file descriptors of isinitd.", fds === undefined ? [] : [{ value: fds }]),
    gauge("process_pid", "isinitd's process id.", [{ value: view.pid }]),
  ]
}

/** Collects every family for one scrape; keeps the event loop's utilization since the previous one. */
export const makeCollector = (view: DaemonView) => {
  let previous = performance.eventLoopUtilization()
  return async (): Promise<readonly MetricFamily[]> => {
    const lag = await measureLag()
    const utilization = performance.eventLoopUtilization(previous)
    previous = performance.eventLoopUtilization()
    const state = Ref.getUnsafe(view.loop.state)
    const now = view.loop.now()
    const groups = report(state).groups
    const cluster = view.cluster === undefined ? [] : clusterFamilies(view.cluster())
    return [...processFamilies(view, lag, utilization), ...groupFamilies(groups), ...entryFamilies(groups, now), ...failoverFamilies(state, now), ...cluster, ...hookFamilies(view.hookStats())]
  }
}

/** `GET /metrics`. */
export const metricsRoute = (view: DaemonView): Route => {
  const collect = makeCollector(view)
  return async (_request, response) => answer(response, 200, expositionContentType, exposition(await collect()))
}
