/**
 * Model-based test: random sequences of tells, crashes, config edits, time steps and stopall run
 * against the real reducer in the simulator and against a small model of the rules written as
 * plain arithmetic. The config holds respawn, once and off entries in two groups (no barriers), so
 * after a 20 ms settle (stops take 10 ms) the model can say exactly what runs.
 */
import { fc, test } from "@fast-check/vitest"
import { expect } from "vitest"
import { World } from "../src/sim/world.ts"

type Mode = "respawn" | "once" | "off"
type Level = "1" | "2"

interface Def {
  readonly group: "g1" | "g2"
  readonly levels: readonly Level[]
  readonly mode: Mode
  readonly version: number
}

interface Model {
  now: number
  halted: boolean
  text: Map<string, Def>
  applied: Map<string, Def>
  levels: Map<string, Level>
  live: Set<string>
  onceDone: Set<string>
  window: Map<string, number[]>
  jail: Map<string, number>
  /** When each group's last transition took its entries (after its outgoing processes were gone). */
  ready: Map<string, number>
}

const SETTLE_MS = 20
const STOP_MS = 10
const LIMIT = { max: 5, windowMs: 10_000, jailMs: 60_000 }
const tags = ["t1", "t2", "t3", "t4"] as const

const line = (tag: string, d: Def): string =>
  `${d.group}:${tag}:${d.levels.join("")}:${d.mode}:cmd-${tag} --v${d.version}\n`
const text = (m: Model): string => [...m.text].map(([tag, d]) => line(tag, d)).join("")
const same = (a: Def, b: Def): boolean => a.group === b.group && a.mode === b.mode && a.version === b.version

const admitted = (m: Model, tag: string): boolean => {
  const d = m.applied.get(tag)
  const level = d === undefined ? undefined : m.levels.get(d.group)
  return !m.halted && d !== undefined && d.mode !== "off" && level !== undefined && d.levels.includes(level)
}

const startRespawn = (m: Model, tag: string, at: number): void => {
  const recent = (m.window.get(tag) ?? []).filter((s) => at - s < LIMIT.windowMs)
  if (recent.length < LIMIT.max) {
    m.window.set(tag, [...recent, at])
    m.live.add(tag)
  } else {
    m.window.set(tag, recent) // the window outlives the jail, which lasts until the window admits a start
    m.jail.set(tag, Math.max(at + LIMIT.jailMs, (recent[recent.length - LIMIT.max] ?? at) + LIMIT.windowMs))
  }
}

const forget = (m: Model, tag: string): void => {
  m.onceDone.delete(tag)
  m.window.delete(tag)
  m.jail.delete(tag)
}

const nextJailEnd = (m: Model, end: number): readonly [string, number] | undefined =>
  [...m.jail].filter(([, until]) => until <= end).sort((a, b) => a[1] - b[1])[0]

/** Time passes: jails end (in time order), and an admitted respawn entry starts again. */
const passTime = (m: Model, ms: number): void => {
  const end = m.now + ms
  // A halted daemon is frozen: its last state (jails included) is what it reports.
  // A release is a start like any other, so it may jail the entry again.
  for (let due = m.halted ? undefined : nextJailEnd(m, end); due !== undefined; due = nextJailEnd(m, end)) {
    const [tag, until] = due
    m.jail.delete(tag)
    // A jail that ends while its group waits for outgoing processes starts the entry once they are gone.
    const ready = m.ready.get(m.applied.get(tag)?.group ?? "") ?? until
    const restarts = m.applied.get(tag)?.mode === "respawn" && admitted(m, tag) && !m.live.has(tag)
    if (restarts) startRespawn(m, tag, Math.max(until, ready))
  }
  m.now = end
}

const tell = (m: Model, group: string, level: Level): void => {
  if (m.halted || ![...m.text.values()].some((d) => d.group === group)) return // rejected: nothing changes
  const old = m.applied
  m.applied = new Map(m.text)
  const restart: string[] = []
  /** Groups with a process this tell stops (its group as it was started). */
  const outgoing = new Set<string>()
  const stop = (tag: string): void => {
    if (m.live.delete(tag)) outgoing.add(old.get(tag)?.group ?? "")
  }
  for (const tag of tags) {
    const was = old.get(tag)
    const now = m.applied.get(tag)
    if (now === undefined || now.mode === "off") {
      stop(tag)
      forget(m, tag)
    } else if (now.mode !== "respawn" && m.jail.has(tag)) {
      m.jail.delete(tag) // the jail is a respawn rule: a changed mode frees the entry
      m.window.delete(tag)
    } else if (was !== undefined && m.live.has(tag) && !same(was, now)) {
      stop(tag)
      restart.push(tag) // stopped now, started with its new definition once gone
    }
  }
  m.levels.set(group, level)
  // Rule 18: a group the config no longer defines loses its level (and is forgotten once its processes are gone).
  for (const g of m.levels.keys()) if (![...m.applied.values()].some((d) => d.group === g)) m.levels.delete(g)
  const inGroup = [...m.applied].filter(([, d]) => d.group === group && d.mode !== "off")
  for (const [tag, d] of inGroup) {
    if (d.levels.includes(level)) continue
    stop(tag)
    forget(m, tag)
    if (restart.includes(tag)) restart.splice(restart.indexOf(tag), 1)
  }
  // Rule 15: the group's entries start once its outgoing processes are gone (they take STOP_MS).
  const ready = outgoing.has(group) ? m.now + STOP_MS : m.now
  m.ready.set(group, ready)
  for (const [tag, d] of inGroup) {
    if (!d.levels.includes(level) || m.live.has(tag) || restart.includes(tag)) continue
    if (d.mode === "respawn" && !m.jail.has(tag)) startRespawn(m, tag, ready)
    if (d.mode === "once" && !m.onceDone.has(tag)) m.live.add(tag)
  }
  for (const tag of restart) {
    const d = m.applied.get(tag)
    if (d === undefined || !admitted(m, tag)) continue
    if (d.mode === "respawn" && !m.jail.has(tag)) startRespawn(m, tag, m.now + STOP_MS)
    if (d.mode === "once" && !m.onceDone.has(tag)) m.live.add(tag)
  }
}

const crash = (m: Model, tag: string): void => {
  if (!m.live.has(tag)) return
  m.live.delete(tag)
  const d = m.applied.get(tag)
  if (d?.mode === "respawn") {
    if (admitted(m, tag)) startRespawn(m, tag, m.now)
  } else m.onceDone.add(tag)
}

const stopAll = (m: Model): void => {
  if (m.halted) return
  m.halted = true
  m.live.clear()
}

const verify = (m: Model, w: World): void => {
  const live = [...new Set([...w.processes.values()].filter((p) => p.pid !== undefined).map((p) => p.tag))].sort()
  expect(live).toEqual([...m.live].sort())
  expect(w.now).toBe(m.now)
  expect(w.state.lifecycle).toBe(m.halted ? "halted" : "running")
  const report = w.report()
  for (const [group, level] of m.levels) {
    const row = report.groups.find((g) => g.group === group)
    expect(row?.level).toBe(level)
    expect(row?.state).toBe(m.halted ? "stopped" : "run")
  }
  const groups = [...new Set([...m.applied.values()].map((d) => d.group))].sort()
  if (!m.halted) expect(report.groups.map((g) => g.group)).toEqual(groups)
  const entries = report.groups.flatMap((g) => g.entries)
  const jailed = entries.flatMap((e) => (e.jailedUntil === null ? [] : [[e.tag, e.jailedUntil] as const]))
  expect(new Map(jailed)).toEqual(m.jail)
  expect(w.violations).toEqual([])
}

const command = (name: string, onModel: (m: Model) => void, onWorld: (w: World) => void): fc.Command<Model, World> => ({
  check: () => true,
  run: (m, w) => {
    onModel(m)
    onWorld(w)
    passTime(m, SETTLE_MS)
    w.advance(SETTLE_MS)
    verify(m, w)
  },
  toString: () => name,
})

const levelArb = fc.constantFrom<Level>("1", "2")
const tagArb = fc.constantFrom(...tags)
const defArb: fc.Arbitrary<Def> = fc.record({
  group: fc.constantFrom<"g1" | "g2">("g1", "g2"),
  levels: fc.subarray<Level>(["1", "2"], { minLength: 1 }),
  mode: fc.constantFrom<Mode>("respawn", "respawn", "once", "off"),
  version: fc.constant(1),
})

type Edit = "version" | "mode" | "levels" | "group" | "toggle"

const editModel = (m: Model, tag: string, edit: Edit, fresh: Def): void => {
  const d = m.text.get(tag)
  if (d === undefined || edit === "toggle") {
    if (d === undefined) m.text.set(tag, fresh)
    else m.text.delete(tag)
    return
  }
  const next: Def =
    edit === "version"
      ? { ...d, version: d.version + 1 }
      : edit === "mode"
        ? { ...d, mode: d.mode === "respawn" ? "once" : d.mode === "once" ? "off" : "respawn" }
        : edit === "levels"
          ? { ...d, levels: fresh.levels }
          : { ...d, group: d.group === "g1" ? "g2" : "g1" }
  m.text.set(tag, next)
}

const editArb = fc.constantFrom<Edit>("version", "mode", "levels", "group", "toggle")

const advanceArb = fc.oneof(
  fc.integer({ min: 0, max: 3_000 }),
  fc.integer({ min: 0, max: 70_000 }),
  fc.constantFrom(...[LIMIT.windowMs, LIMIT.jailMs].flatMap((edge) => [-1, 0, 1].map((d) => edge - SETTLE_MS + d))),
)

const commandsArb = fc.commands(
  [
    fc.tuple(fc.constantFrom("g1", "g2"), levelArb).map(([g, l]) =>
      command(`tell ${g} ${l}`, (m) => tell(m, g, l), (w) => w.tell(g, l)),
    ),
    tagArb.map((tag) => command(`crash ${tag}`, (m) => crash(m, tag), (w) => w.crash(tag, "SIGKILL"))),
    fc.tuple(tagArb, fc.integer({ min: 2, max: 7 })).map(([tag, n]) =>
      command(
        `crash ${tag} x${n}`,
        (m) => {
          for (let i = 0; i < n; i++) crash(m, tag)
        },
        (w) => {
          for (let i = 0; i < n; i++) w.crash(tag, 1)
        },
      ),
    ),
    advanceArb.map((ms) => command(`advance ${ms}`, (m) => passTime(m, ms), (w) => w.advance(ms))),
    fc.tuple(tagArb, editArb, defArb).map(([tag, edit, fresh]) => {
      let edited = ""
      return command(
        `edit ${tag} ${edit}`,
        (m) => {
          editModel(m, tag, edit, fresh)
          edited = text(m)
        },
        (w) => w.editConfig(edited),
      )
    }),
    fc.constant(command("stopall", stopAll, (w) => w.stopAll())),
  ],
  { maxCommands: 60, size: "+1" },
)

/** The first config: each of the four tags defined or not. */
const initialArb = fc.array(fc.option(defArb, { nil: undefined }), { minLength: 4, maxLength: 4 })

test.prop([initialArb, commandsArb], { numRuns: 300 })(
  "model: random tells, crashes, config edits, time steps and stopall agree with a plain model of rules 2-8, 15 and 18",
  (initial, cmds) => {
    const textMap = new Map<string, Def>()
    initial.forEach((d, i) => {
      if (d !== undefined) textMap.set(tags[i] ?? "t1", d)
    })
    const model: Model = {
      now: 0,
      halted: false,
      text: textMap,
      applied: new Map(textMap),
      levels: new Map(),
      live: new Set(),
      onceDone: new Set(),
      window: new Map(),
      jail: new Map(),
      ready: new Map(),
    }
    fc.modelRun(() => ({ model, real: new World({ config: text(model), sigtermDelayMs: STOP_MS }) }), cmds)
  },
)
