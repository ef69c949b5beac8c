/**
 * Devices on MQTT 5 against the lab's AWS IoT Core (loopback): enrollment through the fleet
 * provisioning MQTT API and streaming over Basic Ingest on MQTT 5, next to a 3.1.1 unit of the same
 * fleet; and the broker's refusals (PUBACK, SUBACK, CONNACK, DISCONNECT) as the device reports them,
 * with the reason code named. Time is a ManualScheduler; every wait is for an event, bounded.
 */
import { LAST_WILL_PAYLOAD } from '../../../core/telemetry';
import {
  classifyFailure,
  ManualScheduler,
  streamFleet,
  TransportError,
  type DeviceAgent,
  type FleetStream,
} from '../../../device';
import { MqttSession } from '../../../device/mqtt-session';
import { arn, connectAsThing } from '../lab-iot/helpers';
import { LabFleet, RULES, streamingDevicePolicy } from './support/lab-fleet';

let lab: LabFleet;
beforeAll(async () => {
  lab = await LabFleet.start();
});
afterAll(async () => {
  await lab.stop();
});

const agents: DeviceAgent[] = [];
const open: FleetStream[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((s) => s.stop().catch(() => undefined)));
  await Promise.all(agents.splice(0).map((a) => a.close()));
  lab.core.registry.putPolicy('fleet-device', streamingDevicePolicy());
});

async function enroll(...args: Parameters<LabFleet['enroll']>): ReturnType<LabFleet['enroll']> {
  const r = await lab.enroll(...args);
  agents.push(...r.list);
  return r;
}

const failure = <T>(p: Promise<T>): Promise<unknown> =>
  p.then(
    () => undefined,
    (e: unknown) => e,
  );

test('a mixed fleet enrolls and streams on MQTT 5 and 3.1.1: every acked message arrived, each once', async () => {
  const { results, list, summary } = await enroll(
    { V5A0001: '1.0.0', V5A0002: '1.0.0', V3A0001: '1.0.0' },
    { V5A0001: '5', V5A0002: '5', V3A0001: '3.1.1' },
  );
  expect(results.map((r) => [r.specSerial, r.outcome, r.mqttVersion]).sort()).toEqual([
    ['V3A0001', 'enrolled', '3.1.1'],
    ['V5A0001', 'enrolled', '5'],
    ['V5A0002', 'enrolled', '5'],
  ]);
  expect(summary.mqttVersions).toEqual({ '3.1.1': 1, '5': 2 });
  for (const a of list) expect(a.session?.mqttVersion).toBe(a.mqttVersion);

  const clock = new ManualScheduler();
  const fleet = streamFleet({
    agents: list,
    scheduler: clock,
    rules: RULES,
    seed: 'mqtt5-lab',
    stagger: false,
    readingIntervalMs: 1_000,
    readingsPerMessage: 5,
    healthIntervalMs: 10_000,
  });
  open.push(fleet);
  for (let t = 0; t < 10_000; t += 250) {
    clock.advance(250);
    await fleet.whenSettled();
  }
  await fleet.whenIdle();
  const report = await fleet.stop();

  for (const [thing, d] of Object.entries(report.byDevice)) {
    expect(d.mqttVersion).toBe(thing.includes('V5') ? '5' : '3.1.1');
    expect(d.telemetry.acked).toBe(2);
    expect(d.health.acked).toBeGreaterThanOrEqual(1);
    expect(d.telemetry.failed + d.health.failed).toBe(0);
    expect(d.lastError).toBeUndefined();
  }
  const received = lab.messages
    .filter((m) => m.topic.startsWith('$aws/rules/') && report.byDevice[m.clientId ?? ''])
    .map((m) => `${m.clientId} ${m.topic}`);
  const acked = [...report.keys({ state: 'acked' })].map((k) => `${k.thing} ${k.topic}`);
  expect(received.sort()).toEqual(acked.sort());
});

test('MQTT 5: a publish outside the policy gets PUBACK 0x87, a subscription SUBACK 0x87; the session stays up', async () => {
  const { list } = await enroll({ V5R0001: '1.0.0' }, '5');
  const session = list[0].session!;
  const other = `dt/fleet/fleet-SOMEONE-ELSE/telemetry`;
  const refused = await failure(session.publish(other, '{"seq":0,"readings":[]}'));
  expect(refused).toBeInstanceOf(TransportError);
  expect(refused).toMatchObject({
    failure: 'PUBLISH_REFUSED',
    reason: `publish refused on ${other}: PUBACK 0x87 Not authorized`,
    reasonCode: 0x87,
  });
  expect(classifyFailure(refused).retryable).toBe(false);
  const cmd = 'cmd/fleet/fleet-V5R0001/reboot';
  const subscribe = await failure(session.subscribe([cmd]));
  expect(subscribe).toMatchObject({
    failure: 'SUBSCRIBE_REFUSED',
    reason: `subscription refused: ${cmd} (0x87 Not authorized)`,
  });
  expect(session.connected).toBe(true);
  await expect(session.publish('dt/fleet/fleet-V5R0001/health', '{}')).resolves.toBeUndefined();
});

test('MQTT 5: a streaming device whose telemetry the policy refuses drops it (PUBACK 0x87) and keeps its link and its health reports', async () => {
  const { list } = await enroll({ V5D0001: '1.0.0' }, '5');
  const clock = new ManualScheduler();
  const fleet = streamFleet({
    agents: list,
    scheduler: clock,
    // A rule the device policy does not name: its Basic Ingest topic is outside the policy.
    rules: { ...RULES, telemetry: 'not_in_the_policy' },
    seed: 'mqtt5-refused',
    stagger: false,
    readingIntervalMs: 1_000,
    readingsPerMessage: 2,
    healthIntervalMs: 3_000,
  });
  open.push(fleet);
  for (let t = 0; t < 6_000; t += 250) {
    clock.advance(250);
    await fleet.whenSettled();
  }
  const report = await fleet.stop();
  const d = report.byDevice['fleet-V5D0001'];
  expect(d.telemetry).toMatchObject({ created: 3, acked: 0, dropped: 3, failed: 3, pending: 0 });
  expect(d.health.acked).toBeGreaterThanOrEqual(2);
  expect(d.links).toMatchObject({ connects: 1, lost: 0 });
  expect(d.lastError).toBe(
    'publish refused on $aws/rules/not_in_the_policy/dt/fleet/fleet-V5D0001/telemetry: PUBACK 0x87 Not authorized',
  );
});

test('MQTT 5: the Last Will is published when the link drops', async () => {
  const { list } = await enroll({ V5W0001: '1.0.0' }, '5');
  lab.clear();
  list[0].dropConnection();
  await lab.until(
    () => lab.messages.some((m) => m.topic === 'dt/fleet/fleet-V5W0001/health'),
    'the Last Will of fleet-V5W0001',
  );
  const will = lab.messages.find((m) => m.topic === 'dt/fleet/fleet-V5W0001/health')!;
  expect(JSON.parse(will.payload.toString())).toEqual(LAST_WILL_PAYLOAD);
});

test('MQTT 5: a second connection with the same client id ends the first with DISCONNECT 0x8e', async () => {
  const { list } = await enroll({ V5T0001: '1.0.0' }, '5');
  const identity = list[0].identityAfterEnrollment!;
  await list[0].close();
  const open = (): Promise<MqttSession> =>
    MqttSession.open({
      endpoint: lab.endpoint,
      credentials: identity.credentials,
      clientId: identity.thingName,
      connectTimeoutMs: 5000,
      mqttVersion: '5',
    });
  const first = await open();
  const second = await open();
  try {
    await first.whenClosed;
    expect(first.serverDisconnect).toMatch(/^DISCONNECT 0x8e Session taken over/);
    const topic = `dt/fleet/${identity.thingName}/health`;
    expect(await failure(first.publish(topic, '{}'))).toMatchObject({
      failure: 'CONNECTION_LOST',
      reason: `closed by the server with DISCONNECT 0x8e Session taken over when publishing ${topic}`,
      reasonCode: 0x8e,
    });
    expect(second.connected).toBe(true);
  } finally {
    await first.end();
    await second.end();
  }
});

test('a policy without the MQTTv5 connect attribute refuses MQTT 5 with CONNACK 0x87; 3.1.1 still connects', async () => {
  const { list } = await enroll({ V5C0001: '1.0.0' }, '5');
  const { list: v3 } = await enroll({ V3C0001: '1.0.0' }, '3.1.1');
  await list[0].close();
  await v3[0].close();
  lab.core.registry.putPolicy('fleet-device', {
    Version: '2012-10-17',
    Statement: [
      connectAsThing({
        'ForAllValues:StringEquals': { 'iot:ConnectAttributes': ['PersistentConnect', 'LastWill'] },
      }),
      { Effect: 'Allow', Action: 'iot:Publish', Resource: arn('topic/dt/fleet/*') },
    ],
  });
  const err = await failure(list[0].reconnect());
  expect(err).toMatchObject({
    failure: 'CONNECT_FAILED',
    reason: 'CONNACK refused: 0x87 Not authorized',
    reasonCode: 0x87,
  });
  await expect(v3[0].reconnect()).resolves.toMatchObject({ mqttVersion: '3.1.1' });
});
