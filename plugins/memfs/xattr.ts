/**
 * Extended attributes, as tmpfs keeps them: the user., trusted. and security. namespaces
 * (anything else is EOPNOTSUPP), values up to 64 KiB, user.* only on regular files and
 * directories, and every attribute (any namespace) charged to the inode space that statfs's
 * ffree reports (40 bytes + name + value, like the kernel's simple_xattr_space).
 *
 * Each node with attributes has a table in the shared heap (StringMap name → value block).
 * The caller checks the node exists; these functions throw the errno for everything else.
 */
import { S_IFDIR, S_IFMT, S_IFREG, XATTR_CREATE, XATTR_REPLACE, nameByteLength, nameToBytes, type StringMap } from "furing";
import { Buffer } from "node:buffer";
import { E2BIG, EEXIST, EINVAL, ENODATA, ENOSPC, EOPNOTSUPP, EPERM, ERANGE } from "./errors.ts";
import type { Node } from "./nodes.ts";
import type { MemfsState } from "./state.ts";

/** Largest value (XATTR_SIZE_MAX). */
export const XATTR_SIZE_MAX = 65536;
/** Longest name in bytes (XATTR_NAME_MAX). */
export const XATTR_NAME_MAX = 255;

const USER = 1;
const OTHER = 2;

/** Inode space an attribute costs. */
function space(name: string, size: number): number {
  return 40 + size + nameByteLength(name);
}

/** The node's attribute table (name → value block in the heap); the node must have one. */
function table(state: MemfsState, node: Node): StringMap {
  return state.names.at(node.xattrs);
}

/** Free a node's extended attributes and give back the inode space they held. */
export function freeXattrs(state: MemfsState, node: Node): void {
  const t = table(state, node);
  let total = 0;
  for (let c = t.next(0); c >= 0; c = t.next(c)) {
    const v = t.valueAt(c);
    total += space(t.keyAt(c), state.heap.sizeOf(v));
    state.heap.free(v);
  }
  t.destroy();
  node.xattrs = 0;
  state.ispaceFree += total;
}

/** USER or OTHER for a supported name; ERANGE, EOPNOTSUPP or EINVAL otherwise. */
function namespaceOf(name: string): number {
  if (name.length === 0 || (name.length > 85 && nameByteLength(name) > XATTR_NAME_MAX)) throw ERANGE;
  let prefix: number;
  let ns: number;
  if (name.startsWith("user.")) {
    prefix = 5;
    ns = USER;
  } else if (name.startsWith("trusted.")) {
    prefix = 8;
    ns = OTHER;
  } else if (name.startsWith("security.")) {
    prefix = 9;
    ns = OTHER;
  } else throw EOPNOTSUPP;
  if (name.length === prefix) throw EINVAL;
  return ns;
}

function userAllowed(node: Node): boolean {
  const t = node.mode & S_IFMT;
  return t === S_IFREG || t === S_IFDIR;
}

export function setXattr(state: MemfsState, node: Node, name: string, value: Uint8Array, flags: number): void {
  if ((flags & ~(XATTR_CREATE | XATTR_REPLACE)) !== 0) throw EINVAL;
  const ns = namespaceOf(name);
  if (value.length > XATTR_SIZE_MAX) throw E2BIG;
  if (ns === USER && !userAllowed(node)) throw EPERM;
  // tmpfs charges the new value in full, before looking at the flags or giving back the old one
  const cost = space(name, value.length);
  if (state.ispaceFree < cost) throw ENOSPC;
  const h = state.heap;
  const old = node.xattrs === 0 ? undefined : table(state, node).get(name);
  if ((flags & XATTR_CREATE) !== 0 && old !== undefined) throw EEXIST;
  if ((flags & XATTR_REPLACE) !== 0 && old === undefined) throw ENODATA;
  state.ispaceFree -= cost;
  const p = h.alloc(value.length);
  h.u8.set(value, p);
  if (old !== undefined) {
    state.ispaceFree += space(name, h.sizeOf(old));
    h.free(old);
  }
  if (node.xattrs === 0) node.xattrs = state.names.create();
  table(state, node).set(name, p);
}

/** The value of `name` (a copy). */
export function getXattr(state: MemfsState, node: Node, name: string): Uint8Array {
  const ns = namespaceOf(name);
  if (ns === USER && !userAllowed(node)) throw ENODATA;
  const v = node.xattrs === 0 ? undefined : table(state, node).get(name);
  if (v === undefined) throw ENODATA;
  return state.heap.u8.slice(v, v + state.heap.sizeOf(v));
}

/**
 * All names, in tmpfs's order (descending byte order). trusted.* names are only shown to
 * root, as tmpfs shows them only to CAP_SYS_ADMIN.
 */
export function listXattrs(state: MemfsState, node: Node, uid: number): string[] {
  const out: string[] = [];
  if (node.xattrs === 0) return out;
  const t = table(state, node);
  for (let c = t.next(0); c >= 0; c = t.next(c)) {
    const name = t.keyAt(c);
    if (uid === 0 || !name.startsWith("trusted.")) out.push(name);
  }
  return out.sort(compareDescending);
}

function compareDescending(a: string, b: string): number {
  return Buffer.compare(nameToBytes(b), nameToBytes(a));
}

export function removeXattr(state: MemfsState, node: Node, name: string): void {
  const ns = namespaceOf(name);
  if (ns === USER && !userAllowed(node)) throw EPERM;
  const old = node.xattrs === 0 ? undefined : table(state, node).get(name);
  if (old === undefined) throw ENODATA;
  const t = table(state, node);
  t.delete(name);
  state.ispaceFree += space(name, state.heap.sizeOf(old));
  state.heap.free(old);
  if (t.size === 0) {
    t.destroy();
    node.xattrs = 0;
  }
}
