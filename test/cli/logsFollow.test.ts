/**
 * `isinit logs -f`'s one look (cli/logs.ts followStep) at a rotation by copy-and-truncate, driven
 * by hand: the files are written here, no daemon.
 */
import { appendFileSync, copyFileSync, mkdtempSync, rmSync, statSync, truncateSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { StringDecoder } from "node:string_decoder"
import { afterEach, expect, it } from "vitest"
import type { Followed } from "../../src/cli/logs.ts"
import { followStep } from "../../src/cli/logs.ts"

const dirs: string[] = []
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true })
})

const following = (content: string) => {
  const dir = mkdtempSync(join(tmpdir(), "isinit-follow-"))
  dirs.push(dir)
  const path = join(dir, "w.log")
  writeFileSync(path, content)
  let out = ""
  const at: Followed = { offset: statSync(path).size, ino: statSync(path).ino, rotatedIno: undefined, waitedOn: undefined }
  const look = (): string => {
    const before = out.length
    followStep(path, at, { out: (text) => void (out += text), err: () => undefined, env: {} }, new StringDecoder("utf8"))
    return out.slice(before)
  }
  return { path, look }
}

it("a rotation whose truncated file already grew past the copy is followed after one look, not waited on until the next rotation", () => {
  const { path, look } = following("old 1\nold 2\n")
  appendFileSync(path, "old 3\n")
  copyFileSync(path, `${path}.1`)
  truncateSync(path, 0)
  appendFileSync(path, "new 1 written fast enough to outgrow the copy\n")
  // Looks the same as a copy whose truncation is still to come: wait once...
  expect(look()).toBe("")
  // ...then the rest of the copy, and the new file from its start.
  expect(look()).toBe("old 3\nnew 1 written fast enough to outgrow the copy\n")
  appendFileSync(path, "new 2\n")
  expect(look()).toBe("new 2\n")
})

it("a copy whose truncation comes before the next look loses and repeats nothing", () => {
  const { path, look } = following("old 1\n")
  appendFileSync(path, "old 2\n")
  copyFileSync(path, `${path}.1`)
  expect(look()).toBe("")
  truncateSync(path, 0)
  appendFileSync(path, "new 1\n")
  expect(look()).toBe("old 2\nnew 1\n")
})
