/** A benchmark's knob from the environment: a whole number of at least 1, else its default; a bad value is an error that names it. */
export const envInt = (name: string, fallback: number): number => {
  const v = process.env[name]
  if (v === undefined || v === "") return fallback
  const n = Number(v)
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a whole number of at least 1, not ${JSON.stringify(v)}`)
  return n
}
