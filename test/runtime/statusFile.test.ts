import { chmodSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterEach, beforeEach, describe, expect, it } from "vitest"
import type { StatusWriter } from "../../src/runtime/statusFile.ts"
import { makeStatusWriter } from "../../src/runtime/statusFile.ts"
import { sleep, until } from "./helpers.ts"

let dir: string
let writers: StatusWriter[] = []
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "isinit-status-"))
})
afterEach(() => {
  for (const w of writers) w.close()
  writers = []
  chmodSync(dir, 0o700)
  rmSync(dir, { recursive: true, force: true })
})

const content = (n: number): string => `!startid ${n}\n${"group".padEnd(15)} run             ${String(n).padEnd(15)}\n!endid ${n}\n`

const writer = (path: string, render: () => string, warnings: string[] = [], retryMs = 1_000) => {
  const w = makeStatusWriter({ path, render, warn: (m) => warnings.push(m), retryMs })
  writers.push(w)
  return w
}

describe("status file writer", () => {
  it("creates missing directories and writes the rendered content", async () => {
    const path = join(dir, "a", "b", "initstat")
    const w = writer(path, () => content(1))
    w.request()
    await w.flush()
    expect(readFileSync(path, "utf8")).toBe(content(1))
    expect(readdirSync(join(dir, "a", "b"))).toEqual(["initstat"])
  })

  it("coalesces many requests into few writes and ends with the latest state", async () => {
    const path = join(dir, "initstat")
    let state = 0
    const w = writer(path, () => content(state))
    for (let i = 1; i <= 1_000; i++) {
      state = i
      w.request()
    }
    await w.flush()
    expect(readFileSync(path, "utf8")).toBe(content(1_000))
    // One write started at the first request, one more for everything that came meanwhile.
    expect(w.stats().writes).toBeLessThanOrEqual(2)
    expect(w.stats().writes).toBeGreaterThanOrEqual(1)
  })

  it("readers never see a torn or empty file while it is rewritten", async () => {
    const path = join(dir, "initstat")
    let state = 0
    const big = (n: number) => content(n) + `${"x".repeat(200_000)}\n!endid ${n}\n`
    const w = writer(path, () => big(state))
    w.request()
    await w.flush()
    let reads = 0
    let stop = false
    const reader = (async () => {
      while (!stop) {
        const text = readFileSync(path, "utf8")
        const id = /^!startid (\d+)\n/.exec(text)?.[1]
        expect(id).toBeDefined()
        expect(text.endsWith(`!endid ${id}\n`)).toBe(true)
        reads++
        await sleep(0)
      }
    })()
    for (let i = 1; i <= 50; i++) {
      state = i
      w.request()
      await sleep(1)
    }
    await w.flush()
    stop = true
    await reader
    expect(reads).toBeGreaterThan(0)
    expect(readFileSync(path, "utf8")).toBe(big(50))
  })

  it("survives an unwritable directory, logs once, and writes again once it can", async () => {
    // A file where the directory should be fails for root too (root ignores permission bits).
    const blocker = join(dir, "blocked")
    writeFileSync(blocker, "")
    const warnings: string[] = []
    let state = 1
    const w = writer(join(blocker, "initstat"), () => content(state), warnings, 50)
    w.request()
    await w.flush()
    expect(w.stats().failures).toBe(1)
    state = 2
    w.request()
    await w.flush()
    expect(warnings.filter((m) => m.startsWith("cannot write"))).toHaveLength(1)
    rmSync(blocker)
    await until("the retry succeeds", () => w.stats().writes === 1)
    expect(readFileSync(join(blocker, "initstat"), "utf8")).toBe(content(2))
    expect(warnings.some((m) => m.includes("written again"))).toBe(true)
  })
})
