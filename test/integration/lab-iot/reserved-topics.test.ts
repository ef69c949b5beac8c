/**
 * Reserved topics (AWS IoT Developer Guide, "Reserved topics", "Basic Ingest", "Device
 * provisioning MQTT API"): messages the service consumes never reach a subscriber, whatever
 * the subscriber's policy allows. Every subscriber here holds the widest policy.
 */
import type { IoTClient } from '@aws-sdk/client-iot';
import type { MqttClient } from 'mqtt';
import type { IotCore } from '../../../lab/iot';
import {
  isServiceConsumedTopic,
  reservedPublishRefusal,
  reservedSubscribeRefusal,
} from '../../../lab/iot/reserved-topics';
import {
  claimPolicy,
  closed,
  collect,
  connect,
  csr,
  devicePolicy,
  endAll,
  flush,
  FLEET_THING_RESOURCES,
  identity,
  openPolicy,
  publish,
  request,
  startCore,
  stopCore,
  subscribe,
  type LogEntry,
} from './helpers';

const TEMPLATE = 'fleet-tpl';
const templateBody = JSON.stringify({
  Parameters: { SerialNumber: { Type: 'String' }, 'AWS::IoT::Certificate::Id': { Type: 'String' } },
  Resources: FLEET_THING_RESOURCES,
});

let core: IotCore;
let iot: IoTClient;
let logs: LogEntry[];
const messages: Array<{ topic: string; payload: Buffer; clientId?: string }> = [];
const open: MqttClient[] = [];

async function conn(policy: string, clientId: string): Promise<MqttClient> {
  const c = await connect(core, await identity(iot, policy), clientId);
  open.push(c);
  return c;
}

/** `request`, expecting the accepted answer: resolves with its payload. */
async function accepted(c: MqttClient, topic: string, body: unknown): Promise<Record<string, unknown>> {
  const r = await request(c, topic, body);
  expect(r.outcome).toBe('accepted');
  return r.payload;
}

beforeAll(async () => {
  ({ core, iot, logs } = await startCore());
  core.onMessage((m) => messages.push(m));
  core.registry.putPolicy('lab-open', openPolicy());
  core.registry.putPolicy('fleet-claim', claimPolicy(TEMPLATE));
  core.registry.putPolicy('fleet-device', devicePolicy());
  core.registry.putProvisioningTemplate({
    name: TEMPLATE,
    body: templateBody,
    enabled: true,
    hookArn: 'arn:aws:lambda:us-east-1:123456789012:function:hook',
  });
});

afterEach(() => endAll(open));

afterAll(() => stopCore(core, iot));

describe('reserved topic rules', () => {
  test.each([
    ['$aws/rules/lab_rule/dt/x', true],
    ['$aws/certificates/create/json', true],
    ['$aws/certificates/create-from-csr/cbor', true],
    [`$aws/provisioning-templates/${TEMPLATE}/provision/json`, true],
    ['$aws/certificates/create/json/accepted', false],
    ['$aws/events/presence/connected/x', false],
    ['dt/fleet/x/telemetry', false],
  ])('%s consumed by the service: %p', (topic, consumed) => {
    expect(isServiceConsumedTopic(topic)).toBe(consumed);
  });

  test.each([
    ['$aws/rules/#', /Basic Ingest/],
    ['$aws/rules/lab_rule/dt/#', /Basic Ingest/],
    ['$aws/rules', /Basic Ingest/],
    ['$aws/certificates/create/json', /provisioning requests/],
    ['$aws/provisioning-templates/+/provision/json', /provisioning requests/],
    ['$aws/certificates/#', undefined],
    ['$aws/certificates/create/json/accepted', undefined],
    ['$aws/events/presence/connected/+', undefined],
    ['#', undefined],
  ])('SUBSCRIBE %s refused for reason %p', (filter, reason) => {
    const refusal = reservedSubscribeRefusal(filter);
    if (reason) expect(refusal).toMatch(reason);
    else expect(refusal).toBeUndefined();
  });

  test.each([
    ['$aws/events/presence/connected/x', /lifecycle events/],
    ['$aws/certificates/create/json/accepted', /answers/],
    [`$aws/provisioning-templates/${TEMPLATE}/provision/json/rejected`, /answers/],
    ['$aws/certificates/create/json', undefined],
    ['$aws/rules/lab_rule/x', undefined],
  ])('PUBLISH %s refused for reason %p', (topic, reason) => {
    const refusal = reservedPublishRefusal(topic);
    if (reason) expect(refusal).toMatch(reason);
    else expect(refusal).toBeUndefined();
  });
});

describe('Basic Ingest', () => {
  test('SUBSCRIBE to $aws/rules/... is refused even when the policy allows it', async () => {
    const c = await conn('lab-open', 'bi-sub');
    expect(await subscribe(c, '$aws/rules/#')).toEqual([128]);
    expect(await subscribe(c, '$aws/rules/some_rule/dt/fleet/x/telemetry')).toEqual([128]);
    expect(await subscribe(c, ['$aws/rules/some_rule/#', 'lab/ok'])).toEqual([128, 1]);
    expect(
      logs.filter((l) => String(l.msg).includes('Basic Ingest topics cannot be subscribed to')),
    ).toHaveLength(3);
  });

  test('a Basic Ingest publish reaches the rules hook and no subscriber', async () => {
    const all = await conn('lab-open', 'bi-all');
    const aws = await conn('lab-open', 'bi-aws');
    const gotAll = collect(all);
    const gotAws = collect(aws);
    expect(await subscribe(all, '#')).toEqual([1]);
    expect(await subscribe(aws, ['$aws/#', '$aws/+/lab_rule/#', 'lab/marker'])).toEqual([1, 1, 1]);

    const device = await conn('lab-open', 'bi-device');
    await publish(device, '$aws/rules/lab_rule/dt/fleet/bi-device/telemetry', '{"t":1}');
    await flush(core, all, 'lab/marker');
    await flush(core, aws, 'lab/marker');

    expect(gotAll.filter((m) => m.topic !== 'lab/marker')).toEqual([]);
    // $aws/# does get what AWS IoT publishes (the publisher's presence event), nothing else
    expect(gotAws.filter((m) => m.topic !== 'lab/marker').map((m) => m.topic)).toEqual([
      '$aws/events/presence/connected/bi-device',
    ]);
    expect(device.connected).toBe(true);
    expect(messages).toContainEqual(
      expect.objectContaining({
        topic: '$aws/rules/lab_rule/dt/fleet/bi-device/telemetry',
        clientId: 'bi-device',
        payload: Buffer.from('{"t":1}'),
      }),
    );
  });
});

describe('fleet provisioning requests', () => {
  test("another claim connection receives nothing of a unit's provisioning", async () => {
    const spy = await conn('lab-open', 'prov-SPY');
    const got = collect(spy);
    expect(await subscribe(spy, `$aws/provisioning-templates/+/provision/json`)).toEqual([128]);
    expect(
      await subscribe(spy, ['$aws/certificates/#', '$aws/provisioning-templates/#', '$aws/#', 'lab/marker']),
    ).toEqual([1, 1, 1, 1]);

    const unit = await connect(core, await identity(iot, 'fleet-claim'), 'prov-UNIT1');
    open.push(unit);
    const created = await accepted(unit, '$aws/certificates/create-from-csr/json', {
      certificateSigningRequest: (await csr()).csrPem,
    });
    const registered = await accepted(unit, `$aws/provisioning-templates/${TEMPLATE}/provision/json`, {
      certificateOwnershipToken: created.certificateOwnershipToken,
      parameters: { SerialNumber: 'UNIT1' },
    });
    expect(registered.thingName).toBe('fleet-UNIT1');
    await flush(core, spy, 'lab/marker');

    // only what AWS IoT publishes to everyone (the unit's presence event), none of its provisioning
    expect(got.filter((m) => m.topic !== 'lab/marker').map((m) => m.topic)).toEqual([
      '$aws/events/presence/connected/prov-UNIT1',
    ]);
    // requests never reach the rules engine either
    expect(messages.some((m) => m.topic.startsWith('$aws/certificates/'))).toBe(false);
    expect(messages.some((m) => m.topic.startsWith('$aws/provisioning-templates/'))).toBe(false);
  });
});

describe('subscribe-only reserved topics', () => {
  test.each([
    [
      'a provisioning answer',
      '$aws/certificates/create/json/accepted',
      /answers are published by AWS IoT only/,
    ],
    ['a lifecycle event', '$aws/events/presence/connected/someone', /cannot publish lifecycle events/],
  ])('publishing %s closes the connection and reaches nobody', async (_what, topic, why) => {
    const listener = await conn('lab-open', `listen-${topic.length}`);
    const got = collect(listener);
    await subscribe(listener, [topic, 'lab/marker']);
    const forger = await conn('lab-open', `forger-${topic.length}`);
    const gone = closed(forger);
    forger.publish(topic, '{"forged":true}', { qos: 1 });
    await gone;
    await flush(core, listener, 'lab/marker');
    expect(got.filter((m) => m.topic !== 'lab/marker')).toEqual([]);
    expect(logs).toContainEqual(
      expect.objectContaining({
        level: 'warn',
        action: 'iot:Publish',
        resource: topic,
        msg: expect.stringMatching(why),
      }),
    );
  });
});
