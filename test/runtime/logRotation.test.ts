/**
 * The rotation's size check (runtime/logs.ts) on real files: rotation by copy-and-truncate with
 * its kept files, and the idle mode: once a round saw no change the timer stops, and the next
 * write (seen through inotify) starts it again, so a file that starts growing after a quiet spell
 * is still rotated.
 */
import { appendFileSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterEach, describe, expect, it } from "vitest"
import type { LogFile } from "../../src/core/logs.ts"
import type { Rotation } from "../../src/runtime/logs.ts"
import { openChildOutput, rotateLogFile, startLogRotation } from "../../src/runtime/logs.ts"
import { sleep, until } from "./helpers.ts"

let dir = ""
let rotation: Rotation | undefined
afterEach(() => {
  rotation?.stop()
  rotation = undefined
  if (dir !== "") rmSync(dir, { recursive: true, force: true })
})
const fresh = (): string => (dir = mkdtempSync(join(tmpdir(), "isinit-rotation-")))
const read = (path: string): string => (existsSync(path) ? readFileSync(path, "utf8") : "")

describe("log rotation", () => {
  it("shifts the kept files, copies to .1 and truncates; keep=0 only truncates", async () => {
    const path = join(fresh(), "a.log")
    const file: LogFile = { path, max: 1, keep: 2 }
    for (const text of ["one\n", "two\n", "three\n"]) {
      writeFileSync(path, text, { flag: "a" })
      await rotateLogFile(file)
    }
    expect([read(path), read(`${path}.1`), read(`${path}.2`), existsSync(`${path}.3`)]).toEqual(["", "three\n", "two\n", false])
    writeFileSync(path, "four\n", { flag: "a" })
    await rotateLogFile({ path, max: 1, keep: 0 })
    expect([read(path), read(`${path}.1`)]).toEqual(["", "three\n"])
  })

  it("rotates a file that starts growing after a quiet spell: the idle check wakes on the write", async () => {
    const path = join(fresh(), "quiet.log")
    writeFileSync(path, "started\n")
    const warnings: string[] = []
    rotation = startLogRotation({ files: () => [{ path, max: 1024, keep: 1 }], warn: (m) => void warnings.push(m), everyMs: 20 })
    // Several rounds with no change: the timer has stopped, a watch waits.
    await sleep(300)
    appendFileSync(path, "x".repeat(4096))
    await until("the file rotated", () => statSync(path).size < 1024 && read(`${path}.1`).length > 4096, 10_000)
    expect(warnings).toEqual([])
  })

  it("opens a log= file for a spawn (its directories made), fails the spawn when it cannot, and falls back to the daemon's output for the default file", () => {
    const base = fresh()
    const opened = openChildOutput({ _tag: "File", from: "option", path: join(base, "a/b/c.log"), max: 1, keep: 1 }, () => "inherit", () => undefined)
    expect(opened._tag).toBe("Opened")
    if (opened._tag === "Opened") opened.close()
    expect(existsSync(join(base, "a/b/c.log"))).toBe(true)
    const blocked = join(base, "file")
    writeFileSync(blocked, "")
    expect(openChildOutput({ _tag: "File", from: "option", path: join(blocked, "x.log"), max: 1, keep: 1 }, () => "inherit", () => undefined)).toMatchObject({ _tag: "Failed", reason: expect.stringMatching(/^log .*file\/x\.log: /) })
    const warned: string[] = []
    expect(openChildOutput({ _tag: "File", from: "default", path: join(blocked, "x.log"), max: 1, keep: 1 }, () => 7, (m) => void warned.push(m))).toMatchObject({ _tag: "Opened", output: 7 })
    expect(warned).toHaveLength(1)
  })
})
