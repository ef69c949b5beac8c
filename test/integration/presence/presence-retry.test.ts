/**
 * The BUNDLED presence handler retried after a trail append failed (Lambda retries an asynchronous
 * invocation that threw): the retry finds the record already changed and completes the trail, and
 * no entry is ever written twice. A loopback proxy in front of dynalite fails chosen PutItem calls
 * to the Events table once.
 */
import { createServer, request, Server } from 'node:http';
import { AddressInfo } from 'node:net';
import { UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { ENV } from '../../../core/env';
import { DeviceEvent } from '../../../core/model';
import { Registry, RegistryTableNames } from '../../../lambda/shared/registry';
import { cleanBundles, loadBundledHandler } from '../../helpers/bundle';
import { createRegistryTables, LocalDynamo, readTrail, startDynalite } from '../../helpers/dynalite';
import { deviceRecord, PRESENCE_ENTRY, putDevice } from '../hook/fixtures';
import { activeDevice, CERT, T } from './support';

type Presence = (event: unknown) => Promise<string>;

let db: LocalDynamo;
let proxy: Server;
let tables: RegistryTableNames;
let registry: Registry;
let presence: Presence;

/**
 * Which trail appends (PutItem on the Events table, counted from 1) the proxy fails, and a write
 * made once just before the next UpdateItem reaches the table (a concurrent writer).
 */
const faults: { failPuts: Set<number>; puts: number; beforeUpdate?: () => Promise<unknown> } = {
  failPuts: new Set<number>(),
  puts: 0,
};

function failTrailAppends(...which: number[]): void {
  faults.failPuts = new Set(which);
  faults.puts = 0;
}

async function startFaultyProxy(target: URL): Promise<Server> {
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', async () => {
      const body = Buffer.concat(chunks);
      const concurrent = faults.beforeUpdate;
      if (concurrent && String(req.headers['x-amz-target'] ?? '').endsWith('.UpdateItem')) {
        faults.beforeUpdate = undefined;
        await concurrent();
      }
      const isTrailPut =
        String(req.headers['x-amz-target'] ?? '').endsWith('.PutItem') &&
        (JSON.parse(body.toString('utf8')) as { TableName?: string }).TableName === tables.events;
      if (isTrailPut && faults.failPuts.has(++faults.puts)) {
        // Not retryable by the SDK: the invocation fails, as after a throttle that outlasted retries.
        res.writeHead(400, { 'content-type': 'application/x-amz-json-1.0' });
        res.end(
          JSON.stringify({ __type: 'com.amazon.coral.validate#ValidationException', message: 'injected' }),
        );
        return;
      }
      const upstream = request(
        { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers },
        (up) => {
          res.writeHead(up.statusCode ?? 502, up.headers);
          up.pipe(res);
        },
      );
      upstream.end(body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return server;
}

const lifecycle = (serial: string, over: Record<string, unknown> = {}): Record<string, unknown> => ({
  clientId: `fleet-${serial}`,
  timestamp: T,
  eventType: 'connected',
  sessionIdentifier: '00000000-0000-0000-0000-000000000000',
  principalIdentifier: CERT,
  versionNumber: 1,
  ...over,
});

const trail = (serial: string): Promise<DeviceEvent[]> => readTrail(db.doc, tables.events, serial);
const types = async (serial: string): Promise<string[]> => (await trail(serial)).map((e) => e.type).sort();

async function provisioning(serial: string): Promise<void> {
  await putDevice(
    db.doc,
    tables,
    deviceRecord(serial, 'LOT-A', { status: 'PROVISIONING', certificateId: CERT, revision: 1 }),
  );
}

beforeAll(async () => {
  db = await startDynalite();
  tables = await createRegistryTables(db.client, 'PresenceRetry');
  registry = new Registry(db.doc, tables);
  proxy = await startFaultyProxy(new URL(db.endpoint));
  presence = loadBundledHandler<Presence>(PRESENCE_ENTRY, {
    [ENV.devicesTable]: tables.devices,
    [ENV.eventsTable]: tables.events,
    [ENV.thingNamePrefix]: 'fleet',
    AWS_ENDPOINT_URL_DYNAMODB: `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`,
    AWS_REGION: 'us-east-1',
  });
});

afterEach(() => {
  failTrailAppends();
  faults.beforeUpdate = undefined;
});

afterAll(async () => {
  proxy.closeAllConnections();
  await new Promise<void>((resolve) => proxy.close(() => resolve()));
  await db.stop();
  cleanBundles();
});

describe('an activation whose trail append failed is completed by the retry', () => {
  test.each([
    ['the first append', 1],
    ['the second append', 2],
  ])('%s fails: the retry writes what is missing, once', async (_which, failing) => {
    const serial = `SN-RETRY-000${failing}`;
    await provisioning(serial);
    failTrailAppends(failing);
    await expect(presence(lifecycle(serial))).rejects.toThrow(/injected/);
    // The activation itself committed before the append failed.
    expect(await registry.getDevice(serial)).toMatchObject({ status: 'ACTIVE', revision: 2 });
    // Entries are appended activation last: the first failure leaves none, the second CONNECTED.
    expect(await types(serial)).toEqual(failing === 1 ? [] : ['CONNECTED']);

    // Lambda's retry of the same event.
    expect(await presence(lifecycle(serial))).toBe('ACTIVATED');
    expect(await types(serial)).toEqual(['ACTIVATED', 'CONNECTED']);
    expect((await trail(serial)).find((e) => e.type === 'ACTIVATED')?.detail).toMatchObject({
      certificateId: CERT,
      versionNumber: 1,
    });

    // A further delivery of the same event changes nothing.
    expect(await presence(lifecycle(serial))).toBe('STALE');
    expect(await types(serial)).toEqual(['ACTIVATED', 'CONNECTED']);
    expect(await registry.getDevice(serial)).toMatchObject({ status: 'ACTIVE', revision: 2 });
  });

  test('a late activating connect (older than the stored presence) is completed too', async () => {
    const serial = 'SN-RETRY-0003';
    await provisioning(serial);
    const disconnect = lifecycle(serial, {
      eventType: 'disconnected',
      versionNumber: 2,
      timestamp: T + 5000,
    });
    expect(await presence(disconnect)).toBe('APPLIED');
    failTrailAppends(1);
    await expect(presence(lifecycle(serial))).rejects.toThrow(/injected/);
    expect(await presence(lifecycle(serial))).toBe('ACTIVATED');
    expect(await types(serial)).toEqual(['ACTIVATED', 'DISCONNECTED']);
    expect(await registry.getDevice(serial)).toMatchObject({ status: 'ACTIVE', connected: false });
  });
});

test('a connectivity change whose append failed is completed by the retry', async () => {
  const serial = 'SN-RETRY-0004';
  await putDevice(db.doc, tables, activeDevice(serial, { presenceVersion: 4 }));
  const disconnect = lifecycle(serial, {
    eventType: 'disconnected',
    versionNumber: 5,
    timestamp: T + 1000,
    disconnectReason: 'CONNECTION_LOST',
  });
  failTrailAppends(1);
  await expect(presence(disconnect)).rejects.toThrow(/injected/);
  expect(await registry.getDevice(serial)).toMatchObject({ connected: false, presenceVersion: 5 });
  expect(await trail(serial)).toEqual([]);

  expect(await presence(disconnect)).toBe('APPLIED');
  expect(await presence(disconnect)).toBe('STALE');
  expect(await trail(serial)).toEqual([
    expect.objectContaining({
      type: 'DISCONNECTED',
      at: new Date(T + 1000).toISOString(),
      detail: expect.objectContaining({ disconnectReason: 'CONNECTION_LOST', versionNumber: 5 }),
    }),
  ]);
});

test('a connect whose lastSeen a health report overtook between the read and the write is applied without it', async () => {
  const serial = 'SN-RETRY-0005';
  await putDevice(
    db.doc,
    tables,
    activeDevice(serial, { connected: false, lastSeen: new Date(T).toISOString() }),
  );
  const healthSeen = new Date(T + 60_000).toISOString();
  // The health consumer moves lastSeen past the connect after the presence function read the item.
  faults.beforeUpdate = () =>
    db.doc.send(
      new UpdateCommand({
        TableName: tables.devices,
        Key: { serial },
        UpdateExpression: 'SET lastSeen = :s',
        ExpressionAttributeValues: { ':s': healthSeen },
      }),
    );
  expect(await presence(lifecycle(serial, { versionNumber: 2, timestamp: T + 30_000 }))).toBe('APPLIED');
  expect(await registry.getDevice(serial)).toMatchObject({
    connected: true,
    presenceVersion: 2,
    presenceTimestamp: T + 30_000,
    lastSeen: healthSeen,
  });
  expect(await types(serial)).toEqual(['CONNECTED']);
});
