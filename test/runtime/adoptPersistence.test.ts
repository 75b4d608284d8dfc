/**
 * The daemon's persistence without a daemon: throttled coalesced writes, a flush that puts the
 * latest state on disk at once (an acknowledged tell), the spawn journal emptied once a written
 * state covers it, removal at a clean exit, and refusal while the file's writer still runs.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterEach, describe, expect, it } from "vitest"
import { decodeStateFile, encodeStateFile, stateFormat } from "../../src/codec/stateFile.ts"
import type { State } from "../../src/core/state.ts"
import { initialState } from "../../src/core/state.ts"
import { bootId } from "../../src/runtime/boot.ts"
import { memoryLog } from "../../src/runtime/log.ts"
import type { Persistence } from "../../src/runtime/persistence.ts"
import { openPersistence } from "../../src/runtime/persistence.ts"
import { processIdentity } from "../../src/runtime/procfs.ts"
import { journalPathFor, readJournal } from "../../src/runtime/stateFile.ts"
import { sleep, until } from "./helpers.ts"

let dir: string | undefined
afterEach(() => {
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true })
  dir = undefined
})

const open = (minIntervalMs?: number): { p: Persistence; path: string; log: ReturnType<typeof memoryLog> } => {
  dir = mkdtempSync(join(tmpdir(), "isinit-persist-"))
  const path = join(dir, "isinitd.state")
  const log = memoryLog()
  const p = openPersistence({ path, log, ...(minIntervalMs === undefined ? {} : { minIntervalMs }) })
  if (p._tag !== "Opened") throw new Error(p.message)
  return { p, path, log }
}

const stateWith = (nextRun: number): State => ({ ...initialState, nextRun })
const onDisk = (path: string) => {
  const decoded = decodeStateFile(readFileSync(path, "utf8"))
  if (decoded._tag !== "Decoded") throw new Error(decoded.reason)
  return decoded
}

describe.skipIf(bootId() === undefined)("persistence", () => {
  it("coalesces a burst of changes into few writes, and flush puts the latest state on disk", async () => {
    const { p, path } = open(200)
    for (let run = 1; run <= 50; run++) p.onBatch(stateWith(run))
    await p.flush()
    expect(onDisk(path).snapshot.nextRun).toBe(50)
    expect(p.writer?.stats().writes).toBeLessThanOrEqual(2)
    // Unchanged states write nothing.
    const before = p.writer?.stats().writes ?? 0
    p.onBatch(stateWith(50))
    await sleep(300)
    expect(p.writer?.stats().writes).toBe(before)
    // A throttled change is written when the interval is over, without a flush.
    p.onBatch(stateWith(51))
    p.onBatch(stateWith(52))
    await until("the throttled write", () => onDisk(path).snapshot.nextRun === 52)
    const { header } = onDisk(path)
    expect(header).toMatchObject({ format: stateFormat, bootId: bootId(), daemon: { pid: process.pid, identity: processIdentity(process.pid) } })
    expect(header.clockAnchorMs).toBe(p.clock.anchorMs)
    await p.finish()
  })

  it("journals spawns and empties the journal once a written state covers them; finish removes both files", async () => {
    const { p, path } = open(0)
    p.beforeSpawn({ tag: "a", run: 1 })
    p.beforeSpawn({ tag: "b", run: 2 })
    expect(readJournal(journalPathFor(path))).toEqual([{ tag: "a", run: 1 }, { tag: "b", run: 2 }])
    p.onBatch(stateWith(3)) // covers runs 1 and 2
    await p.flush()
    p.beforeSpawn({ tag: "c", run: 3 })
    // The next render learns that the previous write (runs below 3) is on disk, but run 3 is not covered yet.
    p.onBatch(stateWith(4))
    await p.flush()
    expect(readJournal(journalPathFor(path))).toHaveLength(3)
    p.onBatch(stateWith(5)) // now the write of nextRun 4 is known to be on disk: everything is covered
    await p.flush()
    expect(readJournal(journalPathFor(path))).toEqual([])
    await p.finish()
    expect(existsSync(path)).toBe(false)
    expect(existsSync(journalPathFor(path))).toBe(false)
  })

  it("refuses to open a state file whose writer still runs, and keeps a predecessor's clock anchor", () => {
    const { path } = open()
    const boot = bootId() ?? ""
    const body = { version: 1 as const, nextRun: 1, lifecycle: "running" as const, entries: [], groups: [] }
    writeFileSync(path, encodeStateFile({ format: stateFormat, version: 1, bootId: boot, clockAnchorMs: 42, daemon: { pid: process.ppid, identity: processIdentity(process.ppid) ?? null } }, body))
    expect(openPersistence({ path, log: memoryLog() })).toMatchObject({ _tag: "StateFileInUse", message: expect.stringMatching(/still running/) })
    writeFileSync(path, encodeStateFile({ format: stateFormat, version: 1, bootId: boot, clockAnchorMs: 42, daemon: { pid: 999_999, identity: "1" } }, body))
    const next = openPersistence({ path, log: memoryLog() })
    expect(next._tag === "Opened" && next.clock.anchorMs).toBe(42)
  })
})
