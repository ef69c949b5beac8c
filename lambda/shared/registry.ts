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
 */
import { DynamoDBDocumentClient, GetCommand, PutCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
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
    try {
      await this.appendEvent(e, opts);
      return true;
    } catch (err) {
      if (isConditionFailure(err)) return false;
      throw err;
    }
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
      sets.push('#conn = :conn', '#pv = :pv', '#pt = :pt');
      Object.assign(names, { '#conn': 'connected', '#pv': 'presenceVersion', '#pt': 'presenceTimestamp' });
      Object.assign(values, {
        ':conn': input.presence.connected,
        ':pv': input.presence.versionNumber,
        ':pt': input.presence.timestamp,
      });
      extra.push(NEWER_PRESENCE_CONDITION);
    }
    return this.applyTransition('activate', serial, input.expectedStatus, input.expectedRevision, {
      update: `SET ${sets.join(', ')}`,
      names,
      values,
      extraCondition: extra.join(' AND '),
      opts,
    });
  }

  /**
   * Connectivity bookkeeping (not a status transition, so `revision` is left alone): applied
   * only when the event is newer by (versionNumber, timestamp). Returns the updated record, or
   * undefined when the event is stale or a duplicate, or the device does not exist.
   */
  async recordPresence(
    serial: string,
    p: PresenceInput,
    opts: CallOptions = {},
  ): Promise<DeviceRecord | undefined> {
    try {
      const out = await this.doc.send(
        new UpdateCommand({
          TableName: this.tables.devices,
          Key: { [TABLES.devices.partitionKey]: serial },
          UpdateExpression: 'SET #conn = :conn, #pv = :pv, #pt = :pt, #upd = :at',
          ConditionExpression: `attribute_exists(#pk) AND ${NEWER_PRESENCE_CONDITION}`,
          ExpressionAttributeNames: {
            '#pk': TABLES.devices.partitionKey,
            '#conn': 'connected',
            '#pv': 'presenceVersion',
            '#pt': 'presenceTimestamp',
            '#upd': 'updatedAt',
          },
          ExpressionAttributeValues: {
            ':conn': p.connected,
            ':pv': p.versionNumber,
            ':pt': p.timestamp,
            ':at': this.now().toISOString(),
          },
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
