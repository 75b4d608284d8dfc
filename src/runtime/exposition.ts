/**
 * The Prometheus text exposition format (version 0.0.4), written by hand: a family is its HELP
 * and TYPE lines, then one line per sample, `name{label="value",...} number`.
 *
 * Escaping, as the format defines it: in HELP text a backslash and a line feed (`\\`, `\n`); in a
 * label value those and the double quote (`\"`). Numbers are Go's float syntax: `NaN`, `+Inf`,
 * `-Inf`, or a decimal.
 *
 * Why not prom-client: it costs isinitd tens of milliseconds at load and megabytes of RSS before
 * it holds a single series, keeps every series it was ever given in memory, and its default
 * metrics keep a 10 ms timer running, which would end "an idle daemon does no work" (measured in
 * docs/bench.md, "Metrics and the status page"). isinitd's metrics are read from its state at
 * scrape time (a collector, not counters updated on every event), which needs nothing of
 * prom-client but this writer.
 */

export type MetricType = "gauge" | "counter"

export type Labels = Readonly<Record<string, string>>

export interface Sample {
  readonly labels?: Labels
  readonly value: number
}

export interface MetricFamily {
  readonly name: string
  readonly help: string
  readonly type: MetricType
  readonly samples: readonly Sample[]
}

const escapeHelp = (text: string): string => text.replace(/\\/g, "\\\\").replace(/\n/g, "\\n")

export const escapeLabelValue = (text: string): string => text.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"')

const formatValue = (value: number): string => {
  if (Number.isNaN(value)) return "NaN"
  if (value === Number.POSITIVE_INFINITY) return "+Inf"
  if (value === Number.NEGATIVE_INFINITY) return "-Inf"
  return String(value)
}

const labelText = (labels: Labels | undefined): string => {
  if (labels === undefined) return ""
  const pairs = Object.entries(labels).map(([name, value]) => `${name}="${escapeLabelValue(value)}"`)
  return pairs.length === 0 ? "" : `{${pairs.join(",")}}`
}

/** The text of the families, in order; the body of a `/metrics` answer. */
export const exposition = (families: readonly MetricFamily[]): string => {
  const lines: string[] = []
  for (const family of families) {
    lines.push(`# HELP ${family.name} ${escapeHelp(family.help)}`, `# TYPE ${family.name} ${family.type}`)
    for (const sample of family.samples) lines.push(`${family.name}${labelText(sample.labels)} ${formatValue(sample.value)}`)
  }
  return `${lines.join("\n")}\n`
}

/** The content type Prometheus asks for and expects back. */
export const expositionContentType = "text/plain; version=0.0.4; charset=utf-8"
