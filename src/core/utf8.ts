/**
 * String widths as bytes, for the status file (Perl pads byte strings) and for the kernel's limits
 * on arguments. A leaf: the isinittab parser needs it without the state it would otherwise bring.
 */

/** Bytes in UTF-8: Perl's printf pads byte strings, so the width counts bytes, not characters. */
export const utf8Length = (s: string): number => {
  let bytes = 0
  for (let i = 0; i < s.length; i++) {
    const unit = s.charCodeAt(i)
    if (unit < 0x80) bytes += 1
    else if (unit < 0x800) bytes += 2
    else if (unit >= 0xd800 && unit <= 0xdbff && i + 1 < s.length) {
      const next = s.charCodeAt(i + 1)
      if (next >= 0xdc00 && next <= 0xdfff) {
        bytes += 4
        i++
      } else bytes += 3
    } else bytes += 3
  }
  return bytes
}
