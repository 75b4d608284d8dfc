import { describe, expect, it } from "vitest"
import { parseInittab } from "../../src/core/inittab.ts"
import { defaultLogKeep, defaultLogMax, logDirOf, logFilesOf, logPlaceOf, rotatedPaths, showLogPlace } from "../../src/core/logs.ts"

const dir = "/var/run/is/log"

describe("where an entry logs (pure)", () => {
  it("defaults to log/TAG.log beside the status file, rotated past 10M, 5 kept", () => {
    expect(logDirOf("/var/run/is/initstat")).toBe(dir)
    expect(logDirOf("/initstat")).toBe("/log")
    expect(logPlaceOf("web", {}, dir)).toEqual({ _tag: "File", from: "default", path: `${dir}/web.log`, max: defaultLogMax, keep: defaultLogKeep })
    expect(defaultLogMax).toBe(10 * 1024 * 1024)
    expect(defaultLogKeep).toBe(5)
  })

  it("never lets a tag name another directory", () => {
    expect(showLogPlace(logPlaceOf("../etc/x", {}, dir))).toBe(`${dir}/..%2Fetc%2Fx.log`)
    expect(showLogPlace(logPlaceOf("..", {}, dir))).toBe(`${dir}/...log`)
  })

  it("takes log=, log-max= and log-keep= from the options: absolute, relative to the log directory, a directory (DIR/), off, inherit", () => {
    const parsed = parseInittab(
      [
        "g:a:1:respawn:x",
        "g:b:1:respawn:x",
        "g:c:1:respawn:x",
        "g:d:1:respawn:x",
        "g:e:1:respawn:x",
        ":::option:a:log=/srv/a.out",
        ":::option:a:log-max=4K",
        ":::option:a:log-keep=2",
        ":::option:b:log=sub/b.out",
        ":::option:c:log=off",
        ":::option:d:log=inherit",
        ":::option:e:log=/var/log/isinit/",
        "",
      ].join("\n"),
    )
    const place = (tag: string) => logPlaceOf(tag, parsed.config.byTag.get(tag)?.options ?? {}, dir)
    expect(place("a")).toEqual({ _tag: "File", from: "option", path: "/srv/a.out", max: 4096, keep: 2 })
    expect(showLogPlace(place("b"))).toBe(`${dir}/sub/b.out`)
    expect(place("c")).toEqual({ _tag: "Off" })
    expect(place("d")).toEqual({ _tag: "Inherit" })
    expect(showLogPlace(place("e"))).toBe("/var/log/isinit/e.log")
  })

  it("lists every file the config's entries log to once (the rotation's work), skipping off entries and non-files", () => {
    const parsed = parseInittab(
      ["g:a:1:respawn:x", "g:b:1:respawn:x", "g:c:1:off:x", "g:d:1:once:x", ":::option:b:log=/shared.log", ":::option:d:log=/shared.log", ":::option:a:log=off", ""].join("\n"),
    )
    expect(logFilesOf(parsed.config, dir)).toEqual([{ path: "/shared.log", max: defaultLogMax, keep: defaultLogKeep }])
    expect(rotatedPaths("/x.log", 2)).toEqual(["/x.log.1", "/x.log.2"])
    expect(rotatedPaths("/x.log", 0)).toEqual([])
  })
})
