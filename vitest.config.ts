import { defineConfig } from "vitest/config"

/** Cluster test files that run a second time over TLS (ISINIT_TEST_ETCD_TLS, see etcd-harness.ts). */
const overTls = ["client", "store", "daemons", "outage", "presence", "election"].map((name) => `test/cluster/${name}.test.ts`)

export default defineConfig({
  test: {
    // Real-process tests wait with generous bounds on a slow 2-core machine.
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // The JSON report lets .ci/run print a plain "N passed, N failed" closing line.
    reporters: ["default", ["json", { outputFile: ".tmp/vitest-report.json" }]],
    projects: [
      { extends: true, test: { name: "all", include: ["test/**/*.test.ts", "properties/**/*.test.ts"] } },
      // The cluster suite once more with every etcd member on TLS and client certificates: what
      // works over plain http must work over TLS. members.test.ts is left out: quorum and leader
      // changes do not depend on the transport, and it is the slowest file (about 55 s).
      { extends: true, test: { name: "cluster-tls", include: overTls, env: { ISINIT_TEST_ETCD_TLS: "1" } } },
    ],
  },
})
