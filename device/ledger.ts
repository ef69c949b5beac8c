/**
 * The publish ledger: what each streaming device made, sent, got PUBACKed, buffered, re-sent and
 * dropped, message by message. The lab reconciles it with what reached the telemetry stream.
 *
 * Identity of a message: (thing, kind, ts). `ts` is the report's own `ts` for health and the
 * first reading's `ts` for telemetry; a device stamps both strictly increasing, so the pair never
 * repeats. Telemetry keys also carry `seq` (from 0 at each boot, so not an identity by itself).
 *
 * Every message ends in exactly one state: `acked` (a PUBACK arrived: AWS IoT has it), `dropped`
 * (evicted from the full buffer, oldest first, never acked) or `pending` (still buffered or in
 * flight when the ledger was read). So `created = acked + dropped + pending` per kind.
 *
 * A message whose PUBLISH failed without PUBACK may still have reached the broker; it is sent
 * again, so the stream may hold it twice. Such keys have `attempts > 1`; a key with
 * `attempts === 1` and state `acked` reached AWS IoT exactly once.
 */
import type { RecordType, ResetReason } from '../core/telemetry';
import { DEFAULT_MQTT_VERSION, type MqttVersion } from './mqtt-protocol';
import type { BehaviourProfile } from './profiles';

export type DataKind = RecordType;
export type KeyState = 'acked' | 'dropped' | 'pending';

/** One message of one device. */
export interface LedgerKey {
  thing: string;
  kind: DataKind;
  /** Identity within (thing, kind): health `ts`, or the first reading's `ts` of a telemetry message. */
  ts: number;
  /** Telemetry message counter (from 0 at each boot). */
  seq?: number;
  /** Readings the telemetry message carries. */
  readings?: number;
  /** Boot that made the message. */
  bootId: string;
  /** Topic it was (or would be) published on. */
  topic: string;
  state: KeyState;
  /** PUBLISH packets sent for it. */
  attempts: number;
  /** It waited in the buffer: made while the link was down, or its PUBLISH failed. */
  buffered: boolean;
}

/** Message counts of one kind. `created = acked + dropped + pending`. */
export interface KindCounts {
  /** Messages made. */
  created: number;
  /** PUBLISH packets sent (re-sends included). */
  published: number;
  /** Messages PUBACKed (each once). */
  acked: number;
  /** PUBLISH packets that ended without PUBACK (the link went down), or with a refusal (MQTT 5). */
  failed: number;
  /** Messages that waited in the buffer (made while offline, or after a failed PUBLISH). */
  buffered: number;
  /** Buffered messages published again once the link was back. */
  resent: number;
  /**
   * Messages never acked: evicted from the full buffer (oldest first), or refused for good by the
   * broker (an MQTT 5 PUBACK reason code such as `0x87 Not authorized`; `lastError` names it).
   */
  dropped: number;
  /** Messages still buffered or in flight. */
  pending: number;
}

export interface TelemetryCounts extends KindCounts {
  /** Readings in acked messages. */
  readingsAcked: number;
  /** Readings in dropped messages. */
  readingsDropped: number;
  /** Readings of a batch in progress when the device crashed (never in a message). */
  readingsLost: number;
}

export interface LinkCounts {
  /** Thing sessions opened (the one enrollment opened included). */
  connects: number;
  /** Connect attempts that failed. */
  connectFailures: number;
  /** Sessions the device cut without DISCONNECT (link drops, crashes): the broker publishes the Last Will. */
  abruptEnds: number;
  /** Sessions that ended without the device ending them (closed by the broker or the network). */
  lost: number;
  /** Sessions ended with DISCONNECT (requested reboot, stop): no Last Will. */
  closes: number;
  /** Boots after the first, by reset reason. */
  reboots: Partial<Record<ResetReason, number>>;
}

export interface DeviceLedgerReport {
  thing: string;
  serial: string;
  /** Firmware and profile running when the ledger was read. */
  firmware: string;
  profile: BehaviourProfile;
  /** MQTT version of its sessions. */
  mqttVersion: MqttVersion;
  /** Boot ids in order, the first boot's included. */
  bootIds: string[];
  telemetry: TelemetryCounts;
  health: KindCounts;
  links: LinkCounts;
  /** Last failure (connect or publish), short form. */
  lastError?: string;
}

/** The plain-data form of a {@link LedgerReport} (`JSON.stringify` gives it). */
export interface LedgerJson {
  devices: number;
  telemetry: TelemetryCounts;
  health: KindCounts;
  links: LinkCounts;
  byDevice: Record<string, DeviceLedgerReport>;
  keys: LedgerKey[];
}

export interface LedgerReport {
  /** Devices in the ledger. */
  devices: number;
  telemetry: TelemetryCounts;
  health: KindCounts;
  links: LinkCounts;
  /** Per thing name. */
  byDevice: Record<string, DeviceLedgerReport>;
  /** Every message, device by device, in the order each device made them. */
  keys(filter?: { kind?: DataKind; state?: KeyState; thing?: string }): IterableIterator<LedgerKey>;
  toJSON(): LedgerJson;
}

const emptyCounts = (): KindCounts => ({
  created: 0,
  published: 0,
  acked: 0,
  failed: 0,
  buffered: 0,
  resent: 0,
  dropped: 0,
  pending: 0,
});
const emptyTelemetry = (): TelemetryCounts => ({
  ...emptyCounts(),
  readingsAcked: 0,
  readingsDropped: 0,
  readingsLost: 0,
});
const emptyLinks = (): LinkCounts => ({
  connects: 0,
  connectFailures: 0,
  abruptEnds: 0,
  lost: 0,
  closes: 0,
  reboots: {},
});

/** The ledger of one device. Its methods are called by the device as things happen. */
export class DeviceLedger {
  readonly telemetry = emptyTelemetry();
  readonly health = emptyCounts();
  readonly links = emptyLinks();
  readonly bootIds: string[] = [];
  lastError?: string;
  private readonly entries: LedgerKey[] = [];
  private readonly resentOnce = new WeakSet<LedgerKey>();

  constructor(readonly thing: string) {}

  private counts(kind: DataKind): KindCounts {
    return kind === 'telemetry' ? this.telemetry : this.health;
  }

  /** A message was made; `offline` when the link was down, so it goes straight to the buffer. */
  created(key: Omit<LedgerKey, 'thing' | 'state' | 'attempts' | 'buffered'>, offline: boolean): LedgerKey {
    const entry: LedgerKey = { thing: this.thing, ...key, state: 'pending', attempts: 0, buffered: false };
    this.entries.push(entry);
    const c = this.counts(entry.kind);
    c.created++;
    c.pending++;
    if (offline) this.buffer(entry);
    return entry;
  }

  /** A PUBLISH of `entry` was sent. */
  sent(entry: LedgerKey): void {
    entry.attempts++;
    const c = this.counts(entry.kind);
    c.published++;
    if (entry.buffered && !this.resentOnce.has(entry)) {
      this.resentOnce.add(entry);
      c.resent++;
    }
  }

  acked(entry: LedgerKey): void {
    this.settle(entry, 'acked');
  }

  /** A PUBLISH of `entry` ended without PUBACK: it goes back to the buffer. */
  failed(entry: LedgerKey, error: string): void {
    this.counts(entry.kind).failed++;
    this.lastError = error;
    this.buffer(entry);
  }

  /** `entry` was evicted from the full buffer. */
  dropped(entry: LedgerKey): void {
    this.settle(entry, 'dropped');
  }

  /** The broker refused the PUBLISH of `entry` for good (MQTT 5 PUBACK reason code): never re-sent. */
  refused(entry: LedgerKey, error: string): void {
    this.counts(entry.kind).failed++;
    this.lastError = error;
    this.settle(entry, 'dropped');
  }

  /** A pending `entry` reaches its final state `to`; a telemetry message counts its readings there too. */
  private settle(entry: LedgerKey, to: 'acked' | 'dropped'): void {
    if (entry.state !== 'pending') throw new Error(`ledger: ${describe(entry)} is already ${entry.state}`);
    entry.state = to;
    const c = this.counts(entry.kind);
    c[to]++;
    c.pending--;
    if (entry.kind !== 'telemetry') return;
    if (to === 'acked') this.telemetry.readingsAcked += entry.readings ?? 0;
    else this.telemetry.readingsDropped += entry.readings ?? 0;
  }

  /** Readings of a batch in progress died with the device. */
  readingsLost(n: number): void {
    this.telemetry.readingsLost += n;
  }

  booted(bootId: string, reason: ResetReason | undefined): void {
    this.bootIds.push(bootId);
    if (reason) this.links.reboots[reason] = (this.links.reboots[reason] ?? 0) + 1;
  }

  connected(): void {
    this.links.connects++;
  }

  connectFailed(error: string): void {
    this.links.connectFailures++;
    this.lastError = error;
  }

  /** A session ended; `error` says why when the broker said so (an MQTT 5 DISCONNECT). */
  ended(how: 'abrupt' | 'lost' | 'closed', error?: string): void {
    if (error) this.lastError = error;
    if (how === 'abrupt') this.links.abruptEnds++;
    else if (how === 'lost') this.links.lost++;
    else this.links.closes++;
  }

  keys(): readonly LedgerKey[] {
    return this.entries;
  }

  private buffer(entry: LedgerKey): void {
    if (entry.buffered) return;
    entry.buffered = true;
    this.counts(entry.kind).buffered++;
  }
}

function describe(k: LedgerKey): string {
  return `${k.thing} ${k.kind} ts=${k.ts}${k.seq === undefined ? '' : ` seq=${k.seq}`}`;
}

function addCounts<T extends KindCounts>(into: T, from: T): void {
  for (const k of Object.keys(into) as Array<keyof T>)
    (into[k] as number) = (into[k] as number) + (from[k] as number);
}

/**
 * A snapshot of many devices' ledgers: counts summed, per-device reports, and the keys as they
 * were when the snapshot was taken (later publishes do not change it).
 */
export function ledgerReport(
  devices: ReadonlyArray<{
    ledger: DeviceLedger;
    serial: string;
    firmware: string;
    profile: BehaviourProfile;
    /** @default '3.1.1' */
    mqttVersion?: MqttVersion;
  }>,
): LedgerReport {
  const telemetry = emptyTelemetry();
  const health = emptyCounts();
  const links = emptyLinks();
  const byDevice: Record<string, DeviceLedgerReport> = {};
  for (const d of devices) {
    const l = d.ledger;
    addCounts(telemetry, l.telemetry);
    addCounts(health, l.health);
    for (const k of ['connects', 'connectFailures', 'abruptEnds', 'lost', 'closes'] as const)
      links[k] += l.links[k];
    for (const [reason, n] of Object.entries(l.links.reboots) as Array<[ResetReason, number]>)
      links.reboots[reason] = (links.reboots[reason] ?? 0) + n;
    byDevice[l.thing] = {
      thing: l.thing,
      serial: d.serial,
      firmware: d.firmware,
      profile: d.profile,
      mqttVersion: d.mqttVersion ?? DEFAULT_MQTT_VERSION,
      bootIds: [...l.bootIds],
      telemetry: { ...l.telemetry },
      health: { ...l.health },
      links: { ...l.links, reboots: { ...l.links.reboots } },
      ...(l.lastError ? { lastError: l.lastError } : {}),
    };
  }
  const snapshot = devices.map((d) => ({
    thing: d.ledger.thing,
    keys: d.ledger.keys().map((k) => ({ ...k })),
  }));
  function* keys(
    filter: { kind?: DataKind; state?: KeyState; thing?: string } = {},
  ): IterableIterator<LedgerKey> {
    for (const l of snapshot) {
      if (filter.thing !== undefined && l.thing !== filter.thing) continue;
      for (const k of l.keys) {
        if (filter.kind !== undefined && k.kind !== filter.kind) continue;
        if (filter.state !== undefined && k.state !== filter.state) continue;
        yield k;
      }
    }
  }
  return {
    devices: devices.length,
    telemetry,
    health,
    links,
    byDevice,
    keys,
    toJSON: () => ({ devices: devices.length, telemetry, health, links, byDevice, keys: [...keys()] }),
  };
}

/** Readable multi-line summary of a ledger, as `fleet sim` prints it after streaming. */
export function formatLedger(report: LedgerReport): string {
  const t = report.telemetry;
  const h = report.health;
  const l = report.links;
  const reboots = Object.entries(l.reboots)
    .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
    .map(([reason, n]) => `${reason} ${n}`);
  const profiles: Record<string, number> = {};
  for (const d of Object.values(report.byDevice)) profiles[d.profile] = (profiles[d.profile] ?? 0) + 1;
  const kind = (name: string, c: KindCounts): string =>
    `  ${name}: ${c.created} made, ${c.acked} acked, ${c.pending} pending, ${c.dropped} dropped` +
    ` (${c.published} PUBLISH, ${c.failed} failed, ${c.buffered} buffered, ${c.resent} re-sent)`;
  const lines = [
    `Streaming: ${report.devices} device(s); ${Object.entries(profiles)
      .map(([p, n]) => `${p} ${n}`)
      .join(', ')}`,
    `${kind('telemetry', t)}; readings ${t.readingsAcked} acked, ${t.readingsDropped} dropped, ${t.readingsLost} lost in crashes`,
    kind('health', h),
    `  links: ${l.connects} connects, ${l.connectFailures} failed, ${l.abruptEnds} cut (Last Will), ${l.lost} lost, ${l.closes} closed` +
      (reboots.length > 0 ? `; reboots ${reboots.join(', ')}` : ''),
  ];
  for (const d of silentDevices(report))
    lines.push(`  ${d.thing}: nothing acked (${d.lastError ?? 'no error recorded'})`);
  return lines.join('\n');
}

/** Devices that made messages and got none acked: a rule name, policy or endpoint problem. */
export function silentDevices(report: LedgerReport): DeviceLedgerReport[] {
  return Object.values(report.byDevice).filter(
    (d) => d.telemetry.created + d.health.created > 0 && d.telemetry.acked + d.health.acked === 0,
  );
}
