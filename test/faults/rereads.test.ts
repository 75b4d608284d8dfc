/**
 * What the daemon reads when the isinittab is not what the operator meant: a byte-order mark an
 * editor put in front of it, a file truncated to nothing or cut in the middle by a non-atomic
 * rewrite. Real daemon, real processes: nothing that runs is stopped by a broken re-read.
 */
import { writeFileSync } from "node:fs"
import { afterEach, describe, expect, it } from "vitest"
import type { Lab } from "../runtime/daemonHarness.ts"
import { askJson, makeLab } from "../runtime/daemonHarness.ts"
import { logged } from "./faultHarness.ts"

let lab: Lab | undefined
afterEach(async () => {
  await lab?.cleanup()
  lab = undefined
})

describe("a UTF-8 byte-order mark", () => {
  it("does not become part of the first group's name: the group can be told, and the log names the mark", async () => {
    const l = (lab = makeLab())
    writeFileSync(l.path("isinittab"), Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from("web:w:1:respawn:sleep 300\n")]))
    const d = await l.start()
    expect(await askJson(d.socket, { op: "tell", group: "web", level: "1", wait: true })).toMatchObject({ ok: true, outcome: "run" })
    await logged(d, /isinittab:1: warning: a UTF-8 byte-order mark/)
  }, 60_000)
})
