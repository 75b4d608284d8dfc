/**
 * Entries' logs against real processes (issue 11): a file per entry by default, `log=off`,
 * `log=inherit`, rotation by size while a child writes, children that keep logging through a
 * `kill -9` of the daemon and are adopted by the next one, `isinit logs -n` and `-f` across
 * rotations, and status saying where each entry logs. Bounded waits, no timing asserted.
 */
import { spawn } from "node:child_process"
import { existsSync, readFileSync, statSync } from "node:fs"
import { describe, expect, it } from "vitest"
import { crash, restart } from "../faults/faultHarness.ts"
import { askJson, entryOf, isinitEntry, labPerTest, runningPid, statusOf } from "./daemonHarness.ts"
import { until } from "./helpers.ts"

const fresh = labPerTest()

const text = (path: string): string => (existsSync(path) ? readFileSync(path, "utf8") : "")
const sizeOf = (path: string): number | undefined => (existsSync(path) ? statSync(path).size : undefined)
const inoOf = (path: string): number | undefined => (existsSync(path) ? statSync(path).ino : undefined)

/** A shell loop writing numbered lines of about 100 bytes, one per `pause` at most. */
const writer = (pause: string): string =>
  `sh -c 'i=0; while :; do i=$((i+1)); echo "line $i ................................................................................"; sleep ${pause}; done'`

/** The numbers of the `line N` lines of `text`, in order. */
const numbers = (content: string): number[] => [...content.matchAll(/^line (\d+) /gm)].map((m) => Number(m[1]))

/** Counts rotations of `log` as it is looked at (each makes a new `.1`); `seen` looks once more. */
const rotationCounter = (log: string) => {
  let rotations = 0
  let rotatedIno = inoOf(`${log}.1`)
  return (): number => {
    const ino = inoOf(`${log}.1`)
    if (ino !== rotatedIno) [rotations, rotatedIno] = [rotations + 1, ino]
    return rotations
  }
}

/** A daemon running `g:w` (a writer pausing `pause` between lines) with log-max=4K, log-keep=2, and `g:fixed`; w's log path. */
const smallRotations = async (pause: string) => {
  const l = fresh()
  // `fixed` writes lines 1 to 20 and stops: a file that no rotation changes under `isinit logs -n`.
  const fixed = `sh -c 'for i in $(seq 1 20); do echo "line $i ."; done; exec sleep 300'`
  l.writeTab(`g:w:1:respawn:${writer(pause)}\ng:fixed:1:respawn:${fixed}\n:::option:w:log-max=4K\n:::option:w:log-keep=2\n`)
  const d = await l.start()
  expect(await askJson(d.socket, { op: "tell", group: "g", level: "1" })).toMatchObject({ ok: true })
  return { l, d, log: l.path("run/log/w.log") }
}

const logsOf = async (socket: string): Promise<Map<string, string | undefined>> => {
  const found = new Map<string, string | undefined>()
  for (const g of (await statusOf(socket)).groups) for (const e of g.entries) found.set(e.tag, (e as { readonly log?: string }).log)
  return found
}

/** Up to a generous bound: the size a file can reach between two of the daemon's checks (1 s) on a slow machine. */
const rotationBound = 64 * 1024

describe("entries' logs", () => {
  it("go to a file per entry by default, nowhere with log=off, to the daemon's output with log=inherit; status says where", async () => {
    const l = fresh()
    l.writeTab(
      [
        "g:talk:1:respawn:sh -c 'echo talk-out; echo talk-err >&2; exec sleep 300'",
        "g:quiet:1:respawn:sh -c 'echo quiet-out; exec sleep 300'",
        "g:loud:1:respawn:sh -c 'echo loud-out >&2; exec sleep 300'", // the lab's daemon has no stdout
        "g:rel:1:respawn:sh -c 'echo rel-out; exec sleep 300'",
        "g:bad:1:once:echo never",
        ":::option:quiet:log=off",
        ":::option:loud:log=inherit",
        ":::option:rel:log=custom/rel.out",
        ":::option:bad:log=/proc/no-such-dir/bad.log",
        "",
      ].join("\n"),
    )
    const d = await l.start()
    expect(await askJson(d.socket, { op: "tell", group: "g", level: "1" })).toMatchObject({ ok: true })
    const talkLog = l.path("run/log/talk.log")
    await until("talk's output in its file", () => /talk-out/.test(text(talkLog)) && /talk-err/.test(text(talkLog)))
    await until("rel's output under the log directory", () => /rel-out/.test(text(l.path("run/log/custom/rel.out"))))
    await until("loud's output in the daemon's stderr", () => /loud-out/.test(d.log()))
    await runningPid(d.socket, "quiet")
    await until("bad's spawn failed, saying why", async () => /log \/proc\/no-such-dir\/bad\.log/.test((await entryOf(d.socket, "bad"))?.lastExit ?? ""))
    expect(d.log()).not.toMatch(/talk-out|quiet-out|rel-out/)
    expect(existsSync(l.path("run/log/quiet.log"))).toBe(false)

    expect(await logsOf(d.socket)).toEqual(
      new Map([
        ["talk", talkLog],
        ["quiet", "off"],
        ["loud", "inherit"],
        ["rel", l.path("run/log/custom/rel.out")],
        ["bad", "/proc/no-such-dir/bad.log"],
      ]),
    )
    const table = await l.isinit(["status"])
    expect(table.out).toMatch(/LOG/)
    expect(table.out).toContain(talkLog)
  })

  it("rotate past log-max, keeping log-keep old files, while the child writes: sizes and file count stay bounded", async () => {
    const { d, log } = await smallRotations("0.01")
    await until("two rotations (w.log.2 exists)", () => existsSync(`${log}.2`), 30_000)
    const pid = await runningPid(d.socket, "w")
    const rotations = rotationCounter(log)
    // Watch a few more rotations: the live file and each kept one stay small, never a third.
    await until(
      "three more rotations",
      () => {
        for (const path of [log, `${log}.1`, `${log}.2`]) expect(sizeOf(path) ?? 0).toBeLessThan(rotationBound)
        expect(existsSync(`${log}.3`)).toBe(false)
        return rotations() >= 3
      },
      30_000,
    )
    // One child all along, and its lines in order across the files (oldest first).
    expect(await runningPid(d.socket, "w")).toBe(pid)
    const all = numbers(text(`${log}.2`) + text(`${log}.1`) + text(log))
    expect(all.length).toBeGreaterThan(20)
    for (let i = 1; i < all.length; i++) expect(all[i]).toBeGreaterThan(all[i - 1] ?? 0)
  })

  it("kill -9 of the daemon while children write: they live on, still logging; the next daemon adopts them and rotates their files", async () => {
    const l = fresh()
    l.writeTab(`g:w:1:respawn:${writer("0.01")}\ng:v:1:respawn:${writer("0.05")}\n:::option:*:log-max=8K\n:::option:*:log-keep=1\n`)
    const first = await l.start()
    expect(await askJson(first.socket, { op: "tell", group: "g", level: "1", wait: true })).toMatchObject({ ok: true, outcome: "run" })
    const w = await runningPid(first.socket, "w")
    const v = await runningPid(first.socket, "v")
    const log = l.path("run/log/w.log")
    await until("w logging", () => (sizeOf(log) ?? 0) > 0)

    await crash(first)
    const newest = (): number => Math.max(0, ...numbers(text(`${log}.1`) + text(log)))
    const atCrash = newest()
    await until("w still logging with no daemon", () => newest() > atCrash + 20)
    expect(() => process.kill(w, 0)).not.toThrow()

    const second = await restart(l)
    expect(await runningPid(second.socket, "w")).toBe(w)
    expect(await runningPid(second.socket, "v")).toBe(v)
    const rotatedIno = inoOf(`${log}.1`)
    await until("w's file rotated by the new daemon", () => inoOf(`${log}.1`) !== rotatedIno && (sizeOf(log) ?? 0) < rotationBound, 30_000)
    const afterRestart = newest()
    await until("w still logging", () => newest() > afterRestart + 20)
    expect((await entryOf(second.socket, "w"))?.restarts).toBe(0)
    expect(await runningPid(second.socket, "w")).toBe(w)
  })

  it("isinit logs prints the last lines (-n) and follows the file across rotations (-f) without losing or repeating lines", async () => {
    const { l, d, log } = await smallRotations("0.02")
    await until("fixed's 20 lines", () => numbers(text(l.path("run/log/fixed.log"))).length === 20)
    const three = await l.isinit(["logs", "fixed", "-n", "3"])
    expect(three).toMatchObject({ code: 0, out: "line 18 .\nline 19 .\nline 20 .\n" })
    expect((await l.isinit(["logs", "fixed"])).out.split("\n")).toHaveLength(11)
    expect((await l.isinit(["logs", "fixed", "-n", "100"])).out.split("\n")).toHaveLength(21)
    expect((await l.isinit(["logs", "nosuch"])).err).toMatch(/no entry "nosuch"/)

    const [key, value] = d.marker.split("=") as [string, string]
    const follower = spawn(process.execPath, ["--import", import.meta.resolve("tsx"), isinitEntry, "-c", l.path("isinittab"), "-s", d.socket, "logs", "w", "-f", "-n", "1"], {
      env: { ...process.env, [key]: value },
      stdio: ["ignore", "pipe", "pipe"],
    })
    let out = ""
    follower.stdout.setEncoding("utf8").on("data", (chunk: string) => (out += chunk))
    let rotations = (): number => 0
    try {
      await until("the follower started", () => numbers(out).length > 0, 30_000)
      rotations = rotationCounter(log)
      await until("three rotations while following", () => rotations() >= 3, 60_000)
      // The follower looks every 250 ms and may lag on a loaded machine: wait until it has printed
      // the last line of the third rotated file.
      // A new .1 exists from the moment the copy opens it: read it once it holds the whole copy.
      await until("the third rotated file written", () => (sizeOf(`${log}.1`) ?? 0) >= 4096, 30_000)
      const rotatedLast = numbers(text(`${log}.1`)).at(-1) ?? 0
      await until("the follower read up to the third rotation", () => (numbers(out).at(-1) ?? 0) >= rotatedLast, 30_000)
    } finally {
      follower.kill("SIGTERM")
    }
    const followed = numbers(out)
    for (let i = 1; i < followed.length; i++) expect(followed[i]).toBeGreaterThan(followed[i - 1] ?? 0)
    // Copy-and-truncate may lose what is written between the copy and the truncation (one turn of
    // the daemon's loop: a line of a writer pausing 20 ms, per rotation); following loses none itself.
    const first = followed[0] ?? 0
    const missing = (followed.at(-1) ?? 0) - first + 1 - followed.length
    expect(missing).toBeLessThanOrEqual(rotations())
    // Between the first and the third rotation the follower read two whole rotated files, each at
    // least log-max (4096 bytes) of lines of at most 91 bytes: 2 x 45 lines.
    expect(followed.length).toBeGreaterThanOrEqual(90)
  })
})
