/**
 * Pre-provisioning hook latency: the BUNDLED handler (as deployed) against dynalite, compared in
 * the same run with the minimal raw DynamoDB calls its decision needs: GetItem device and lot in
 * parallel, the conditional UpdateItem, and the PutItem audit entry, issued directly with a
 * client configured like the handler's.
 *
 * Dynalite runs in a child process, so the emulator does not share the event loop with the code
 * being measured. The handler logs and emits EMF metrics as in Lambda; its stdout goes to a sink.
 */
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { performance } from 'node:perf_hooks';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  BatchWriteCommand,
  DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import { createDocumentClient } from '../lambda/shared/clients';
import { DeviceRecord } from '../core/model';
import { createRegistryTables } from '../test/helpers/dynalite';
import { loadBundledHandler, cleanBundles } from '../test/helpers/bundle';
import {
  createTestCa,
  deviceRecord,
  HOOK_ENTRY,
  hookEnv,
  hookEvent,
  IssuedCertificate,
  lotRecord,
  putLot,
} from '../test/integration/hook/fixtures';
import { startEmulatorProcess } from '../lab/runtime/emulators';
import type { BenchResult } from './run';

const LOTS = 8;
const CERTS = 64;
const SEGMENTS = 4;
const PLAN = [
  { concurrency: 1, warmup: 100, calls: 500 },
  { concurrency: 32, warmup: 320, calls: 3200 },
];

type Hook = (event: unknown) => Promise<{ allowProvisioning: boolean }>;

interface Stats {
  n: number;
  p50: number;
  p99: number;
  mean: number;
}

function stats(samples: number[]): Stats {
  const s = [...samples].sort((a, b) => a - b);
  const at = (q: number): number => s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)];
  return { n: s.length, p50: at(0.5), p99: at(0.99), mean: s.reduce((a, b) => a + b, 0) / s.length };
}

/** CPU milliseconds used so far by a child process (Linux /proc), or NaN elsewhere. */
function childCpuMs(pid: number | undefined): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100; // utime + stime in clock ticks
  } catch {
    return NaN;
  }
}

/** Run `calls` operations with `concurrency` workers; returns per-call latencies (ms). */
async function measure(
  concurrency: number,
  calls: number,
  op: (i: number) => Promise<void>,
): Promise<number[]> {
  const out: number[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (let i = next++; i < calls; i = next++) {
        const t = performance.now();
        await op(i);
        out.push(performance.now() - t);
      }
    }),
  );
  return out;
}

export async function run(): Promise<BenchResult> {
  process.env.AWS_REGION = 'us-east-1';
  process.env.AWS_ACCESS_KEY_ID = 'bench';
  process.env.AWS_SECRET_ACCESS_KEY = 'bench';
  process.env.AWS_EC2_METADATA_DISABLED = 'true';
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
  process.env.POWERTOOLS_LOG_LEVEL = 'INFO';
  process.env.POWERTOOLS_METRICS_DISABLED = 'false';
  process.env.POWERTOOLS_DEV = 'false';

  const { endpoint, child, stop: stopDynalite } = await startEmulatorProcess('dynalite');
  const admin = new DynamoDBClient({ endpoint, region: 'us-east-1' });
  const adminDoc = DynamoDBDocumentClient.from(admin, { marshallOptions: { removeUndefinedValues: true } });
  try {
    const tables = await createRegistryTables(admin, 'Bench');
    const lots = Array.from({ length: LOTS }, (_, i) => lotRecord(`LOT-${i}`));
    for (const lot of lots) await putLot(adminDoc, tables, lot);

    // Devices: one fresh MANUFACTURED unit per measured call, for the hook and for the raw calls.
    const perMode = PLAN.reduce((a, p) => a + p.warmup + p.calls, 0);
    const serialOf = (mode: 'hook' | 'raw', i: number): string =>
      `SN-${mode.toUpperCase()}-${String(i).padStart(6, '0')}`;
    const devices: DeviceRecord[] = [];
    for (const mode of ['hook', 'raw'] as const) {
      for (let i = 0; i < perMode; i++) devices.push(deviceRecord(serialOf(mode, i), `LOT-${i % LOTS}`));
    }
    for (let i = 0; i < devices.length; i += 25) {
      const batch = devices.slice(i, i + 25).map((Item) => ({ PutRequest: { Item } }));
      let pending: Record<string, unknown>[] | undefined = batch;
      while (pending && pending.length > 0) {
        const res = await adminDoc.send(
          new BatchWriteCommand({ RequestItems: { [tables.devices]: pending as never } }),
        );
        pending = res.UnprocessedItems?.[tables.devices] as Record<string, unknown>[] | undefined;
      }
    }
    console.log(`seeded ${devices.length} devices in ${LOTS} lots`);

    const ca = await createTestCa();
    const certs: IssuedCertificate[] = [];
    for (let i = 0; i < CERTS; i++) certs.push(await (await ca.newDeviceKey()).issue());

    // The handler exactly as bundled for Lambda. IoT is never called on this path (first
    // enrollments), so its endpoint points nowhere.
    const hook = loadBundledHandler<Hook>(HOOK_ENTRY, hookEnv(tables, endpoint, 'http://127.0.0.1:9', 3500));
    let sunk = 0;
    const realWrite = process.stdout.write.bind(process.stdout);
    const sink = (chunk: string | Uint8Array): boolean => {
      sunk += chunk.length;
      return true;
    };

    // Raw calls with a client configured like the handler's (same timeouts, retries, agents).
    const raw = createDocumentClient({ connectionTimeoutMs: 1000, requestTimeoutMs: 1500, maxAttempts: 3 });
    const lotIds = lots.map((l) => l.lot);

    let hookCursor = 0;
    let rawCursor = 0;
    let denied = 0;
    const hookOp = async (): Promise<void> => {
      const i = hookCursor++;
      const res = await hook(
        hookEvent({
          serial: serialOf('hook', i),
          cert: certs[i % CERTS],
          claimCertificateId: `claim-LOT-${i % LOTS}`,
          clientId: `prov-${i}`,
        }),
      );
      if (!res.allowProvisioning) denied++;
    };
    const rawOp = async (): Promise<void> => {
      const i = rawCursor++;
      const serial = serialOf('raw', i);
      const cert = certs[i % CERTS];
      const at = new Date().toISOString();
      const [d] = await Promise.all([
        raw.send(new GetCommand({ TableName: tables.devices, Key: { serial }, ConsistentRead: true })),
        raw.send(
          new GetCommand({ TableName: tables.lots, Key: { lot: lotIds[i % LOTS] }, ConsistentRead: true }),
        ),
      ]);
      const rev = (d.Item as DeviceRecord).revision;
      await raw.send(
        new UpdateCommand({
          TableName: tables.devices,
          Key: { serial },
          UpdateExpression:
            'SET #s = :to, #r = :next, thingName = :t, ring = :ring, certificateId = :c, publicKeyFingerprint = :fp, ' +
            'currentFirmware = :fw, updatedAt = :at, certificateHistory = list_append(if_not_exists(certificateHistory, :e), :h)',
          ConditionExpression: '#s = :from AND #r = :rev',
          ExpressionAttributeNames: { '#s': 'status', '#r': 'revision' },
          ExpressionAttributeValues: {
            ':to': 'PROVISIONING',
            ':from': 'MANUFACTURED',
            ':rev': rev,
            ':next': rev + 1,
            ':t': `fleet-${serial}`,
            ':ring': 'broad',
            ':c': cert.certificateId,
            ':fp': cert.fingerprint,
            ':fw': '1.0.1',
            ':at': at,
            ':e': [],
            ':h': [
              { certificateId: cert.certificateId, issuedAt: at, publicKeyFingerprint: cert.fingerprint },
            ],
          },
        }),
      );
      await raw.send(
        new PutCommand({
          TableName: tables.events,
          Item: {
            serial,
            sk: `${at}#${i}`,
            at,
            enrollDay: at.slice(0, 10),
            type: 'ENROLLMENT_ALLOWED',
            reason: 'ALLOWED',
            lot: lotIds[i % LOTS],
            detail: {
              claimCertificateId: `claim-LOT-${i % LOTS}`,
              certificateId: cert.certificateId,
              clientId: `prov-${i}`,
            },
          },
          ConditionExpression: 'attribute_not_exists(sk)',
        }),
      );
    };

    const rows: { concurrency: number; hook: Stats; raw: Stats; cpu: Record<string, number> }[] = [];
    for (const p of PLAN) {
      // Warm both paths (connections, JIT, the handler's claim-to-lot memo), then measure them
      // alternately in segments so drift (GC, emulator table growth) affects both alike.
      process.stdout.write = sink as typeof process.stdout.write;
      await measure(p.concurrency, p.warmup, hookOp);
      process.stdout.write = realWrite;
      await measure(p.concurrency, p.warmup, rawOp);
      const hookSamples: number[] = [];
      const rawSamples: number[] = [];
      const cpu = { hook: 0, raw: 0, hookServer: 0, rawServer: 0 };
      const timed = async (mode: 'hook' | 'raw', work: () => Promise<number[]>): Promise<number[]> => {
        const c0 = process.cpuUsage();
        const s0 = childCpuMs(child.pid);
        const samples = await work();
        const c = process.cpuUsage(c0);
        cpu[mode] += (c.user + c.system) / 1000;
        cpu[mode === 'hook' ? 'hookServer' : 'rawServer'] += childCpuMs(child.pid) - s0;
        return samples;
      };
      for (let segment = 0; segment < SEGMENTS; segment++) {
        rawSamples.push(...(await timed('raw', () => measure(p.concurrency, p.calls / SEGMENTS, rawOp))));
        process.stdout.write = sink as typeof process.stdout.write;
        try {
          hookSamples.push(
            ...(await timed('hook', () => measure(p.concurrency, p.calls / SEGMENTS, hookOp))),
          );
        } finally {
          process.stdout.write = realWrite;
        }
      }
      console.log(
        `c=${p.concurrency}: CPU ms per call, client: hook ${(cpu.hook / p.calls).toFixed(2)} raw ${(cpu.raw / p.calls).toFixed(2)}; ` +
          `dynalite: hook ${(cpu.hookServer / p.calls).toFixed(2)} raw ${(cpu.rawServer / p.calls).toFixed(2)}`,
      );
      const perCall = (v: number): number => v / p.calls;
      const row = {
        concurrency: p.concurrency,
        hook: stats(hookSamples),
        raw: stats(rawSamples),
        cpu: {
          hook: perCall(cpu.hook),
          raw: perCall(cpu.raw),
          hookServer: perCall(cpu.hookServer),
          rawServer: perCall(cpu.rawServer),
        },
      };
      rows.push(row);
      console.log(
        `c=${p.concurrency}: hook p50 ${row.hook.p50.toFixed(2)} ms p99 ${row.hook.p99.toFixed(2)} ms | ` +
          `raw p50 ${row.raw.p50.toFixed(2)} ms p99 ${row.raw.p99.toFixed(2)} ms | ` +
          `ratio p50 ${(row.hook.p50 / row.raw.p50).toFixed(2)} p99 ${(row.hook.p99 / row.raw.p99).toFixed(2)}`,
      );
    }
    if (denied > 0)
      throw new Error(`${denied} hook calls were denied; the benchmark measures the allow path only`);
    console.log(`handler wrote ${(sunk / 1024).toFixed(0)} KiB of logs and metrics to the sink`);
    raw.destroy();

    const fmt = (n: number): string => n.toFixed(2);
    const c32 = rows.find((r) => r.concurrency === 32);
    const goal = c32 ? c32.hook.p99 / c32.raw.p99 : NaN;
    const markdown = [
      '## Pre-provisioning hook (`bench/hook.bench.ts`)',
      '',
      `Measured ${new Date().toISOString().slice(0, 10)} on ${cpus()[0]?.model ?? 'unknown CPU'} (${cpus().length} cores), ` +
        `Node ${process.version}, dynalite in a child process on loopback.`,
      '',
      '- **hook**: the bundled handler (esbuild, node20, cjs, SDK bundled) invoked in-process, first enrollment',
      '  of a fresh MANUFACTURED unit: validation, certificate fingerprint, GetItem device + lot in parallel,',
      '  decision, conditional UpdateItem, audit PutItem, log line and EMF metric.',
      '- **raw**: the same four DynamoDB calls issued directly (GetItem x2 in parallel, conditional',
      "  UpdateItem, PutItem) with a client configured like the handler's.",
      '',
      '| concurrency | calls | hook p50 (ms) | hook p99 (ms) | raw p50 (ms) | raw p99 (ms) | p50 ratio | p99 ratio |',
      '|---:|---:|---:|---:|---:|---:|---:|---:|',
      ...rows.map(
        (r) =>
          `| ${r.concurrency} | ${r.hook.n} | ${fmt(r.hook.p50)} | ${fmt(r.hook.p99)} | ${fmt(r.raw.p50)} | ${fmt(r.raw.p99)} | ` +
          `${fmt(r.hook.p50 / r.raw.p50)} | ${fmt(r.hook.p99 / r.raw.p99)} |`,
      ),
      '',
      `Goal: hook p99 at concurrency 32 at most 1.5x the raw calls' p99. This run: **${fmt(goal)}x** ` +
        `(${goal <= 1.5 ? 'met' : 'missed'}).`,
      '',
      'CPU per call (ms), which is what separates the two at concurrency 32 on a small machine:',
      '',
      '| concurrency | client: hook | client: raw | dynalite: hook | dynalite: raw |',
      '|---:|---:|---:|---:|---:|',
      ...rows.map(
        (r) =>
          `| ${r.concurrency} | ${fmt(r.cpu.hook)} | ${fmt(r.cpu.raw)} | ${fmt(r.cpu.hookServer)} | ${fmt(r.cpu.rawServer)} |`,
      ),
      '',
      'Profile notes (kept so the next change does not undo them):',
      '',
      '- Parsing the new certificate with `X509Certificate` and re-exporting its key cost about 1 ms of',
      "  CPU per call, the largest item of the hook's own work. The hook now hashes the",
      '  SubjectPublicKeyInfo bytes found by a short DER walk (`lambda/provisioning/spki.ts`, same',
      '  fingerprint, tested against the full parse), which takes microseconds.',
      '- A Powertools `singleMetric()` per call builds a new Metrics instance and Console (~80 us);',
      '  the hook publishes from the shared instance in one synchronous block (~12 us).',
      '- The transition asks for no return values (`ReturnValues: NONE`), and the lot read starts in',
      '  parallel with the device read once the container has learnt which lot a claim certificate',
      '  belongs to (the lot record itself is always read fresh).',
      '- What remains is the AWS SDK itself (request building, SigV4 signing, parsing): about 1 ms of',
      '  CPU per DynamoDB call on this machine, paid equally by both sides.',
      '- p99 at concurrency 32 is noisy on a 2-core machine (GC and emulator pauses): over five runs',
      '  after these changes its ratio ranged 0.98-1.41 (p50 ratio 1.14-1.31); before them it was',
      '  1.65-2.20. Compare runs by the CPU table rather than by one p99.',
    ].join('\n');
    return { id: 'hook', markdown };
  } finally {
    admin.destroy();
    await stopDynalite();
    cleanBundles();
  }
}
