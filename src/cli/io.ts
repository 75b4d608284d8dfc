/** Where a command's output goes; tests pass their own. Shared by `isinit` and `isinit --etcd`. */
export interface Io {
  readonly out: (text: string) => void
  readonly err: (text: string) => void
  readonly env: NodeJS.ProcessEnv
}

/** Why a file could not be read, in a few words. */
export const readError = (error: unknown): string => {
  const code = typeof error === "object" && error !== null && "code" in error ? String(error.code) : undefined
  return code === "ENOENT" ? "no such file" : code === "EACCES" ? "permission denied" : error instanceof Error ? error.message : String(error)
}
