import { PutCommand } from '@aws-sdk/lib-dynamodb';
import { Registry, RegistryConditionError, RegistryTableNames } from '../../../lambda/shared/registry';
import { RegistryAdmin, RegistryStateError } from '../../../cli/registry-admin';
import { LifecycleError } from '../../../core/lifecycle';
import { DeviceRecord } from '../../../core/model';
import { createRegistryTables, LocalDynamo, readTrail, startDynalite } from '../../helpers/dynalite';
import { deviceRecord } from './fixtures';

let db: LocalDynamo;
let tables: RegistryTableNames;
let registry: Registry;

const device = (serial: string, over: Partial<DeviceRecord> = {}): DeviceRecord =>
  deviceRecord(serial, 'L1', over);

const begin = {
  expectedStatus: 'MANUFACTURED' as const,
  expectedRevision: 0,
  thingName: 'fleet-X',
  ring: 'broad' as const,
  certificateId: 'c1',
  publicKeyFingerprint: 'fp1',
  firmware: '1.0.1',
  appendHistory: true,
};

beforeAll(async () => {
  db = await startDynalite();
  tables = await createRegistryTables(db.client, 'Reg');
  registry = new Registry(db.doc, tables, () => new Date('2026-03-04T05:06:07.000Z'));
});
afterAll(async () => db.stop());

async function put(d: DeviceRecord): Promise<void> {
  await db.doc.send(new PutCommand({ TableName: tables.devices, Item: d }));
}

test('beginProvisioning is guarded by status and revision; only one of two racers wins', async () => {
  await put(device('SN-RACE'));
  const results = await Promise.allSettled([
    registry.beginProvisioning('SN-RACE', begin),
    registry.beginProvisioning('SN-RACE', { ...begin, certificateId: 'c2' }),
  ]);
  expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
  const rejected = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
  expect(rejected.reason).toBeInstanceOf(RegistryConditionError);
  const stored = await registry.getDevice('SN-RACE');
  expect(stored).toMatchObject({ status: 'PROVISIONING', revision: 1, currentFirmware: '1.0.1' });
  expect(stored?.certificateHistory).toHaveLength(1);
});

test('retry appends lineage; activate needs the current certificate', async () => {
  await put(device('SN-ACT'));
  await registry.beginProvisioning('SN-ACT', begin);
  await registry.beginProvisioning('SN-ACT', {
    ...begin,
    expectedStatus: 'PROVISIONING',
    expectedRevision: 1,
    certificateId: 'c2',
  });
  await expect(
    registry.activate('SN-ACT', { expectedStatus: 'PROVISIONING', expectedRevision: 2, certificateId: 'c1' }),
  ).rejects.toBeInstanceOf(RegistryConditionError);
  const active = await registry.activate('SN-ACT', {
    expectedStatus: 'PROVISIONING',
    expectedRevision: 2,
    certificateId: 'c2',
    presence: { connected: true, versionNumber: 3, timestamp: 10 },
  });
  expect(active).toMatchObject({ status: 'ACTIVE', revision: 3, connected: true, presenceVersion: 3 });
  expect(active.certificateHistory?.map((c) => c.certificateId)).toEqual(['c1', 'c2']);
});

test('recordPresence never rolls back', async () => {
  await put(device('SN-PRES', { status: 'ACTIVE' }));
  expect(
    await registry.recordPresence('SN-PRES', { connected: true, versionNumber: 2, timestamp: 100 }),
  ).toBeDefined();
  expect(
    await registry.recordPresence('SN-PRES', { connected: false, versionNumber: 1, timestamp: 200 }),
  ).toBeUndefined();
  expect(
    await registry.recordPresence('SN-PRES', { connected: false, versionNumber: 2, timestamp: 100 }),
  ).toBeUndefined();
  expect(
    await registry.recordPresence('SN-PRES', { connected: false, versionNumber: 2, timestamp: 150 }),
  ).toMatchObject({
    connected: false,
  });
  expect(
    await registry.recordPresence('SN-NONE', { connected: true, versionNumber: 1, timestamp: 1 }),
  ).toBeUndefined();
});

test('the operator reset (cli/registry-admin) resets PROVISIONING only and appends STATUS_RESET', async () => {
  const admin = new RegistryAdmin(db.doc, tables, { now: () => new Date('2026-03-04T05:06:07.000Z') });
  await put(device('SN-RESET'));
  await expect(admin.resetDevice('SN-RESET', { reason: 'stuck', actor: 'op' })).rejects.toThrow(
    /already MANUFACTURED/,
  );
  await expect(admin.resetDevice('SN-MISSING', { reason: 'stuck', actor: 'op' })).rejects.toBeInstanceOf(
    RegistryStateError,
  );
  await registry.beginProvisioning('SN-RESET', begin);
  const reset = await admin.resetDevice('SN-RESET', { reason: 'stuck', actor: 'op' });
  expect(reset).toMatchObject({ status: 'MANUFACTURED', revision: 2 });
  expect(reset.certificateId).toBeUndefined();
});

test('a status change the lifecycle table does not list is refused before any write', async () => {
  await put(device('SN-TABLE'));
  const send = jest.spyOn(db.doc, 'send');
  await expect(
    registry.applyTransition('activate', 'SN-TABLE', 'MANUFACTURED' as 'PROVISIONING', 0, {
      update: 'SET #status = :to, #rev = :next',
      names: {},
      values: { ':rev': 0, ':next': 1 },
      opts: {},
    }),
  ).rejects.toBeInstanceOf(LifecycleError);
  expect(send).not.toHaveBeenCalled();
  send.mockRestore();
  expect((await registry.getDevice('SN-TABLE'))?.status).toBe('MANUFACTURED');
});

test('appendEvent sets enrollDay only on enrollment decisions and never overwrites', async () => {
  const a = await registry.appendEvent({ serial: 'SN-EV', type: 'ENROLLMENT_DENIED', reason: 'LOT_UNKNOWN' });
  const b = await registry.appendEvent({ serial: 'SN-EV', type: 'ACTIVATED' });
  expect(a.enrollDay).toMatch(/^2026-03-04#[0-7]$/);
  expect(b.enrollDay).toBeUndefined();
  expect(a.sk).not.toBe(b.sk);
  expect(a.sk.startsWith('2026-03-04T05:06:07.000Z#')).toBe(true);
});

test('appendEventOnce writes a fact with a deterministic sort key once, and never overwrites it', async () => {
  const at = '2026-03-04T01:02:03.000Z';
  const entry = { serial: 'SN-ONCE', type: 'ACTIVATED' as const, at, skSuffix: 'ACTIVATED' };
  expect(await registry.appendEventOnce({ ...entry, detail: { versionNumber: 1 } })).toBe(true);
  expect(await registry.appendEventOnce({ ...entry, detail: { versionNumber: 2 } })).toBe(false);
  const stored = await readTrail(db.doc, tables.events, 'SN-ONCE');
  expect(stored).toEqual([expect.objectContaining({ sk: `${at}#ACTIVATED`, detail: { versionNumber: 1 } })]);
});

test('activate starts only from a status the lifecycle table lists, refused before any write', async () => {
  await put(device('SN-ACT-TABLE', { status: 'ACTIVE', revision: 2, certificateId: 'c1' }));
  const send = jest.spyOn(db.doc, 'send');
  await expect(
    registry.activate('SN-ACT-TABLE', {
      expectedStatus: 'ACTIVE' as 'PROVISIONING',
      expectedRevision: 2,
      certificateId: 'c1',
    }),
  ).rejects.toBeInstanceOf(LifecycleError);
  expect(send).not.toHaveBeenCalled();
  send.mockRestore();
});

test('getLot returns claim ids as an array when stored as a string set', async () => {
  await db.doc.send(
    new PutCommand({
      TableName: tables.lots,
      Item: {
        lot: 'LS',
        status: 'OK',
        claimCertificateIds: new Set(['a', 'b']),
        requireAttestation: false,
        unitCount: 1,
      },
    }),
  );
  expect((await registry.getLot('LS'))?.claimCertificateIds.sort()).toEqual(['a', 'b']);
  expect(await registry.getLot('NOPE')).toBeUndefined();
});
