/**
 * StrictModes for the isinittab, as sshd does for its key files: a daemon running as root runs
 * every command of the isinittab as root, so a file (or a directory holding it) that another user
 * may write is an open door to root. isinitd refuses such a file when run as root, at startup and
 * on every re-read (each tell, plan, reload and SIGHUP). There is no flag to turn this off: the fix
 * is `chmod go-w` (and `chown root`) on the file and its directory.
 *
 * Checked: the file (after symlinks) is owned by root and not writable by group or others; its
 * directory is owned by root and not writable by group or others unless it is sticky (like /tmp,
 * where others cannot rename or remove a file they do not own).
 */
import { realpath, stat } from "node:fs/promises"
import { dirname } from "node:path"

const octal = (mode: number): string => `0${(mode & 0o7777).toString(8)}`

/** Why the isinittab must not be used by a root daemon, or `undefined` if it may (or we are not root). */
export const insecureConfigReason = async (path: string, uid: number | undefined = process.getuid?.()): Promise<string | undefined> => {
  if (uid !== 0) return undefined
  let real: string
  try {
    real = await realpath(path)
  } catch {
    return undefined // missing: reading it reports that
  }
  const file = await stat(real)
  const fix = `; fix it with: chown root ${real} && chmod go-w ${real}`
  if (file.uid !== 0) return `refusing the isinittab ${real}: owned by uid ${file.uid}, not root (isinitd runs its commands as root)${fix}`
  if ((file.mode & 0o022) !== 0) {
    return `refusing the isinittab ${real}: writable by ${(file.mode & 0o020) !== 0 ? "group" : ""}${(file.mode & 0o022) === 0o022 ? " and " : ""}${(file.mode & 0o002) !== 0 ? "others" : ""} (mode ${octal(file.mode)}), so anyone able to edit it would run commands as root${fix}`
  }
  const dir = dirname(real)
  const dirStat = await stat(dir)
  const dirFix = `; fix it with: chown root ${dir} && chmod go-w ${dir}`
  if (dirStat.uid !== 0) return `refusing the isinittab ${real}: its directory ${dir} is owned by uid ${dirStat.uid}, who could replace the file${dirFix}`
  if ((dirStat.mode & 0o022) !== 0 && (dirStat.mode & 0o1000) === 0) {
    return `refusing the isinittab ${real}: its directory ${dir} is writable by group or others (mode ${octal(dirStat.mode)}) and not sticky, so the file could be replaced${dirFix}`
  }
  return undefined
}
