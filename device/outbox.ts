/**
 * The bounded buffer of messages a device has not got PUBACKed yet, oldest first. When it is
 * full the oldest message is evicted (and the caller counts it as dropped). It lives in flash:
 * it survives reboots, while the batch of readings in progress (RAM) does not.
 */
import type { LedgerKey } from './ledger';

export interface OutboxItem {
  key: LedgerKey;
  topic: string;
  payload: string;
}

export class Outbox {
  private readonly items: OutboxItem[] = [];

  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1)
      throw new Error(`buffer capacity must be a whole number ≥ 1, got ${capacity}`);
  }

  get length(): number {
    return this.items.length;
  }

  /** Append a new message; returns what was evicted to make room (oldest first). */
  push(item: OutboxItem): OutboxItem[] {
    this.items.push(item);
    return this.evict();
  }

  /** Put a message whose PUBLISH failed back at the front (it is the oldest). */
  requeue(item: OutboxItem): OutboxItem[] {
    this.items.unshift(item);
    return this.evict();
  }

  /** Take the oldest message. */
  shift(): OutboxItem | undefined {
    return this.items.shift();
  }

  private evict(): OutboxItem[] {
    const n = this.items.length - this.capacity;
    return n > 0 ? this.items.splice(0, n) : [];
  }
}
