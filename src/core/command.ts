/**
 * How an entry's command is executed, as Perl's `exec STRING` decides it: a command with shell
 * metacharacters is run by `/bin/sh -c` (the whole command is then one argument), any other is
 * split into words and executed directly. Pure, so the runtime and `isinit check` agree.
 */

/** Perl's exec hands a command to the shell when it contains one of these (see perl's doio.c). */
const shellMetacharacters = /[;&|<>()$`\\"'*?[\]{}#~=%\n]/

export type Argv = { readonly _tag: "Direct"; readonly file: string; readonly args: readonly string[] } | { readonly _tag: "Shell"; readonly script: string }

/** How a command is executed, as Perl's `exec STRING` decides it. */
export const argvOf = (command: string): Argv => {
  const words = command.trim().split(/\s+/).filter((w) => w !== "")
  const [file, ...args] = words
  if (shellMetacharacters.test(command) || file === undefined || file === "exec" || file === ".") {
    return { _tag: "Shell", script: command }
  }
  return { _tag: "Direct", file, args }
}

/** The arguments execve receives for the command after the program: `-c SCRIPT`, or the words. */
export const execArguments = (argv: Argv): readonly string[] => (argv._tag === "Shell" ? ["/bin/sh", "-c", argv.script] : [argv.file, ...argv.args])
