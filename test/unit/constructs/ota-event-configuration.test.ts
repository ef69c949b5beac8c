/**
 * The job event configuration custom resource: the pure plan (table-driven), and the handler
 * with a fake IoT API and a captured CloudFormation response: Create keeps the previous
 * settings in the physical id and enables both types, Update keeps the id, Delete restores,
 * a failure answers FAILED with a reason, repeated requests are idempotent.
 */
import {
  applyEventConfig,
  FAILED_PHYSICAL_ID,
  physicalIdOf,
  planEventConfig,
  previousOf,
  settingsOf,
  type EventConfigApi,
  type JobEventSettings,
} from '../../../lambda/ota/event-configuration';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { handle, type CustomResourceEvent } from '../../../lambda/ota/event-configuration.handler';
import { createEventConfigurationsApi } from '../../../lambda/ota/iot-event-configurations';
import { httpHandler } from '../../../lambda/shared/clients';

const OFF: JobEventSettings = { JOB: false, JOB_EXECUTION: false };
const ON: JobEventSettings = { JOB: true, JOB_EXECUTION: true };
const MIXED: JobEventSettings = { JOB: true, JOB_EXECUTION: false };

test.each([
  [OFF, 'iot-job-events:JOB=0,JOB_EXECUTION=0'],
  [ON, 'iot-job-events:JOB=1,JOB_EXECUTION=1'],
  [MIXED, 'iot-job-events:JOB=1,JOB_EXECUTION=0'],
])('physical id keeps %j as %s, and reads back', (settings, id) => {
  expect(physicalIdOf(settings)).toBe(id);
  expect(previousOf(id)).toEqual(settings);
});

test.each([
  undefined,
  '',
  FAILED_PHYSICAL_ID,
  'iot-job-events:JOB=1',
  'other:JOB=1,JOB_EXECUTION=0',
  'iot-job-events:JOB=2,JOB_EXECUTION=0',
])('no settings in physical id %p', (id) => expect(previousOf(id)).toBeUndefined());

describe('planEventConfig', () => {
  test.each([
    ['Create, first call: read first', { RequestType: 'Create' as const }, undefined, { needsCurrent: true }],
    [
      'Create with events off: keep off, enable both',
      { RequestType: 'Create' as const },
      OFF,
      { needsCurrent: false, update: ON, physicalResourceId: physicalIdOf(OFF) },
    ],
    [
      'Create with JOB on: keep it, enable both',
      { RequestType: 'Create' as const },
      MIXED,
      { needsCurrent: false, update: ON, physicalResourceId: physicalIdOf(MIXED) },
    ],
    [
      'Update: same id, enable both, no read',
      { RequestType: 'Update' as const, PhysicalResourceId: physicalIdOf(OFF) },
      undefined,
      { needsCurrent: false, update: ON, physicalResourceId: physicalIdOf(OFF) },
    ],
    [
      'Update of an id that keeps nothing: read like a Create',
      { RequestType: 'Update' as const, PhysicalResourceId: 'x' },
      undefined,
      { needsCurrent: true },
    ],
    [
      'Delete: restore the kept values',
      { RequestType: 'Delete' as const, PhysicalResourceId: physicalIdOf(MIXED) },
      undefined,
      { needsCurrent: false, update: MIXED, physicalResourceId: physicalIdOf(MIXED) },
    ],
    [
      'Delete after a failed Create: nothing to restore',
      { RequestType: 'Delete' as const, PhysicalResourceId: FAILED_PHYSICAL_ID },
      undefined,
      { needsCurrent: false, update: undefined, physicalResourceId: FAILED_PHYSICAL_ID },
    ],
  ])('%s', (_name, req, current, expected) => {
    expect(planEventConfig(req, current)).toMatchObject(expected);
  });

  test('response data names the kept values', () => {
    expect(planEventConfig({ RequestType: 'Create' }, MIXED).data).toEqual({
      PreviousJob: 'true',
      PreviousJobExecution: 'false',
    });
  });
});

test('settingsOf: absent types count as disabled', () => {
  expect(settingsOf(undefined)).toEqual(OFF);
  expect(settingsOf({ JOB: { Enabled: true }, THING: { Enabled: true } })).toEqual(MIXED);
});

/** An account's event configuration in memory. */
function fakeAccount(
  initial: JobEventSettings,
): EventConfigApi & { state: JobEventSettings; calls: string[] } {
  const api = {
    state: { ...initial },
    calls: [] as string[],
    read: async () => {
      api.calls.push('read');
      return { ...api.state };
    },
    write: async (s: JobEventSettings) => {
      api.calls.push(`write ${JSON.stringify(s)}`);
      api.state = { ...s };
    },
  };
  return api;
}

const event = (over: Partial<CustomResourceEvent>): CustomResourceEvent => ({
  RequestType: 'Create',
  ResponseURL: 'https://cloudformation-custom-resource-response.example/x',
  StackId: 'arn:aws:cloudformation:eu-west-1:111122223333:stack/S/1',
  RequestId: 'r-1',
  LogicalResourceId: 'OtaJobEvents',
  ...over,
});

describe('handler', () => {
  test('create, update, delete: enabled while the stack exists, restored after', async () => {
    const account = fakeAccount(MIXED);
    const sent: Array<{ url: string; body: Record<string, unknown> }> = [];
    const send = async (url: string, body: string) => void sent.push({ url, body: JSON.parse(body) });

    await handle(event({}), account, send);
    expect(account.state).toEqual(ON);
    const id = sent[0].body.PhysicalResourceId as string;
    expect(sent[0]).toEqual({
      url: 'https://cloudformation-custom-resource-response.example/x',
      body: expect.objectContaining({
        Status: 'SUCCESS',
        PhysicalResourceId: physicalIdOf(MIXED),
        RequestId: 'r-1',
        LogicalResourceId: 'OtaJobEvents',
        Data: { PreviousJob: 'true', PreviousJobExecution: 'false' },
      }),
    });

    // Someone turned JOB_EXECUTION off meanwhile; an Update turns it back on and keeps the id.
    account.state = { JOB: true, JOB_EXECUTION: false };
    await handle(event({ RequestType: 'Update', PhysicalResourceId: id }), account, send);
    expect(account.state).toEqual(ON);
    expect(sent[1].body.PhysicalResourceId).toBe(id);

    await handle(event({ RequestType: 'Delete', PhysicalResourceId: id }), account, send);
    expect(account.state).toEqual(MIXED);
    // A repeated Delete (CloudFormation retries) writes the same values again: no change.
    await handle(event({ RequestType: 'Delete', PhysicalResourceId: id }), account, send);
    expect(account.state).toEqual(MIXED);
    expect(sent.map((s) => s.body.Status)).toEqual(['SUCCESS', 'SUCCESS', 'SUCCESS', 'SUCCESS']);
    expect(account.calls.filter((c) => c === 'read')).toHaveLength(1);
  });

  test('an IoT failure answers FAILED with the reason, never throws', async () => {
    const api: EventConfigApi = {
      read: async () => {
        throw Object.assign(new Error('User is not authorized'), { name: 'AccessDeniedException' });
      },
      write: async () => undefined,
    };
    let body: Record<string, unknown> = {};
    await handle(event({}), api, async (_u, b) => void (body = JSON.parse(b)));
    expect(body).toMatchObject({
      Status: 'FAILED',
      PhysicalResourceId: FAILED_PHYSICAL_ID,
      Reason: 'AccessDeniedException: User is not authorized',
    });
    // CloudFormation then deletes the failed resource: nothing is restored.
    const account = fakeAccount(OFF);
    await applyEventConfig({ RequestType: 'Delete', PhysicalResourceId: FAILED_PHYSICAL_ID }, account);
    expect(account.calls).toEqual([]);
  });
});

describe('signed IoT adapter (loopback server in place of AWS IoT)', () => {
  const seen: Array<{ method?: string; url?: string; auth?: string; body: string }> = [];
  let server: Server;
  let endpoint: string;
  let state: JobEventSettings = { JOB: false, JOB_EXECUTION: true };
  let throttleNext = 0;

  beforeAll(async () => {
    server = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        seen.push({ method: req.method, url: req.url, auth: req.headers.authorization, body });
        if (throttleNext > 0) {
          throttleNext -= 1;
          res.writeHead(429, {
            'x-amzn-ErrorType': 'ThrottlingException',
            'content-type': 'application/json',
          });
          res.end(JSON.stringify({ message: 'Rate exceeded' }));
          return;
        }
        if (req.method === 'GET' && req.url === '/event-configurations') {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(
            JSON.stringify({
              eventConfigurations: {
                JOB: { Enabled: state.JOB },
                JOB_EXECUTION: { Enabled: state.JOB_EXECUTION },
                THING: { Enabled: true },
              },
            }),
          );
          return;
        }
        if (req.method === 'PATCH' && req.url === '/event-configurations') {
          const e = JSON.parse(body).eventConfigurations;
          state = { JOB: e.JOB.Enabled, JOB_EXECUTION: e.JOB_EXECUTION.Enabled };
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end('{}');
          return;
        }
        res.writeHead(403, {
          'x-amzn-ErrorType': 'AccessDeniedException',
          'content-type': 'application/json',
        });
        res.end(JSON.stringify({ message: 'User is not authorized' }));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  const api = () =>
    createEventConfigurationsApi({
      handler: httpHandler({ connectionTimeoutMs: 1000, requestTimeoutMs: 2000, maxAttempts: 3 }),
      settings: {
        credentials: async () => ({ accessKeyId: 'AKIDTEST', secretAccessKey: 'secret' }),
        region: async () => 'eu-west-1',
        useFipsEndpoint: async () => false,
        useDualstackEndpoint: async () => false,
      },
      maxAttempts: 3,
      env: { AWS_ENDPOINT_URL_IOT: endpoint },
    });

  test('reads and writes with SigV4 (service iot), retrying throttling', async () => {
    const iot = api();
    throttleNext = 1;
    expect(await iot.read()).toEqual({ JOB: false, JOB_EXECUTION: true });
    await iot.write({ JOB: true, JOB_EXECUTION: true });
    expect(state).toEqual({ JOB: true, JOB_EXECUTION: true });
    expect(seen.map((s) => `${s.method} ${s.url}`)).toEqual([
      'GET /event-configurations',
      'GET /event-configurations',
      'PATCH /event-configurations',
    ]);
    expect(seen[2].auth).toMatch(
      /^AWS4-HMAC-SHA256 Credential=AKIDTEST\/\d{8}\/eu-west-1\/iot\/aws4_request/,
    );
    expect(JSON.parse(seen[2].body)).toEqual({
      eventConfigurations: { JOB: { Enabled: true }, JOB_EXECUTION: { Enabled: true } },
    });
  });

  test('a refusal is not retried and names the call', async () => {
    const refusing = createEventConfigurationsApi({
      handler: httpHandler({ connectionTimeoutMs: 1000, requestTimeoutMs: 2000, maxAttempts: 3 }),
      settings: {
        credentials: async () => ({ accessKeyId: 'AKIDTEST', secretAccessKey: 'secret' }),
        region: async () => 'eu-west-1',
        useFipsEndpoint: async () => false,
        useDualstackEndpoint: async () => false,
      },
      maxAttempts: 3,
      env: { AWS_ENDPOINT_URL_IOT: `${endpoint}/denied` },
    });
    const before = seen.length;
    await expect(refusing.read()).rejects.toThrow(
      'AWS IoT DescribeEventConfigurations answered 403 AccessDeniedException: User is not authorized',
    );
    expect(seen.length - before).toBe(1);
  });
});
