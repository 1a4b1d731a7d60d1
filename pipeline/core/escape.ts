/**
 * Names as they may be shown: on a terminal, in a log, in an error message. A file name is
 * attacker-controlled text: `\e[2K\e[1G` in it would erase the line that reports it, a
 * right-to-left override would reorder it, and bytes that are not UTF-8 would print as
 * replacement characters that hide which file is meant. Every such character becomes a
 * visible escape (`\x1b`, `\u{202e}`, `\xff` for a raw byte), and a backslash is doubled so
 * that an escape in the output always means an escaped character. Everything else, non-ASCII
 * letters included, is shown as it is.
 */

/** C0 controls, DEL, C1 controls, bidirectional controls, line and paragraph separators, BOM. */
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ufeff]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
const UNSAFE_GLOBAL = new RegExp(`${UNSAFE.source}|\\\\`, "g");

/**
 * A whole line of output (a message that may quote names): the unsafe characters escaped,
 * backslashes left alone (messages built with escapeForTerminal are not escaped twice). For
 * the last step before a terminal or a log; names themselves go through escapeForTerminal.
 */
export function terminalSafe(line: string): string {
  return UNSAFE.test(line) ? line.replace(new RegExp(UNSAFE.source, "g"), (c) => escapeCodeUnit(c.charCodeAt(0))) : line;
}

/** Does `name` hold a character that escapeForTerminal would escape (a backslash aside)? */
export function hasUnsafeCharacters(name: string | Uint8Array): boolean {
  return typeof name === "string" ? UNSAFE.test(name) : !isUtf8(name) || UNSAFE.test(Buffer.from(name).toString("utf8"));
}

/** `name` (text, or the raw bytes of a file name) with every unsafe character as a visible escape. */
export function escapeForTerminal(name: string | Uint8Array): string {
  if (typeof name !== "string") return escapeBytes(name);
  return name.replace(UNSAFE_GLOBAL, (c) => (c === "\\" ? "\\\\" : escapeCodeUnit(c.charCodeAt(0))));
}

function escapeCodeUnit(unit: number): string {
  return unit < 0x100 ? `\\x${unit.toString(16).padStart(2, "0")}` : `\\u{${unit.toString(16)}}`;
}

/** Raw bytes: valid UTF-8 sequences are decoded (then escaped as text), every other byte becomes `\xNN`. */
function escapeBytes(bytes: Uint8Array): string {
  let out = "";
  let start = 0;
  for (let i = 0; i < bytes.length; ) {
    const length = utf8SequenceLength(bytes, i);
    if (length > 0) {
      i += length;
      continue;
    }
    out += escapeForTerminal(Buffer.from(bytes.subarray(start, i)).toString("utf8")) + `\\x${bytes[i]!.toString(16).padStart(2, "0")}`;
    start = ++i;
  }
  return out + escapeForTerminal(Buffer.from(bytes.subarray(start)).toString("utf8"));
}

function isUtf8(bytes: Uint8Array): boolean {
  for (let i = 0; i < bytes.length; ) {
    const length = utf8SequenceLength(bytes, i);
    if (length === 0) return false;
    i += length;
  }
  return true;
}

/** The length of the well-formed UTF-8 sequence at `i` (RFC 3629: no overlongs, surrogates or > U+10FFFF), else 0. */
function utf8SequenceLength(bytes: Uint8Array, i: number): number {
  const b0 = bytes[i]!;
  if (b0 < 0x80) return 1;
  const cont = (k: number, low = 0x80, high = 0xbf) => i + k < bytes.length && bytes[i + k]! >= low && bytes[i + k]! <= high;
  if (b0 >= 0xc2 && b0 <= 0xdf) return cont(1) ? 2 : 0;
  if (b0 === 0xe0) return cont(1, 0xa0) && cont(2) ? 3 : 0;
  if ((b0 >= 0xe1 && b0 <= 0xec) || b0 === 0xee || b0 === 0xef) return cont(1) && cont(2) ? 3 : 0;
  if (b0 === 0xed) return cont(1, 0x80, 0x9f) && cont(2) ? 3 : 0;
  if (b0 === 0xf0) return cont(1, 0x90) && cont(2) && cont(3) ? 4 : 0;
  if (b0 >= 0xf1 && b0 <= 0xf3) return cont(1) && cont(2) && cont(3) ? 4 : 0;
  if (b0 === 0xf4) return cont(1, 0x80, 0x8f) && cont(2) && cont(3) ? 4 : 0;
  return 0;
}
