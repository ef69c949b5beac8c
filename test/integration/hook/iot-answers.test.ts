/**
 * What the hook's DescribeCertificate reader (lambda/shared/iot-certificates.ts) makes of answers
 * that are not AWS IoT's: only AWS IoT's own `404 ResourceNotFoundException` means "no such
 * certificate", any other 404 (a proxy, a VPC endpoint, a wrong endpoint path) is an error, and the
 * bundled hook denies on it instead of letting a second key take over a PROVISIONING serial. Only
 * what can succeed on a second try is retried. A scriptable loopback server plays the endpoint.
 */
import { createServer, Server } from 'node:http';
import { AddressInfo } from 'node:net';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import {
  createCertificateStatusReader,
  IotRequestError,
  isRetryable,
  SdkClientSettings,
} from '../../../lambda/shared/iot-certificates';
import { DeviceEvent } from '../../../core/model';
import { Registry, RegistryTableNames } from '../../../lambda/shared/registry';
import { cleanBundles, loadBundledHandler } from '../../helpers/bundle';
import { createRegistryTables, LocalDynamo, readTrail, startDynalite } from '../../helpers/dynalite';
import {
  createTestCa,
  deviceRecord,
  HOOK_ENTRY,
  hookEnv,
  hookEvent,
  lotRecord,
  putDevice,
  putLot,
  TestCa,
  type Hook,
} from './fixtures';

/** One scripted answer of the loopback endpoint. */
type Answer =
  | 'ACTIVE'
  | 'bare404'
  | 'notFound'
  | 'unknownOperation404'
  | 'throttled503'
  | 'accessDenied403'
  | 'garbled200'
  | 'reset';

interface ScriptedIot {
  endpoint: string;
  /** Answers in order; the last one repeats. */
  script: Answer[];
  requests: number;
  stop(): Promise<void>;
}

async function startScriptedIot(): Promise<ScriptedIot> {
  const state = { script: ['ACTIVE'] as Answer[], requests: 0 };
  const server: Server = createServer((req, res) => {
    req.resume();
    const answer = state.script[Math.min(state.requests, state.script.length - 1)];
    state.requests++;
    const send = (status: number, type: string, body: string, errorType?: string): void => {
      res.writeHead(status, {
        'content-type': type,
        ...(errorType ? { 'x-amzn-ErrorType': errorType } : {}),
      });
      res.end(body);
    };
    const json = 'application/json';
    switch (answer) {
      case 'ACTIVE':
        return send(200, json, JSON.stringify({ certificateDescription: { status: 'ACTIVE' } }));
      case 'bare404':
        return send(404, 'text/html', '<html><body><h1>404 Not Found</h1></body></html>');
      case 'notFound':
        return send(404, json, '{"message":"no such certificate"}', 'ResourceNotFoundException');
      case 'unknownOperation404':
        return send(404, json, '{"message":"no route"}', 'UnknownOperationException');
      case 'throttled503':
        return send(503, json, '{"message":"slow down"}', 'ThrottlingException');
      case 'accessDenied403':
        return send(403, json, '{"message":"no"}', 'AccessDeniedException');
      case 'garbled200':
        return send(200, json, '{"certificateDescription":');
      case 'reset':
        return req.socket.destroy();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return Object.assign(state, {
    endpoint: `http://127.0.0.1:${port}`,
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  });
}

let iot: ScriptedIot;
const handlers: NodeHttpHandler[] = [];

const settings = (over: Partial<SdkClientSettings> = {}): SdkClientSettings => ({
  credentials: async () => ({ accessKeyId: 'AKIDLOCALTEST', secretAccessKey: 'local-test-secret' }),
  region: async () => 'us-east-1',
  useFipsEndpoint: async () => false,
  useDualstackEndpoint: async () => false,
  ...over,
});

function reader(s: SdkClientSettings = settings(), env: Record<string, string> = {}) {
  const handler = new NodeHttpHandler({ connectionTimeout: 1000, requestTimeout: 2000 });
  handlers.push(handler);
  return createCertificateStatusReader({
    handler,
    settings: s,
    maxAttempts: 3,
    env: { AWS_ENDPOINT_URL_IOT: iot.endpoint, ...env },
  });
}

const read = (r = reader()): Promise<string | undefined> => r('a'.repeat(64), AbortSignal.timeout(5000));

function script(...answers: Answer[]): void {
  iot.script = answers;
  iot.requests = 0;
}

beforeAll(async () => {
  iot = await startScriptedIot();
});

afterAll(async () => {
  handlers.forEach((h) => h.destroy());
  await iot.stop();
});

describe("only AWS IoT's own not-found answer means 'no such certificate'", () => {
  test('404 ResourceNotFoundException reads as not found', async () => {
    script('notFound');
    await expect(read()).resolves.toBeUndefined();
  });

  test.each<[Answer, number, string]>([
    ['bare404', 404, 'UnknownError'],
    ['unknownOperation404', 404, 'UnknownOperationException'],
  ])('%s is an IotRequestError, never "not found"', async (answer, statusCode, errorType) => {
    script(answer);
    const err = await read().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IotRequestError);
    expect(err).toMatchObject({ statusCode, errorType });
    expect(iot.requests).toBe(1);
  });
});

describe('retries only what a second try can fix', () => {
  test('a connection reset is retried', async () => {
    script('reset', 'ACTIVE');
    await expect(read()).resolves.toBe('ACTIVE');
    expect(iot.requests).toBe(2);
  });

  test('throttling is retried up to maxAttempts', async () => {
    script('throttled503', 'throttled503', 'ACTIVE');
    await expect(read()).resolves.toBe('ACTIVE');
    expect(iot.requests).toBe(3);
  });

  test.each<Answer>(['accessDenied403', 'garbled200', 'bare404'])('%s is not retried', async (answer) => {
    script(answer);
    await expect(read()).rejects.toThrow();
    expect(iot.requests).toBe(1);
  });

  test('a credentials error is not retried', async () => {
    script('ACTIVE');
    let calls = 0;
    const r = reader(
      settings({
        credentials: async () => {
          calls++;
          throw Object.assign(new Error('Could not load credentials from any providers'), {
            name: 'CredentialsProviderError',
          });
        },
      }),
    );
    await expect(read(r)).rejects.toThrow(/Could not load credentials/);
    expect(calls).toBe(1);
    expect(iot.requests).toBe(0);
  });

  test('an endpoint configuration error is not retried', async () => {
    let calls = 0;
    const r = reader(
      settings({
        region: async () => {
          calls++;
          throw new Error('Region is missing');
        },
      }),
      // No endpoint override: the endpoint derives from the region.
      { AWS_ENDPOINT_URL_IOT: '' },
    );
    await expect(read(r)).rejects.toThrow(/Region is missing/);
    expect(calls).toBe(1);
  });

  test.each<[string, unknown, boolean]>([
    ['ECONNRESET', Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }), true],
    ['ECONNREFUSED', Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }), true],
    ['ETIMEDOUT', Object.assign(new Error('connect ETIMEDOUT'), { code: 'ETIMEDOUT' }), true],
    ['EPIPE', Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }), true],
    ['socket hang up', new Error('socket hang up'), true],
    ['the HTTP handler timeout', Object.assign(new Error('timed out'), { name: 'TimeoutError' }), true],
    ['500', new IotRequestError(500, 'InternalFailureException', 'x'), true],
    ['429 without a type', new IotRequestError(429, 'UnknownError', 'x'), true],
    ['400 ThrottlingException', new IotRequestError(400, 'ThrottlingException', 'x'), true],
    ['404 bare', new IotRequestError(404, 'UnknownError', 'x'), false],
    ['403', new IotRequestError(403, 'AccessDeniedException', 'x'), false],
    ['ENOTFOUND (endpoint name)', Object.assign(new Error('getaddrinfo'), { code: 'ENOTFOUND' }), false],
    ['a signing error', new TypeError('Cannot read properties of undefined'), false],
    ['an unreadable body', new SyntaxError('Unexpected end of JSON input'), false],
    ['an abort', Object.assign(new Error('aborted'), { name: 'AbortError' }), false],
    ['not an Error', 'ECONNRESET', false],
  ])('isRetryable: %s', (_what, err, expected) => {
    expect(isRetryable(err)).toBe(expected);
  });
});

describe('the bundled hook fails closed on an endpoint that is not AWS IoT', () => {
  let db: LocalDynamo;
  let tables: RegistryTableNames;
  let hook: Hook;
  let ca: TestCa;
  let seq = 0;

  beforeAll(async () => {
    [db, ca] = await Promise.all([startDynalite(), createTestCa()]);
    tables = await createRegistryTables(db.client, 'IotAnswers');
    await putLot(db.doc, tables, lotRecord('LOT-A'));
    hook = loadBundledHandler<Hook>(HOOK_ENTRY, hookEnv(tables, db.endpoint, iot.endpoint));
  });

  afterAll(async () => {
    await db.stop();
    cleanBundles();
  });

  /** A unit whose earlier attempt left it PROVISIONING with another key's certificate. */
  async function provisioning(): Promise<string> {
    const serial = `SN-IOT404-${String(++seq).padStart(4, '0')}`;
    await putDevice(
      db.doc,
      tables,
      deviceRecord(serial, 'LOT-A', {
        status: 'PROVISIONING',
        revision: 1,
        certificateId: 'e'.repeat(64),
        publicKeyFingerprint: 'f'.repeat(64),
        thingName: `fleet-${serial}`,
      }),
    );
    return serial;
  }

  async function attempt(serial: string): Promise<{ allow: boolean; trail: DeviceEvent[] }> {
    const cert = await (await ca.newDeviceKey()).issue();
    const res = await hook(hookEvent({ serial, cert, claimCertificateId: 'claim-LOT-A' }));
    return { allow: res.allowProvisioning, trail: await readTrail(db.doc, tables.events, serial) };
  }

  test('a bare 404 text/html answer denies INTERNAL_ERROR and leaves the device alone', async () => {
    const serial = await provisioning();
    script('bare404');
    const { allow, trail } = await attempt(serial);
    expect(allow).toBe(false);
    expect(trail.map((e) => e.reason)).toEqual(['INTERNAL_ERROR']);
    expect(await new Registry(db.doc, tables).getDevice(serial)).toMatchObject({
      certificateId: 'e'.repeat(64),
      revision: 1,
    });
  });

  test("AWS IoT's own not-found answer still allows the proven retry (the header is the key)", async () => {
    const serial = await provisioning();
    script('notFound');
    const { allow, trail } = await attempt(serial);
    expect(allow).toBe(true);
    expect(trail.map((e) => e.reason)).toEqual(['ALLOWED_RETRY_PRIOR_CERT_UNUSABLE']);
  });
});
