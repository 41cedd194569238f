/** Test data: reproducible random bytes, hashes, errno assertions. */
import { expect } from "bun:test";
import { open } from "node:fs/promises";

/** Deterministic pseudo-random bytes (xorshift128), so a failure can be reproduced from its seed. */
export function randomBytes(size: number, seed = 1): Uint8Array {
  const words = new Uint32Array(Math.ceil(size / 4));
  let a = seed >>> 0 || 1,
    b = 0x9e3779b9,
    c = 0x85ebca6b,
    d = 0xc2b2ae35;
  for (let i = 0; i < words.length; i++) {
    let t = a ^ (a << 11);
    a = b;
    b = c;
    c = d;
    d = (d ^ (d >>> 19) ^ t ^ (t >>> 8)) >>> 0;
    words[i] = d;
  }
  return new Uint8Array(words.buffer, 0, size);
}

export function sha256(data: Uint8Array): string {
  return new Bun.CryptoHasher("sha256").update(data).digest("hex");
}

/** sha256 of a file, read in chunks of `chunk` bytes through node:fs/promises. */
export async function sha256File(path: string, chunk = 1 << 20): Promise<{ hash: string; size: number }> {
  const h = new Bun.CryptoHasher("sha256");
  const fh = await open(path, "r");
  const buf = new Uint8Array(chunk);
  let size = 0;
  try {
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, chunk, size);
      if (bytesRead === 0) break;
      h.update(buf.subarray(0, bytesRead));
      size += bytesRead;
    }
  } finally {
    await fh.close();
  }
  return { hash: h.digest("hex"), size };
}

/** Asserts that `p` rejects with a Node-style error whose code is `code` ("ENOENT", ...). */
export async function expectErrno(p: Promise<unknown>, code: string): Promise<void> {
  let err: unknown;
  try {
    await p;
  } catch (e) {
    err = e;
  }
  expect(err, `expected ${code}, but the call succeeded`).toBeDefined();
  expect((err as { code?: string }).code).toBe(code);
}
