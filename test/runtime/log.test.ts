/**
 * The daemon's log losing its stream, in-process: a stream whose writes fail as a pipe without a
 * reader fails (EPIPE), a reader that never reads, and a fallback file that cannot be written.
 */
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Writable } from "node:stream"
import { afterEach, beforeEach, describe, expect, it } from "vitest"
import { maxBufferedLogBytes, resilientLog } from "../../src/runtime/log.ts"
import { until } from "./helpers.ts"

let dir: string
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "isinit-log-"))
})
afterEach(() => {
  chmodSync(dir, 0o700)
  rmSync(dir, { recursive: true, force: true })
})

const epipe = (): NodeJS.ErrnoException => Object.assign(new Error("write EPIPE"), { code: "EPIPE" })

/** A stream that takes `good` writes, then fails every write as a pipe whose reader went away. */
const dyingStream = (good: number) => {
  const written: string[] = []
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      if (written.length < good) {
        written.push(chunk.toString())
        callback()
      } else callback(epipe())
    },
  })
  return { stream, written }
}

const fileLines = (path: string): string[] => (existsSync(path) ? readFileSync(path, "utf8").split("\n").filter((l) => l !== "") : [])

describe("the daemon's log", () => {
  it("moves to the fallback file when its stream fails, losing no line and saying why there", async () => {
    const { stream, written } = dyingStream(2)
    const log = resilientLog(stream)
    const fallback = join(dir, "isinitd.log")
    log.fallbackTo(fallback)
    for (const n of [1, 2, 3, 4]) log.line({ what: "started", tag: `t${n}` })
    await until("the failed lines rerouted", () => fileLines(fallback).length >= 3)
    log.line({ what: "started", tag: "t5" })
    expect(written.join("")).toMatch(/ t1 started\n.* t2 started\n$/)
    const lines = fileLines(fallback)
    expect(lines[0]).toMatch(/ log stderr lost \(EPIPE\): logging to .*isinitd\.log from now on, and so do processes started from now on$/)
    expect(lines.slice(1).map((l) => l.split(" ")[2])).toEqual(["t3", "t4", "t5"])
    expect(typeof log.childOutput()).toBe("number")
    expect(stream.listenerCount("error")).toBeGreaterThan(0)
  })

  it("counts the lines it can write nowhere and reports them once the fallback works", async () => {
    const { stream } = dyingStream(0)
    let now = 0
    const log = resilientLog(stream, () => new Date(now))
    const blocked = join(dir, "blocked")
    mkdirSync(blocked)
    chmodSync(blocked, 0o500)
    const root = process.getuid?.() === 0
    // No fallback yet: the lines are dropped and counted.
    log.line({ what: "exited", tag: "a" })
    await until("the stream reported lost", () => log.dropped() === 1)
    expect(log.childOutput()).toBe("ignore")
    log.line({ what: "exited", tag: "b" })
    expect(log.dropped()).toBe(2)
    // A fallback that cannot be written (root writes anywhere: use a directory for a file).
    log.fallbackTo(root ? blocked : join(blocked, "isinitd.log"))
    log.line({ what: "exited", tag: "c" })
    expect(log.dropped()).toBe(3)
    // Tried again only after 5 s, then it works and the count is reported.
    const good = join(dir, "isinitd.log")
    log.fallbackTo(good)
    log.line({ what: "exited", tag: "d" })
    expect(log.dropped()).toBe(4)
    now += 5_000
    log.line({ what: "exited", tag: "e" })
    expect(log.dropped()).toBe(0)
    const lines = fileLines(good)
    expect(lines[0]).toMatch(/failed too \(E(ACCES|ISDIR)\): logging to .* from now on.*; 4 earlier line\(s\) could not be written$/)
    expect(lines[1]).toMatch(/ e exited$/)
  })

  it("drops and counts lines a stuck reader leaves queued past 1 MiB, and says so once it drains", async () => {
    let release: (() => void) | undefined
    const taken: string[] = []
    const stream = new Writable({
      highWaterMark: 16 * 1024,
      write(chunk: Buffer, _encoding, callback) {
        taken.push(chunk.toString())
        // The first write never completes until the reader wakes up: everything else queues.
        if (release === undefined) release = () => callback()
        else callback()
      },
    })
    const log = resilientLog(stream)
    const message = "x".repeat(1000)
    const lines = Math.ceil((2 * maxBufferedLogBytes) / 1000)
    for (let i = 0; i < lines; i++) log.line({ what: "started", message })
    expect(stream.writableLength).toBeLessThanOrEqual(maxBufferedLogBytes + 2000)
    const dropped = log.dropped()
    expect(dropped).toBeGreaterThan(lines / 3)
    release?.()
    await until("the drop count written after the drain", () => taken.some((t) => t.includes(`stderr was not read fast enough: ${dropped} line(s) dropped`)))
    expect(log.dropped()).toBe(0)
  })
})
