/**
 * The health consumer's per-container device cache: a bounded map from serial to what the
 * consumer knows of the device (or `null`: not in the registry), each entry with its own time to
 * live, the least recently used entries going first when it is full. Kinesis keeps a device on one shard and a shard on one invocation at a time, so a
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

/**
 * Recency is kept by the map's insertion order: an entry moves to the back when it is set, and
 * when it is read while in the older half of the order (more than `maxEntries / 2` insertions
 * ago). An entry read while in the newer half stays where it is, so a read of a recently used
 * entry costs one lookup; the front (what goes first) is still made of entries not read since
 * at least half the capacity was inserted after them.
 */
export class DeviceCache<V extends object> {
  private readonly entries = new Map<string, { value: V | null; expiresAt: number; seq: number }>();
  private readonly maxEntries: number;
  private readonly knownTtlMs: number;
  private readonly unknownTtlMs: number;
  /** The cache's clock (a caller reading many entries at once reads it once). */
  readonly now: () => number;
  /** Insertions at the back so far. */
  private seq = 0;

  constructor(opts: DeviceCacheOptions = {}) {
    this.maxEntries = opts.maxEntries ?? 20_000;
    this.knownTtlMs = opts.knownTtlMs ?? 15 * 60_000;
    this.unknownTtlMs = opts.unknownTtlMs ?? 60_000;
    this.now = opts.now ?? Date.now;
  }

  get size(): number {
    return this.entries.size;
  }

  /**
   * The cached value (`null`: known not to exist), or undefined on a miss or an expired entry.
   * `now`: the time by {@link now}, when the caller has it.
   */
  get(serial: string, now?: number): V | null | undefined {
    const entry = this.entries.get(serial);
    if (!entry) return undefined;
    if (entry.expiresAt <= (now ?? this.now())) {
      this.entries.delete(serial);
      return undefined;
    }
    if (this.seq - entry.seq > this.maxEntries / 2) {
      this.entries.delete(serial);
      entry.seq = ++this.seq;
      this.entries.set(serial, entry);
    }
    return entry.value;
  }

  /** Cache a device read from the registry (`null`: the registry does not hold it). */
  set(serial: string, value: V | null): void {
    this.entries.delete(serial);
    const ttl = value === null ? this.unknownTtlMs : this.knownTtlMs;
    this.entries.set(serial, { value, expiresAt: this.now() + ttl, seq: ++this.seq });
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
