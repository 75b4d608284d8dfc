/**
 * The status page of `isinitd --http`, as HTML text: pure functions from the daemon's report (and
 * in cluster mode the cluster's node × group table) to markup. No framework, no external asset:
 * the CSS and the script are inline (the server allows exactly them by their hashes), and the
 * page is complete without the script (a server-rendered table that refreshes itself every 10 s
 * through <noscript>); the script only opens the live stream (server-sent events), whose
 * messages are fragments rendered here too, so escaping happens in one place.
 *
 * Everything from the outside (group, tag and level names, messages, node names) goes through
 * `escapeHtml`. Read-only: the page shows, it never acts (control stays with `isinit` on the
 * socket and its rights).
 */
import type { ClusterInfo } from "../codec/protocol.ts"
import type { Notice } from "../core/notices.ts"
import type { EntryReport, GroupReport, StatusReport } from "../core/report.ts"

export const escapeHtml = (text: string): string =>
  text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c] ?? c)

/** One cell of the cluster table (cluster/view.ts's cells, plus the failover holder). */
export interface ClusterCell {
  readonly state: string
  readonly level: string
  /** What etcd wants of this node for the group, if anything. */
  readonly wanted: string | undefined
  readonly lagging: boolean
  /** The node runs the failover group at its level: the holder. */
  readonly holder: boolean
}

export interface ClusterRow {
  readonly node: string
  /** The node runs another config than etcd's (or than most nodes). */
  readonly drift: boolean
  readonly cells: ReadonlyMap<string, ClusterCell>
}

/** The cluster as `isinit --etcd status` shows it, read from etcd by the page's own reader (cluster/table.ts). */
export interface ClusterTable {
  readonly cluster: string
  readonly groups: readonly string[]
  readonly rows: readonly ClusterRow[]
  /** Nodes seen before whose status is gone. */
  readonly missing: readonly string[]
  readonly configSeq: number | null
}

export type ClusterView = { readonly _tag: "Table"; readonly table: ClusterTable } | { readonly _tag: "Unreadable"; readonly reason: string }

/** A notice as the page lists it, with the wall time it arrived (ISO 8601: the shell reads the clock). */
export interface RecentNotice {
  readonly at: string
  readonly notice: Notice
}

export interface PageData {
  readonly host: string
  readonly version: string
  readonly pid: number
  /** ISO 8601. */
  readonly startedAt: string
  readonly report: StatusReport
  /** The loop's clock, for the time left in a jail. */
  readonly now: number
  readonly recent: readonly RecentNotice[]
  readonly cluster: { readonly info: ClusterInfo; readonly view: ClusterView | undefined } | undefined
}

const cell = (text: string, className?: string): string => `<td${className === undefined ? "" : ` class="${className}"`}>${escapeHtml(text)}</td>`
const headRow = (names: readonly string[]): string => `<thead><tr>${names.map((n) => `<th scope="col">${n}</th>`).join("")}</tr></thead>`

const jailText = (entry: EntryReport, now: number): string =>
  entry.jailedUntil === null ? "-" : `${Math.max(0, Math.ceil((entry.jailedUntil - now) / 1000))} s left`

const entryRow = (entry: EntryReport, now: number): string =>
  `<tr data-tag="${escapeHtml(entry.tag)}">${cell(entry.tag)}${cell(entry.mode)}${cell(entry.state, `state state-${entry.state}`)}${cell(entry.pid === null ? "-" : String(entry.pid))}${cell(String(entry.restarts))}${cell(jailText(entry, now))}${cell(entry.lastExit ?? "-")}</tr>`

const groupTable = (group: GroupReport, now: number): string =>
  `<h3>${escapeHtml(group.group)} <small>${escapeHtml(group.state)}${group.level === "" ? "" : `, level ${escapeHtml(group.level)}`}</small></h3>
<table class="entries" data-group="${escapeHtml(group.group)}">${headRow(["Tag", "Mode", "State", "PID", "Restarts", "Jailed", "Last exit"])}<tbody>${group.entries.map((e) => entryRow(e, now)).join("")}</tbody></table>`

/** The groups and their entries: the static page's body, and the `state` message of the live stream. */
export const renderGroups = (report: StatusReport, now: number): string => {
  if (report.groups.length === 0) return "<h2>Groups</h2><p>No groups: the isinittab has no entries yet.</p>"
  const rows = report.groups.map(
    (g) => `<tr data-group="${escapeHtml(g.group)}">${cell(g.group)}${cell(g.state, `state state-${g.state}`)}${cell(g.level === "" ? "-" : g.level)}${cell(String(g.seq))}</tr>`,
  )
  return `<h2>Groups${report.lifecycle === "running" ? "" : ` <small>(daemon ${escapeHtml(report.lifecycle)})</small>`}</h2>
<table class="groups">${headRow(["Group", "State", "Level", "Tells"])}<tbody>${rows.join("")}</tbody></table>
${report.groups.map((g) => groupTable(g, now)).join("\n")}`
}

const noticeText = (notice: Notice): string => {
  const where = [notice.group, notice.tag].filter((x) => x !== undefined).join(" ")
  const details = [
    notice.pid === undefined ? undefined : `pid ${notice.pid}`,
    notice.outcome,
    notice.level === undefined || notice.event.startsWith("group-") === false ? undefined : `level ${notice.level}`,
    notice.epoch === undefined ? undefined : `epoch ${notice.epoch}`,
    notice.message,
  ].filter((x) => x !== undefined && x !== "")
  return `${where === "" ? "" : `${where}: `}${notice.event}${details.length === 0 ? "" : ` (${details.join(", ")})`}`
}

/** One recent event: an item of the list, and the `notice` message of the live stream. */
export const renderNotice = ({ at, notice }: RecentNotice): string =>
  `<li data-event="${escapeHtml(notice.event)}"><time datetime="${escapeHtml(at)}">${escapeHtml(at.slice(11, 19))}</time> ${escapeHtml(noticeText(notice))}</li>`

const clusterCell = (c: ClusterCell | undefined): string => {
  if (c === undefined) return "<td>-</td>"
  const marks = [c.lagging ? "lagging" : undefined, c.holder ? "holder" : undefined].filter((m) => m !== undefined)
  const wanted = c.lagging && c.wanted !== undefined ? ` → ${c.wanted}` : ""
  const text = `${c.state}${c.level === "" ? "" : ` ${c.level}`}${wanted}${c.holder ? " (holder)" : ""}${c.lagging ? " *" : ""}`
  return cell(text, ["state", `state-${c.state}`, ...marks].join(" "))
}

const thisNode = (info: ClusterInfo): string =>
  `<p>Node <b>${escapeHtml(info.node)}</b> of cluster <b>${escapeHtml(info.cluster)}</b>: etcd ${info.connected ? "connected" : `unreachable (${escapeHtml(info.error ?? "")})`} since ${escapeHtml(info.since)}; config ${info.configSeq === null ? `from ${escapeHtml(info.configSource)}` : `#${info.configSeq}`}${info.pendingOverrides.length === 0 ? "" : `; local tells not yet in etcd: ${escapeHtml(info.pendingOverrides.join(", "))}`}.</p>`

/** The cluster section (cluster mode): this node's link to etcd, and the node × group table. */
export const renderCluster = (info: ClusterInfo, view: ClusterView | undefined): string => {
  const head = `<h2>Cluster</h2>${thisNode(info)}`
  if (view === undefined) return `${head}<p>Reading the cluster from etcd...</p>`
  if (view._tag === "Unreadable") return `${head}<p class="problem">The cluster table cannot be read from etcd now: ${escapeHtml(view.reason)}. This node's own groups are above.</p>`
  const t = view.table
  const rows = t.rows.map((r) => `<tr data-node="${escapeHtml(r.node)}">${cell(r.node)}${t.groups.map((g) => clusterCell(r.cells.get(g))).join("")}${cell(r.drift ? "DRIFT" : "ok", r.drift ? "drift" : undefined)}</tr>`)
  const missing = t.missing.length === 0 ? "" : `<p>Missing (seen before, no live status): ${escapeHtml(t.missing.join(", "))}</p>`
  return `${head}<table class="cluster">${headRow(["Node", ...t.groups.map(escapeHtml), "Config"])}<tbody>${rows.join("")}</tbody></table>
<p class="legend">* lagging: not yet at the level etcd wants (→ that level). DRIFT: another config than ${t.configSeq === null ? "most nodes" : `#${t.configSeq}`}. (holder): runs the failover group.</p>${missing}`
}

/** The inline style; the server allows it by its hash. */
export const pageStyle = `body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.4em;margin:0}h2{font-size:1.15em;margin:1.2em 0 .4em}h3{font-size:1em;margin:1em 0 .3em}small{color:#666;font-weight:normal}
table{border-collapse:collapse;margin:.2em 0}th,td{border:1px solid #ccc;padding:.15em .6em;text-align:left}th{background:#f3f3f3}
.state-run,.state-running,.state-done{color:#17692b}.state-fail,.state-failed,.state-jailed,.state-leader-exited,.drift,.problem{color:#b00020;font-weight:bold}
.state-start,.state-stopping,.lagging{color:#8a5a00}#live{color:#666}body[data-live=yes] #live{color:#17692b}ol{padding-left:1.2em}time{color:#666}`

/** The inline script: only the live stream; the page is whole without it. The server allows it by its hash. */
export const pageScript = `(function(){
var live=document.getElementById("live");
if(typeof EventSource!=="function")return;
var es=new EventSource("events");
function on(name,f){es.addEventListener(name,function(e){f(e.data)})}
on("state",function(html){document.getElementById("groups").innerHTML=html});
on("cluster",function(html){var c=document.getElementById("cluster");if(c)c.innerHTML=html});
on("notice",function(html){var l=document.getElementById("events");l.insertAdjacentHTML("afterbegin",html);while(l.children.length>100)l.removeChild(l.lastElementChild)});
es.onopen=function(){document.body.dataset.live="yes";live.textContent="live"};
es.onerror=function(){document.body.dataset.live="no";live.textContent="reconnecting..."};
})()`

/** The whole page, as the static answer to GET /. */
export const renderPage = (data: PageData): string => {
  const title = `isinitd on ${data.host}`
  const recent = data.recent.map(renderNotice).reverse().join("\n")
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title><style>${pageStyle}</style>
<noscript><meta http-equiv="refresh" content="10"></noscript></head>
<body data-live="no"><header><h1>${escapeHtml(title)}</h1>
<p>isinitd ${escapeHtml(data.version)}, pid ${data.pid}, up since ${escapeHtml(data.startedAt)}. <span id="live">static page: reload for fresh data</span></p></header>
<section id="groups">${renderGroups(data.report, data.now)}</section>
${data.cluster === undefined ? "" : `<section id="cluster">${renderCluster(data.cluster.info, data.cluster.view)}</section>`}
<section><h2>Recent events</h2><ol id="events" reversed>${recent}</ol></section>
<footer><p>Read-only: this page shows, it never acts. Control: <code>isinit</code> on the host (its socket's rights).</p></footer>
<script>${pageScript}</script>
</body></html>
`
}
