/**
 * The status page in a real headless browser: Debian's chromium (`apt-get install chromium`;
 * `.ci/run` installs it through scripts/install-chromium.sh) driven by playwright-core, which
 * never downloads a browser. The page loads and shows the groups, its script runs under the
 * page's own content security policy and opens the live stream, the table follows a group that
 * changes level without a reload, and a group named like markup stays text.
 *
 * Where chromium is missing or cannot start, the tests skip with the reason, unless
 * ISINIT_REQUIRE_BROWSER is set (CI), which makes that a failure. `ISINIT_CHROMIUM` names
 * another binary.
 */
import { existsSync } from "node:fs"
import { delimiter, join } from "node:path"
import type { Browser } from "playwright-core"
import { chromium } from "playwright-core"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { askJson, labPerTest } from "../runtime/daemonHarness.ts"
import { startServed } from "../runtime/opsHarness.ts"

/** ISINIT_CHROMIUM, else `chromium` on PATH (where scripts/install-chromium.sh looks), else Debian's path. */
const executablePath =
  process.env["ISINIT_CHROMIUM"] ??
  (process.env["PATH"] ?? "").split(delimiter).filter((dir) => dir !== "").map((dir) => join(dir, "chromium")).find((path) => existsSync(path)) ??
  "/usr/bin/chromium"
const required = (): boolean => {
  const flag = process.env["ISINIT_REQUIRE_BROWSER"]
  return flag !== undefined && flag !== "" && flag !== "0"
}

/**
 * The flags this machine's chromium needs headless, as root, on a closed network (the machine
 * notes); --disable-dev-shm-usage because a CI container's /dev/shm is often 64 MB, too small.
 */
const chromiumArgs = ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"]

let browser: Browser | undefined
let unavailable: string | undefined

beforeAll(async () => {
  if (!existsSync(executablePath)) {
    unavailable = `no browser at ${executablePath} (install it with: sudo sh scripts/install-chromium.sh)`
    return
  }
  try {
    browser = await chromium.launch({ executablePath, headless: true, args: chromiumArgs, timeout: 60_000 })
  } catch (error) {
    unavailable = `${executablePath} could not be started: ${String(error).split("\n")[0] ?? ""}`
  }
}, 90_000)

afterAll(async () => {
  await browser?.close()
})

/** The browser, or a skip with the reason (a failure when ISINIT_REQUIRE_BROWSER is set). */
const need = (skip: (note?: string) => void): Browser => {
  if (browser !== undefined) return browser
  const reason = unavailable ?? "no browser"
  if (required()) throw new Error(`ISINIT_REQUIRE_BROWSER is set but ${reason}`)
  console.warn(`browser tests skipped: ${reason}; set ISINIT_REQUIRE_BROWSER=1 to make this an error`)
  skip(reason)
  throw new Error("unreachable")
}

const fresh = labPerTest()

describe("the status page in headless chromium", () => {
  it("loads, shows the groups, and follows a group that changes level (server-sent events)", async (context) => {
    const b = need((note) => context.skip(note))
    const l = fresh()
    const odd = `x<img src=q onerror="window.__hacked=1">`
    l.writeTab(`web:srv:2:respawn:sleep 300\nweb:maint:maint,:respawn:sleep 300\n${odd}:y:1:respawn:sleep 300\n`)
    const { page: url } = await startServed(l, ["--http", "127.0.0.1:0"])
    const page = await b.newPage()
    const problems: string[] = []
    page.on("console", (message) => {
      if (message.type() === "error") problems.push(message.text())
    })
    page.on("pageerror", (error) => problems.push(error.message))
    try {
      await page.goto(`${url ?? ""}/`)
      expect(await page.title()).toMatch(/^isinitd on /)
      const webRow = page.locator('table.groups tr[data-group="web"]')
      await expect.poll(() => webRow.locator("td").allTextContents()).toEqual(["web", "stopped", "-", "0"])
      // The script ran (its hash is the only one the policy allows) and the stream is open.
      await expect.poll(() => page.locator("#live").textContent(), { timeout: 20_000 }).toBe("live")
      await askJson(l.socket, { op: "tell", group: "web", level: "2", wait: true })
      await expect.poll(() => webRow.locator("td").allTextContents(), { timeout: 20_000 }).toEqual(["web", "run", "2", "1"])
      await expect.poll(() => page.locator('#events li[data-event="group-run"]').count(), { timeout: 20_000 }).toBeGreaterThan(0)
      await askJson(l.socket, { op: "tell", group: "web", level: "maint", wait: true })
      await expect.poll(() => webRow.locator("td").allTextContents(), { timeout: 20_000 }).toEqual(["web", "run", "maint", "2"])
      await expect.poll(() => page.locator('table.entries[data-group="web"] tr[data-tag="maint"] td.state').textContent(), { timeout: 20_000 }).toBe("running")
      // A group named like markup is shown as text, and its markup never ran.
      await askJson(l.socket, { op: "tell", group: odd, level: "1", wait: true })
      await expect.poll(() => page.locator("table.groups td").filter({ hasText: odd }).count(), { timeout: 20_000 }).toBe(1)
      expect(await page.evaluate("typeof window.__hacked")).toBe("undefined")
      expect(problems).toEqual([])
    } finally {
      await page.close()
    }
  }, 120_000)

  it("works without JavaScript: the server-rendered table", async (context) => {
    const b = need((note) => context.skip(note))
    const l = fresh()
    l.writeTab("web:srv:2:respawn:sleep 300\n")
    const { page: url } = await startServed(l, ["--http", ":0"])
    await askJson(l.socket, { op: "tell", group: "web", level: "2", wait: true })
    const noScript = await b.newContext({ javaScriptEnabled: false })
    try {
      const page = await noScript.newPage()
      await page.goto(`${url ?? ""}/`)
      expect(await page.locator('table.groups tr[data-group="web"] td').allTextContents()).toEqual(["web", "run", "2", "1"])
      expect(await page.locator("#live").textContent()).toBe("static page: reload for fresh data")
    } finally {
      await noScript.close()
    }
  }, 120_000)
})
