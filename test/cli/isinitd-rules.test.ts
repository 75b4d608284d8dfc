/**
 * isinitd on real processes, for the rules operators trip over (issue 8): each test shows one
 * rule through the socket, the log and /proc. Outcomes only, with generous bounded waits.
 */
import { describe, expect, it } from "vitest"
import { logged } from "../faults/faultHarness.ts"
import { until } from "../runtime/helpers.ts"
import { ask, labPerTest, lines, runningPid } from "../runtime/daemonHarness.ts"

const fresh = labPerTest()

describe("isinitd rules (issue 8)", () => {
  it("rule 15: a group's outgoing process is gone before its incoming entries start", async () => {
    const l = fresh()
    const owner = l.path("port-owner")
    const events = l.path("events")
    // The server holds "the port" (a file) until a second after SIGTERM; the page checks it is free.
    const server = `echo up > ${owner}; trap 'sleep 1; rm -f ${owner}; exit 0' TERM; while :; do sleep 0.1; done`
    const page = `if [ -e ${owner} ]; then echo collision >> ${events}; fi; echo page >> ${events}; exec sleep 300`
    l.writeTab(`web:server:run,:respawn:${server}\nweb:page:maint,:respawn:${page}\n`)
    const d = await l.start()
    expect(await ask(d.socket, "web run\n")).toBe("ok\n")
    await runningPid(d.socket, "server")
    await until("the server holds the port", () => lines(owner).length > 0)
    expect(await ask(d.socket, "web maint\n")).toBe("ok\n")
    await runningPid(d.socket, "page")
    expect(lines(events)).toEqual(["page"])
    await logged(d, / web page started pid=\d+/)
    const log = d.log()
    expect(log.indexOf(" web server exited")).toBeGreaterThan(-1)
    expect(log.indexOf(" web server exited")).toBeLessThan(log.indexOf(" web page started"))
  })
})
