/**
 * Registry adapter: device and lot reads, status changes and trail appends, shared by the
 * provisioning hook, the presence Lambda, the `fleet` CLI and the local lab (batch imports and
 * lot administration, which only the operator needs, are in cli/registry-admin.ts). The
 * DynamoDB Document client is injected.
 *
 * Every status change is ONE conditional UpdateItem ({@link Registry.applyTransition}) guarded
 * by the expected status AND the `revision` counter read by the caller, so two concurrent
 * attempts can never both win (the local emulator has no transactions, and none are needed).
 * The target status comes from the lifecycle table (core/lifecycle.ts); a change the table does
 * not list is refused with a `LifecycleError` before any write, and a lost race surfaces as
 * {@link RegistryConditionError}.
 *
 * The health consumer's reads and writes are in {@link HealthRegistry}: health bookkeeping
 * (boot id, uptime, report time, running firmware, lastSeen), each a conditional UpdateItem that
 * only moves forward, never a status change.
 */
import {
  BatchGetCommand,
  DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import type { DeviceHealthState } from '../../core/health';
import {
  CertificateLineageEntry,
  DeviceEvent,
  DeviceRecord,
  LotRecord,
  ProvisioningTransition,
  TABLES,
} from '../../core/model';
import { assertTransition, LIFECYCLE, LifecycleAction, SourceStatus } from '../../core/lifecycle';
import { NewDeviceEvent, trailEntry } from '../../core/trail';

export type { NewDeviceEvent } from '../../core/trail';

export interface RegistryTableNames {
  devices: string;
  lots: string;
  events: string;
}

/** Per-call options: an abort signal bounds the call (the hook passes its deadline). */
export interface CallOptions {
  abortSignal?: AbortSignal;
}

/** A conditional write lost: another writer changed the item first (or it does not exist). */
export class RegistryConditionError extends Error {
  override readonly name = 'RegistryConditionError';
  constructor(
    readonly operation: string,
    readonly serial: string,
    message?: string,
  ) {
    super(
      message ??
        `${operation} for ${serial} lost a conditional write: the device changed concurrently; re-read and retry`,
    );
  }
}

export function isConditionFailure(err: unknown): boolean {
  return (
    typeof err === 'object' &&
    err !== null &&
    ((err as { name?: string }).name === 'ConditionalCheckFailedException' ||
      (err as { name?: string }).name === 'TransactionCanceledException')
  );
}

/** Input of {@link Registry.beginProvisioning}: the hook's allowed transition, optionally timed. */
export type BeginProvisioningInput = ProvisioningTransition & {
  /** ISO time of the decision; defaults to now. */
  at?: string;
};

/**
 * PutItem only when no item with the same key exists yet: the create-once and append-only writes.
 * @throws ConditionalCheckFailedException (see {@link isConditionFailure}) when it exists.
 */
export async function putNew(
  doc: DynamoDBDocumentClient,
  table: string,
  item: Record<string, unknown> | object,
  keyAttribute: string,
  opts: CallOptions = {},
): Promise<void> {
  await doc.send(
    new PutCommand({
      TableName: table,
      Item: item as Record<string, unknown>,
      ConditionExpression: 'attribute_not_exists(#k)',
      ExpressionAttributeNames: { '#k': keyAttribute },
    }),
    { abortSignal: opts.abortSignal },
  );
}

/**
 * Append a trail entry that may be written more than once (a retried event): the entry has a
 * deterministic sort key (`<at>#<skSuffix>`), and finding it already written counts as done.
 * Returns true when this call wrote it, false when it was there already.
 */
export async function appendEventOnce(
  doc: DynamoDBDocumentClient,
  eventsTable: string,
  e: NewDeviceEvent & { at: string; skSuffix: string },
  now: () => Date,
  opts: CallOptions = {},
): Promise<boolean> {
  try {
    await putNew(doc, eventsTable, trailEntry(e, now), TABLES.events.sortKey, opts);
    return true;
  } catch (err) {
    if (isConditionFailure(err)) return false;
    throw err;
  }
}

/** What a status change writes besides the status and revision (which the registry sets). */
export interface TransitionWrite {
  /** UpdateExpression; it must `SET #status = :to, #rev = :next`. */
  update: string;
  names: Record<string, string>;
  values: Record<string, unknown>;
  /** Conditions besides status, revision and existence. */
  extraCondition?: string;
  opts: CallOptions;
  /** @default true */
  returnRecord?: boolean;
}

/** Presence facts of one lifecycle event. */
export interface PresenceInput {
  connected: boolean;
  versionNumber: number;
  /** Event time, epoch milliseconds. */
  timestamp: number;
  /** Stored on a disconnect; a connect (or a disconnect without one) removes the stored reason. */
  disconnectReason?: string;
  /**
   * ISO time to store as lastSeen (a connect newer than the lastSeen read). The write then also
   * requires the stored lastSeen to be older, so it never moves lastSeen back.
   */
  lastSeen?: string;
}

export interface ActivateInput {
  /** The status the caller read; the lifecycle table says which statuses may activate. */
  expectedStatus: SourceStatus<'activate'>;
  expectedRevision: number;
  /** The device's current certificate: activation only happens with it. */
  certificateId: string;
  /** Include the connectivity fields; the write then also requires the event to be newer. */
  presence?: PresenceInput;
  at?: string;
}

/** The write-side twin of `isNewerPresence` (core/presence-plan.ts). */
const NEWER_PRESENCE_CONDITION =
  '(attribute_not_exists(#pv) OR #pv < :pv OR (#pv = :pv AND (attribute_not_exists(#pt) OR #pt < :pt)))';
/** lastSeen only moves forward: the presence and health writes both guard it with this. */
const OLDER_LAST_SEEN_CONDITION = '(attribute_not_exists(#seen) OR #seen < :seen)';
/** A health report is written only over an older one (or none). */
const NEWER_HEALTH_CONDITION = '(attribute_not_exists(#hts) OR #hts < :hts)';

/**
 * The connectivity part of a presence write (shared by {@link Registry.recordPresence} and
 * {@link Registry.activate}): the fields, the disconnect reason (set on a disconnect that has
 * one, removed otherwise) and lastSeen when given, with the ordering conditions.
 */
function presenceUpdate(p: PresenceInput): {
  sets: string[];
  removes: string[];
  names: Record<string, string>;
  values: Record<string, unknown>;
  condition: string;
} {
  const sets = ['#conn = :conn', '#pv = :pv', '#pt = :pt'];
  const removes: string[] = [];
  const names: Record<string, string> = {
    '#conn': 'connected',
    '#pv': 'presenceVersion',
    '#pt': 'presenceTimestamp',
    '#dr': 'disconnectReason',
  };
  const values: Record<string, unknown> = {
    ':conn': p.connected,
    ':pv': p.versionNumber,
    ':pt': p.timestamp,
  };
  const conditions = [NEWER_PRESENCE_CONDITION];
  if (!p.connected && p.disconnectReason) {
    sets.push('#dr = :dr');
    values[':dr'] = p.disconnectReason;
  } else {
    removes.push('#dr');
  }
  if (p.lastSeen !== undefined) {
    sets.push('#seen = :seen');
    names['#seen'] = 'lastSeen';
    values[':seen'] = p.lastSeen;
    conditions.push(OLDER_LAST_SEEN_CONDITION);
  }
  return { sets, removes, names, values, condition: conditions.join(' AND ') };
}

/** `SET a, b REMOVE c` from lists. */
function updateExpression(sets: readonly string[], removes: readonly string[] = []): string {
  return [`SET ${sets.join(', ')}`, removes.length > 0 ? `REMOVE ${removes.join(', ')}` : '']
    .filter(Boolean)
    .join(' ');
}

/** The attributes the health consumer reads of a device. */
export const HEALTH_VIEW_ATTRIBUTES = [
  'serial',
  'lot',
  'ring',
  'currentFirmware',
  'lastSeen',
  'healthBootId',
  'healthUptimeS',
  'healthTs',
  'lastFirmwareChange',
] as const;

/**
 * The last firmware change the health consumer recorded on the device item, with the write that
 * made it, so that a retry can complete a FIRMWARE_CHANGED trail entry whose append failed after
 * the write (the item then no longer shows the old version).
 */
export interface FirmwareChangeMark {
  from: string;
  to: string;
  /** ISO time of the report that first ran `to` (the trail entry's `at`). */
  at: string;
}

/** What the health consumer reads of a device (a projection of the Devices item). */
export type DeviceHealthView = Pick<
  DeviceRecord,
  'serial' | 'lot' | 'ring' | 'currentFirmware' | 'lastSeen' | 'healthBootId' | 'healthUptimeS' | 'healthTs'
> & { lastFirmwareChange?: FirmwareChangeMark };

/** Result of {@link Registry.getHealthViews}. */
export interface HealthViews {
  /** The devices found; a serial asked for and neither here nor in `unresolved` does not exist. */
  found: Map<string, DeviceHealthView>;
  /** Serials the reads could not resolve (a failed request, or keys DynamoDB left unprocessed). */
  unresolved: Set<string>;
  /** The first error of a failed request, for the log. */
  error?: unknown;
}

/** The health state write: a new boot, a firmware change or a device's first report. */
export interface HealthStateWrite {
  state: DeviceHealthState;
  /** ISO receive time of the report: lastSeen, unless a later one is stored. */
  seenAt: string;
  /** Set when the reported firmware differs from the stored `currentFirmware`. */
  firmwareChange?: FirmwareChangeMark;
}

/** The throttled heartbeat write: lastSeen with the latest uptime and report time. */
export interface LastSeenWrite {
  /** ISO receive time of the report. */
  seenAt: string;
  /** Written only when the stored lastSeen is no later than this (ISO): one write per interval. */
  dueBefore: string;
  uptimeS: number;
  /** Report time (device clock), epoch ms. */
  ts: number;
}

/** Keys per BatchGetItem request (the DynamoDB limit). */
const BATCH_GET_KEYS = 100;
/** BatchGetItem rounds for keys DynamoDB leaves unprocessed (throttling, 16 MB responses). */
const BATCH_GET_ROUNDS = 4;

export class Registry {
  readonly tables: RegistryTableNames;
  private readonly doc: DynamoDBDocumentClient;
  private readonly now: () => Date;

  constructor(doc: DynamoDBDocumentClient, tables: RegistryTableNames, now: () => Date = () => new Date()) {
    this.doc = doc;
    this.tables = tables;
    this.now = now;
  }

  /** Strongly consistent read of a device (the hook's decision depends on its revision). */
  async getDevice(serial: string, opts: CallOptions = {}): Promise<DeviceRecord | undefined> {
    const out = await this.doc.send(
      new GetCommand({
        TableName: this.tables.devices,
        Key: { [TABLES.devices.partitionKey]: serial },
        ConsistentRead: true,
      }),
      { abortSignal: opts.abortSignal },
    );
    return out.Item as DeviceRecord | undefined;
  }

  /** Strongly consistent read of a lot, so a HOLD takes effect on the next enrollment. */
  async getLot(lot: string, opts: CallOptions = {}): Promise<LotRecord | undefined> {
    const out = await this.doc.send(
      new GetCommand({
        TableName: this.tables.lots,
        Key: { [TABLES.lots.partitionKey]: lot },
        ConsistentRead: true,
      }),
      { abortSignal: opts.abortSignal },
    );
    if (!out.Item) return undefined;
    const item = out.Item as LotRecord & { claimCertificateIds?: string[] | Set<string> };
    // The table stores claim ids as a string set; the document client returns a Set.
    const ids = item.claimCertificateIds;
    return { ...item, claimCertificateIds: ids instanceof Set ? [...ids] : (ids ?? []) };
  }

  /**
   * Append-only: conditional PutItem (attribute_not_exists) of the entry built by
   * {@link trailEntry} (sort key, enrollment index shard, optional TTL).
   */
  async appendEvent(e: NewDeviceEvent, opts: CallOptions = {}): Promise<DeviceEvent> {
    const event = trailEntry(e, this.now);
    await putNew(this.doc, this.tables.events, event, TABLES.events.sortKey, opts);
    return event;
  }

  /**
   * {@link appendEvent} for a fact that may be written more than once (a retried event): the entry
   * has a deterministic sort key (`<at>#<skSuffix>`), and finding it already written counts as
   * done. Returns true when this call wrote it, false when it was there already.
   */
  async appendEventOnce(
    e: NewDeviceEvent & { at: string; skSuffix: string },
    opts: CallOptions = {},
  ): Promise<boolean> {
    return appendEventOnce(this.doc, this.tables.events, e, this.now, opts);
  }

  /**
   * The hook's transition: MANUFACTURED -> PROVISIONING (first attempt), or PROVISIONING ->
   * PROVISIONING with the new certificate (an allowed retry). Records thing name, ring,
   * certificate, key fingerprint, reported firmware and the certificate lineage.
   * Returns nothing (the hook's hot path does not need the record back).
   * @throws RegistryConditionError when the status or revision changed since the read.
   */
  async beginProvisioning(
    serial: string,
    input: BeginProvisioningInput,
    opts: CallOptions = {},
  ): Promise<void> {
    const at = input.at ?? this.now().toISOString();
    const entry: CertificateLineageEntry = {
      certificateId: input.certificateId,
      issuedAt: at,
      publicKeyFingerprint: input.publicKeyFingerprint,
    };
    const sets = [
      '#status = :to',
      '#rev = :next',
      '#thing = :thing',
      '#ring = :ring',
      '#cert = :cert',
      '#fp = :fp',
      '#fw = :fw',
      '#upd = :at',
    ];
    const values: Record<string, unknown> = {
      ':rev': input.expectedRevision,
      ':next': input.expectedRevision + 1,
      ':thing': input.thingName,
      ':ring': input.ring,
      ':cert': input.certificateId,
      ':fp': input.publicKeyFingerprint,
      ':fw': input.firmware,
      ':at': at,
    };
    if (input.appendHistory) {
      sets.push('#hist = list_append(if_not_exists(#hist, :empty), :entry)');
      values[':empty'] = [];
      values[':entry'] = [entry];
    }
    await this.applyTransition('enroll', serial, input.expectedStatus, input.expectedRevision, {
      returnRecord: false,
      update: `SET ${sets.join(', ')}`,
      names: {
        '#thing': TABLES.devices.byThingKey,
        '#ring': 'ring',
        '#cert': TABLES.devices.byCertificateKey,
        '#fp': 'publicKeyFingerprint',
        '#fw': 'currentFirmware',
        '#upd': 'updatedAt',
        ...(input.appendHistory ? { '#hist': 'certificateHistory' } : {}),
      },
      values,
      opts,
    });
  }

  /**
   * First connection with the current certificate: the lifecycle table's `activate` (PROVISIONING
   * -> ACTIVE) from the status the caller read, guarded by revision and certificate; sets activatedAt
   * (and the connectivity fields when `presence` is given and newer than what is stored).
   * @throws RegistryConditionError when status, revision, certificate or ordering changed.
   */
  async activate(serial: string, input: ActivateInput, opts: CallOptions = {}): Promise<DeviceRecord> {
    const at = input.at ?? this.now().toISOString();
    const sets = ['#status = :to', '#rev = :next', '#act = :at', '#upd = :at'];
    const removes: string[] = [];
    const names: Record<string, string> = {
      '#act': 'activatedAt',
      '#upd': 'updatedAt',
      '#cert': TABLES.devices.byCertificateKey,
    };
    const values: Record<string, unknown> = {
      ':rev': input.expectedRevision,
      ':next': input.expectedRevision + 1,
      ':at': at,
      ':cert': input.certificateId,
    };
    const extra = ['#cert = :cert'];
    if (input.presence) {
      const p = presenceUpdate(input.presence);
      sets.push(...p.sets);
      removes.push(...p.removes);
      Object.assign(names, p.names);
      Object.assign(values, p.values);
      extra.push(p.condition);
    }
    return this.applyTransition('activate', serial, input.expectedStatus, input.expectedRevision, {
      update: updateExpression(sets, removes),
      names,
      values,
      extraCondition: extra.join(' AND '),
      opts,
    });
  }

  /**
   * Connectivity bookkeeping (not a status transition, so `revision` is left alone): applied
   * only when the event is newer by (versionNumber, timestamp), and, when it carries lastSeen,
   * only over an older lastSeen. Returns the updated record, or undefined when a condition
   * failed (the event is stale or a duplicate, lastSeen moved past it, or the device does not
   * exist).
   */
  async recordPresence(
    serial: string,
    p: PresenceInput,
    opts: CallOptions = {},
  ): Promise<DeviceRecord | undefined> {
    const u = presenceUpdate(p);
    try {
      const out = await this.doc.send(
        new UpdateCommand({
          TableName: this.tables.devices,
          Key: { [TABLES.devices.partitionKey]: serial },
          UpdateExpression: updateExpression([...u.sets, '#upd = :at'], u.removes),
          ConditionExpression: `attribute_exists(#pk) AND ${u.condition}`,
          ExpressionAttributeNames: { '#pk': TABLES.devices.partitionKey, '#upd': 'updatedAt', ...u.names },
          ExpressionAttributeValues: { ...u.values, ':at': this.now().toISOString() },
          ReturnValues: 'ALL_NEW',
        }),
        { abortSignal: opts.abortSignal },
      );
      return out.Attributes as DeviceRecord;
    } catch (err) {
      if (isConditionFailure(err)) return undefined;
      throw err;
    }
  }

  /**
   * The one write of a status change: a conditional UpdateItem guarded by the status and the
   * revision the caller read. The target status comes from the lifecycle table (`:to`); a change
   * the table does not allow is refused before any write. The named transitions above use it, and
   * so do the operator's (cli/registry-admin.ts).
   * @throws LifecycleError when the table does not allow `action` from `expectedStatus`.
   * @throws RegistryConditionError when the status or revision changed since the read.
   */
  async applyTransition<A extends LifecycleAction>(
    action: A,
    serial: string,
    expectedStatus: SourceStatus<A>,
    expectedRevision: number,
    w: TransitionWrite,
  ): Promise<DeviceRecord> {
    assertTransition(action, serial, expectedStatus);
    // Records written without a revision count as revision 0.
    const revisionCondition =
      expectedRevision === 0 ? '(attribute_not_exists(#rev) OR #rev = :rev)' : '#rev = :rev';
    const condition = [`attribute_exists(#pk)`, '#status = :from', revisionCondition, w.extraCondition]
      .filter(Boolean)
      .join(' AND ');
    try {
      const out = await this.doc.send(
        new UpdateCommand({
          TableName: this.tables.devices,
          Key: { [TABLES.devices.partitionKey]: serial },
          UpdateExpression: w.update,
          ConditionExpression: condition,
          ExpressionAttributeNames: {
            '#pk': TABLES.devices.partitionKey,
            '#status': 'status',
            '#rev': 'revision',
            ...w.names,
          },
          ExpressionAttributeValues: { ...w.values, ':from': expectedStatus, ':to': LIFECYCLE[action].to },
          ReturnValues: w.returnRecord === false ? 'NONE' : 'ALL_NEW',
        }),
        { abortSignal: w.opts.abortSignal },
      );
      return out.Attributes as DeviceRecord;
    } catch (err) {
      if (isConditionFailure(err)) throw new RegistryConditionError(action, serial);
      throw err;
    }
  }
}

/**
 * The health consumer's registry adapter: its reads and its two writes of the Devices table, and
 * its FIRMWARE_CHANGED trail appends. A class of its own, beside {@link Registry}, so that each
 * function bundle carries only the calls it makes: the consumer none of the status transitions,
 * the hook and the presence function no BatchGetItem (every bundle is held to MAX_BUNDLE_BYTES).
 * Health bookkeeping is not a status transition: `revision` is left alone.
 */
export class HealthRegistry {
  readonly tables: Pick<RegistryTableNames, 'devices' | 'events'>;
  private readonly doc: DynamoDBDocumentClient;
  private readonly now: () => Date;

  constructor(
    doc: DynamoDBDocumentClient,
    tables: Pick<RegistryTableNames, 'devices' | 'events'>,
    now: () => Date = () => new Date(),
  ) {
    this.doc = doc;
    this.tables = tables;
    this.now = now;
  }

  /** {@link Registry.appendEventOnce}. */
  async appendEventOnce(
    e: NewDeviceEvent & { at: string; skSuffix: string },
    opts: CallOptions = {},
  ): Promise<boolean> {
    return appendEventOnce(this.doc, this.tables.events, e, this.now, opts);
  }

  /**
   * The health consumer's read: the devices of `serials` (strongly consistent, so a retry after
   * a failed write sees what that write left), {@link HEALTH_VIEW_ATTRIBUTES} only, in
   * BatchGetItem requests of up to 100 keys sent together. Never throws: a failed request, or keys
   * still unprocessed after a few rounds, leave their serials in `unresolved`.
   */
  async getHealthViews(serials: readonly string[], opts: CallOptions = {}): Promise<HealthViews> {
    const result: HealthViews = { found: new Map(), unresolved: new Set() };
    const chunks: string[][] = [];
    for (let i = 0; i < serials.length; i += BATCH_GET_KEYS)
      chunks.push(serials.slice(i, i + BATCH_GET_KEYS));
    await Promise.all(
      chunks.map(async (chunk) => {
        try {
          const { items, unprocessed } = await this.batchGetViews(chunk, opts);
          for (const item of items) result.found.set(item.serial, item);
          for (const serial of unprocessed) result.unresolved.add(serial);
        } catch (err) {
          result.error ??= err;
          for (const serial of chunk) result.unresolved.add(serial);
        }
      }),
    );
    return result;
  }

  private async batchGetViews(
    serials: readonly string[],
    opts: CallOptions,
  ): Promise<{ items: DeviceHealthView[]; unprocessed: string[] }> {
    const pk = TABLES.devices.partitionKey;
    const names = Object.fromEntries(HEALTH_VIEW_ATTRIBUTES.map((a, i) => [`#a${i}`, a]));
    const items: DeviceHealthView[] = [];
    let keys: Record<string, unknown>[] = serials.map((s) => ({ [pk]: s }));
    for (let round = 1; keys.length > 0 && round <= BATCH_GET_ROUNDS; round++) {
      if (round > 1) await new Promise((r) => setTimeout(r, 25 * 2 ** round * Math.random()));
      const out = await this.doc.send(
        new BatchGetCommand({
          RequestItems: {
            [this.tables.devices]: {
              Keys: keys,
              ConsistentRead: true,
              ProjectionExpression: Object.keys(names).join(', '),
              ExpressionAttributeNames: names,
            },
          },
        }),
        { abortSignal: opts.abortSignal },
      );
      items.push(...((out.Responses?.[this.tables.devices] ?? []) as DeviceHealthView[]));
      keys = (out.UnprocessedKeys?.[this.tables.devices]?.Keys ?? []) as Record<string, unknown>[];
    }
    return { items, unprocessed: keys.map((k) => String(k[pk])) };
  }

  /**
   * The health write of a new boot, a firmware change or a device's first report: ONE conditional
   * UpdateItem of healthBootId, healthUptimeS, healthTs, currentFirmware and lastSeen (and the
   * firmware change mark), applied only over an older report, so a late or duplicate report never
   * rolls the state back. lastSeen is only moved forward: when a later one is stored (a connect
   * the presence function recorded meanwhile) the write is made once more without it.
   * Returns whether the state was written and whether lastSeen was; `{ applied: false }` means a
   * newer report is stored already or the device does not exist.
   */
  async recordHealthState(
    serial: string,
    w: HealthStateWrite,
    opts: CallOptions = {},
  ): Promise<{ applied: boolean; lastSeen: boolean }> {
    const sets = ['#boot = :boot', '#up = :up', '#hts = :hts', '#fw = :fw', '#upd = :upd'];
    const names: Record<string, string> = {
      '#pk': TABLES.devices.partitionKey,
      '#boot': 'healthBootId',
      '#up': 'healthUptimeS',
      '#hts': 'healthTs',
      '#fw': 'currentFirmware',
      '#upd': 'updatedAt',
    };
    const values: Record<string, unknown> = {
      ':boot': w.state.bootId,
      ':up': w.state.uptimeS,
      ':hts': w.state.ts,
      ':fw': w.state.fw,
      ':upd': this.now().toISOString(),
    };
    if (w.firmwareChange) {
      sets.push('#fwc = :fwc');
      names['#fwc'] = 'lastFirmwareChange';
      values[':fwc'] = w.firmwareChange;
    }
    const condition = `attribute_exists(#pk) AND ${NEWER_HEALTH_CONDITION}`;
    const write = async (withLastSeen: boolean): Promise<boolean> =>
      this.conditionalUpdate(
        serial,
        {
          UpdateExpression: updateExpression(withLastSeen ? [...sets, '#seen = :seen'] : sets),
          ConditionExpression: withLastSeen ? `${condition} AND ${OLDER_LAST_SEEN_CONDITION}` : condition,
          ExpressionAttributeNames: withLastSeen ? { ...names, '#seen': 'lastSeen' } : names,
          ExpressionAttributeValues: withLastSeen ? { ...values, ':seen': w.seenAt } : values,
        },
        opts,
      );
    if (await write(true)) return { applied: true, lastSeen: true };
    return { applied: await write(false), lastSeen: false };
  }

  /**
   * The throttled heartbeat: lastSeen with the latest uptime and report time, written only when
   * the stored lastSeen is no later than `dueBefore` and the stored report is older than this one.
   * Returns false when a condition failed (lastSeen is recent, a newer report is stored, or the
   * device does not exist).
   */
  async recordLastSeen(serial: string, w: LastSeenWrite, opts: CallOptions = {}): Promise<boolean> {
    return this.conditionalUpdate(
      serial,
      {
        UpdateExpression: 'SET #seen = :seen, #up = :up, #hts = :hts',
        ConditionExpression: `attribute_exists(#pk) AND ${NEWER_HEALTH_CONDITION} AND (attribute_not_exists(#seen) OR #seen <= :due)`,
        ExpressionAttributeNames: {
          '#pk': TABLES.devices.partitionKey,
          '#seen': 'lastSeen',
          '#up': 'healthUptimeS',
          '#hts': 'healthTs',
        },
        ExpressionAttributeValues: { ':seen': w.seenAt, ':due': w.dueBefore, ':up': w.uptimeS, ':hts': w.ts },
      },
      opts,
    );
  }

  /** An UpdateItem of a device that returns false when its condition fails. */
  private async conditionalUpdate(
    serial: string,
    u: Pick<
      ConstructorParameters<typeof UpdateCommand>[0],
      'UpdateExpression' | 'ConditionExpression' | 'ExpressionAttributeNames' | 'ExpressionAttributeValues'
    >,
    opts: CallOptions,
  ): Promise<boolean> {
    try {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.tables.devices,
          Key: { [TABLES.devices.partitionKey]: serial },
          ...u,
          ReturnValues: 'NONE',
        }),
        { abortSignal: opts.abortSignal },
      );
      return true;
    } catch (err) {
      if (isConditionFailure(err)) return false;
      throw err;
    }
  }
}
