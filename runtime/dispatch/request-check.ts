/**
 * A request is checked against the opcode table before any handler decodes it: its fixed input
 * must be there in full and each of its names must end with a NUL inside the request. Otherwise
 * a handler would read beyond the request: the rest of the buffer still holds an earlier
 * request's bytes (classic), and `op_in` is never cleared (ring).
 *
 * Where the bytes are (transport/slot.ts):
 * - classic: one buffer, in-header @0, op header @40, the rest after it; the read(2) count says
 *   how many bytes arrived (`payloadLen` = count - 40).
 * - ring: op header in `op_in` (128 bytes), the rest in the payload buffer (`payload_sz` =
 *   `payloadLen`); the in-header's `len` still counts every argument, so the op header's length
 *   is len - 40 - payload_sz.
 */
import { IN_HEADER_SIZE, IN_LEN } from "../kernel/abi.ts";
import { inSize, afterSize, nameCount, knownOpcode, dataSizeAt } from "../kernel/opcodes.ts";
import type { RequestSlot } from "../transport/slot.ts";

/** Bytes of the ring header's `op_in` area. */
const OP_IN_SIZE = 128;

export const REQUEST_OK = 0;
/** The fixed input struct is shorter than the opcode's (or the lengths contradict each other). */
export const REQUEST_SHORT = 1;
/** A name is missing or has no NUL before the request ends. */
export const REQUEST_NAME = 2;
/** Fewer data bytes follow than the op header announces (WRITE, SETXATTR). */
export const REQUEST_DATA = 3;

/**
 * Check the request in `slot` (opcode `opcode`) against the table; REQUEST_OK or what is wrong
 * (REQUEST_SHORT, REQUEST_NAME, REQUEST_DATA). Unknown opcodes pass (they are answered ENOSYS without being decoded).
 * Allocates nothing.
 */
export function checkRequest(slot: RequestSlot, opcode: number, minor: number, setxattrExt: boolean): number {
  if (!knownOpcode(opcode)) return REQUEST_OK;
  const need = inSize(opcode, minor, setxattrExt);
  let off: number, end: number;
  if (slot.ringLayout) {
    const headerLen = slot.hdr.getUint32(IN_LEN, true) - IN_HEADER_SIZE - slot.payloadLen;
    if (headerLen < need || headerLen > OP_IN_SIZE) return REQUEST_SHORT;
    off = 0;
    end = slot.payloadLen;
  } else {
    if (slot.payloadLen < need) return REQUEST_SHORT;
    off = IN_HEADER_SIZE + need;
    end = IN_HEADER_SIZE + slot.payloadLen;
  }
  off += afterSize(opcode);
  if (off > end) return REQUEST_SHORT;
  const bytes = slot.dataBytes;
  for (let n = nameCount(opcode); n > 0; n--) {
    if (off >= end) return REQUEST_NAME;
    const nul = bytes.indexOf(0, off);
    if (nul < 0 || nul >= end) return REQUEST_NAME;
    off = nul + 1;
  }
  const at = dataSizeAt(opcode);
  if (at >= 0 && end - off < slot.hdr.getUint32(slot.opInOff + at, true)) return REQUEST_DATA;
  return REQUEST_OK;
}

/** What a check result means, for the log line. */
export function describeCheck(result: number, slot: RequestSlot, opcode: number, minor: number, setxattrExt: boolean): string {
  const need = inSize(opcode, minor, setxattrExt) + afterSize(opcode);
  const got = slot.ringLayout ? `${slot.hdr.getUint32(IN_LEN, true) - IN_HEADER_SIZE - slot.payloadLen}-byte op header and ${slot.payloadLen} payload bytes` : `${slot.payloadLen} bytes after the in-header`;
  if (result === REQUEST_DATA) return `carries fewer data bytes than its header announces (${slot.hdr.getUint32(slot.opInOff + dataSizeAt(opcode), true)}; ${got})`;
  return result === REQUEST_SHORT
    ? `shorter than its ${need}-byte input struct (${got})`
    : `its ${nameCount(opcode) === 1 ? "name is" : `${nameCount(opcode)} names are`} not NUL-terminated within the request (${got})`;
}
