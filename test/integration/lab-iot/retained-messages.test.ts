/**
 * Retained messages (AWS IoT Developer Guide, "Retained message policy examples"): a RETAIN
 * publish needs iot:RetainPublish as well as iot:Publish on the topic; a retained message is
 * replayed only to a subscriber that may iot:Receive it, and only to a subscription whose filter
 * is its exact topic ("MQTT retained messages": a wildcard filter gets later messages, not the
 * retained one).
 */
import type { IoTClient } from '@aws-sdk/client-iot';
import type { MqttClient } from 'mqtt';
import type { IotCore } from '../../../lab/iot';
import {
  arn,
  closed,
  collect,
  connect,
  endAll,
  identity,
  nextMessage,
  openPolicy,
  startCore,
  stopCore,
  subscribe,
  type LogEntry,
} from './helpers';

let core: IotCore;
let iot: IoTClient;
let logs: LogEntry[];
const messages: Array<{ topic: string; payload: Buffer }> = [];
const open: MqttClient[] = [];

async function conn(policy: string, clientId: string): Promise<MqttClient> {
  const c = await connect(core, await identity(iot, policy), clientId);
  open.push(c);
  return c;
}

function publishRetained(c: MqttClient, topic: string, payload: string): Promise<void> {
  return new Promise((resolve, reject) =>
    c.publish(topic, payload, { qos: 1, retain: true }, (err) => (err ? reject(err) : resolve())),
  );
}

beforeAll(async () => {
  ({ core, iot, logs } = await startCore());
  core.onMessage((m) => messages.push(m));
  core.registry.putPolicy('lab-open', openPolicy());
  core.registry.putPolicy(
    'lab-retain',
    openPolicy([{ Effect: 'Allow', Action: 'iot:RetainPublish', Resource: arn('topic/*') }]),
  );
  // may subscribe to anything under lab/retain, but receive lab/retain/visible only
  core.registry.putPolicy('lab-narrow-receive', {
    Version: '2012-10-17',
    Statement: [
      { Effect: 'Allow', Action: 'iot:Connect', Resource: arn('client/*') },
      { Effect: 'Allow', Action: 'iot:Subscribe', Resource: arn('topicfilter/lab/retain/*') },
      { Effect: 'Allow', Action: 'iot:Receive', Resource: arn('topic/lab/retain/visible') },
    ],
  });
});

afterEach(() => endAll(open));

afterAll(() => stopCore(core, iot));

test('a RETAIN publish without iot:RetainPublish closes the connection and nothing is retained', async () => {
  const keeper = await conn('lab-retain', 'ret-keeper');
  await publishRetained(keeper, 'lab/retain/control', 'control');

  const device = await conn('lab-open', 'ret-denied');
  const gone = closed(device);
  device.publish('lab/retain/denied', 'secret', { qos: 1, retain: true });
  await gone;

  const denial = logs.find(
    (l) => l.action === 'iot:RetainPublish' && String(l.resource).endsWith('lab/retain/denied'),
  );
  expect(denial).toEqual(
    expect.objectContaining({ level: 'warn', reason: 'NO_MATCHING_ALLOW', clientId: 'ret-denied' }),
  );
  expect(messages.some((m) => m.topic === 'lab/retain/denied')).toBe(false);

  // a later subscriber: the denied topic replays nothing; the control topic's retained message
  // arrives after anything the first SUBSCRIBE would have replayed
  const later = await conn('lab-open', 'ret-later');
  const got = collect(later);
  expect(await subscribe(later, 'lab/retain/denied')).toEqual([1]);
  const control = nextMessage(later, (t) => t === 'lab/retain/control');
  await subscribe(later, 'lab/retain/control');
  await control;
  expect(got).toEqual([{ topic: 'lab/retain/control', payload: 'control', retain: true }]);
});

test('with iot:RetainPublish the message is retained and replayed to a later subscriber', async () => {
  const device = await conn('lab-retain', 'ret-allowed');
  await publishRetained(device, 'lab/retain/allowed', 'v1');
  expect(device.connected).toBe(true);

  const later = await conn('lab-open', 'ret-later2');
  const got = collect(later);
  const replay = nextMessage(later, (t) => t === 'lab/retain/allowed');
  await subscribe(later, 'lab/retain/allowed');
  await replay;
  expect(got).toEqual([{ topic: 'lab/retain/allowed', payload: 'v1', retain: true }]);
});

test('a retained message is replayed only to a subscriber allowed to iot:Receive it', async () => {
  const device = await conn('lab-retain', 'ret-source');
  await publishRetained(device, 'lab/retain/hidden', 'hidden');
  await publishRetained(device, 'lab/retain/visible', 'visible');

  const narrow = await conn('lab-narrow-receive', 'ret-narrow');
  const got = collect(narrow);
  expect(await subscribe(narrow, 'lab/retain/hidden')).toEqual([1]);
  const visible = nextMessage(narrow, (t) => t === 'lab/retain/visible');
  await subscribe(narrow, 'lab/retain/visible');
  await visible;
  expect(got.map((m) => m.topic)).toEqual(['lab/retain/visible']);
  expect(
    logs.some((l) => l.action === 'iot:Receive' && String(l.resource).endsWith('lab/retain/hidden')),
  ).toBe(true);
});

test('a wildcard subscription gets no retained message; only the exact topic replays it', async () => {
  const device = await conn('lab-retain', 'ret-dollar');
  await publishRetained(device, '$aws/things/ret-dollar/shadow/update', 'state');
  await publishRetained(device, 'lab/retain/plain', 'plain');

  const wide = await conn('lab-open', 'ret-wide');
  const got = collect(wide);
  expect(await subscribe(wide, '#')).toEqual([1]);
  expect(await subscribe(wide, 'lab/retain/+')).toEqual([1]);
  // a live message after the SUBACKs: anything replayed would have come before it
  const live = nextMessage(wide, (t) => t === 'lab/retain/live');
  await publishRetained(device, 'lab/retain/live', 'now');
  await live;
  expect(got.filter((m) => m.retain)).toEqual([]);
  // the exact topic replays it, the $ topic included
  const plain = nextMessage(wide, (t) => t === 'lab/retain/plain');
  await subscribe(wide, 'lab/retain/plain');
  await plain;
  const explicit = nextMessage(wide, (t) => t === '$aws/things/ret-dollar/shadow/update');
  await subscribe(wide, '$aws/things/ret-dollar/shadow/update');
  await explicit;
  expect(got.filter((m) => m.retain).map((m) => m.topic)).toEqual([
    'lab/retain/plain',
    '$aws/things/ret-dollar/shadow/update',
  ]);
});
