// A tar reader: ustar, GNU long names (L/K) and pax headers (path, linkpath, size, mtime),
// gzip-compressed or not. File data stays in the archive's buffer (subarray views, no copies).
import { S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFREG } from "furing";

export interface TarNode {
  mode: number;
  uid: number;
  gid: number;
  /** Modification time in nanoseconds. */
  mtime: bigint;
  nlink: number;
  rdev: number;
  data: Uint8Array;
  target: string;
  children: Map<string, TarNode>;
}

const dec = new TextDecoder();
const str = (b: Uint8Array, off: number, len: number) => {
  const f = b.subarray(off, off + len);
  const z = f.indexOf(0);
  return dec.decode(z < 0 ? f : f.subarray(0, z));
};
/** Octal, or GNU base-256 when the high bit of the first byte is set. */
const num = (b: Uint8Array, off: number, len: number) => {
  if (b[off]! & 0x80) {
    let v = b[off]! & 0x7f;
    for (let i = 1; i < len; i++) v = v * 256 + b[off + i]!;
    return v;
  }
  const s = str(b, off, len).trim();
  return s ? parseInt(s, 8) : 0;
};
const TYPES: Record<string, number> = { "0": S_IFREG, "\0": S_IFREG, "7": S_IFREG, "2": S_IFLNK, "3": S_IFCHR, "4": S_IFBLK, "5": S_IFDIR, "6": S_IFIFO };

function dir(mtime: bigint, uid: number, gid: number): TarNode {
  return { mode: S_IFDIR | 0o755, uid, gid, mtime, nlink: 2, rdev: 0, data: new Uint8Array(0), target: "", children: new Map() };
}

/** Parses `archive` into a tree; `name` is for error messages. */
export function parseTar(archive: Uint8Array<ArrayBuffer>, name: string): TarNode {
  const b = archive[0] === 0x1f && archive[1] === 0x8b ? Bun.gunzipSync(archive) : archive;
  const uid = process.getuid?.() ?? 0, gid = process.getgid?.() ?? 0;
  const root = dir(BigInt(Date.now()) * 1_000_000n, uid, gid);
  const walk = (path: string, create: boolean): [TarNode, string] => {
    const parts = path.split("/").filter((p) => p && p !== ".");
    let at = root;
    for (const p of parts.slice(0, -1)) {
      let next = at.children.get(p);
      if (!next) {
        if (!create) throw new Error(`${name}: hard link to a missing file: ${path}`);
        next = dir(root.mtime, uid, gid);
        at.children.set(p, next);
        at.nlink++;
      }
      at = next;
    }
    return [at, parts.at(-1) ?? ""];
  };
  let pax: Record<string, string> = {};
  let longName: string | undefined, longLink: string | undefined;
  for (let off = 0; off + 512 <= b.length; ) {
    const h = b.subarray(off, off + 512);
    if (h.every((v) => v === 0)) break; // end of archive
    const sum = num(h, 148, 8);
    let s = 256; // the checksum field counts as spaces
    for (let i = 0; i < 512; i++) if (i < 148 || i >= 156) s += h[i]!;
    if (s !== sum) throw new Error(`${name}: not a tar archive (bad header checksum at byte ${off})`);
    const type = String.fromCharCode(h[156]!);
    const size = pax.size !== undefined ? Number(pax.size) : num(h, 124, 12);
    const body = b.subarray(off + 512, off + 512 + size);
    off += 512 + Math.ceil(size / 512) * 512;
    if (type === "x" || type === "g") {
      if (type === "x") for (const m of dec.decode(body).matchAll(/\d+ ([^=]+)=([^\n]*)\n/g)) pax[m[1]!] = m[2]!;
      continue;
    }
    if (type === "L" || type === "K") {
      if (type === "L") longName = str(body, 0, body.length);
      else longLink = str(body, 0, body.length);
      continue;
    }
    const prefix = h[257] === 0x75 ? str(h, 345, 155) : ""; // "ustar"
    const path = pax.path ?? longName ?? (prefix ? `${prefix}/${str(h, 0, 100)}` : str(h, 0, 100));
    const link = pax.linkpath ?? longLink ?? str(h, 157, 100);
    const mtime = pax.mtime !== undefined ? BigInt(Math.round(Number(pax.mtime) * 1000)) * 1_000_000n : BigInt(num(h, 136, 12)) * 1_000_000_000n;
    const [parent, base] = walk(path, true);
    pax = {};
    longName = longLink = undefined;
    if (base === "") continue; // "./" itself
    if (type === "1") {
      const [lp, lb] = walk(link, false);
      const target = lp.children.get(lb) ?? fail(name, `hard link ${path} to missing ${link}`);
      target.nlink++;
      parent.children.set(base, target);
      continue;
    }
    const ftype = TYPES[type];
    if (ftype === undefined) continue; // unknown entry types are skipped
    const old = parent.children.get(base);
    const node: TarNode = old && ftype === S_IFDIR ? old : { mode: 0, uid: 0, gid: 0, mtime, nlink: ftype === S_IFDIR ? 2 : 1, rdev: 0, data: body, target: link, children: new Map() };
    node.mode = ftype | (num(h, 100, 8) & 0o7777);
    node.uid = num(h, 108, 8);
    node.gid = num(h, 116, 8);
    node.mtime = mtime;
    if (ftype === S_IFCHR || ftype === S_IFBLK) node.rdev = (num(h, 329, 8) << 8) | num(h, 337, 8);
    if (!old && ftype === S_IFDIR) parent.nlink++;
    parent.children.set(base, node);
  }
  return root;
}

function fail(name: string, why: string): never {
  throw new Error(`${name}: ${why}`);
}
