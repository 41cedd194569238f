/**
 * File names are bytes. Linux names may hold any byte but NUL and '/', UTF-8 or not; furing hands
 * them to plugins as *lossless strings* (Python's `surrogateescape`):
 *
 * - bytes that are valid UTF-8 decode to ordinary characters, so "notes.txt" and "café" are the
 *   strings you would expect and string handling in a plugin stays plain JS;
 * - each byte that is not part of a valid UTF-8 sequence becomes one lone surrogate,
 *   U+DC80 + (byte - 0x80): Latin-1 `caf\xe9` is the string "caf\uDCE9".
 *
 * Encoding maps those surrogates back to their bytes, so bytes → string → bytes is the identity:
 * two names that differ in any byte are two different strings (`a\xe9` and `a\xe8` never merge),
 * and a name the kernel sent comes back to it byte for byte. Every name, symlink target and xattr
 * name in the plugin API, and every path `furing/sys` takes or returns, follows this rule.
 *
 * A string is a *name string* when encoding it is exact: it has no unpaired surrogate other than
 * an escaped byte (U+DC80..U+DCFF), and its escaped bytes do not themselves spell valid UTF-8
 * ("\uDCC3\uDCA9" would encode to C3 A9, which is "é": it is refused rather than silently naming
 * another file). Every string furing produces is one; the encoders refuse the others.
 */

const utf8Slice = (Buffer.prototype as unknown as { utf8Slice(this: Uint8Array, start: number, end: number): string }).utf8Slice;
const utf8Write = (Buffer.prototype as unknown as { utf8Write(this: Uint8Array, s: string, off: number, len: number): number }).utf8Write;

/** Length of the valid UTF-8 sequence starting at `i` (1..4), or 0 when b[i] starts none. */
function seqLen(b: Uint8Array, i: number, end: number): number {
  const c = b[i]!;
  if (c < 0x80) return 1;
  // Unicode table 3-7 (well-formed byte sequences): no overlongs, no encoded surrogates, ≤ U+10FFFF
  let n: number, lo = 0x80, hi = 0xbf;
  if (c >= 0xc2 && c <= 0xdf) n = 2;
  else if (c >= 0xe0 && c <= 0xef) {
    n = 3;
    if (c === 0xe0) lo = 0xa0;
    else if (c === 0xed) hi = 0x9f;
  } else if (c >= 0xf0 && c <= 0xf4) {
    n = 4;
    if (c === 0xf0) lo = 0x90;
    else if (c === 0xf4) hi = 0x8f;
  } else return 0;
  if (i + n > end) return 0;
  const c1 = b[i + 1]!;
  if (c1 < lo || c1 > hi) return 0;
  for (let k = 2; k < n; k++) {
    const ck = b[i + k]!;
    if (ck < 0x80 || ck > 0xbf) return 0;
  }
  return n;
}

/** The slow path: some bytes are not valid UTF-8 (or a real U+FFFD is there). */
function decodeEscaped(b: Uint8Array, start: number, end: number): string {
  let out = "";
  let run = start; // start of the current run of valid UTF-8
  for (let i = start; i < end; ) {
    const n = seqLen(b, i, end);
    if (n > 0) {
      i += n;
      continue;
    }
    if (run < i) out += utf8Slice.call(b, run, i);
    out += String.fromCharCode(0xdc00 + b[i]!);
    run = ++i;
  }
  return run < end ? out + utf8Slice.call(b, run, end) : out;
}

/**
 * The name string of bytes `b[start, end)` (see the module comment). Allocates only the string:
 * valid UTF-8 (ASCII included) is one native decode; the decoder's U+FFFD tells when a byte was
 * not valid, and only then is the name re-read byte by byte.
 */
export function nameFromBytes(b: Uint8Array, start = 0, end = b.length): string {
  const s = utf8Slice.call(b, start, end);
  return s.indexOf("\uFFFD") < 0 ? s : decodeEscaped(b, start, end);
}

// Scratch for encoding strings that hold escapes (rare), grown as needed.
let scratch = new Uint8Array(1024);

/** Bytes of a string that is not well-formed UTF-16 (a view of `scratch`), or null if not a name string. */
function escapedBytes(s: string): Uint8Array | null {
  if (scratch.length < s.length * 3) scratch = new Uint8Array(s.length * 3);
  const b = scratch;
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    let c = s.charCodeAt(i);
    if (c < 0x80) b[n++] = c;
    else if (c < 0x800) {
      b[n++] = 0xc0 | (c >> 6);
      b[n++] = 0x80 | (c & 0x3f);
    } else if (c >= 0xd800 && c <= 0xdfff) {
      const d = s.charCodeAt(i + 1);
      if (c <= 0xdbff && d >= 0xdc00 && d <= 0xdfff) {
        c = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
        i++;
        b[n++] = 0xf0 | (c >> 18);
        b[n++] = 0x80 | ((c >> 12) & 0x3f);
        b[n++] = 0x80 | ((c >> 6) & 0x3f);
        b[n++] = 0x80 | (c & 0x3f);
      } else if (c >= 0xdc80 && c <= 0xdcff) b[n++] = c - 0xdc00;
      else return null;
    } else {
      b[n++] = 0xe0 | (c >> 12);
      b[n++] = 0x80 | ((c >> 6) & 0x3f);
      b[n++] = 0x80 | (c & 0x3f);
    }
  }
  // escaped bytes that spell valid UTF-8 would name another file: not a name string
  return decodeEscaped(b, 0, n) === s ? b.subarray(0, n) : null;
}

/**
 * Bytes of name string `s` as the kernel sees it, or -1 when `s` is not a name string (an
 * unpaired surrogate that is not an escaped byte, or escapes that spell valid UTF-8).
 */
export function nameByteLength(s: string): number {
  if (s.isWellFormed()) return Buffer.byteLength(s, "utf8");
  const e = escapedBytes(s);
  return e === null ? -1 : e.length;
}

/**
 * Write name string `s` as its exact bytes at `buf[off]`, at most `max` of them; returns the
 * number written (check the room with {@link nameByteLength} first: a longer name is cut), or -1
 * when `s` is not a name string.
 */
export function writeName(s: string, buf: Uint8Array, off: number, max = buf.length - off): number {
  if (s.isWellFormed()) return utf8Write.call(buf, s, off, max);
  const e = escapedBytes(s);
  if (e === null) return -1;
  const n = Math.min(e.length, max);
  buf.set(n === e.length ? e : e.subarray(0, n), off);
  return n;
}

/** A string that is not a name string, in an error message: what is wrong with it. */
function notAName(s: string): string {
  return `${JSON.stringify(s)} is not a file name string: it holds an unpaired surrogate that is not an escaped byte (U+DC80..U+DCFF), or escaped bytes that spell valid UTF-8`;
}

/** The exact bytes of name string `s` (a new Buffer); throws a TypeError for anything else. */
export function nameToBytes(s: string): Buffer {
  if (s.isWellFormed()) return Buffer.from(s, "utf8");
  const e = escapedBytes(s);
  if (e === null) throw new TypeError(notAName(s));
  return Buffer.from(e);
}

/** Whether `s` is a name string (encodes to bytes exactly, see the module comment). */
export function isNameString(s: string): boolean {
  return s.isWellFormed() || escapedBytes(s) !== null;
}

/** The message for a string that is not a name string (for errors that name the cause). */
export { notAName as nameStringError };
