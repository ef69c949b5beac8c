/**
 * The health consumer's per-container device cache: a bounded LRU map from serial to what the
 * consumer knows of the device (or `null`: not in the registry), each entry with its own time to
 * live. Kinesis keeps a device on one shard and a shard on one invocation at a time, so a
 * container mostly sees the same devices batch after batch, and the cache saves a registry read
 * per device per batch. Entries expire so that what other writers change (ring, firmware set at
 * re-enrollment, lastSeen set by connects) is read again within minutes; unknown devices expire
 * sooner, so a device enrolled meanwhile is found.
 */

export interface DeviceCacheOptions {
  /** Entries kept; the least recently used go first. @default 20_000 */
  maxEntries?: number;
  /** Time to live of a known device, ms. @default 15 min */
  knownTtlMs?: number;
  /** Time to live of a serial the registry does not hold, ms. @default 60 s */
  unknownTtlMs?: number;
  /** Clock (tests). @default Date.now */
  now?: () => number;
}

export class DeviceCache<V extends object> {
  private readonly entries = new Map<string, { value: V | null; expiresAt: number }>();
  private readonly maxEntries: number;
  private readonly knownTtlMs: number;
  private readonly unknownTtlMs: number;
  private readonly now: () => number;

  constructor(opts: DeviceCacheOptions = {}) {
    this.maxEntries = opts.maxEntries ?? 20_000;
    this.knownTtlMs = opts.knownTtlMs ?? 15 * 60_000;
    this.unknownTtlMs = opts.unknownTtlMs ?? 60_000;
    this.now = opts.now ?? Date.now;
  }

  get size(): number {
    return this.entries.size;
  }

  /** The cached value (`null`: known not to exist), or undefined on a miss or an expired entry. */
  get(serial: string): V | null | undefined {
    const entry = this.entries.get(serial);
    if (!entry) return undefined;
    this.entries.delete(serial);
    if (entry.expiresAt <= this.now()) return undefined;
    this.entries.set(serial, entry);
    return entry.value;
  }

  /** Cache a device read from the registry (`null`: the registry does not hold it). */
  set(serial: string, value: V | null): void {
    this.entries.delete(serial);
    const ttl = value === null ? this.unknownTtlMs : this.knownTtlMs;
    this.entries.set(serial, { value, expiresAt: this.now() + ttl });
    if (this.entries.size > this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
  }

  /** Replace a cached device's value, keeping its expiry (what this container learnt since the read). */
  update(serial: string, value: V): void {
    const entry = this.entries.get(serial);
    if (entry) entry.value = value;
  }

  delete(serial: string): void {
    this.entries.delete(serial);
  }
}
