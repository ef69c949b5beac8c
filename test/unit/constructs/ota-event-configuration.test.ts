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
import { handle, type CustomResourceEvent } from '../../../lambda/ota/event-configuration.handler';

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
