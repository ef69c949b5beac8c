/**
 * Health consumer throughput: the BUNDLED consumer (as deployed) processing Kinesis batches of
 * health records, against a baseline that only decodes and `JSON.parse`s the same records, in the
 * same run. The ratio (consumer records/s ÷ baseline records/s) is the figure; the goal is ≥ 0.5×.
 *
 * The registry runs in dynalite (a child process). A warm-up pass gives every device its first
 * report (the baseline state, one registry write each) and fills the container's cache; the
 * measured batches are steady state: newer reports of the same devices, about one in fifty a new
 * boot (a registry write; the device's next report, back on its usual boot id, is a new boot
 * too) and a lastSeen write every fifteenth report of a device, the rest judged from the cache
 * with no registry call, as a warm consumer runs. `BENCH_NOWRITE=1` measures the compute path
 * alone: no reboots, and reports a second apart, so no write falls due. Each report is one
 * record; batches of 100 as the mapping's default.
 *
 * Measurement: a round's batches go through the baseline and then the consumer, or the other way
 * round (alternating from round to round, so that neither side always runs first); the figure is
 * the median of the rounds' ratios, over enough rounds that a burst of load on a shared machine,
 * which slows one side of one round, does not move it. (Timing both sides batch by batch shares
 * such bursts better, but it interleaves the consumer's code and data with the parser's in the
 * CPU caches, which costs the bigger consumer more: in trials the ratio came out about 0.1 lower.)
 */
import { performance } from 'node:perf_hooks';
import type { KinesisStreamBatchResponse, KinesisStreamEvent, KinesisStreamRecord } from 'aws-lambda';
import { ENV } from '../core/env';
import { startEmulatorProcess } from '../lab/runtime/emulators';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { BatchWriteCommand, DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { cleanBundles, loadBundledHandler } from '../test/helpers/bundle';
import { createRegistryTables } from '../test/helpers/dynalite';
import { deviceRecord } from '../test/integration/hook/fixtures';
import { HEALTH_ENTRY, reportRecord, T0 } from '../test/integration/telemetry/support';
import type { BenchResult } from './run';

const DEVICES = 2_000;
const BATCH = 100;
/** Measured batches per round (each device reports this many times per round ÷ devices). */
const BATCHES = 200;
const ROUNDS = 9;

/** The compute path only: no report makes a registry write due. */
const NO_WRITE = Boolean(process.env.BENCH_NOWRITE);

type Consumer = (event: KinesisStreamEvent) => Promise<KinesisStreamBatchResponse>;

const serial = (i: number): string => `BENCH${String(i).padStart(6, '0')}`;
const thing = (i: number): string => `fleet-${serial(i)}`;

/** `count` batches of reports, device after device, starting at report number `from`. */
function batches(from: number, count: number): KinesisStreamEvent[] {
  const out: KinesisStreamEvent[] = [];
  let n = from;
  for (let b = 0; b < count; b++) {
    const records: KinesisStreamRecord[] = [];
    for (let k = 0; k < BATCH; k++, n++) {
      const device = n % DEVICES;
      const round = Math.floor(n / DEVICES);
      const reboot = NO_WRITE ? false : device % 50 === round % 50 && round > 0;
      records.push(
        reportRecord(thing(device), {
          ts: T0 + round * (NO_WRITE ? 1_000 : 60_000) + device,
          bootId: reboot ? `boot-${round}` : 'boot-0',
          uptimeS: reboot ? 5 : 60 * round + 60,
          resetReason: reboot ? 'WATCHDOG' : 'POWER_ON',
          fw: '1.4.2',
        }),
      );
    }
    out.push({ Records: records });
  }
  return out;
}

/** The baseline: what any consumer must do with a record (decode, parse). */
function parseOnly(events: readonly KinesisStreamEvent[]): number {
  let n = 0;
  for (const e of events)
    for (const r of e.Records) {
      const doc = JSON.parse(Buffer.from(r.kinesis.data, 'base64').toString('utf8')) as { ts?: number };
      if (doc.ts) n++;
    }
  return n;
}

async function consumeAll(consume: Consumer, events: readonly KinesisStreamEvent[]): Promise<number> {
  let failures = 0;
  for (const e of events) failures += (await consume(e)).batchItemFailures.length;
  return failures;
}

/** One round: `BATCHES` batches from report number `from`, through both sides in the given order. */
async function measureRound(
  consume: Consumer,
  from: number,
  baselineFirst: boolean,
): Promise<{ baseMs: number; consumerMs: number; failures: number }> {
  const events = batches(from, BATCHES);
  let baseMs = 0;
  const baseline = (): void => {
    const t = performance.now();
    parseOnly(events);
    baseMs = performance.now() - t;
  };
  if (baselineFirst) baseline();
  const t = performance.now();
  const failures = await consumeAll(consume, events);
  const consumerMs = performance.now() - t;
  if (!baselineFirst) baseline();
  return { baseMs, consumerMs, failures };
}

/** Run `f` with stdout silenced (the consumer writes its EMF documents and logs there). */
async function quiet<T>(f: () => Promise<T>): Promise<T> {
  const write = process.stdout.write.bind(process.stdout);
  process.stdout.write = (() => true) as typeof process.stdout.write;
  try {
    return await f();
  } finally {
    process.stdout.write = write;
  }
}

export async function run(): Promise<BenchResult> {
  const dynalite = await startEmulatorProcess('dynalite');
  const client = new DynamoDBClient({
    endpoint: dynalite.endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'bench', secretAccessKey: 'bench' },
  });
  try {
    const tables = await createRegistryTables(client);
    const doc = DynamoDBDocumentClient.from(client);
    for (let i = 0; i < DEVICES; i += 25) {
      const items = Array.from({ length: Math.min(25, DEVICES - i) }, (_, k) =>
        deviceRecord(serial(i + k), 'LOT-BENCH', {
          status: 'ACTIVE',
          thingName: thing(i + k),
          ring: (['canary', 'early', 'broad'] as const)[(i + k) % 3],
          currentFirmware: '1.4.2',
        }),
      );
      await doc.send(
        new BatchWriteCommand({
          RequestItems: { [tables.devices]: items.map((Item) => ({ PutRequest: { Item } })) },
        }),
      );
    }
    const consume = loadBundledHandler<Consumer>(HEALTH_ENTRY, {
      [ENV.devicesTable]: tables.devices,
      [ENV.eventsTable]: tables.events,
      [ENV.thingNamePrefix]: 'fleet',
      [ENV.lastSeenIntervalSeconds]: '900',
      [ENV.lowHeapBytes]: '16384',
      [ENV.weakRssiDbm]: '-85',
      [ENV.maxFirmwareDimensions]: '50',
      [ENV.healthDeadLetterQueueUrl]: 'https://sqs.us-east-1.amazonaws.com/123456789012/bench-dlq',
      AWS_ENDPOINT_URL_DYNAMODB: dynalite.endpoint,
      AWS_REGION: 'us-east-1',
      AWS_ACCESS_KEY_ID: 'bench',
      AWS_SECRET_ACCESS_KEY: 'bench',
      POWERTOOLS_LOG_LEVEL: 'WARN',
    });
    // Warm-up: every device's first report (baseline state) and the cache.
    const warm = batches(0, DEVICES / BATCH);
    const warmFailures = await quiet(() => consumeAll(consume, warm));
    if (warmFailures > 0) throw new Error(`warm-up: ${warmFailures} records failed`);

    const rows: { round: number; consumer: number; baseline: number; ratio: number }[] = [];
    let from = DEVICES;
    for (let round = 1; round <= ROUNDS; round++) {
      const records = BATCHES * BATCH;
      const { baseMs, consumerMs, failures } = await quiet(() =>
        measureRound(consume, from, round % 2 === 1),
      );
      from += records;
      if (failures > 0) throw new Error(`round ${round}: ${failures} records failed`);
      const row = {
        round,
        consumer: records / (consumerMs / 1000),
        baseline: records / (baseMs / 1000),
        ratio: baseMs / consumerMs,
      };
      rows.push(row);
      console.log(
        `round ${round}: consumer ${row.consumer.toFixed(0)} rec/s, parse-only ${row.baseline.toFixed(0)} rec/s, ratio ${row.ratio.toFixed(3)}`,
      );
    }
    const sorted = [...rows].sort((a, b) => a.ratio - b.ratio);
    const median = sorted[Math.floor(sorted.length / 2)];
    const markdown = [
      '## Health consumer throughput',
      '',
      `The bundled health consumer against dynalite, ${DEVICES} devices, batches of ${BATCH} health records, ${BATCHES} batches per round after a warm-up that gives every device its baseline report. ${
        NO_WRITE
          ? "Compute path (`BENCH_NOWRITE=1`): no registry write falls due; every report is judged from the container's cache."
          : "About one report in fifty starts a new boot and the next report of that device another (registry writes), and every device's lastSeen falls due every fifteenth report; the rest are judged from the container's cache."
      } Baseline: base64-decode and \`JSON.parse\` of the same records, same run, before or after the consumer in alternate rounds.`,
      '',
      '| Round | Consumer (records/s) | Parse only (records/s) | Ratio |',
      '| --- | --- | --- | --- |',
      ...rows.map(
        (r) =>
          `| ${r.round} | ${r.consumer.toFixed(0)} | ${r.baseline.toFixed(0)} | ${r.ratio.toFixed(2)}× |`,
      ),
      '',
      `**Median ratio ${median.ratio.toFixed(2)}×** (goal ≥ 0.5×): the consumer handles ${median.consumer.toFixed(0)} records/s on one core of this machine${NO_WRITE ? '' : ', registry writes included'}.`,
    ].join('\n');
    return { id: 'health-consumer', markdown };
  } finally {
    client.destroy();
    await dynalite.stop();
    cleanBundles();
  }
}
