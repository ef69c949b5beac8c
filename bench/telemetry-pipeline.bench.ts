/**
 * The lab's telemetry pipeline end to end, against the broker alone, in the same lab and run.
 *
 * - Pipeline: enrolled units publish health reports (QoS 1) on `dt/fleet/<thing>/health`; the
 *   health rule puts each on the Kinesis stream; the bundled health consumer reads them through
 *   the event-source mapping. Timed from the first PUBLISH until the consumer has processed every
 *   record (the rules engine idle, every mapping caught up).
 * - Baseline: the same units publish the same payloads on `dt/fleet/<thing>/bench`, a topic the
 *   device policy allows and no rule selects; a plain MQTT subscriber (its own certificate and
 *   policy) receives them. Timed from the first PUBLISH until the subscriber holds every message.
 *
 * The ratio is pipeline messages/s ÷ baseline messages/s. Rounds alternate, so both see the same
 * machine state; the median round is the figure.
 */
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import {
  AttachPolicyCommand,
  CreateKeysAndCertificateCommand,
  CreatePolicyCommand,
} from '@aws-sdk/client-iot';
import { connect, type MqttClient } from 'mqtt';
import { destroyContext } from '../cli/context';
import { memorySink } from '../cli/output';
import { MqttSession } from '../device';
import { startLabRuntime, type LabRuntime } from '../lab/runtime';
import { labCliContext } from '../lab/scenario/context';
import { runScenario } from '../lab/scenario/run';
import type { BenchResult } from './run';

const UNITS = 60;
const MESSAGES_PER_UNIT = 40;
const ROUNDS = 3;

interface Unit {
  thing: string;
  session: MqttSession;
  ts: number;
}

function healthPayload(u: Unit, i: number): string {
  u.ts += 1000;
  return JSON.stringify({
    ts: u.ts,
    fw: '1.0.0',
    bootId: 'bench-boot',
    uptimeS: 60 + i,
    resetReason: 'POWER_ON',
    heapFreeB: 80_000,
    heapMinB: 60_000,
    rssiDbm: -60,
  });
}

/** Every unit publishes `count` messages on `topicOf(thing)`, one in flight per unit. */
async function publishAll(units: Unit[], count: number, topicOf: (thing: string) => string): Promise<void> {
  await Promise.all(
    units.map(async (u) => {
      for (let i = 0; i < count; i++) await u.session.publish(topicOf(u.thing), healthPayload(u, i), 1);
    }),
  );
}

/** A subscriber with its own certificate and a policy for the bench topics only. */
async function benchSubscriber(lab: LabRuntime): Promise<{ client: MqttClient; received: () => number }> {
  const ctx = await labCliContext(lab, memorySink());
  try {
    const arn = (r: string): string => `arn:aws:iot:us-east-1:123456789012:${r}`;
    await ctx.clients.iot.send(
      new CreatePolicyCommand({
        policyName: 'bench-subscriber',
        policyDocument: JSON.stringify({
          Version: '2012-10-17',
          Statement: [
            { Effect: 'Allow', Action: 'iot:Connect', Resource: arn('client/bench-subscriber') },
            { Effect: 'Allow', Action: 'iot:Subscribe', Resource: arn('topicfilter/dt/fleet/+/bench') },
            { Effect: 'Allow', Action: 'iot:Receive', Resource: arn('topic/dt/fleet/*/bench') },
          ],
        }),
      }),
    );
    const cert = await ctx.clients.iot.send(new CreateKeysAndCertificateCommand({ setAsActive: true }));
    await ctx.clients.iot.send(
      new AttachPolicyCommand({ policyName: 'bench-subscriber', target: cert.certificateArn }),
    );
    let received = 0;
    const { host, port, caPem } = lab.endpoints.mqtt;
    const client = connect({
      protocol: 'mqtts',
      host,
      port,
      ca: caPem,
      cert: cert.certificatePem,
      key: cert.keyPair?.PrivateKey,
      clientId: 'bench-subscriber',
      rejectUnauthorized: true,
      servername: host,
      reconnectPeriod: 0,
    });
    await new Promise<void>((ok, fail) => {
      client.once('connect', () => ok());
      client.once('error', fail);
    });
    await new Promise<void>((ok, fail) =>
      client.subscribe('dt/fleet/+/bench', { qos: 1 }, (err) => (err ? fail(err) : ok())),
    );
    client.on('message', () => received++);
    return { client, received: () => received };
  } finally {
    destroyContext(ctx);
  }
}

async function until(condition: () => boolean, what: string, ms = 120_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

export async function run(): Promise<BenchResult> {
  const dir = await mkdtemp(join(tmpdir(), 'fleet-bench-pipeline-'));
  const lab = await startLabRuntime({
    projectDir: resolve(__dirname, '..'),
    labDir: dir,
    logDir: false,
    maxBatchingWindowMs: 0,
  });
  const units: Unit[] = [];
  let subscriber: Awaited<ReturnType<typeof benchSubscriber>> | undefined;
  try {
    const report = await runScenario(lab, {
      devices: UNITS + 9,
      labDir: dir,
      telemetry: false,
      badCases: true,
    });
    if (!report.ok) throw new Error(`enrollment failed: ${report.failures.join('; ')}`);
    const { host, port, caPem } = lab.endpoints.mqtt;
    const devices = join(dir, 'devices');
    // The identities the scenario stored: every enrolled (and so ACTIVE) unit.
    const things = (await readdir(devices))
      .filter((f) => f.endsWith('.json'))
      .map((f) => f.replace(/\.json$/, ''))
      .sort();
    for (const thing of things.slice(0, UNITS)) {
      const credentials = {
        certPem: await readFile(join(devices, `${thing}.cert.pem`), 'utf8'),
        keyPem: await readFile(join(devices, `${thing}.private.key`), 'utf8'),
      };
      const session = await MqttSession.open({
        endpoint: { host, port, caPem },
        credentials,
        clientId: thing,
        connectTimeoutMs: 10_000,
      });
      units.push({ thing, session, ts: Date.now() - 3_600_000 });
    }
    subscriber = await benchSubscriber(lab);
    const mappingRecords = (): number =>
      lab.stats().eventSourceMappings.reduce((a, m) => a + m.recordsInvoked, 0);
    const total = units.length * MESSAGES_PER_UNIT;
    const rows: { round: number; pipeline: number; baseline: number; ratio: number }[] = [];
    for (let round = 1; round <= ROUNDS; round++) {
      // Baseline: the broker delivering to a plain subscriber.
      const before = subscriber.received();
      let t = performance.now();
      await publishAll(units, MESSAGES_PER_UNIT, (thing) => `dt/fleet/${thing}/bench`);
      await until(() => subscriber!.received() - before >= total, 'the subscriber');
      const baseMs = performance.now() - t;
      // Pipeline: rule → stream → consumer.
      const invoked = mappingRecords();
      t = performance.now();
      await publishAll(units, MESSAGES_PER_UNIT, (thing) => `dt/fleet/${thing}/health`);
      await lab.idle();
      await until(() => mappingRecords() - invoked >= total, 'the consumer');
      await lab.streamsIdle(60_000);
      const pipeMs = performance.now() - t;
      const row = {
        round,
        pipeline: total / (pipeMs / 1000),
        baseline: total / (baseMs / 1000),
        ratio: baseMs / pipeMs,
      };
      rows.push(row);
      console.log(
        `round ${round}: pipeline ${row.pipeline.toFixed(0)} msg/s, broker alone ${row.baseline.toFixed(0)} msg/s, ratio ${row.ratio.toFixed(3)}`,
      );
    }
    const consumer = lab.stats().functions.find((f) => /HealthConsumer/.test(f.functionName));
    const sorted = [...rows].sort((a, b) => a.ratio - b.ratio);
    const median = sorted[Math.floor(sorted.length / 2)];
    const markdown = [
      '## Lab telemetry pipeline against the broker alone',
      '',
      `${units.length} enrolled units each publish ${MESSAGES_PER_UNIT} health reports (QoS 1, one in flight per unit) per round. Pipeline: the health rule, the Kinesis emulator, the event-source mapping and the bundled health consumer, timed until the consumer has processed every record. Baseline: the same units and payloads on a topic no rule selects, delivered by the same broker to a plain subscriber. Same lab, alternating rounds.`,
      '',
      '| Round | Pipeline (messages/s) | Broker alone (messages/s) | Ratio |',
      '| --- | --- | --- | --- |',
      ...rows.map(
        (r) =>
          `| ${r.round} | ${r.pipeline.toFixed(0)} | ${r.baseline.toFixed(0)} | ${r.ratio.toFixed(2)}× |`,
      ),
      '',
      `**Median ratio ${median.ratio.toFixed(2)}×**: the whole path runs at ${median.pipeline.toFixed(0)} messages/s where the broker alone delivers ${median.baseline.toFixed(0)}. Consumer: ${consumer?.invocations ?? 0} invocations, ${consumer?.errors ?? 0} errors.`,
    ].join('\n');
    return { id: 'telemetry-pipeline', markdown };
  } finally {
    subscriber?.client.end(true);
    await Promise.all(units.map((u) => u.session.end()));
    await lab.stop();
    await rm(dir, { recursive: true, force: true });
  }
}
