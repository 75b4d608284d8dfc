/**
 * The example isinittab (what `npm start` runs), on the real daemon: its groups reach their
 * levels, and its shell loop runs under one /bin/sh -c, as its comment and the README say.
 */
import { readFileSync } from "node:fs"
import { afterEach, expect, it } from "vitest"
import type { Lab } from "../runtime/daemonHarness.ts"
import { askJson, makeLab, repoRoot, runningPid } from "../runtime/daemonHarness.ts"
import { cmdline } from "../runtime/helpers.ts"

let lab: Lab | undefined
afterEach(async () => {
  await lab?.cleanup()
  lab = undefined
})

it("runs the example: web reaches run, and web-server is one /bin/sh -c running the loop itself", async () => {
  const l = (lab = makeLab())
  l.writeTab(readFileSync(`${repoRoot}/examples/isinittab`, "utf8"))
  const d = await l.start()
  expect(await askJson(d.socket, { op: "tell", group: "web", level: "run", wait: true, timeoutMs: 30_000 })).toMatchObject({ ok: true, outcome: "run" })
  const pid = await runningPid(d.socket, "web-server")
  const argv = cmdline(pid) ?? []
  expect(argv.slice(0, 2)).toEqual(["/bin/sh", "-c"])
  expect(argv[2]).toMatch(/^while true; do /)
  expect(d.log()).not.toMatch(/warning/)
}, 60_000)
