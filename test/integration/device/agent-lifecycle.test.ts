/**
 * An agent that has finished (enrolled, denied or gave up) leaves nothing open that keeps the
 * process alive, so `fleet sim` exits right after its summary. In this process every mqtt.js
 * client the device code creates is recorded (the real `connect`, wrapped) and checked
 * afterwards; a child process that runs agents to every outcome must then end by itself.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import type { MqttClient } from 'mqtt';
import { DeviceAgent, type AgentOptions } from '../../../device/agent';
import type { FactoryIdentity } from '../../../device/identity';
import type { IssuedPair } from './support/pki';
import { closedLoopbackPort } from './support/ports';
import { ScriptedIot } from './support/responder';

const mockClients: MqttClient[] = [];
jest.mock('mqtt', () => {
  const actual: typeof import('mqtt') = jest.requireActual('mqtt');
  return {
    ...actual,
    connect: (...args: Parameters<typeof actual.connect>) => {
      const client = actual.connect(...args);
      mockClients.push(client);
      return client;
    },
  };
});

const noSleep = async () => undefined;
const identity = (serial: string): FactoryIdentity => ({
  serial,
  lot: 'LOT-A',
  hwRev: 'A',
  firmware: '1.0.0',
});

/** Client ids of recorded clients whose connection is still up or whose socket still exists. */
function openClients(): string[] {
  return mockClients
    .filter((c) => c.connected || !(c.stream as Duplex).destroyed)
    .map((c) => String(c.options.clientId));
}

/** Resolves once every recorded socket has emitted `close`, so every close handler has run. */
async function socketsClosed(): Promise<void> {
  await Promise.all(
    mockClients.map((c) => {
      const stream = c.stream as Duplex;
      return stream.closed ? undefined : once(stream, 'close');
    }),
  );
}

const root = join(__dirname, '..', '..', '..');

/** Run support/enroll-and-exit.ts with these devices; resolves when the child has exited. */
async function enrollInChild(
  devices: AgentOptions[],
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(
    join(root, 'node_modules', '.bin', 'tsx'),
    [join(__dirname, 'support', 'enroll-and-exit.ts')],
    {
      cwd: root,
    },
  );
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c) => (stdout += String(c)));
  child.stderr.on('data', (c) => (stderr += String(c)));
  child.stdin.end(JSON.stringify(devices));
  const [code] = (await once(child, 'close')) as [number | null];
  return { code, stdout, stderr };
}

beforeEach(() => {
  mockClients.length = 0;
});

test('an agent that gave up leaves no client open', async () => {
  const port = await closedLoopbackPort();
  const result = await new DeviceAgent({
    identity: identity('SN100001'),
    endpoint: { host: '127.0.0.1', port, caPem: '' },
    claim: { certPem: '', keyPem: '' },
    templateName: 'fleet-template',
    backoff: { maxAttempts: 3 },
    // A timer left running would hold the process for this long.
    connectTimeoutMs: 60_000,
    sleep: noSleep,
  }).enroll();

  expect(result).toMatchObject({ outcome: 'gaveUp', cause: `ECONNREFUSED 127.0.0.1:${port}` });
  expect(mockClients).toHaveLength(3);
  expect(openClients()).toEqual([]);
  await socketsClosed();
});

describe('against the scripted responder', () => {
  let iot: ScriptedIot;
  let claim: IssuedPair;

  beforeAll(async () => {
    iot = await ScriptedIot.start();
    claim = await iot.claim('LOT-A');
  });
  afterAll(async () => {
    await iot.stop();
  });
  beforeEach(() => {
    iot.onConnect = undefined;
    iot.onRegister = (call) => ({ accept: { thingName: `thing-${call.parameters.SerialNumber}` } });
  });

  const agent = (serial: string, extra: Partial<AgentOptions> = {}) =>
    new DeviceAgent({
      identity: identity(serial),
      endpoint: iot.endpoint,
      claim,
      templateName: iot.templateName,
      backoff: { maxAttempts: 2 },
      sleep: noSleep,
      ...extra,
    });

  test('enrolled: the claim and thing sessions are both closed when enroll() returns', async () => {
    const result = await agent('SN100002').enroll();
    expect(result.outcome).toBe('enrolled');
    expect(mockClients.map((c) => c.options.clientId)).toEqual(['prov-SN100002', 'thing-SN100002']);
    expect(openClients()).toEqual([]);
    await socketsClosed();
  });

  test('keepConnected: only the thing session stays open, until close()', async () => {
    const dev = agent('SN100003', { keepConnected: true });
    expect((await dev.enroll()).outcome).toBe('enrolled');
    expect(openClients()).toEqual(['thing-SN100003']);
    await dev.close();
    expect(openClients()).toEqual([]);
    expect(dev.session).toBeUndefined();
    await socketsClosed();
  });

  test('denied: the claim session is closed, and close() has nothing left to do', async () => {
    iot.onRegister = () => ({
      reject: { statusCode: 403, errorCode: 'AccessDenied', errorMessage: '[NOT_ON_ALLOWLIST] no' },
    });
    const dev = agent('SN100004');
    expect((await dev.enroll()).outcome).toBe('denied');
    expect(openClients()).toEqual([]);
    await dev.close();
    await socketsClosed();
  });

  test('gave up connecting as the thing: every refused session is closed', async () => {
    iot.onConnect = (clientId) => (clientId.startsWith('thing-') ? 'notAuthorized' : 'accept');
    const result = await agent('SN100005').enroll();
    expect(result).toMatchObject({ outcome: 'gaveUp', phase: 'thingConnect' });
    expect(mockClients.map((c) => c.options.clientId)).toEqual([
      'prov-SN100005',
      'thing-SN100005',
      'thing-SN100005',
    ]);
    expect(openClients()).toEqual([]);
    await socketsClosed();
  });

  test('a process whose agents enrolled, were denied and gave up ends by itself', async () => {
    iot.onRegister = (call) =>
      call.parameters.SerialNumber === 'SN100007'
        ? { reject: { statusCode: 403, errorCode: 'AccessDenied', errorMessage: '[NOT_ON_ALLOWLIST] no' } }
        : { accept: { thingName: `thing-${call.parameters.SerialNumber}` } };
    const port = await closedLoopbackPort();
    const base = {
      claim,
      templateName: iot.templateName,
      backoff: { baseMs: 1, capMs: 1, maxAttempts: 2 },
      // A timer left running would hold the child this long, past its watchdog.
      connectTimeoutMs: 60_000,
      responseTimeoutMs: 60_000,
    };
    const { code, stdout, stderr } = await enrollInChild([
      { ...base, identity: identity('SN100006'), endpoint: iot.endpoint },
      { ...base, identity: identity('SN100007'), endpoint: iot.endpoint },
      { ...base, identity: identity('SN100008'), endpoint: { ...iot.endpoint, port } },
    ]);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(JSON.parse(stdout)).toMatchObject([
      { outcome: 'enrolled', thingName: 'thing-SN100006' },
      { outcome: 'denied', errorMessage: '[NOT_ON_ALLOWLIST] no' },
      { outcome: 'gaveUp', cause: `ECONNREFUSED 127.0.0.1:${port}` },
    ]);
  }, 60_000);
});
