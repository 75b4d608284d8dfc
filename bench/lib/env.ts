/** A benchmark's knob from the environment: a whole number of at least 1, else its default; a bad value is an error that names it. */
export const envInt = (name: string, fallback: number): number => {
  const v = process.env[name]
  if (v === undefined || v === "") return fallback
  const n = Number(v)
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a whole number of at least 1, not ${JSON.stringify(v)}`)
  return n
}

/** A knob that may be 0 or a fraction (a grace in seconds): a finite number of at least 0, else its default. */
export const envNumber = (name: string, fallback: number): number => {
  const v = process.env[name]
  if (v === undefined || v === "") return fallback
  const n = Number(v)
  if (!Number.isFinite(n) || n < 0) throw new Error(`${name} must be a non-negative number, not ${JSON.stringify(v)}`)
  return n
}
