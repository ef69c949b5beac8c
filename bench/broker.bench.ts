/**
 * The lab broker's connect and publish throughput on MQTT 5 against MQTT 3.1.1, in the same
 * broker and run (the issue-8 figure).
 *
 * Each round, for each protocol version in turn (alternating which goes first):
 * - connect: CLIENTS clients open mutual-TLS connections at once and wait for their CONNACK;
 *   connects/s from the first TCP connect to the last CONNACK;
 * - publish: every client publishes MESSAGES QoS 1 messages on its own topic, all at once;
 *   messages/s from the first PUBLISH until the broker has handed every one to its listeners
 *   (the rules engine's path) and every PUBACK is back.
 * Each client stays under AWS's 100 publishes per second per connection (MESSAGES ≤ 100 on a
 * fresh connection), so nothing is throttled. The median round is the figure; the ratio is
 * MQTT 5 ÷ MQTT 3.1.1.
 */
import { performance } from 'node:perf_hooks';
import {
  AttachPolicyCommand,
  CreateKeysAndCertificateCommand,
  CreatePolicyCommand,
  IoTClient,
} from '@aws-sdk/client-iot';
import { connect, type MqttClient } from 'mqtt';
import { startIotCore, type IotCore } from '../lab/iot';
import type { BenchResult } from './run';

const CLIENTS = Number(process.env.BROKER_BENCH_CLIENTS ?? 100);
const MESSAGES = Number(process.env.BROKER_BENCH_MESSAGES ?? 100);
const ROUNDS = Number(process.env.BROKER_BENCH_ROUNDS ?? 5);
const VERSIONS = [4, 5] as const;
type Version = (typeof VERSIONS)[number];
const LABEL: Record<Version, string> = { 4: 'MQTT 3.1.1', 5: 'MQTT 5' };

interface Credentials {
  cert: string;
  key: string;
}

async function credentials(core: IotCore): Promise<Credentials> {
  const iot = new IoTClient({
    region: 'us-east-1',
    endpoint: core.controlPlaneUrl,
    credentials: { accessKeyId: 'AKIDBENCH', secretAccessKey: 'bench' },
  });
  try {
    const arn = (r: string): string => `arn:aws:iot:us-east-1:123456789012:${r}`;
    await iot.send(
      new CreatePolicyCommand({
        policyName: 'broker-bench',
        policyDocument: JSON.stringify({
          Version: '2012-10-17',
          Statement: [
            { Effect: 'Allow', Action: 'iot:Connect', Resource: arn('client/bench-*') },
            { Effect: 'Allow', Action: 'iot:Publish', Resource: arn('topic/bench/${iot:ClientId}/data') },
          ],
        }),
      }),
    );
    const cert = await iot.send(new CreateKeysAndCertificateCommand({ setAsActive: true }));
    await iot.send(new AttachPolicyCommand({ policyName: 'broker-bench', target: cert.certificateArn }));
    return { cert: cert.certificatePem!, key: cert.keyPair!.PrivateKey! };
  } finally {
    iot.destroy();
  }
}

function open(core: IotCore, creds: Credentials, clientId: string, version: Version): Promise<MqttClient> {
  return new Promise((resolve, reject) => {
    const c = connect({
      protocol: 'mqtts',
      host: core.mqtt.host,
      port: core.mqtt.port,
      ca: core.mqtt.caPem,
      cert: creds.cert,
      key: creds.key,
      clientId,
      protocolVersion: version,
      reconnectPeriod: 0,
      connectTimeout: 30_000,
    });
    c.once('connect', () => resolve(c));
    c.once('error', reject);
  });
}

interface Round {
  connectsPerSecond: number;
  messagesPerSecond: number;
}

async function round(
  core: IotCore,
  creds: Credentials,
  version: Version,
  seen: () => number,
): Promise<Round> {
  const t0 = performance.now();
  const clients = await Promise.all(
    Array.from({ length: CLIENTS }, (_, i) => open(core, creds, `bench-${version}-${i}`, version)),
  );
  const connected = performance.now();
  const before = seen();
  const target = before + CLIENTS * MESSAGES;
  const payload = JSON.stringify({ ts: Date.now(), value: 21.5, unit: 'c', note: 'x'.repeat(64) });
  const t1 = performance.now();
  await Promise.all(
    clients.map(
      (c) =>
        new Promise<void>((resolve, reject) => {
          let acked = 0;
          for (let i = 0; i < MESSAGES; i++) {
            c.publish(`bench/${c.options.clientId}/data`, payload, { qos: 1 }, (err) => {
              if (err) return reject(err);
              if (++acked === MESSAGES) resolve();
            });
          }
        }),
    ),
  );
  while (seen() < target) await new Promise((r) => setImmediate(r));
  const published = performance.now();
  await Promise.all(clients.map((c) => new Promise<void>((r) => c.end(false, {}, () => r()))));
  return {
    connectsPerSecond: CLIENTS / ((connected - t0) / 1000),
    messagesPerSecond: (CLIENTS * MESSAGES) / ((published - t1) / 1000),
  };
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

export async function run(): Promise<BenchResult> {
  const core = await startIotCore({
    region: 'us-east-1',
    accountId: '123456789012',
    invokeLambda: async () => ({ allowProvisioning: false }),
  });
  try {
    let seen = 0;
    core.onMessage((m) => {
      if (m.topic.startsWith('bench/')) seen++;
    });
    const creds = await credentials(core);
    // A warm-up round of each, not counted.
    for (const v of VERSIONS) await round(core, creds, v, () => seen);
    const rounds: Record<Version, Round[]> = { 4: [], 5: [] };
    for (let r = 0; r < ROUNDS; r++) {
      const order = r % 2 === 0 ? VERSIONS : [...VERSIONS].reverse();
      for (const v of order) {
        const result = await round(core, creds, v, () => seen);
        rounds[v].push(result);
        console.error(
          `round ${r + 1} ${LABEL[v]}: ${result.connectsPerSecond.toFixed(0)} connects/s, ${result.messagesPerSecond.toFixed(0)} msg/s`,
        );
      }
    }
    const fig = (v: Version): Round => ({
      connectsPerSecond: median(rounds[v].map((x) => x.connectsPerSecond)),
      messagesPerSecond: median(rounds[v].map((x) => x.messagesPerSecond)),
    });
    const v3 = fig(4);
    const v5 = fig(5);
    const markdown = [
      '## Lab broker: MQTT 5 against MQTT 3.1.1',
      '',
      `${CLIENTS} clients per round connect at once over mutual TLS, then each publishes ${MESSAGES} QoS 1 messages on its own topic, all at once; timed until the broker has handed every message to its listeners and every PUBACK is back. One broker, the two versions alternating, ${ROUNDS} rounds after a warm-up; medians.`,
      '',
      '| | MQTT 3.1.1 | MQTT 5 | MQTT 5 ÷ 3.1.1 |',
      '|---|---|---|---|',
      `| connects/s | ${v3.connectsPerSecond.toFixed(0)} | ${v5.connectsPerSecond.toFixed(0)} | ${(v5.connectsPerSecond / v3.connectsPerSecond).toFixed(2)}× |`,
      `| messages/s | ${v3.messagesPerSecond.toFixed(0)} | ${v5.messagesPerSecond.toFixed(0)} | ${(v5.messagesPerSecond / v3.messagesPerSecond).toFixed(2)}× |`,
      '',
      'Connects are bound by the TLS handshake (ECDSA P-256 on both sides), which is the same for both versions.',
    ].join('\n');
    return { id: 'broker-mqtt-versions', markdown };
  } finally {
    await core.stop();
  }
}
