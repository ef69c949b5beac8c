/**
 * The BUNDLED presence handler against dynalite on loopback: activation, ordering of late and
 * duplicate events, claim connections and malformed events, the disconnect reason and lastSeen.
 */
import { ENV } from '../../../core/env';
import { DeviceEvent, DeviceRecord } from '../../../core/model';
import { Registry, RegistryTableNames } from '../../../lambda/shared/registry';
import { cleanBundles, loadBundledHandler } from '../../helpers/bundle';
import { createRegistryTables, LocalDynamo, readTrail, startDynalite } from '../../helpers/dynalite';
import { deviceRecord, PRESENCE_ENTRY, putDevice } from '../hook/fixtures';
import { activeDevice, CERT } from './support';

type Presence = (event: unknown) => Promise<string>;

let db: LocalDynamo;
let tables: RegistryTableNames;
let registry: Registry;
let presence: Presence;

const OLD_CERT = 'd'.repeat(64);

const lifecycle = (serial: string, over: Record<string, unknown> = {}): Record<string, unknown> => ({
  clientId: `fleet-${serial}`,
  timestamp: 1_760_000_000_000,
  eventType: 'connected',
  sessionIdentifier: '00000000-0000-0000-0000-000000000000',
  principalIdentifier: CERT,
  ipAddress: '192.0.2.10',
  versionNumber: 1,
  ...over,
});

const trail = (serial: string): Promise<DeviceEvent[]> => readTrail(db.doc, tables.events, serial);

async function provisioning(serial: string): Promise<void> {
  await putDevice(
    db.doc,
    tables,
    deviceRecord(serial, 'LOT-A', {
      status: 'PROVISIONING',
      certificateId: CERT,
      thingName: `fleet-${serial}`,
      revision: 1,
    }),
  );
}

beforeAll(async () => {
  db = await startDynalite();
  tables = await createRegistryTables(db.client, 'Presence');
  registry = new Registry(db.doc, tables);
  presence = loadBundledHandler<Presence>(PRESENCE_ENTRY, {
    [ENV.devicesTable]: tables.devices,
    [ENV.eventsTable]: tables.events,
    [ENV.thingNamePrefix]: 'fleet',
    AWS_ENDPOINT_URL_DYNAMODB: db.endpoint,
    AWS_REGION: 'us-east-1',
  });
});

afterAll(async () => {
  await db.stop();
  cleanBundles();
});

test('first connect with the current certificate activates the device', async () => {
  await provisioning('SN-P-0001');
  expect(await presence(lifecycle('SN-P-0001'))).toBe('ACTIVATED');
  const device = await registry.getDevice('SN-P-0001');
  expect(device).toMatchObject({
    status: 'ACTIVE',
    revision: 2,
    connected: true,
    presenceVersion: 1,
    activatedAt: new Date(1_760_000_000_000).toISOString(),
  });
  const events = await trail('SN-P-0001');
  expect(events.map((e) => e.type).sort()).toEqual(['ACTIVATED', 'CONNECTED']);
  expect(events.find((e) => e.type === 'ACTIVATED')?.detail).toMatchObject({
    certificateId: CERT,
    clientId: 'fleet-SN-P-0001',
  });
});

test('a connect with another certificate does not activate', async () => {
  await provisioning('SN-P-0002');
  expect(await presence(lifecycle('SN-P-0002', { principalIdentifier: OLD_CERT }))).toBe('APPLIED');
  expect(await registry.getDevice('SN-P-0002')).toMatchObject({ status: 'PROVISIONING', connected: true });
});

test('out-of-order and duplicate events never roll the connectivity state back', async () => {
  const serial = 'SN-P-0003';
  await provisioning(serial);
  const t = 1_760_000_000_000;
  // The disconnect (version 2) arrives before the connect of the same session (version 1).
  expect(
    await presence(
      lifecycle(serial, {
        eventType: 'disconnected',
        versionNumber: 2,
        timestamp: t + 5000,
        disconnectReason: 'CONNECTION_LOST',
      }),
    ),
  ).toBe('APPLIED');
  // The late connect still activates the device, but leaves connected=false.
  expect(await presence(lifecycle(serial, { versionNumber: 1, timestamp: t }))).toBe('ACTIVATED');
  expect(await registry.getDevice(serial)).toMatchObject({
    status: 'ACTIVE',
    connected: false,
    presenceVersion: 2,
  });
  // A duplicate of the late connect is now stale.
  expect(await presence(lifecycle(serial, { versionNumber: 1, timestamp: t }))).toBe('STALE');
  expect(
    await presence(lifecycle(serial, { eventType: 'disconnected', versionNumber: 2, timestamp: t + 5000 })),
  ).toBe('STALE');
  // A newer connect moves it forward again.
  expect(await presence(lifecycle(serial, { versionNumber: 3, timestamp: t + 9000 }))).toBe('APPLIED');
  expect(await registry.getDevice(serial)).toMatchObject({
    connected: true,
    presenceVersion: 3,
    presenceTimestamp: t + 9000,
  });
  expect((await trail(serial)).map((e) => e.type).sort()).toEqual(['ACTIVATED', 'CONNECTED', 'DISCONNECTED']);
});

test('concurrent duplicates activate exactly once', async () => {
  await provisioning('SN-P-0004');
  const outcomes = await Promise.all(Array.from({ length: 8 }, () => presence(lifecycle('SN-P-0004'))));
  expect(outcomes.filter((o) => o === 'ACTIVATED')).toHaveLength(1);
  expect(outcomes.every((o) => o === 'ACTIVATED' || o === 'STALE')).toBe(true);
  expect((await trail('SN-P-0004')).filter((e) => e.type === 'ACTIVATED')).toHaveLength(1);
});

test.each([
  ['claim connection', lifecycle('x', { clientId: 'prov-8d3f' }), 'IGNORED'],
  ['unknown serial', lifecycle('SN-P-9999'), 'UNKNOWN_DEVICE'],
  ['missing versionNumber', { ...lifecycle('SN-P-0001'), versionNumber: undefined }, 'REJECTED'],
  ['unknown eventType', lifecycle('SN-P-0001', { eventType: 'subscribed' }), 'REJECTED'],
  ['not an object', 'hello', 'REJECTED'],
])('%s is dropped without throwing (%s)', async (_name, e, outcome) => {
  await expect(presence(e)).resolves.toBe(outcome);
});

describe('disconnect reason and lastSeen', () => {
  const t = 1_760_000_000_000;
  const at = (ms: number): string => new Date(ms).toISOString();

  async function active(serial: string, over: Partial<DeviceRecord> = {}): Promise<void> {
    await putDevice(db.doc, tables, activeDevice(serial, { thingName: `fleet-${serial}`, ...over }));
  }

  test('the activating connect sets lastSeen in the same write', async () => {
    await provisioning('SN-P-0101');
    expect(await presence(lifecycle('SN-P-0101', { timestamp: t }))).toBe('ACTIVATED');
    expect(await registry.getDevice('SN-P-0101')).toMatchObject({ status: 'ACTIVE', lastSeen: at(t) });
  });

  test('a disconnect stores its reason; the next connect removes it and sets lastSeen', async () => {
    const serial = 'SN-P-0102';
    await active(serial, { lastSeen: at(t) });
    const disconnect = lifecycle(serial, {
      eventType: 'disconnected',
      versionNumber: 1,
      timestamp: t + 5000,
      disconnectReason: 'MQTT_KEEP_ALIVE_TIMEOUT',
      clientInitiatedDisconnect: false,
    });
    expect(await presence(disconnect)).toBe('APPLIED');
    expect(await registry.getDevice(serial)).toMatchObject({
      connected: false,
      disconnectReason: 'MQTT_KEEP_ALIVE_TIMEOUT',
      // A disconnect does not say the device was seen.
      lastSeen: at(t),
    });
    expect(await presence(lifecycle(serial, { versionNumber: 2, timestamp: t + 9000 }))).toBe('APPLIED');
    const device = await registry.getDevice(serial);
    expect(device).toMatchObject({ connected: true, presenceVersion: 2, lastSeen: at(t + 9000) });
    expect(device).not.toHaveProperty('disconnectReason');
  });

  test('a disconnect without a reason leaves none stored', async () => {
    const serial = 'SN-P-0103';
    await active(serial, { connected: false, disconnectReason: 'CONNECTION_LOST' });
    expect(
      await presence(lifecycle(serial, { eventType: 'disconnected', versionNumber: 2, timestamp: t + 1 })),
    ).toBe('APPLIED');
    expect(await registry.getDevice(serial)).not.toHaveProperty('disconnectReason');
  });

  test('late and duplicate events roll back neither the reason nor lastSeen', async () => {
    const serial = 'SN-P-0104';
    await active(serial);
    expect(await presence(lifecycle(serial, { versionNumber: 5, timestamp: t + 50_000 }))).toBe('APPLIED');
    const late = [
      lifecycle(serial, {
        eventType: 'disconnected',
        versionNumber: 4,
        timestamp: t + 40_000,
        disconnectReason: 'SERVER_ERROR',
      }),
      lifecycle(serial, { versionNumber: 3, timestamp: t + 30_000 }),
      lifecycle(serial, { versionNumber: 5, timestamp: t + 50_000 }),
    ];
    for (const e of late) expect(await presence(e)).toBe('STALE');
    const device = await registry.getDevice(serial);
    expect(device).toMatchObject({ connected: true, presenceVersion: 5, lastSeen: at(t + 50_000) });
    expect(device).not.toHaveProperty('disconnectReason');
  });

  test('a newer connect whose time is before the stored lastSeen moves the connection, not lastSeen', async () => {
    const serial = 'SN-P-0105';
    // The health consumer recorded a report received at t + 60 s.
    await active(serial, { connected: false, presenceVersion: 6, lastSeen: at(t + 60_000) });
    expect(await presence(lifecycle(serial, { versionNumber: 7, timestamp: t + 20_000 }))).toBe('APPLIED');
    expect(await registry.getDevice(serial)).toMatchObject({
      connected: true,
      presenceVersion: 7,
      lastSeen: at(t + 60_000),
    });
  });
});
