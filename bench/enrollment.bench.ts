/**
 * Enrollment under the RegisterThing quota: N simulated units enroll against the lab with the
 * quota on at Q TPS (excess RegisterThing requests get AWS's 429 ThrottlingException), through
 * the same scenario module as `npm run lab` (good units only). Compares the measured enrollment
 * wall time with the ideal N/Q, and counts give-ups and retries.
 *
 * The same run first measures the lab's unthrottled enrollment rate with the same N, so the
 * ratio is read against what this machine can do at all.
 *
 * Goal: measured ≤ 1.15 × N/Q with zero give-ups.
 * Defaults N=100, Q=10 (ideal 10 s): on 2 cores the whole lab (broker, CA, hook, dynalite and the
 * simulated devices share the machine) enrolls roughly 10-25 units/s unthrottled, so a higher Q
 * would measure the lab's capacity rather than the quota and the backoff.
 * Overrides: BENCH_ENROLL_DEVICES (N), BENCH_ENROLL_TPS (Q), BENCH_ENROLL_CONCURRENCY.
 */
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { startLabRuntime } from '../lab/runtime';
import { quotaBackoff, runScenario, type ScenarioReport } from '../lab/scenario/run';
import type { BenchResult } from './run';

const N = Number(process.env.BENCH_ENROLL_DEVICES ?? 100);
const Q = Number(process.env.BENCH_ENROLL_TPS ?? 10);
const GOAL = 1.15;

async function enroll(registerThingTps: number | undefined, concurrency: number): Promise<ScenarioReport> {
  const dir = await mkdtemp(join(tmpdir(), 'fleet-bench-enroll-'));
  const lab = await startLabRuntime({
    projectDir: resolve(__dirname, '..'),
    labDir: dir,
    logDir: false,
    registerThingTps,
  });
  try {
    return await runScenario(lab, {
      devices: N,
      badCases: false,
      registerThingTps,
      concurrency,
      labDir: dir,
      activationTimeoutMs: 15_000,
    });
  } finally {
    await lab.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

export async function run(): Promise<BenchResult> {
  const ideal = N / Q;
  // Enough units in flight to keep the quota busy while others back off, not so many that
  // every retry window collides.
  const concurrency = Number(process.env.BENCH_ENROLL_CONCURRENCY ?? Math.max(8, Math.round(Q * 1.5)));
  const backoff = quotaBackoff(Q, concurrency);

  console.log(`unthrottled: ${N} units, concurrency ${concurrency}`);
  const free = await enroll(undefined, concurrency);
  const freeS = free.timings.firstWaveMs / 1000;
  console.log(`  ${freeS.toFixed(2)} s (${(N / freeS).toFixed(1)} units/s)`);

  console.log(`quota ${Q} TPS: ${N} units, concurrency ${concurrency}, backoff ${JSON.stringify(backoff)}`);
  const q = await enroll(Q, concurrency);
  const measured = q.timings.firstWaveMs / 1000;
  const ratio = measured / ideal;
  const iot = q.lab.iot as { registerThing?: { accepted: number; throttled: number; rejected: number } };
  const throttled = iot.registerThing?.throttled ?? 0;
  const e = q.enrollment;
  console.log(
    `  ${measured.toFixed(2)} s vs ideal ${ideal.toFixed(2)} s → ${ratio.toFixed(2)}x; enrolled ${e.enrolled}/${e.attempted}, gave up ${e.gaveUp}, retries ${e.retries}, throttled ${throttled}`,
  );

  const met = ratio <= GOAL && e.gaveUp === 0 && e.enrolled === N;
  const cpu = cpus()[0]?.model.trim() ?? 'unknown CPU';
  const markdown = `## Enrollment under the RegisterThing quota (\`bench/enrollment.bench.ts\`)

Measured ${new Date().toISOString().slice(0, 10)} on ${cpu} (${cpus().length} cores), Node ${process.version}; the lab
(\`startLabRuntime\`) with the bundled hook and the simulator (\`runFleet\`, CSR path, mutual TLS), good units only,
spread over three lots. Enrollment time is from the first CONNECT to the last unit's thing-session CONNACK.

| run | units | quota (TPS) | concurrency | backoff base / cap / attempts (ms, ms, n) | wall (s) | ideal N/Q (s) | ratio | enrolled | gave up | retries | throttled (429) | p50 / p99 enroll (ms) |
|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|
| unthrottled | ${N} | – | ${concurrency} | ${fmtBackoff(free)} | ${freeS.toFixed(2)} | – | – | ${free.enrollment.enrolled} | ${free.enrollment.gaveUp} | ${free.enrollment.retries} | 0 | ${free.enrollment.p50Ms} / ${free.enrollment.p99Ms} |
| quota | ${N} | ${Q} | ${concurrency} | ${fmtBackoff(q)} | ${measured.toFixed(2)} | ${ideal.toFixed(2)} | **${ratio.toFixed(2)}x** | ${e.enrolled} | ${e.gaveUp} | ${e.retries} | ${throttled} | ${e.p50Ms} / ${e.p99Ms} |

Unthrottled, this machine's lab enrolls ${(N / freeS).toFixed(1)} units/s, so a quota of ${Q} TPS ${N / freeS > Q ? 'is the limit' : 'is above what the lab can serve here, and the ratio measures the lab, not the backoff'}.
The device backoff is full jitter (\`sleep = random(0, min(cap, base·2^retry))\`) with base ≈ 2 token intervals and cap ≈
concurrency / Q (\`quotaBackoff\` in lab/scenario/run.ts), so retries spread over the refill instead of bunching.

Goal: at most ${GOAL}x the ideal N/Q with zero give-ups. This run: **${ratio.toFixed(2)}x, ${e.gaveUp} give-ups** (${met ? 'met' : 'missed'}).`;
  return { id: 'enrollment', markdown };
}

function fmtBackoff(r: ScenarioReport): string {
  const b = r.lab.backoff;
  return `${b.baseMs} / ${b.capMs} / ${b.maxAttempts}`;
}
