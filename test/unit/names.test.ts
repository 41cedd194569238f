/**
 * The name codec (runtime/api/names.ts): bytes ↔ lossless strings, every byte that is not part of
 * valid UTF-8 escaped as U+DC80 + (byte - 0x80). Checked against a reference decoder built on the
 * platform's strict TextDecoder (one sequence at a time), so the codec's own UTF-8 table is not
 * what decides the expected results.
 */
import { describe, expect, test } from "bun:test";
import { nameFromBytes, nameToBytes, nameByteLength, writeName, isNameString } from "../../runtime/api/names.ts";
import * as sys from "../../runtime/api/sys.ts";
import { Rng } from "../differential/rng.ts";

const strict = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const esc = (b: number) => String.fromCharCode(0xdc00 + b);

/** Reference: at each byte, the shortest slice (1..4 bytes) the strict decoder accepts as one code point, else escape the byte. */
function reference(b: Uint8Array): string {
  let out = "";
  for (let i = 0; i < b.length; ) {
    let done = false;
    for (let n = 1; n <= 4 && i + n <= b.length; n++) {
      let s: string;
      try {
        s = strict.decode(b.subarray(i, i + n));
      } catch {
        continue;
      }
      if ([...s].length === 1) {
        out += s;
        i += n;
        done = true;
        break;
      }
    }
    if (!done) out += esc(b[i++]!);
  }
  return out;
}

const B = (...xs: number[]) => new Uint8Array(xs);
const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

function roundTrip(b: Uint8Array): string {
  const s = nameFromBytes(b);
  expect(hex(nameToBytes(s))).toBe(hex(b));
  expect(nameByteLength(s)).toBe(b.length);
  expect(isNameString(s)).toBe(true);
  return s;
}

describe("nameFromBytes / nameToBytes", () => {
  test("every single byte round-trips; bytes ≥ 0x80 alone are escaped", () => {
    for (let b = 0; b < 256; b++) {
      const s = roundTrip(B(b));
      expect(s).toBe(b < 0x80 ? String.fromCharCode(b) : esc(b));
    }
  });

  test("every pair of bytes round-trips and decodes as the reference does", () => {
    for (let a = 0; a < 256; a++)
      for (let b = 0; b < 256; b++) {
        const bytes = B(a, b);
        expect(roundTrip(bytes)).toBe(reference(bytes));
      }
  }, 60_000); // loops over ~10^5 byte strings: seconds on a loaded machine

  test("three-byte prefixes of every lead byte round-trip as the reference decodes them", () => {
    const tails = [0x00, 0x41, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc2, 0xe0, 0xff];
    for (let a = 0xc0; a < 256; a++)
      for (let b = 0; b < 256; b++)
        for (const c of tails) {
          const bytes = B(a, b, c);
          expect(roundTrip(bytes)).toBe(reference(bytes));
        }
  }, 60_000); // loops over ~10^5 byte strings: seconds on a loaded machine

  test("random byte strings (seeded) round-trip and match the reference", () => {
    const rng = new Rng(1313);
    for (let k = 0; k < 20000; k++) {
      const n = rng.int(24) + 1;
      const bytes = new Uint8Array(n);
      // mostly high bytes and continuation bytes, so valid and invalid sequences both occur
      for (let i = 0; i < n; i++) bytes[i] = rng.chance(0.25) ? rng.int(128) : 0x80 + rng.int(128);
      expect(roundTrip(bytes)).toBe(reference(bytes));
    }
  }, 60_000); // loops over ~10^5 byte strings: seconds on a loaded machine

  test("valid UTF-8 decodes to the ordinary string (ASCII, 2-, 3- and 4-byte sequences, a real U+FFFD)", () => {
    for (const s of ["notes.txt", "café", "日本語", "😀", "a😀b", "\uFFFD", "x\uFFFDy", "\u0080\u07ff\u0800\uffff", "\u{10000}\u{10ffff}"]) {
      const bytes = new Uint8Array(Buffer.from(s, "utf8"));
      expect(roundTrip(bytes)).toBe(s);
    }
    expect(roundTrip(B(0xf0, 0x9f, 0x98, 0x80))).toBe("\u{1f600}");
    expect(roundTrip(B(0xf4, 0x8f, 0xbf, 0xbf))).toBe("\u{10ffff}");
  });

  test("Latin-1 names: caf\\xe9, new\\xff.bin", () => {
    expect(roundTrip(B(0x63, 0x61, 0x66, 0xe9, 0x2e, 0x74, 0x78, 0x74))).toBe("caf\udce9.txt");
    expect(hex(nameToBytes("new\udcff.bin"))).toBe("6e6577ff2e62696e");
  });

  test("names differing only in an invalid byte stay different", () => {
    expect(nameFromBytes(B(0x61, 0xe9))).not.toBe(nameFromBytes(B(0x61, 0xe8)));
    expect(nameFromBytes(B(0x61, 0xe9))).toBe("a\udce9");
    expect(nameFromBytes(B(0x61, 0xe8))).toBe("a\udce8");
  });

  test("overlong encodings are escaped byte by byte", () => {
    expect(roundTrip(B(0xc0, 0x80))).toBe(esc(0xc0) + esc(0x80));
    expect(roundTrip(B(0xc1, 0xbf))).toBe(esc(0xc1) + esc(0xbf));
    expect(roundTrip(B(0xe0, 0x80, 0x80))).toBe(esc(0xe0) + esc(0x80) + esc(0x80));
    expect(roundTrip(B(0xe0, 0x9f, 0xbf))).toBe(esc(0xe0) + esc(0x9f) + esc(0xbf));
    expect(roundTrip(B(0xf0, 0x80, 0x80, 0x80))).toBe(esc(0xf0) + esc(0x80) + esc(0x80) + esc(0x80));
    expect(roundTrip(B(0xf0, 0x8f, 0xbf, 0xbf))).toBe(esc(0xf0) + esc(0x8f) + esc(0xbf) + esc(0xbf));
  });

  test("encoded surrogates (ED A0 80 ...) round-trip as bytes, never as a surrogate", () => {
    expect(roundTrip(B(0xed, 0xa0, 0x80))).toBe(esc(0xed) + esc(0xa0) + esc(0x80));
    expect(roundTrip(B(0xed, 0xbf, 0xbf))).toBe(esc(0xed) + esc(0xbf) + esc(0xbf));
    // CESU-8 pair for U+1F600
    expect(roundTrip(B(0xed, 0xa0, 0xbd, 0xed, 0xb8, 0x80))).toBe([0xed, 0xa0, 0xbd, 0xed, 0xb8, 0x80].map(esc).join(""));
    // the highest non-surrogate 3-byte sequence under ED is fine
    expect(roundTrip(B(0xed, 0x9f, 0xbf))).toBe("\ud7ff");
  });

  test("beyond U+10FFFF and bytes that never start a sequence (F5..FF) are escaped", () => {
    expect(roundTrip(B(0xf4, 0x90, 0x80, 0x80))).toBe([0xf4, 0x90, 0x80, 0x80].map(esc).join(""));
    for (const b of [0xf5, 0xf8, 0xfc, 0xfe, 0xff]) expect(roundTrip(B(b, 0x80, 0x80, 0x80))).toBe([b, 0x80, 0x80, 0x80].map(esc).join(""));
  });

  test("sequences truncated at the end, or cut by another byte", () => {
    expect(roundTrip(B(0x61, 0xe2, 0x82))).toBe("a" + esc(0xe2) + esc(0x82));
    expect(roundTrip(B(0x61, 0xf0, 0x9f, 0x98))).toBe("a" + esc(0xf0) + esc(0x9f) + esc(0x98));
    expect(roundTrip(B(0x61, 0xc3))).toBe("a" + esc(0xc3));
    expect(roundTrip(B(0xe2, 0x41, 0x42))).toBe(esc(0xe2) + "AB");
    expect(roundTrip(B(0xe2, 0x82, 0xe2, 0x82, 0xac))).toBe(esc(0xe2) + esc(0x82) + "€");
    expect(roundTrip(B(0x80, 0x61, 0xbf))).toBe(esc(0x80) + "a" + esc(0xbf));
  });

  test("a sub-range of a larger buffer decodes only that range", () => {
    const buf = Buffer.from([0x2f, 0x63, 0x61, 0x66, 0xe9, 0x00, 0xff]);
    expect(nameFromBytes(buf, 1, 5)).toBe("caf\udce9");
    expect(nameFromBytes(buf, 1, 4)).toBe("caf");
    expect(nameFromBytes(buf, 4, 4)).toBe("");
  });

  test("writeName writes the exact bytes at an offset", () => {
    const out = new Uint8Array(16).fill(0xaa);
    expect(writeName("x\udce9😀", out, 3)).toBe(6);
    expect(hex(out.subarray(0, 10))).toBe("aaaaaa78e9f09f9880aa");
    expect(writeName("plain", out, 0, 5)).toBe(5);
    expect(Buffer.from(out.subarray(0, 5)).toString()).toBe("plain");
  });
});

describe("strings that are not name strings are refused, never changed", () => {
  const bad = [
    "\ud800", // a lone high surrogate
    "a\udbffb", // ... in the middle
    "\udc00", // a low surrogate below the escapes
    "x\udc7f", // the one just below U+DC80
    "\udd00", // above the escapes
    "\udcc3\udca9", // escapes that spell "é": would name another file
    "\udce2\udc82\udcac", // "€"
    "a\udcf0\udc9f\udc98\udc80", // "😀"
  ];
  for (const s of bad)
    test(JSON.stringify(s), () => {
      expect(isNameString(s)).toBe(false);
      expect(nameByteLength(s)).toBe(-1);
      expect(writeName(s, new Uint8Array(32), 0)).toBe(-1);
      expect(() => nameToBytes(s)).toThrow(/is not a file name string/);
      // furing/sys refuses them with EINVAL instead of creating a different name
      expect(() => sys.fstatat(sys.AT_FDCWD, `/tmp/${s}`, 0)).toThrow(/not a file name string/);
    });

  test("escapes next to valid text stay escapes (canonical): a\\udce9 + é", () => {
    const s = "a\udce9é";
    expect(hex(nameToBytes(s))).toBe("61e9c3a9");
    expect(nameFromBytes(nameToBytes(s))).toBe(s);
  });
});
