/**
 * Registry administration: the operator-side table operations that the hot path never needs.
 * Used by the `fleet` CLI and the local lab; {@link Registry} (registry.ts) stays the one place
 * for device reads, transitions and single trail appends.
 *
 * - Manifest import: batched reads of existing devices (BatchGetItem, 100 keys) and batched
 *   writes of new ones (BatchWriteItem, 25 items), a few batches in flight, retrying
 *   unprocessed keys/items with exponential backoff and jitter.
 * - Lot administration: create, hold, release, unit counts, claim certificate ids, listing.
 * - Enrollment queries on the sparse `byEnrollmentDay` GSI of the events table (one Query per
 *   UTC day; never a Scan) and the recent trail of one device.
 *
 * The DynamoDB Document client is injected; the clock and the sleep are injectable for tests.
 */
import {
  BatchGetCommand,
  BatchWriteCommand,
  BatchWriteCommandInput,
  DynamoDBDocumentClient,
  QueryCommand,
  ScanCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import { DeviceEvent, DeviceRecord, LotRecord, TABLES } from '../core/model';
import { isConditionFailure, putNew, Registry, RegistryTableNames } from '../lambda/shared/registry';
import { canTransition, LIFECYCLE, refusal } from '../core/lifecycle';
import { enrollmentPartitions, NewDeviceEvent, trailEntry, utcDays } from '../core/trail';

/** DynamoDB limits of the batch APIs. */
export const BATCH_GET_MAX = 100;
export const BATCH_WRITE_MAX = 25;

export interface RegistryAdminOptions {
  now?: () => Date;
  sleep?: (ms: number) => Promise<void>;
  /** Attempts per batch before giving up on unprocessed items. @default 8 */
  maxAttempts?: number;
  /** First backoff delay in ms (doubled per attempt, with full jitter). @default 50 */
  baseDelayMs?: number;
  /** Backoff ceiling in ms. @default 2000 */
  maxDelayMs?: number;
  /** Batch requests in flight at once during imports. @default 4 */
  concurrency?: number;
}

/** The device is missing or the lifecycle table does not allow the operator's change; the message names the fix. */
export class RegistryStateError extends Error {
  override readonly name = 'RegistryStateError';
  constructor(
    readonly operation: string,
    readonly serial: string,
    message: string,
  ) {
    super(message);
  }
}

/** Unprocessed items remained after every retry (throughput exceeded for too long). */
export class BatchRetryExhaustedError extends Error {
  override readonly name = 'BatchRetryExhaustedError';
  constructor(
    readonly operation: 'BatchGetItem' | 'BatchWriteItem',
    readonly remaining: number,
    attempts: number,
  ) {
    super(
      `${operation} left ${remaining} item(s) unprocessed after ${attempts} attempts; the table is throttling: ` +
        'wait a minute and run the same command again (it is idempotent), or raise the table throughput',
    );
  }
}

/** The lot does not exist (for operations that need it to). */
export class LotNotFoundError extends Error {
  override readonly name = 'LotNotFoundError';
  constructor(readonly lot: string) {
    super(`lot ${lot} does not exist; create it with "fleet lot create ${lot}" or import its manifest`);
  }
}

export interface EnrollmentQuery {
  /** Inclusive lower bound (ISO time). */
  since: string;
  /** Exclusive upper bound (ISO time). */
  until: string;
}

type WriteRequest = NonNullable<BatchWriteCommandInput['RequestItems']>[string][number];

export type ProgressCallback = (done: number) => void;

export class RegistryAdmin {
  readonly tables: RegistryTableNames;
  private readonly doc: DynamoDBDocumentClient;
  private readonly now: () => Date;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly maxAttempts: number;
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly concurrency: number;

  constructor(doc: DynamoDBDocumentClient, tables: RegistryTableNames, options: RegistryAdminOptions = {}) {
    this.doc = doc;
    this.tables = tables;
    this.now = options.now ?? (() => new Date());
    this.sleep = options.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
    this.maxAttempts = options.maxAttempts ?? 8;
    this.baseDelayMs = options.baseDelayMs ?? 50;
    this.maxDelayMs = options.maxDelayMs ?? 2000;
    this.concurrency = Math.max(1, options.concurrency ?? 4);
  }

  // -------------------------------------------------------------------------------------------
  // Devices (manifest import)

  /** Existing devices among `serials` (strongly consistent), keyed by serial. */
  async batchGetDevices(
    serials: readonly string[],
    onProgress?: ProgressCallback,
  ): Promise<Map<string, DeviceRecord>> {
    const found = new Map<string, DeviceRecord>();
    const unique = [...new Set(serials)];
    let done = 0;
    await this.forEachChunk(unique, BATCH_GET_MAX, async (chunk) => {
      let keys: Record<string, unknown>[] = chunk.map((serial) => ({
        [TABLES.devices.partitionKey]: serial,
      }));
      for (let attempt = 1; keys.length > 0; attempt += 1) {
        if (attempt > this.maxAttempts)
          throw new BatchRetryExhaustedError('BatchGetItem', keys.length, this.maxAttempts);
        if (attempt > 1) await this.sleep(this.backoff(attempt - 1));
        const out = await this.doc.send(
          new BatchGetCommand({
            RequestItems: { [this.tables.devices]: { Keys: keys, ConsistentRead: true } },
          }),
        );
        for (const item of out.Responses?.[this.tables.devices] ?? []) {
          const d = item as DeviceRecord;
          found.set(d.serial, d);
        }
        keys =
          (out.UnprocessedKeys?.[this.tables.devices]?.Keys as Record<string, unknown>[] | undefined) ?? [];
      }
      done += chunk.length;
      onProgress?.(done);
    });
    return found;
  }

  /**
   * Write new device records in batches of 25. BatchWriteItem is unconditional, so callers
   * pass only serials a {@link batchGetDevices} just found absent.
   */
  async batchPutDevices(devices: readonly DeviceRecord[], onProgress?: ProgressCallback): Promise<void> {
    await this.batchPut(this.tables.devices, devices as unknown as Record<string, unknown>[], onProgress);
  }

  /** Append many trail events in batches (same sk scheme as Registry.appendEvent). */
  async batchAppendEvents(events: readonly NewDeviceEvent[], onProgress?: ProgressCallback): Promise<void> {
    const items = events.map((e) => trailEntry(e, this.now) as unknown as Record<string, unknown>);
    await this.batchPut(this.tables.events, items, onProgress);
  }

  /** Newest trail events of one device first. */
  async recentEvents(serial: string, limit = 20): Promise<DeviceEvent[]> {
    const out = await this.doc.send(
      new QueryCommand({
        TableName: this.tables.events,
        KeyConditionExpression: '#pk = :serial',
        ExpressionAttributeNames: { '#pk': TABLES.events.partitionKey },
        ExpressionAttributeValues: { ':serial': serial },
        ScanIndexForward: false,
        Limit: limit,
      }),
    );
    return (out.Items ?? []) as DeviceEvent[];
  }

  // -------------------------------------------------------------------------------------------
  // Lots

  /** Create a lot (status OK) unless it exists. Returns true when this call created it. */
  async createLot(lot: string, opts: { requireAttestation: boolean }): Promise<boolean> {
    const at = this.now().toISOString();
    const item: Omit<LotRecord, 'claimCertificateIds'> = {
      lot,
      status: 'OK',
      requireAttestation: opts.requireAttestation,
      unitCount: 0,
      createdAt: at,
      updatedAt: at,
    };
    try {
      // claimCertificateIds is a string set; DynamoDB has no empty sets, so it starts absent.
      await putNew(this.doc, this.tables.lots, item, TABLES.lots.partitionKey);
      return true;
    } catch (err) {
      if (isConditionFailure(err)) return false;
      throw err;
    }
  }

  /** Add `delta` units to a lot's unitCount (atomic counter). */
  async addLotUnits(lot: string, delta: number): Promise<void> {
    if (delta === 0) return;
    await this.updateExistingLot(
      lot,
      'ADD #units :d SET #upd = :at',
      { '#units': 'unitCount' },
      { ':d': delta },
    );
  }

  /** Put a lot on HOLD (blocks enrollment of its remaining units). Returns the new record. */
  async holdLot(lot: string, reason: string, actor: string): Promise<LotRecord> {
    return this.updateExistingLot(
      lot,
      'SET #status = :hold, #reason = :reason, #actor = :actor, #since = :at, #upd = :at',
      { '#status': 'status', '#reason': 'holdReason', '#actor': 'holdActor', '#since': 'heldAt' },
      { ':hold': 'HOLD', ':reason': reason, ':actor': actor },
    );
  }

  /** Release a lot from HOLD. Returns the new record. */
  async releaseLot(lot: string, reason: string, actor: string): Promise<LotRecord> {
    return this.updateExistingLot(
      lot,
      'SET #status = :ok, #rreason = :reason, #ractor = :actor, #rat = :at, #upd = :at REMOVE #hreason, #hactor, #since',
      {
        '#status': 'status',
        '#rreason': 'releaseReason',
        '#ractor': 'releaseActor',
        '#rat': 'releasedAt',
        '#hreason': 'holdReason',
        '#hactor': 'holdActor',
        '#since': 'heldAt',
      },
      { ':ok': 'OK', ':reason': reason, ':actor': actor },
    );
  }

  /** Record a claim certificate id on the lot (string set ADD: idempotent). */
  async addClaimCertificate(lot: string, certificateId: string): Promise<LotRecord> {
    return this.updateExistingLot(
      lot,
      'ADD #ids :ids SET #upd = :at',
      { '#ids': 'claimCertificateIds' },
      {
        ':ids': new Set([certificateId]),
      },
    );
  }

  /** Remove claim certificate ids from the lot (string set DELETE: idempotent). */
  async removeClaimCertificates(lot: string, certificateIds: readonly string[]): Promise<LotRecord> {
    if (certificateIds.length === 0)
      throw new Error('removeClaimCertificates needs at least one certificate id');
    return this.updateExistingLot(
      lot,
      'DELETE #ids :ids SET #upd = :at',
      { '#ids': 'claimCertificateIds' },
      {
        ':ids': new Set(certificateIds),
      },
    );
  }

  /**
   * Every lot, sorted by name. The Lots table holds one small item per manufacturing lot
   * (hundreds, not millions), so a paginated Scan is the right read here.
   */
  async listLots(): Promise<LotRecord[]> {
    const lots: LotRecord[] = [];
    let start: Record<string, unknown> | undefined;
    do {
      const out = await this.doc.send(
        new ScanCommand({ TableName: this.tables.lots, ExclusiveStartKey: start }),
      );
      for (const item of out.Items ?? []) lots.push(normaliseLot(item));
      start = out.LastEvaluatedKey;
    } while (start);
    return lots.sort((a, b) => a.lot.localeCompare(b.lot));
  }

  // -------------------------------------------------------------------------------------------
  // Operator transitions

  /**
   * Reset a unit stuck in PROVISIONING back to MANUFACTURED so that it can enroll again: read,
   * check the lifecycle table, let `retirePrevious` make the certificate the registry is about to
   * forget unusable (the CLI revokes it in AWS IoT), then one conditional write guarded by status
   * and revision, then a STATUS_RESET trail entry with the actor, the certificate it forgets and
   * what `retirePrevious` answered (`detail.previousCertificate`).
   * @param retirePrevious runs only when the reset is allowed and the device has a certificate,
   *   before any write; when it throws, nothing is written. Without it the certificate is left
   *   as it is in AWS IoT, still attached to the thing: `fleet device reset` always passes it.
   * @throws RegistryStateError (message names the fix) when the lifecycle table does not allow it.
   * @throws RegistryConditionError when the device changed since the read.
   */
  async resetDevice(
    serial: string,
    opts: { reason: string; actor: string },
    retirePrevious?: (device: DeviceRecord & { certificateId: string }) => Promise<string>,
  ): Promise<DeviceRecord> {
    const registry = new Registry(this.doc, this.tables, this.now);
    const device = await registry.getDevice(serial);
    if (!device || !canTransition('reset', device.status)) {
      throw new RegistryStateError('resetDevice', serial, refusal('reset', serial, device?.status));
    }
    const detail: Record<string, string> = { actor: opts.actor, from: device.status, to: LIFECYCLE.reset.to };
    if (device.certificateId) {
      detail.previousCertificateId = device.certificateId;
      if (retirePrevious) {
        detail.previousCertificate = await retirePrevious({ ...device, certificateId: device.certificateId });
      }
    }
    const revision = device.revision ?? 0;
    const at = this.now().toISOString();
    const updated = await registry.applyTransition('reset', serial, device.status, revision, {
      update: 'SET #status = :to, #rev = :next, #upd = :at REMOVE #cert, #fp',
      names: { '#upd': 'updatedAt', '#cert': TABLES.devices.byCertificateKey, '#fp': 'publicKeyFingerprint' },
      values: { ':rev': revision, ':next': revision + 1, ':at': at },
      opts: {},
    });
    await registry.appendEvent({
      serial,
      at,
      type: LIFECYCLE.reset.event,
      reason: opts.reason,
      lot: device.lot,
      detail,
    });
    return updated;
  }

  // -------------------------------------------------------------------------------------------
  // Enrollment view

  /**
   * Enrollment decisions with `since <= at < until`, oldest first: one paginated Query of the
   * sparse `byEnrollmentDay` GSI per shard of each UTC day in the window (never a Scan), the
   * shards of a day read in parallel and merged by time.
   */
  async queryEnrollments(window: EnrollmentQuery): Promise<DeviceEvent[]> {
    // Stored times are `toISOString()` strings, so bounds are normalised to the same form.
    const q = { since: new Date(window.since).toISOString(), until: new Date(window.until).toISOString() };
    const events: DeviceEvent[] = [];
    for (const day of utcDays(q.since, q.until)) {
      const shards = await Promise.all(
        enrollmentPartitions(day).map((p) => this.queryEnrollmentPartition(p, q)),
      );
      events.push(...shards.flat().sort((a, b) => a.at.localeCompare(b.at) || a.sk.localeCompare(b.sk)));
    }
    return events;
  }

  private async queryEnrollmentPartition(
    partition: string,
    q: { since: string; until: string },
  ): Promise<DeviceEvent[]> {
    const events: DeviceEvent[] = [];
    let start: Record<string, unknown> | undefined;
    do {
      const out = await this.doc.send(
        new QueryCommand({
          TableName: this.tables.events,
          IndexName: TABLES.events.enrollmentIndex,
          KeyConditionExpression: '#day = :day AND #at BETWEEN :since AND :until',
          ExpressionAttributeNames: {
            '#day': TABLES.events.enrollmentPartitionKey,
            '#at': TABLES.events.enrollmentSortKey,
          },
          ExpressionAttributeValues: { ':day': partition, ':since': q.since, ':until': q.until },
          ExclusiveStartKey: start,
        }),
      );
      for (const item of out.Items ?? []) {
        const e = item as DeviceEvent;
        if (e.at < q.until) events.push(e);
      }
      start = out.LastEvaluatedKey;
    } while (start);
    return events;
  }

  // -------------------------------------------------------------------------------------------
  // Internals

  private async updateExistingLot(
    lot: string,
    update: string,
    names: Record<string, string>,
    values: Record<string, unknown>,
  ): Promise<LotRecord> {
    try {
      const out = await this.doc.send(
        new UpdateCommand({
          TableName: this.tables.lots,
          Key: { [TABLES.lots.partitionKey]: lot },
          UpdateExpression: update,
          ConditionExpression: 'attribute_exists(#pk)',
          ExpressionAttributeNames: { '#pk': TABLES.lots.partitionKey, '#upd': 'updatedAt', ...names },
          ExpressionAttributeValues: { ':at': this.now().toISOString(), ...values },
          ReturnValues: 'ALL_NEW',
        }),
      );
      return normaliseLot(out.Attributes ?? {});
    } catch (err) {
      if (isConditionFailure(err)) throw new LotNotFoundError(lot);
      throw err;
    }
  }

  private async batchPut(
    table: string,
    items: Record<string, unknown>[],
    onProgress?: ProgressCallback,
  ): Promise<void> {
    let done = 0;
    await this.forEachChunk(items, BATCH_WRITE_MAX, async (chunk) => {
      let requests: WriteRequest[] = chunk.map((Item) => ({ PutRequest: { Item } }));
      for (let attempt = 1; requests.length > 0; attempt += 1) {
        if (attempt > this.maxAttempts) {
          throw new BatchRetryExhaustedError('BatchWriteItem', requests.length, this.maxAttempts);
        }
        if (attempt > 1) await this.sleep(this.backoff(attempt - 1));
        const out = await this.doc.send(new BatchWriteCommand({ RequestItems: { [table]: requests } }));
        requests = (out.UnprocessedItems?.[table] as typeof requests | undefined) ?? [];
      }
      done += chunk.length;
      onProgress?.(done);
    });
  }

  /** Run `fn` over consecutive chunks with at most `concurrency` in flight; stops at the first error. */
  private async forEachChunk<T>(
    items: readonly T[],
    size: number,
    fn: (chunk: T[]) => Promise<void>,
  ): Promise<void> {
    const chunks: T[][] = [];
    for (let i = 0; i < items.length; i += size) chunks.push(items.slice(i, i + size));
    let next = 0;
    let failed = false;
    const worker = async (): Promise<void> => {
      while (!failed && next < chunks.length) {
        const chunk = chunks[next++];
        try {
          await fn(chunk);
        } catch (err) {
          failed = true;
          throw err;
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.concurrency, chunks.length) }, worker));
  }

  /** Exponential backoff with full jitter. */
  private backoff(retry: number): number {
    const cap = Math.min(this.maxDelayMs, this.baseDelayMs * 2 ** (retry - 1));
    return Math.floor(cap / 2 + (Math.random() * cap) / 2);
  }
}

/** Lot item as stored (claim ids as a string set, possibly absent) to {@link LotRecord}. */
export function normaliseLot(item: Record<string, unknown>): LotRecord {
  const ids = item.claimCertificateIds as Set<string> | string[] | undefined;
  return {
    ...(item as unknown as LotRecord),
    claimCertificateIds: ids instanceof Set ? [...ids].sort() : [...(ids ?? [])].sort(),
    unitCount: typeof item.unitCount === 'number' ? item.unitCount : 0,
    requireAttestation: item.requireAttestation === true,
  };
}
