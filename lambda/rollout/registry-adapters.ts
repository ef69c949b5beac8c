/**
 * The registry as the rollout controller sees it: devices with a thing as rollout candidates
 * (ring, hardware revision, lot and whether it is on hold, running firmware), and the OTA outcome
 * of a device appended to its trail once per job (a retried pass writes nothing twice).
 */
import {
  BatchGetCommand,
  type BatchGetCommandOutput,
  DynamoDBDocumentClient,
  ScanCommand,
} from '@aws-sdk/lib-dynamodb';
import type { DeviceRecord, LotRecord } from '../../core/model';
import type { RolloutAction } from '../../core/rollout';
import type { RolloutCandidate } from '../../core/rollout-targets';
import { appendEventOnce, type RegistryTableNames } from '../shared/registry';

const CANDIDATE_ATTRIBUTES = ['serial', 'thingName', 'lot', 'hwRev', 'ring', 'status', 'currentFirmware'];

/** Every registered device with a thing, as a rollout candidate. */
export async function readCandidates(
  doc: DynamoDBDocumentClient,
  tables: Pick<RegistryTableNames, 'devices' | 'lots'>,
): Promise<RolloutCandidate[]> {
  const devices: Pick<
    DeviceRecord,
    'serial' | 'thingName' | 'lot' | 'hwRev' | 'ring' | 'status' | 'currentFirmware'
  >[] = [];
  let start: Record<string, unknown> | undefined;
  do {
    const out = await doc.send(
      new ScanCommand({
        TableName: tables.devices,
        ProjectionExpression: CANDIDATE_ATTRIBUTES.map((_, i) => `#a${i}`).join(', '),
        ExpressionAttributeNames: Object.fromEntries(CANDIDATE_ATTRIBUTES.map((a, i) => [`#a${i}`, a])),
        ExclusiveStartKey: start,
      }),
    );
    for (const item of out.Items ?? []) devices.push(item as (typeof devices)[number]);
    start = out.LastEvaluatedKey;
  } while (start);
  const held = await lotsOnHold(doc, tables.lots, [...new Set(devices.map((d) => d.lot))]);
  return devices
    .filter((d) => d.thingName && d.ring)
    .map((d) => ({
      thing: d.thingName as string,
      serial: d.serial,
      lot: d.lot,
      hwRev: d.hwRev,
      ring: d.ring as RolloutCandidate['ring'],
      status: d.status,
      firmware: d.currentFirmware,
      lotOnHold: held.has(d.lot),
    }));
}

async function lotsOnHold(doc: DynamoDBDocumentClient, table: string, lots: string[]): Promise<Set<string>> {
  const held = new Set<string>();
  for (let i = 0; i < lots.length; i += 100) {
    let keys: Record<string, unknown>[] | undefined = lots.slice(i, i + 100).map((lot) => ({ lot }));
    for (let attempt = 0; keys && keys.length > 0 && attempt < 5; attempt++) {
      const out: BatchGetCommandOutput = await doc.send(
        new BatchGetCommand({ RequestItems: { [table]: { Keys: keys } } }),
      );
      for (const l of (out.Responses?.[table] ?? []) as LotRecord[]) if (l.status === 'HOLD') held.add(l.lot);
      keys = out.UnprocessedKeys?.[table]?.Keys;
    }
  }
  return held;
}

/**
 * The time (epoch ms) of each device's last health report the registry holds: the later of the
 * report's own time (`healthTs`, written with every recorded report) and `lastSeen`. Devices with
 * neither are left out (the silence gate then counts them as silent once their window passes).
 */
export async function readLastHealthReports(
  doc: DynamoDBDocumentClient,
  devicesTable: string,
  devices: readonly { thing: string; serial: string }[],
): Promise<Record<string, number>> {
  const thingOf = new Map(devices.map((d) => [d.serial, d.thing]));
  const serials = [...thingOf.keys()];
  const out: Record<string, number> = {};
  for (let i = 0; i < serials.length; i += 100) {
    let keys: Record<string, unknown>[] | undefined = serials.slice(i, i + 100).map((serial) => ({ serial }));
    for (let attempt = 0; keys && keys.length > 0 && attempt < 5; attempt++) {
      const res: BatchGetCommandOutput = await doc.send(
        new BatchGetCommand({
          RequestItems: {
            [devicesTable]: {
              Keys: keys,
              ProjectionExpression: '#s, #t, #l',
              ExpressionAttributeNames: { '#s': 'serial', '#t': 'healthTs', '#l': 'lastSeen' },
            },
          },
        }),
      );
      for (const d of (res.Responses?.[devicesTable] ?? []) as Pick<
        DeviceRecord,
        'serial' | 'healthTs' | 'lastSeen'
      >[]) {
        const seen = d.lastSeen ? Date.parse(d.lastSeen) : undefined;
        const times = [d.healthTs, seen].filter(
          (t): t is number => typeof t === 'number' && Number.isFinite(t),
        );
        const thing = thingOf.get(d.serial);
        if (thing && times.length > 0) out[thing] = Math.max(...times);
      }
      keys = res.UnprocessedKeys?.[devicesTable]?.Keys;
    }
  }
  return out;
}

/**
 * Appends the outcome to the device's trail at `at` (the stepped-from state's time), keyed by job
 * and outcome, so a retried or concurrent pass of the same step writes nothing twice.
 */
export function trailAppender(
  doc: DynamoDBDocumentClient,
  eventsTable: string,
  now: () => Date,
): (a: Extract<RolloutAction, { kind: 'appendTrail' }>, at: string) => Promise<void> {
  return async (a, at) => {
    await appendEventOnce(
      doc,
      eventsTable,
      {
        serial: a.serial,
        type: 'OTA_OUTCOME',
        reason: a.outcome,
        // `at` is the time of the state the pass stepped from, the same for every retry of that
        // pass, so with the job and outcome it keys the entry: a repeated pass finds it written.
        at,
        skSuffix: `ota#${a.jobId}#${a.outcome}`,
        detail: {
          thing: a.thing,
          jobId: a.jobId,
          version: a.version,
          previousFirmware: a.previousFirmware,
          rollback: a.rollback,
        },
      },
      now,
    );
  };
}
