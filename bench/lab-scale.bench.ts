/**
 * The largest fleet the lab holds in one run on this machine: `npm run lab` (the whole scenario:
 * enrollment with every bad case, then every ACTIVE unit streaming telemetry and health through
 * a Kinesis outage and replay) at growing fleet sizes, until a run fails its expectations or the
 * sizes run out. Peak memory is the largest sum of the resident sets of the lab's process tree
 * (the lab and its emulator children), sampled every 250 ms from /proc.
 *
 * `FLEET_SCALE_SIZES=500,1000` overrides the sizes.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { ScenarioReport } from '../lab/scenario/run';
import type { BenchResult } from './run';

const SIZES = (process.env.FLEET_SCALE_SIZES ?? '500,1000,2000,4000').split(',').map(Number);
const PROJECT = resolve(__dirname, '..');

/** Resident set (bytes) of `pid` and all its descendants, from /proc. */
async function treeRss(pid: number): Promise<number> {
  const children = new Map<number, number[]>();
  const rss = new Map<number, number>();
  for (const entry of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const status = await readFile(`/proc/${entry}/status`, 'utf8');
      const ppid = Number(/^PPid:\s+(\d+)/m.exec(status)?.[1]);
      const kb = Number(/^VmRSS:\s+(\d+)/m.exec(status)?.[1] ?? 0);
      rss.set(Number(entry), kb * 1024);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)]);
    } catch {
      // The process ended while we looked.
    }
  }
  let total = 0;
  const stack = [pid];
  while (stack.length > 0) {
    const p = stack.pop()!;
    total += rss.get(p) ?? 0;
    stack.push(...(children.get(p) ?? []));
  }
  return total;
}

interface Row {
  devices: number;
  ok: boolean;
  exitCode: number | null;
  wallS: number;
  peakMiB: number;
  active: number;
  published: number;
  lost: number;
  replayed: number;
  failures: string[];
}

async function runLab(devices: number): Promise<Row> {
  const dir = await mkdtemp(join(tmpdir(), `fleet-scale-${devices}-`));
  const reportPath = join(dir, 'report.json');
  const started = Date.now();
  const child = spawn(
    process.execPath,
    [
      join(PROJECT, 'node_modules/tsx/dist/cli.mjs'),
      'lab/main.ts',
      '--devices',
      String(devices),
      '--quiet',
      '--lab-dir',
      dir,
      '--report',
      reportPath,
    ],
    { cwd: PROJECT, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr?.on('data', (b: Buffer) => (stderr += b.toString()));
  let peak = 0;
  const sampler = setInterval(() => {
    void treeRss(child.pid!).then((b) => (peak = Math.max(peak, b)));
  }, 250);
  const exitCode = await new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  clearInterval(sampler);
  const wallS = (Date.now() - started) / 1000;
  let report: ScenarioReport | undefined;
  try {
    report = JSON.parse(await readFile(reportPath, 'utf8')) as ScenarioReport;
  } catch {
    // No report: the run failed before the scenario finished.
  }
  await rm(dir, { recursive: true, force: true });
  return {
    devices,
    ok: exitCode === 0 && report?.ok === true,
    exitCode,
    wallS,
    peakMiB: peak / 1024 / 1024,
    active: report?.enrollment.activated ?? 0,
    published: report?.telemetry?.published ?? 0,
    lost: report?.telemetry?.lost ?? -1,
    replayed: report?.telemetry?.replayed ?? 0,
    failures: report?.failures ?? [stderr.trim().split('\n').slice(-3).join(' ')],
  };
}

export async function run(): Promise<BenchResult> {
  const rows: Row[] = [];
  for (const devices of SIZES) {
    console.log(`lab with ${devices} units …`);
    const row = await runLab(devices);
    rows.push(row);
    console.log(
      `  ${row.ok ? 'ok' : 'FAILED'} in ${row.wallS.toFixed(0)} s, peak ${row.peakMiB.toFixed(0)} MiB, ${row.active} active, ${row.published} published, lost ${row.lost}`,
    );
    if (!row.ok) {
      console.log(`  ${row.failures.join('; ')}`);
      break;
    }
  }
  const largest = [...rows].reverse().find((r) => r.ok);
  const markdown = [
    '## The largest fleet the lab holds',
    '',
    '`npm run lab -- --devices N` end to end (enrollment with every bad case, then every ACTIVE unit streaming telemetry and health over Basic Ingest for 14 s through a 6-second Kinesis outage, replay, archive), at growing N until a run fails or the sizes run out. Peak memory: the largest sum of resident sets of the lab process and its emulator children (dynalite, kinesalite, s3rver), sampled every 250 ms.',
    '',
    '| Units | Result | Wall time | Peak memory | ACTIVE units streaming | Messages acknowledged | Replayed | Lost |',
    '| --- | --- | --- | --- | --- | --- | --- | --- |',
    ...rows.map(
      (r) =>
        `| ${r.devices} | ${r.ok ? 'all expectations met' : `failed: ${r.failures[0] ?? `exit ${r.exitCode}`}`} | ${r.wallS.toFixed(0)} s | ${r.peakMiB.toFixed(0)} MiB | ${r.active} | ${r.published} | ${r.replayed} | ${r.lost} |`,
    ),
    '',
    largest
      ? `**Largest fleet held: ${largest.devices} units** (${largest.active} streaming), peak ${largest.peakMiB.toFixed(0)} MiB.`
      : '**No size completed.**',
  ].join('\n');
  return { id: 'lab-scale', markdown };
}
