/**
 * Lambda bundles: size, source-map size and cold-load cost of every function, built with the
 * construct's own esbuild options (`LAMBDA_ESBUILD_OPTIONS`).
 *
 * Cold load = a fresh `node` process that loads the bundle and answers one real event against
 * dynalite on loopback (the hook: a first enrollment of a seeded MANUFACTURED unit, allowed;
 * presence: the first connect of a seeded PROVISIONING unit, activated; health consumer: a
 * Kinesis batch with the first health report of a seeded ACTIVE unit, no failures), from spawn to
 * exit.
 * It is reported as a ratio to a bare `node -e 0` measured in the same run, interleaved, median of
 * several repetitions. The same load with NODE_OPTIONS=--enable-source-maps shows what mapped
 * stack traces would cost at cold start.
 *
 * `tsx bench/bundles.bench.ts <dir-with-index.js> <hook|presence|health>` measures one prebuilt bundle
 * the same way (used for before/after comparisons of the bundling options).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { buildSync } from 'esbuild';
import { ENV } from '../core/env';
import { toStreamRecord } from '../core/telemetry';
import { MAX_BUNDLE_BYTES } from '../lib/common/fleet-function';
import { startEmulatorProcess } from '../lab/runtime/emulators';
import { bundleOptions } from '../test/helpers/bundle';
import { createRegistryTables } from '../test/helpers/dynalite';
import {
  createTestCa,
  deviceRecord,
  HOOK_ENTRY,
  hookEnv,
  hookEvent,
  IssuedCertificate,
  lotRecord,
  PRESENCE_ENTRY,
  putDevice,
  putLot,
} from '../test/integration/hook/fixtures';
import type { RegistryTableNames } from '../lambda/shared/registry';
import type { BenchResult } from './run';

const REPETITIONS = 15;

const HEALTH_ENTRY = 'lambda/telemetry/health-consumer.handler.ts';

/** Loads the bundle, answers the event in `EVENT_FILE`, prints the answer, exits. */
const RUNNER = [
  "const { readFileSync } = require('node:fs');",
  'const { handler } = require(process.env.BUNDLE_FILE);',
  "const event = JSON.parse(readFileSync(process.env.EVENT_FILE, 'utf8'));",
  'handler(event).then(',
  "  (r) => { process.stderr.write('ANSWER ' + JSON.stringify(r) + '\\n'); process.exit(0); },",
  "  (e) => { process.stderr.write('FAILED ' + String(e && e.stack) + '\\n'); process.exit(1); });",
].join('\n');

interface FunctionCase {
  name: string;
  entry: string;
  /** Seeds what one repetition needs and returns its event. */
  prepare(rep: number): Promise<unknown>;
  /** True when the answer is the expected real decision. */
  accepts(answer: unknown): boolean;
  env: Record<string, string>;
}

interface ColdLoad {
  medianMs: number;
  ratio: number;
  mapsMedianMs: number;
  mapsRatio: number;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

function timeProcess(
  args: string[],
  env: NodeJS.ProcessEnv,
): { ms: number; stderr: string; status: number | null } {
  const t = performance.now();
  const r = spawnSync(process.execPath, args, { env, encoding: 'utf8', stdio: ['ignore', 'ignore', 'pipe'] });
  return { ms: performance.now() - t, stderr: r.stderr ?? '', status: r.status };
}

function baseEnv(): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH,
    AWS_REGION: 'us-east-1',
    AWS_ACCESS_KEY_ID: 'bench',
    AWS_SECRET_ACCESS_KEY: 'bench',
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    POWERTOOLS_LOG_LEVEL: 'INFO',
  };
}

/** Cold loads of `bundle` for `fn`, interleaved with bare `node -e 0` runs. */
async function coldLoad(bundle: string, fn: FunctionCase, dir: string): Promise<ColdLoad> {
  const bare: number[] = [];
  const plain: number[] = [];
  const maps: number[] = [];
  const run = async (rep: number, nodeOptions?: string): Promise<number> => {
    const eventFile = join(dir, `event-${fn.name}-${rep}-${nodeOptions ? 'maps' : 'plain'}.json`);
    writeFileSync(eventFile, JSON.stringify(await fn.prepare(rep)));
    const env: NodeJS.ProcessEnv = { ...baseEnv(), ...fn.env, BUNDLE_FILE: bundle, EVENT_FILE: eventFile };
    if (nodeOptions) env.NODE_OPTIONS = nodeOptions;
    const r = timeProcess(['-e', RUNNER], env);
    const answer = /^ANSWER (.*)$/m.exec(r.stderr)?.[1];
    if (r.status !== 0 || answer === undefined || !fn.accepts(JSON.parse(answer))) {
      throw new Error(`${fn.name} cold load did not answer the expected decision: ${r.stderr.slice(-600)}`);
    }
    return r.ms;
  };
  // One unmeasured round warms the file cache and the emulator.
  timeProcess(['-e', '0'], baseEnv());
  await run(-1);
  for (let rep = 0; rep < REPETITIONS; rep++) {
    bare.push(timeProcess(['-e', '0'], baseEnv()).ms);
    plain.push(await run(rep * 2));
    maps.push(await run(rep * 2 + 1, '--enable-source-maps'));
  }
  const b = median(bare);
  return {
    medianMs: median(plain),
    ratio: median(plain) / b,
    mapsMedianMs: median(maps),
    mapsRatio: median(maps) / b,
  };
}

async function setUp(
  endpoint: string,
): Promise<{ cases: Record<'hook' | 'presence' | 'health', FunctionCase> }> {
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
  const admin = new DynamoDBClient({
    endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'bench', secretAccessKey: 'bench' },
  });
  const doc = DynamoDBDocumentClient.from(admin, { marshallOptions: { removeUndefinedValues: true } });
  const tables: RegistryTableNames = await createRegistryTables(admin, 'Bundles');
  await putLot(doc, tables, lotRecord('LOT-A'));
  const ca = await createTestCa();
  const cert: IssuedCertificate = await (await ca.newDeviceKey()).issue();
  let unit = 0;
  const hook: FunctionCase = {
    name: 'hook',
    entry: HOOK_ENTRY,
    env: { ...hookEnv(tables, endpoint, 'http://127.0.0.1:9', 3500) },
    prepare: async () => {
      const serial = `SN-COLD-${String(++unit).padStart(5, '0')}`;
      await putDevice(doc, tables, deviceRecord(serial, 'LOT-A'));
      return hookEvent({ serial, cert, claimCertificateId: 'claim-LOT-A' });
    },
    accepts: (a) => (a as { allowProvisioning?: boolean }).allowProvisioning === true,
  };
  const presence: FunctionCase = {
    name: 'presence',
    entry: PRESENCE_ENTRY,
    env: {
      [ENV.devicesTable]: tables.devices,
      [ENV.eventsTable]: tables.events,
      [ENV.thingNamePrefix]: 'fleet',
      AWS_ENDPOINT_URL_DYNAMODB: endpoint,
    },
    prepare: async () => {
      const serial = `SN-PRES-${String(++unit).padStart(5, '0')}`;
      await putDevice(
        doc,
        tables,
        deviceRecord(serial, 'LOT-A', {
          status: 'PROVISIONING',
          certificateId: cert.certificateId,
          thingName: `fleet-${serial}`,
          revision: 1,
        }),
      );
      return {
        clientId: `fleet-${serial}`,
        timestamp: Date.now(),
        eventType: 'connected',
        versionNumber: 1,
        sessionIdentifier: `s-${serial}`,
        principalIdentifier: cert.certificateId,
        ipAddress: '127.0.0.1',
        clientInitiatedDisconnect: false,
      };
    },
    accepts: (a) => a === 'ACTIVATED',
  };
  const health: FunctionCase = {
    name: 'health',
    entry: HEALTH_ENTRY,
    env: {
      [ENV.devicesTable]: tables.devices,
      [ENV.eventsTable]: tables.events,
      [ENV.thingNamePrefix]: 'fleet',
      [ENV.lastSeenIntervalSeconds]: '900',
      [ENV.lowHeapBytes]: '16384',
      [ENV.weakRssiDbm]: '-85',
      [ENV.maxFirmwareDimensions]: '20',
      // Only rejected records go there; the bench sends none.
      [ENV.healthDeadLetterQueueUrl]: 'http://127.0.0.1:9/123456789012/health-dlq',
      AWS_ENDPOINT_URL_DYNAMODB: endpoint,
      POWERTOOLS_METRICS_NAMESPACE: 'IotFleet',
    },
    prepare: async () => {
      const serial = `SN-HLTH-${String(++unit).padStart(5, '0')}`;
      await putDevice(
        doc,
        tables,
        deviceRecord(serial, 'LOT-A', {
          status: 'ACTIVE',
          thingName: `fleet-${serial}`,
          ring: 'broad',
          revision: 2,
        }),
      );
      const receivedAt = Date.now();
      const report = {
        ts: receivedAt - 1000,
        fw: '1.0.0',
        bootId: 'b1',
        uptimeS: 60,
        resetReason: 'POWER_ON',
      };
      const record = toStreamRecord(
        'health',
        { ...report, heapFreeB: 60_000, rssiDbm: -60 },
        {
          thing: `fleet-${serial}`,
          receivedAt,
        },
      );
      return {
        Records: [
          {
            kinesis: {
              kinesisSchemaVersion: '1.0',
              partitionKey: `fleet-${serial}`,
              sequenceNumber: String(
                49_590_338_271_490_256_608_559_692_538_361_571_095_921_575_989_136_588_898n + BigInt(unit),
              ),
              data: Buffer.from(JSON.stringify(record)).toString('base64'),
              approximateArrivalTimestamp: receivedAt / 1000,
            },
            eventSource: 'aws:kinesis',
            eventVersion: '1.0',
            eventID: `shardId-000000000000:${unit}`,
            eventName: 'aws:kinesis:record',
            awsRegion: 'us-east-1',
            eventSourceARN: 'arn:aws:kinesis:us-east-1:123456789012:stream/bench',
          },
        ],
      };
    },
    accepts: (a) => JSON.stringify(a) === JSON.stringify({ batchItemFailures: [] }),
  };
  return { cases: { hook, presence, health } };
}

const kib = (n: number): string => (n / 1024).toFixed(1);

export async function run(): Promise<BenchResult> {
  const dir = mkdtempSync(join(tmpdir(), 'fleet-bundles-bench-'));
  const dynalite = await startEmulatorProcess('dynalite');
  try {
    const { cases } = await setUp(dynalite.endpoint);
    const rows: string[] = [];
    for (const fn of Object.values(cases)) {
      const outfile = join(dir, fn.name, 'index.js');
      buildSync(bundleOptions(fn.entry, outfile));
      const js = statSync(outfile).size;
      const map = statSync(`${outfile}.map`).size;
      const cold = await coldLoad(outfile, fn, dir);
      console.log(
        `${fn.name}: index.js ${kib(js)} KiB, map ${kib(map)} KiB, cold load ${cold.medianMs.toFixed(0)} ms ` +
          `(${cold.ratio.toFixed(2)}x bare node; with --enable-source-maps ${cold.mapsRatio.toFixed(2)}x)`,
      );
      rows.push(
        `| ${fn.name} | \`${fn.entry}\` | ${kib(js)} | ${kib(map)} | ${cold.medianMs.toFixed(0)} | ` +
          `**${cold.ratio.toFixed(2)}x** | ${cold.mapsRatio.toFixed(2)}x |`,
      );
    }
    const markdown = [
      '## Lambda bundles (`bench/bundles.bench.ts`)',
      '',
      `Measured ${new Date().toISOString().slice(0, 10)} on ${cpus()[0]?.model ?? 'unknown CPU'} (${cpus().length} cores), ` +
        `Node ${process.version}; bundles built with \`LAMBDA_ESBUILD_OPTIONS\` (lib/common/fleet-function.ts), ` +
        `budget ${kib(MAX_BUNDLE_BYTES)} KiB per index.js (test/unit/provisioning/bundle-size.test.ts).`,
      '',
      'Cold load: a fresh `node` process loads the bundle and answers one real event against dynalite on',
      'loopback (hook: first enrollment of a MANUFACTURED unit, allowed; presence: first connect of a',
      'PROVISIONING unit, activated; health: a Kinesis batch with the first health report of an ACTIVE',
      'unit, no failures), spawn to exit, as a ratio to a bare `node -e 0` measured interleaved',
      `in the same run; median of ${REPETITIONS}.`,
      '',
      '| function | entry | index.js (KiB) | index.js.map (KiB) | cold load (ms) | cold / bare node | with --enable-source-maps |',
      '|---|---|---:|---:|---:|---:|---:|',
      ...rows,
      '',
      'Before the bundling work (2026-11-25, same machine, measured interleaved with the new bundles through',
      '`tsx bench/bundles.bench.ts <dir> <hook|presence>` while other work loaded both cores):',
      '',
      '| function | index.js (KiB) | index.js.map (KiB) | cold / bare node, before | cold / bare node, after |',
      '|---|---:|---:|---:|---:|',
      '| hook | 1243.2 | 4546.1 (sources inlined) | 9.1-9.8x | 4.4-4.8x |',
      '| presence | 1024.4 | 3784.2 (sources inlined) | 7.6x | 4.5-6.1x |',
      '',
      'On a quiet machine the hook was reported at about 3.1x before; compare ratios from one run only.',
      '',
      'What each lever is worth (minified index.js of the hook, measured one at a time):',
      '',
      '- **`zod/mini` instead of classic `zod`** (same engine, same checks; English messages kept through',
      '  `zod/locales`): zod 445 KiB -> 21 KiB. Re-exporting the `zod/mini` namespace from a shared',
      '  module defeats the tree shaking (the namespace escapes); each handler imports it directly.',
      "- **`mainFields: ['module', 'main']`**: the SDK's ES module builds tree-shake; the CommonJS builds",
      '  are taken whole. About -290 KiB on the hook (smithy core 196 -> 131, client-dynamodb 89 -> 30).',
      '- **The Lambda credential chain** (`lambda/shared/lambda-credentials.ts`, substituted for',
      '  `@aws-sdk/credential-provider-node` by an esbuild alias): environment, then container',
      '  credentials. The default chain brings SSO, ini files, processes, web identity, instance metadata',
      '  and the STS, SSO, OIDC and sign-in clients: about -110 KiB. The SDK stays bundled.',
      '- **DescribeCertificate without `@aws-sdk/client-iot`** (`lambda/shared/iot-certificates.ts`, the',
      "  SDK's own SigV4 signer and HTTP handler): the IoT client's schema module declares every IoT",
      '  shape with computed keys (`{ [_h]: … }`), which esbuild must keep, so importing one command still',
      '  bundled 110 KiB of schemas (140 KiB with its protocol code). Importing only the commands used',
      '  does not help there; it already was the case.',
      '- **`sourcesContent: false`**: the map keeps file:line mappings without the sources,',
      '  4.5 MiB -> 0.47 MiB for the hook (together with the smaller bundle).',
      "- **`supported: { 'dynamic-import': false }`**: keeps the ES module builds' lazy `import()` of Node",
      '  built-ins loadable in every CommonJS loader (no size change).',
      '- **Powertools**: Logger and Metrics together are about 27 KiB and already tree-shaken through their',
      '  ES module builds; their submodules offer nothing smaller for what the handlers use.',
      '- `--enable-source-maps` is not set on the functions: its cold-load cost is in the last column;',
      '  set NODE_OPTIONS on a function to get mapped stack traces when debugging.',
    ].join('\n');
    return { id: 'bundles', markdown };
  } finally {
    await dynalite.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Measure one prebuilt bundle directory: `tsx bench/bundles.bench.ts <dir> <hook|presence|health>`. */
async function measurePrebuilt(bundleDir: string, which: 'hook' | 'presence' | 'health'): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'fleet-bundles-bench-'));
  const dynalite = await startEmulatorProcess('dynalite');
  try {
    const { cases } = await setUp(dynalite.endpoint);
    const file = join(bundleDir, 'index.js');
    const cold = await coldLoad(file, cases[which], dir);
    console.log(
      `${which} (${file}): index.js ${kib(statSync(file).size)} KiB, cold load ${cold.medianMs.toFixed(0)} ms, ` +
        `${cold.ratio.toFixed(2)}x bare node (with --enable-source-maps ${cold.mapsRatio.toFixed(2)}x)`,
    );
  } finally {
    await dynalite.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (require.main === module) {
  const [bundleDir, which] = process.argv.slice(2);
  if (!bundleDir || (which !== 'hook' && which !== 'presence' && which !== 'health')) {
    console.error('usage: tsx bench/bundles.bench.ts <dir-with-index.js> <hook|presence|health>');
    process.exit(2);
  }
  measurePrebuilt(bundleDir, which).then(
    () => process.exit(0),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}
