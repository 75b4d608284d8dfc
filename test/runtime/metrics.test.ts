/**
 * `isinitd --metrics`: the exposition writer against a strict parser of the Prometheus text format
 * (written here, from the format's definition: HELP and TYPE before a family's samples, names,
 * label escaping, Go float values), then the real daemon scraped over HTTP: values that change
 * when a process is killed, a group name that needs escaping, the loopback rule.
 */
import * as Ref from "effect/Ref"
import { writeFileSync } from "node:fs"
import { describe, expect, it } from "vitest"
import { hold } from "../../src/core/events.ts"
import { parseInittab } from "../../src/core/inittab.ts"
import { reduce } from "../../src/core/reducer.ts"
import type { State } from "../../src/core/state.ts"
import { initialStateWith } from "../../src/core/state.ts"
import { escapeLabelValue, exposition } from "../../src/runtime/exposition.ts"
import { makeCollector } from "../../src/runtime/metrics.ts"
import type { DaemonView } from "../../src/runtime/observe.ts"
import type { LoopService } from "../../src/runtime/ports.ts"
import { parseListenAddress } from "../../src/runtime/address.ts"
import { askJson, entryOf, labPerTest } from "./daemonHarness.ts"
import { until } from "./helpers.ts"
import { fetchText, startServed } from "./opsHarness.ts"

interface ParsedSample {
  readonly name: string
  readonly labels: Readonly<Record<string, string>>
  readonly value: number
}

interface ParsedFamily {
  readonly help: string
  readonly type: string
  readonly samples: ParsedSample[]
}

const metricName = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/
const labelName = /^[a-zA-Z_][a-zA-Z0-9_]*$/

const unescapeHelp = (text: string): string => text.replace(/\\(\\|n)/g, (_m, c: string) => (c === "n" ? "\n" : "\\"))

/** Label pairs `a="x",b="y"`, with the format's escapes (\\, \", \n) and nothing else. */
const parseLabels = (text: string): Record<string, string> => {
  const labels: Record<string, string> = {}
  let rest = text
  while (rest !== "") {
    const match = /^([^=]+)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)/.exec(rest)
    if (match === null) throw new Error(`bad labels: ${text}`)
    const [all, name = "", value = ""] = match
    if (!labelName.test(name)) throw new Error(`bad label name ${name}`)
    labels[name] = value.replace(/\\([\\"n])/g, (_m, c: string) => (c === "n" ? "\n" : c))
    rest = rest.slice(all.length)
  }
  return labels
}

const parseValue = (text: string): number => {
  if (text === "NaN") return Number.NaN
  if (text === "+Inf") return Number.POSITIVE_INFINITY
  if (text === "-Inf") return Number.NEGATIVE_INFINITY
  if (!/^-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text)) throw new Error(`bad value ${text}`)
  return Number(text)
}

/** A strict reader of the text format: throws on anything out of place. */
export const parseExposition = (text: string): Map<string, ParsedFamily> => {
  if (!text.endsWith("\n")) throw new Error("the text must end with a line feed")
  const families = new Map<string, ParsedFamily>()
  let help: { name: string; text: string } | undefined
  let current: string | undefined
  for (const line of text.slice(0, -1).split("\n")) {
    const helpLine = /^# HELP (\S+) (.*)$/.exec(line)
    const typeLine = /^# TYPE (\S+) (counter|gauge|histogram|summary|untyped)$/.exec(line)
    if (helpLine !== null) {
      const [, name = "", h = ""] = helpLine
      if (!metricName.test(name) || families.has(name)) throw new Error(`bad or repeated family ${name}`)
      help = { name, text: unescapeHelp(h) }
    } else if (typeLine !== null) {
      const [, name = "", type = ""] = typeLine
      if (help?.name !== name) throw new Error(`TYPE of ${name} without its HELP just before`)
      families.set(name, { help: help.text, type, samples: [] })
      current = name
    } else {
      const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line)
      if (sample === null) throw new Error(`bad line: ${line}`)
      const [, name = "", labels, value = ""] = sample
      if (name !== current) throw new Error(`sample ${name} outside its family (in ${current ?? "none"})`)
      families.get(name)?.samples.push({ name, labels: labels === undefined ? {} : parseLabels(labels), value: parseValue(value) })
    }
  }
  return families
}

const valueOf = (families: Map<string, ParsedFamily>, name: string, labels: Record<string, string>): number | undefined =>
  families.get(name)?.samples.find((s) => Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value

describe("the exposition writer", () => {
  it("writes HELP and TYPE before the samples, escapes HELP and label values, and Go's special floats", () => {
    const tricky = 'a "quoted" \\ back\nslash'
    const text = exposition([
      { name: "x_total", help: "with \\ and\nnewline", type: "counter", samples: [{ labels: { group: tricky, tag: "t" }, value: 3 }, { value: 0.25 }] },
      { name: "y", help: "specials", type: "gauge", samples: [{ value: Number.NaN }, { labels: { k: "+" }, value: Number.POSITIVE_INFINITY }, { labels: { k: "-" }, value: -1e-7 }] },
      { name: "empty", help: "no samples yet", type: "gauge", samples: [] },
    ])
    expect(text).toContain('x_total{group="a \\"quoted\\" \\\\ back\\nslash",tag="t"} 3')
    const parsed = parseExposition(text)
    expect(parsed.get("x_total")).toEqual({ help: "with \\ and\nnewline", type: "counter", samples: [{ name: "x_total", labels: { group: tricky, tag: "t" }, value: 3 }, { name: "x_total", labels: {}, value: 0.25 }] })
    expect(parsed.get("y")?.samples.map((s) => s.value)).toEqual([Number.NaN, Number.POSITIVE_INFINITY, -1e-7])
    expect(parsed.get("empty")?.samples).toEqual([])
    expect(escapeLabelValue('\\"\n')).toBe('\\\\\\"\\n')
  })

  it("the parser in this test is strict: it refuses a sample before its TYPE, bad escapes and bad values", () => {
    expect(() => parseExposition("x 1\n")).toThrow(/outside its family/)
    expect(() => parseExposition('# HELP x h\n# TYPE x gauge\nx{a="\\t"} 1\n')).toThrow(/bad labels/)
    expect(() => parseExposition("# HELP x h\n# TYPE x gauge\nx one\n")).toThrow(/bad value/)
    expect(() => parseExposition("# TYPE x gauge\n")).toThrow(/without its HELP/)
  })
})

describe("listen addresses", () => {
  it("PORT, :PORT, HOST:PORT, [IPV6]:PORT; loopback unless told otherwise", () => {
    expect(parseListenAddress("9464")).toEqual({ host: "127.0.0.1", port: 9464, loopback: true })
    expect(parseListenAddress(":0")).toEqual({ host: "127.0.0.1", port: 0, loopback: true })
    expect(parseListenAddress("[::1]:80")).toEqual({ host: "::1", port: 80, loopback: true })
    expect(parseListenAddress("localhost:80")).toMatchObject({ loopback: true })
    expect(parseListenAddress("0.0.0.0:80")).toMatchObject({ loopback: false })
    expect(parseListenAddress("metrics.example:80")).toMatchObject({ loopback: false })
    expect(parseListenAddress("1:2:3")).toMatch(/not an address/)
    expect(parseListenAddress("127.0.0.1:70000")).toMatch(/port must be 0 to 65535/)
  })
})

describe("failover metrics", () => {
  /** A daemon's view over a given state, at a given time: what the collector reads at a scrape. */
  const viewAt = (state: State, now: number): DaemonView => ({
    loop: { state: Ref.makeUnsafe(state), now: () => now, queued: () => 0, batches: () => 0 } as unknown as LoopService,
    notices: { subscribe: () => () => undefined } as unknown as DaemonView["notices"],
    hookStats: () => [],
    cluster: undefined,
    version: "test",
    pid: process.pid,
    startedAt: 0,
  })

  it("say whether this node holds each failover group's lease, its epoch, and the time left on the hold", async () => {
    const parsed = parseInittab(":::failover:db:on\n:::failover:web:on\ndb:d:on,:respawn:server\nweb:w:on,:respawn:server\n")
    expect(parsed.problems).toEqual([])
    const [holding] = reduce(initialStateWith(parsed.config), hold("db", 7, 5_000, 0))
    const m = parseExposition(exposition(await makeCollector(viewAt(holding, 2_000))()))
    expect(valueOf(m, "isinit_failover_holding", { group: "db" })).toBe(1)
    expect(valueOf(m, "isinit_failover_holding", { group: "web" })).toBe(0)
    expect(valueOf(m, "isinit_failover_epoch", { group: "db" })).toBe(7)
    expect(valueOf(m, "isinit_failover_epoch", { group: "web" })).toBeUndefined()
    expect(valueOf(m, "isinit_failover_hold_remaining_seconds", { group: "db" })).toBe(3)
    // Without failover groups, the families are there (HELP and TYPE) with no series.
    const plain = parseExposition(exposition(await makeCollector(viewAt(initialStateWith(parseInittab("g:t:1:once:x\n").config), 0))()))
    expect(plain.get("isinit_failover_holding")?.samples).toEqual([])
  })
})

const fresh = labPerTest()

describe("isinitd --metrics", () => {
  it("serves the state, and the values change when a process is killed; names are escaped", async () => {
    const l = fresh()
    const group = 'we"b\\x'
    l.writeTab(`${group}:srv:1:respawn:sleep 300\n${group}:chk:1:test:true\nidle:w:2:respawn:sleep 300\n`)
    const { metrics } = await startServed(l, ["--metrics", "127.0.0.1:0"])
    if (metrics === undefined) throw new Error("no metrics server")
    expect(await askJson(l.socket, { op: "tell", group, level: "1", wait: true })).toMatchObject({ ok: true, outcome: "run" })
    const scrape = async () => {
      const got = await fetchText(`${metrics}/metrics`)
      expect(got.status).toBe(200)
      expect(got.headers["content-type"]).toBe("text/plain; version=0.0.4; charset=utf-8")
      return parseExposition(got.body)
    }
    const first = await scrape()
    expect(first.get("isinit_group_state")?.type).toBe("gauge")
    expect(valueOf(first, "isinit_group_state", { group, state: "run" })).toBe(1)
    expect(valueOf(first, "isinit_group_state", { group: "idle", state: "stopped" })).toBe(1)
    expect(valueOf(first, "isinit_group_level_info", { group, level: "1" })).toBe(1)
    expect(valueOf(first, "isinit_entry_state", { group, tag: "srv", mode: "respawn", state: "running" })).toBe(1)
    expect(valueOf(first, "isinit_entry_state", { group, tag: "chk", mode: "test", state: "done" })).toBe(1)
    expect(first.get("isinit_entry_restarts_total")?.type).toBe("counter")
    expect(valueOf(first, "isinit_entry_restarts_total", { group, tag: "srv" })).toBe(0)
    expect(valueOf(first, "isinit_entry_last_exit_code", { group, tag: "chk" })).toBe(0)
    for (const name of ["isinit_loop_queue_length", "isinit_event_loop_lag_seconds", "isinit_event_loop_utilization", "process_resident_memory_bytes", "process_cpu_seconds_total"]) {
      expect(first.get(name)?.samples.length, name).toBe(1)
    }
    const pid = (await entryOf(l.socket, "srv"))?.pid ?? 0
    process.kill(pid, "SIGKILL")
    const after = await until("the restart in the metrics", async () => {
      const m = await scrape()
      return valueOf(m, "isinit_entry_restarts_total", { group, tag: "srv" }) === 1 ? m : undefined
    })
    expect(valueOf(after, "isinit_entry_last_exit_info", { group, tag: "srv", outcome: "signal SIGKILL" })).toBe(1)
    expect(valueOf(after, "isinit_entry_last_exit_code", { group, tag: "srv" })).toBeUndefined()
    expect(valueOf(after, "isinit_loop_batches_total", {}) ?? 0).toBeGreaterThan(valueOf(first, "isinit_loop_batches_total", {}) ?? 0)
  })

  it("says which entry is jailed, for how long still, and its state jailed", async () => {
    const l = fresh()
    l.writeTab(":::respawn-limit:2/1m\n:::jail:10m\nj:crash:1:respawn:false\nj:ok:1:respawn:sleep 300\n")
    const { metrics } = await startServed(l, ["--metrics", ":0"])
    await askJson(l.socket, { op: "tell", group: "j", level: "1", wait: false })
    const m = await until("the jail in the metrics", async () => {
      const parsed = parseExposition((await fetchText(`${metrics ?? ""}/metrics`)).body)
      return valueOf(parsed, "isinit_entry_jailed", { group: "j", tag: "crash" }) === 1 ? parsed : undefined
    })
    expect(valueOf(m, "isinit_entry_state", { group: "j", tag: "crash", mode: "respawn", state: "jailed" })).toBe(1)
    expect(valueOf(m, "isinit_entry_state", { group: "j", tag: "crash", mode: "respawn", state: "running" })).toBe(0)
    const left = valueOf(m, "isinit_entry_jail_remaining_seconds", { group: "j", tag: "crash" }) ?? 0
    expect(left).toBeGreaterThan(500)
    expect(left).toBeLessThanOrEqual(600)
    expect(valueOf(m, "isinit_entry_jailed", { group: "j", tag: "ok" })).toBe(0)
    expect(valueOf(m, "isinit_entry_jail_remaining_seconds", { group: "j", tag: "ok" })).toBeUndefined()
  })

  it("shows readiness (starting) and a health probe's failures in a row", async () => {
    const l = fresh()
    const flag = l.path("up")
    l.writeTab(
      [
        // sick first: entries after a ready-checked one wait for it (rule 20).
        "r:sick:1:respawn:sleep 300",
        `:::option:sick:health=file:${l.path("never")}`,
        ":::option:sick:health-every=200ms",
        ":::option:sick:health-fails=1000",
        "r:wait:1:respawn:sleep 300",
        `:::option:wait:ready=file:${flag}`,
        "",
      ].join("\n"),
    )
    const { metrics } = await startServed(l, ["--metrics", ":0"])
    await askJson(l.socket, { op: "tell", group: "r", level: "1", wait: false })
    const scrape = async () => parseExposition((await fetchText(`${metrics ?? ""}/metrics`)).body)
    const m = await until("failing health in the metrics", async () => {
      const parsed = await scrape()
      return (valueOf(parsed, "isinit_entry_health_failures", { group: "r", tag: "sick" }) ?? 0) >= 2 ? parsed : undefined
    })
    expect(valueOf(m, "isinit_entry_state", { group: "r", tag: "wait", mode: "respawn", state: "starting" })).toBe(1)
    expect(valueOf(m, "isinit_entry_health_failures", { group: "r", tag: "wait" })).toBeUndefined()
    writeFileSync(flag, "")
    await until("ready in the metrics", async () => valueOf(await scrape(), "isinit_entry_state", { group: "r", tag: "wait", mode: "respawn", state: "running" }) === 1)
  })

  it("counts the hooks' runs and drops", async () => {
    const l = fresh()
    l.writeTab(`:::hook-limit:1/1m\n:::hook:started:true\ng:a:1:once:true\ng:b:1:once:true\n`)
    const { metrics } = await startServed(l, ["--metrics", ":0"])
    await askJson(l.socket, { op: "tell", group: "g", level: "1", wait: true })
    const m = await until("the hook's counters", async () => {
      const parsed = parseExposition((await fetchText(`${metrics ?? ""}/metrics`)).body)
      return valueOf(parsed, "isinit_hook_dropped_total", { hook: "line 2 (started)" }) === 1 ? parsed : undefined
    })
    expect(valueOf(m, "isinit_hook_runs_total", { hook: "line 2 (started)" })).toBe(1)
  })

  it("answers only GET and HEAD, and on loopback only to a loopback Host", async () => {
    const l = fresh()
    l.writeTab("g:a:1:respawn:sleep 300\n")
    const { metrics } = await startServed(l, ["--metrics", "127.0.0.1:0"])
    const url = `${metrics ?? ""}/metrics`
    expect((await fetchText(url, { method: "POST" })).status).toBe(405)
    expect((await fetchText(url, { headers: { host: "attacker.example" } })).status).toBe(403)
    expect((await fetchText(url, { headers: { host: "localhost:1234" } })).status).toBe(200)
    expect((await fetchText(`${metrics ?? ""}/nosuch`)).status).toBe(404)
  })

  it("refuses a non-loopback address without --allow-remote, saying why (exit 2)", async () => {
    const l = fresh()
    l.writeTab("g:a:1:respawn:sleep 300\n")
    const isinitd = async (args: readonly string[]) => {
      const { spawnSync } = await import("node:child_process")
      const { isinitdEntry, repoRoot } = await import("./daemonHarness.ts")
      return spawnSync(process.execPath, ["--import", "tsx", isinitdEntry, "-c", l.path("isinittab"), "-s", l.socket, ...args], { cwd: repoRoot, encoding: "utf8", timeout: 60_000 })
    }
    const refused = await isinitd(["--metrics", "0.0.0.0:0"])
    expect(refused.status).toBe(2)
    expect(refused.stderr).toMatch(/--metrics 0\.0\.0\.0:0: 0\.0\.0\.0 is not a loopback address.*no authentication.*--allow-remote/)
    expect((await isinitd(["--http", "nonsense:port"])).stderr).toMatch(/--http: "nonsense:port" is not an address/)
    expect((await isinitd(["--allow-remote"])).stderr).toMatch(/--allow-remote applies only with --metrics or --http/)
    const { metrics } = await startServed(l, ["--metrics", "0.0.0.0:0", "--allow-remote"])
    expect(metrics).toMatch(/^http:\/\/0\.0\.0\.0:\d+$/)
    expect((await fetchText(`${(metrics ?? "").replace("0.0.0.0", "127.0.0.1")}/metrics`, { headers: { host: "anyname.example" } })).status).toBe(200)
  })
})
