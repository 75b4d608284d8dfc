/**
 * `isinitd --http`: the status page over plain HTTP, without JavaScript (the groups and entries
 * are in the HTML, every name escaped, the page allows exactly its own inline style and script),
 * its live stream (server-sent events: the groups again when they change, each event as it
 * happens), and one server for both flags on one address.
 */
import { createServer } from "node:net"
import { describe, expect, it } from "vitest"
import { escapeHtml, renderGroups, renderNotice } from "../../src/web/page.ts"
import { sseMessage } from "../../src/runtime/statusPage.ts"
import { askJson, labPerTest } from "./daemonHarness.ts"
import { fetchText, readEvents, startServed } from "./opsHarness.ts"

describe("the page's markup", () => {
  it("escapes every name, in the tables and in the events", () => {
    const evil = `<img src=x onerror="alert('1')">&`
    const html = renderGroups(
      { lifecycle: "running", groups: [{ group: evil, state: "run", level: evil, seq: 1, entries: [{ tag: evil, mode: "respawn", levels: [], state: "running", pid: 1, run: 1, restarts: 0, jailedUntil: null, lastExit: evil }] }] },
      0,
    )
    expect(html).not.toContain("<img")
    expect(html).toContain(escapeHtml(evil))
    expect(escapeHtml(evil)).toBe("&lt;img src=x onerror=&quot;alert(&#39;1&#39;)&quot;&gt;&amp;")
    const item = renderNotice({ at: "2026-01-01T00:00:00.000Z", notice: { event: "exited", now: 0, group: evil, tag: evil, message: evil } })
    expect(item).not.toContain("<img")
  })

  it("shows each entry's restarts, the time left in its jail and its last exit", () => {
    const entry = { mode: "respawn", levels: [], run: 5, lastExit: null } as const
    const html = renderGroups(
      {
        lifecycle: "running",
        groups: [{ group: "web", state: "run", level: "1", seq: 1, entries: [
          { ...entry, tag: "crashy", state: "jailed", pid: null, restarts: 4, jailedUntil: 42_000, lastExit: "exit 1" },
          { ...entry, tag: "fine", state: "running", pid: 77, restarts: 0, jailedUntil: null },
        ] }],
      },
      12_500,
    )
    expect(html).toContain('<tr data-tag="crashy"><td>crashy</td><td>respawn</td><td class="state state-jailed">jailed</td><td>-</td><td>4</td><td>30 s left</td><td>exit 1</td></tr>')
    expect(html).toContain('<tr data-tag="fine"><td>fine</td><td>respawn</td><td class="state state-running">running</td><td>77</td><td>0</td><td>-</td><td>-</td></tr>')
  })

  it("a server-sent event puts every line of its data on a data: line, so no name can forge a field", () => {
    expect(sseMessage("state", "a\nb\r\nevent: x\rc")).toBe("event: state\ndata: a\ndata: b\ndata: event: x\ndata: c\n\n")
  })
})

const fresh = labPerTest()

describe("isinitd --http", () => {
  it("serves the groups and entries as HTML that needs no JavaScript, names escaped, read-only", async () => {
    const l = fresh()
    const odd = "g<b>&'x'"
    l.writeTab(`${odd}:srv<i>:1:respawn:sleep 300\nweb:w:2:respawn:sleep 300\n`)
    const { page } = await startServed(l, ["--http", "127.0.0.1:0"])
    await askJson(l.socket, { op: "tell", group: odd, level: "1", wait: true })
    const got = await fetchText(`${page ?? ""}/`)
    expect(got.status).toBe(200)
    expect(got.headers["content-type"]).toBe("text/html; charset=utf-8")
    expect(got.body).toContain(`<tr data-group="g&lt;b&gt;&amp;&#39;x&#39;"><td>g&lt;b&gt;&amp;&#39;x&#39;</td><td class="state state-run">run</td><td>1</td>`)
    expect(got.body).toContain(`<tr data-group="web"><td>web</td><td class="state state-stopped">stopped</td>`)
    expect(got.body).toMatch(/<tr data-tag="srv&lt;i&gt;"><td>srv&lt;i&gt;<\/td><td>respawn<\/td><td class="state state-running">running<\/td><td>\d+<\/td>/)
    expect(got.body).not.toContain("<b>&")
    expect(got.body).not.toMatch(/<(link|img|iframe)|src=|href="http/)
    expect(got.body).toContain('<noscript><meta http-equiv="refresh" content="10"></noscript>')
    // The recent events, server-rendered too.
    expect(got.body).toMatch(/<li data-event="group-run">.*g&lt;b&gt;&amp;&#39;x&#39;: group-run/)
    const csp = String(got.headers["content-security-policy"])
    expect(csp).toMatch(/^default-src 'none'; style-src 'sha256-[A-Za-z0-9+/=]+'; script-src 'sha256-[A-Za-z0-9+/=]+'; connect-src 'self'/)
    expect((await fetchText(`${page ?? ""}/`, { method: "POST" })).status).toBe(405)
    expect((await fetchText(`${page ?? ""}/metrics`)).status).toBe(404)
  })

  it("streams the groups when they change and each event as it happens (server-sent events)", async () => {
    const l = fresh()
    l.writeTab("web:w:2:respawn:sleep 300\nweb:m:maint,:respawn:sleep 300\n")
    const { page } = await startServed(l, ["--http", ":0"])
    const told = readEvents(`${page ?? ""}/events`, (events) =>
      events.some((e) => e.event === "state" && e.data.includes('<td class="state state-run">run</td><td>2</td>')) && events.some((e) => e.event === "notice" && e.data.includes('data-event="started"')),
    )
    const first = readEvents(`${page ?? ""}/events`, (events) => events.length > 0)
    expect((await first)[0]).toMatchObject({ event: "state" })
    expect((await first)[0]?.data).toContain('<tr data-group="web"><td>web</td><td class="state state-stopped">stopped</td>')
    await askJson(l.socket, { op: "tell", group: "web", level: "2", wait: true })
    const events = await told
    expect(events.filter((e) => e.event === "notice").map((e) => /data-event="([^"]+)"/.exec(e.data)?.[1])).toEqual(expect.arrayContaining(["group-start", "group-run", "started"]))
  })

  it("one server for --metrics and --http on one address", async () => {
    const port = await new Promise<number>((resolve) => {
      const probe = createServer().listen(0, "127.0.0.1", () => {
        const address = probe.address()
        probe.close(() => resolve(typeof address === "object" && address !== null ? address.port : 0))
      })
    })
    const l = fresh()
    l.writeTab("web:w:2:respawn:sleep 300\n")
    const { daemon, metrics, page } = await startServed(l, ["--metrics", `127.0.0.1:${port}`, "--http", `127.0.0.1:${port}`])
    expect(metrics).toBe(`http://127.0.0.1:${port}`)
    expect(page).toBe(metrics)
    expect(daemon.log().match(/ http serving /g)?.length).toBe(1)
    expect((await fetchText(`${page ?? ""}/`)).status).toBe(200)
    expect((await fetchText(`${page ?? ""}/metrics`)).body).toContain("# TYPE isinit_group_state gauge")
  })
})
