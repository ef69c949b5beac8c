/**
 * Issue 8, item 5 and the first acceptance line: an unmodified aws-iot-device-sdk-v2
 * `Mqtt5Client` connects to the lab with a device's credentials (a thing, its certificate and
 * the project's real device policy), publishes and subscribes on its own topics and is refused
 * on another device's; mqtt.js on MQTT 3.1.1 and on MQTT 5 get the same decisions, each answered
 * the way AWS IoT Core answers that protocol version.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { IoTClient } from '@aws-sdk/client-iot';
import { App, Stack } from 'aws-cdk-lib';
import { iot, mqtt5 } from 'aws-iot-device-sdk-v2';
import type { MqttClient } from 'mqtt';
import type { IotCore, IotMessage } from '../../../lab/iot';
import '../../../lab/iot/ca';
import { resolve as resolveIntrinsics } from '../../../lab/runtime/intrinsics';
import { DevicePolicy } from '../../../lib/provisioning/device-policy';
import {
  ACCOUNT,
  closed,
  connect,
  connect5,
  identity,
  nextMessage,
  pubackCode,
  publish,
  REGION,
  startCore,
  stopCore,
  subscribe,
  type LogEntry,
} from './helpers';

/** The project's device policy (lib/provisioning/device-policy.ts) as the lab would load it from cdk.out. */
function projectDevicePolicy(prefix: string): unknown {
  const stack = new Stack(new App(), 'Fleet', { env: { account: ACCOUNT, region: REGION } });
  const policy = new DevicePolicy(stack, 'DevicePolicy', { topicPrefix: prefix });
  return resolveIntrinsics(stack.resolve(policy.document), {
    region: REGION,
    accountId: ACCOUNT,
    stackName: 'Fleet',
    parameters: {},
    ref: () => undefined,
    getAtt: () => undefined,
  });
}

let core: IotCore;
let iotClient: IoTClient;
let logs: LogEntry[];
const messages: IotMessage[] = [];

beforeAll(async () => {
  ({ core, iot: iotClient, logs } = await startCore());
  core.onMessage((m) => messages.push(m));
  core.registry.putPolicy('fleet-device', projectDevicePolicy('fleet'));
});
afterAll(async () => {
  await stopCore(core, iotClient);
  await collectClosedSdkClients();
});

/**
 * A closed Mqtt5Client keeps Node alive until its wrapper is garbage collected (its native
 * event callbacks are released by the finalizer: awslabs/aws-crt-nodejs#600), so jest would not
 * exit. Collect garbage once the clients are closed and unreferenced.
 */
async function collectClosedSdkClients(): Promise<void> {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  for (let i = 0; i < 3; i++) {
    await new Promise((resolve) => setImmediate(resolve));
    gc();
  }
}

/** What a client was allowed to do, the same on every protocol version when policies are enforced identically. */
interface Decisions {
  subscribeOwn: 'granted' | 'refused';
  ownMessageBack: boolean;
  subscribeOther: 'granted' | 'refused';
  publishOther: 'accepted' | 'refused';
  otherDelivered: boolean;
}

/** AWS IoT Core's decisions for a device on its own and on another device's topics. */
const SAME_DECISIONS: Decisions = {
  subscribeOwn: 'granted',
  ownMessageBack: true,
  subscribeOther: 'refused',
  publishOther: 'refused',
  otherDelivered: false,
};

function deniedPublishLogged(clientId: string, topic: string): boolean {
  return logs.some(
    (l) =>
      l.clientId === clientId &&
      l.action === 'iot:Publish' &&
      String(l.resource).endsWith(`topic/${topic}`) &&
      /policy denied iot:Publish/.test(String(l.msg)),
  );
}

function deniedSubscribeLogged(clientId: string, filter: string): boolean {
  return logs.some(
    (l) =>
      l.clientId === clientId &&
      l.action === 'iot:Subscribe' &&
      String(l.resource).endsWith(`topicfilter/${filter}`) &&
      /policy denied iot:Subscribe/.test(String(l.msg)),
  );
}

/** Starts an SDK Mqtt5Client and resolves once connected (rejects on a connection failure). */
function startSdkClient(
  creds: { cert: string; key: string },
  clientId: string,
): { client: mqtt5.Mqtt5Client; connected: Promise<mqtt5.ConnectionSuccessEvent> } {
  const config = iot.AwsIotMqtt5ClientConfigBuilder.newDirectMqttBuilderWithMtlsFromMemory(
    core.mqtt.host,
    creds.cert,
    creds.key,
  )
    .withPort(core.mqtt.port)
    .withCertificateAuthority(core.mqtt.caPem)
    .withConnectProperties({ clientId, keepAliveIntervalSeconds: 60 })
    .build();
  const client = new mqtt5.Mqtt5Client(config);
  const connected = new Promise<mqtt5.ConnectionSuccessEvent>((resolve, reject) => {
    client.once('connectionSuccess', resolve);
    client.once('connectionFailure', (e) =>
      reject(new Error(`SDK connection failure: ${e.error.toString()}`)),
    );
  });
  client.start();
  return { client, connected };
}

/** Stops the SDK client and releases its native resources (otherwise jest does not exit). */
async function stopSdkClient(client: mqtt5.Mqtt5Client): Promise<void> {
  const stopped = new Promise<void>((resolve) => client.once('stopped', () => resolve()));
  client.stop();
  await stopped;
  client.close();
}

test('the SDK Mqtt5Client with a device certificate and the project device policy: own topics allowed, another device refused with 0x87', async () => {
  const me = 'fleet-SDK5';
  const other = 'fleet-OTHER5';
  const creds = await identity(iotClient, 'fleet-device', me);
  await identity(iotClient, 'fleet-device', other);
  const { client, connected } = startSdkClient(creds, me);
  try {
    const { connack } = await connected;
    expect(connack.reasonCode).toBe(mqtt5.ConnectReasonCode.Success);

    // subscribe and publish on its own command topic: granted QoS 1, PUBACK success, message back
    const suback = await client.subscribe({
      subscriptions: [{ topicFilter: `cmd/fleet/${me}/echo`, qos: mqtt5.QoS.AtLeastOnce }],
    });
    expect(suback.reasonCodes).toEqual([mqtt5.SubackReasonCode.GrantedQoS1]);
    const back = new Promise<mqtt5.PublishPacket>((resolve) =>
      client.on(
        'messageReceived',
        (e) => e.message.topicName === `cmd/fleet/${me}/echo` && resolve(e.message),
      ),
    );
    const own = (await client.publish({
      topicName: `cmd/fleet/${me}/echo`,
      qos: mqtt5.QoS.AtLeastOnce,
      payload: '{"n":1}',
    })) as mqtt5.PubackPacket;
    expect(own.reasonCode).toBe(mqtt5.PubackReasonCode.Success);
    const message = await back;
    expect(Buffer.from(message.payload as ArrayBuffer).toString()).toBe('{"n":1}');

    // its telemetry topic: accepted and seen by the rules engine with its identity
    const tel = (await client.publish({
      topicName: `dt/fleet/${me}/telemetry`,
      qos: mqtt5.QoS.AtLeastOnce,
      payload: '{"t":1}',
    })) as mqtt5.PubackPacket;
    expect(tel.reasonCode).toBe(mqtt5.PubackReasonCode.Success);
    expect(messages.find((m) => m.topic === `dt/fleet/${me}/telemetry`)).toEqual(
      expect.objectContaining({ clientId: me, principal: creds.id }),
    );

    // another device's topics: SUBACK 0x87 and PUBACK 0x87, nothing routed, still connected
    const refusedSub = await client.subscribe({
      subscriptions: [{ topicFilter: `cmd/fleet/${other}/echo`, qos: mqtt5.QoS.AtLeastOnce }],
    });
    expect(refusedSub.reasonCodes).toEqual([mqtt5.SubackReasonCode.NotAuthorized]);
    const refusedPub = (await client.publish({
      topicName: `cmd/fleet/${other}/echo`,
      qos: mqtt5.QoS.AtLeastOnce,
      payload: '{"n":2}',
    })) as mqtt5.PubackPacket;
    expect(refusedPub.reasonCode).toBe(mqtt5.PubackReasonCode.NotAuthorized);
    expect(messages.some((m) => m.topic === `cmd/fleet/${other}/echo`)).toBe(false);
    const after = (await client.publish({
      topicName: `dt/fleet/${me}/telemetry`,
      qos: mqtt5.QoS.AtLeastOnce,
      payload: '{"t":2}',
    })) as mqtt5.PubackPacket;
    expect(after.reasonCode).toBe(mqtt5.PubackReasonCode.Success);
    expect(deniedSubscribeLogged(me, `cmd/fleet/${other}/echo`)).toBe(true);
    expect(deniedPublishLogged(me, `cmd/fleet/${other}/echo`)).toBe(true);
    const decisions: Decisions = {
      subscribeOwn: suback.reasonCodes[0] <= 1 ? 'granted' : 'refused',
      ownMessageBack: Buffer.from(message.payload as ArrayBuffer).toString() === '{"n":1}',
      subscribeOther: refusedSub.reasonCodes[0] <= 1 ? 'granted' : 'refused',
      publishOther: refusedPub.reasonCode === 0 ? 'accepted' : 'refused',
      otherDelivered: messages.some((m) => m.topic === `cmd/fleet/${other}/echo`),
    };
    expect(decisions).toEqual(SAME_DECISIONS);
  } finally {
    await stopSdkClient(client);
  }
});

test('the SDK Mqtt5Client cannot connect as another device (CONNACK 0x87)', async () => {
  const creds = await identity(iotClient, 'fleet-device', 'fleet-SDK5B');
  await identity(iotClient, 'fleet-device', 'fleet-OTHER5B');
  const { client, connected } = startSdkClient(creds, 'fleet-OTHER5B');
  const failure = new Promise<mqtt5.ConnectionFailureEvent>((resolve) =>
    client.once('connectionFailure', resolve),
  );
  try {
    await expect(connected).rejects.toThrow(/SDK connection failure/);
    expect((await failure).connack?.reasonCode).toBe(mqtt5.ConnectReasonCode.NotAuthorized);
  } finally {
    await stopSdkClient(client);
  }
});

/** The scenario with mqtt.js: own topics, then another device's, recording the decisions. */
async function mqttJsDecisions(c: MqttClient, me: string, other: string, version: 4 | 5): Promise<Decisions> {
  const d: Partial<Decisions> = {};
  const [own] = await subscribe(c, `cmd/fleet/${me}/echo`);
  d.subscribeOwn = own <= 1 ? 'granted' : 'refused';
  const back = nextMessage(c, (t) => t === `cmd/fleet/${me}/echo`);
  await publish(c, `cmd/fleet/${me}/echo`, '{"n":1}');
  d.ownMessageBack = (await back).payload.toString() === '{"n":1}';
  const [otherCode] = await subscribe(c, `cmd/fleet/${other}/echo`);
  d.subscribeOther = otherCode <= 1 ? 'granted' : 'refused';
  expect(otherCode).toBe(version === 5 ? 0x87 : 0x80);
  if (version === 5) {
    const code = await pubackCode(c, `cmd/fleet/${other}/echo`, '{"n":2}');
    expect(code).toBe(0x87);
    d.publishOther = code === 0 ? 'accepted' : 'refused';
    expect(c.connected).toBe(true);
  } else {
    // AWS IoT Core on MQTT 3.1.1: an unauthorized publish closes the connection, no PUBACK
    const gone = closed(c);
    let acked = false;
    c.publish(`cmd/fleet/${other}/echo`, '{"n":2}', { qos: 1 }, (err) => (acked = !err));
    await gone;
    d.publishOther = acked ? 'accepted' : 'refused';
  }
  d.otherDelivered = messages.some((m) => m.topic === `cmd/fleet/${other}/echo` && m.clientId === me);
  expect(deniedSubscribeLogged(me, `cmd/fleet/${other}/echo`)).toBe(true);
  expect(deniedPublishLogged(me, `cmd/fleet/${other}/echo`)).toBe(true);
  return d as Decisions;
}

test.each([
  ['MQTT 3.1.1', 4],
  ['MQTT 5', 5],
] as const)(
  'mqtt.js on %s with the same credentials and policy gets the same decisions',
  async (_n, version) => {
    const me = `fleet-JS${version}`;
    const other = `fleet-JSOTHER${version}`;
    const creds = await identity(iotClient, 'fleet-device', me);
    await identity(iotClient, 'fleet-device', other);
    const c = version === 5 ? (await connect5(core, creds, me)).client : await connect(core, creds, me);
    try {
      expect(await mqttJsDecisions(c, me, other, version)).toEqual(SAME_DECISIONS);
      await expect(connect(core, creds, other, { protocolVersion: version })).rejects.toThrow(
        /Not authorized/i,
      );
    } finally {
      c.end(true);
    }
  },
);
