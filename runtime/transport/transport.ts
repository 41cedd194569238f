/**
 * What the dispatcher needs from a transport: hand over filled slots, take replies back.
 * Transports know framing only (where a request's bytes are); opcodes are the codec's business.
 */
import type { RequestSlot } from "./slot.ts";

export interface Transport {
  /** "io_uring" or "classic". */
  readonly name: string;
  /** Requests received through this transport. */
  requests: number;
  /**
   * Answer the request held by `slot`: `error` 0 or a negative errno, `payloadLen` bytes already
   * written at `slot.replyOff`. Re-arms the slot for the next request.
   */
  reply(slot: RequestSlot, error: number, payloadLen: number): void;
  /** Release a slot whose request takes no reply (FORGET, BATCH_FORGET, NOTIFY_REPLY). */
  noReply(slot: RequestSlot): void;
}

/** Receives every request a transport reads, in a filled slot. */
export type RequestSink = (slot: RequestSlot) => void;
