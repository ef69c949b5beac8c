/**
 * The telemetry phase of the scenario: every ACTIVE unit reconnects as its thing and streams
 * telemetry and health over Basic Ingest for a while. On the way some units switch firmware (a
 * release with a flaky link and a crash-looping release candidate), the Kinesis emulator stops
 * answering and comes back, and one unit sends a malformed health report. Then the phase
 * accounts for every message:
 *
 * - published: what the devices' ledgers say AWS IoT acknowledged (PUBACK), by identity
 *   (thing, kind, ts);
 * - delivered: identities read back from the telemetry stream as the rules put them there;
 * - inErrorStore / replayed: what the rules' error actions wrote while the stream was down, and
 *   what `fleet telemetry replay` (the operator's command, run in-process) put back;
 * - archived: identities in the Firehose archive bucket;
 * - lost: acknowledged identities on the stream neither directly nor replayed.
 *
 * Health cohorts come from the stream's health records through core/health.ts's `aggregateHealth`.
 * The consumer does not call it (it assesses each report once while planning its registry
 * writes) but groups and counts with the same `cohortKey` and `countFreshReport`; it counts only
 * reports whose registry work committed, caps the firmware dimension and counts per batch. Its own
 * EMF documents are read from its log and checked too. The registry is checked for what the
 * consumer must have written (running firmware, FIRMWARE_CHANGED, lastSeen), and its dead-letter
 * queue for the malformed report.
 */
import { gunzipSync } from 'node:zlib';
import { QueryCommand } from '@aws-sdk/lib-dynamodb';
import { telemetryReplay, type ReplayResult } from '../../cli/commands/telemetry';
import { readStreamRecords } from '../../cli/telemetry-store';
import { kinesisClient, registryTables, requireResource, type CliContext } from '../../cli/context';
import { aggregateHealth, type CohortHealth, type HealthInput } from '../../core/health';
import { serialFromThingName, TABLES, type Ring } from '../../core/model';
import { METRICS } from '../../core/metrics';
import { STACK_OUTPUTS } from '../../core/stack-outputs';
import { healthReportSchema, type HealthReport } from '../../core/telemetry';
import { topics } from '../../core/topics';
import { streamFleet, type DeviceAgent, type LedgerReport, type MqttVersion } from '../../device';
import type { Registry } from '../../lambda/shared/registry';
import type { LabRuntime } from '../runtime';
import { labStackOutputs } from './context';
import type { Expectation } from './expectations';

/** Firmware the lab's units switch to, and the behaviour each one has. */
export const LAB_FIRMWARE = {
  /** A release whose link drops now and then (the Last Will, buffered readings re-sent). */
  flaky: '1.0.1',
  /** A release candidate that crashes every few seconds (WATCHDOG). */
  crashLooping: '1.1.0-rc.1',
} as const;

export interface TelemetryPhaseOptions {
  /** How long the units stream. @default 14000 */
  durationMs?: number;
  /** Time between two readings. @default 500 */
  readingIntervalMs?: number;
  /** Readings per telemetry message. @default 4 */
  readingsPerMessage?: number;
  /** Time between two health reports. @default 2000 */
  healthIntervalMs?: number;
  /** Stop the Kinesis emulator for a while in the middle of the run. @default true */
  kinesisOutage?: boolean;
  /** When the outage starts, after streaming started. @default 3000 */
  outageAtMs?: number;
  /**
   * How long the outage lasts. Longer than the rules engine's action timeout (3 s in the lab), so
   * the Kinesis actions of the messages that arrive early in it fail into the error store.
   * @default 6000
   */
  outageForMs?: number;
  /** Share of units that switch to the flaky release. @default 0.1 */
  flakyShare?: number;
  /** Share of units that switch to the crash-looping release candidate. @default 0.05 */
  crashLoopingShare?: number;
  /** Seed of every random draw of the devices. @default 'lab' */
  seed?: string;
  log?: (line: string) => void;
}

/** Counts of one kind of message. */
export interface MessageAccount {
  published: number;
  delivered: number;
  replayed: number;
  archived: number;
  lost: number;
}

export interface TelemetrySection {
  devices: number;
  durationMs: number;
  settings: {
    readingIntervalMs: number;
    readingsPerMessage: number;
    healthIntervalMs: number;
    delivery: 'basicIngest';
  };
  /** Acknowledged messages (telemetry and health). */
  published: number;
  /** Readings in acknowledged telemetry messages. */
  readings: number;
  /** Distinct acknowledged messages the rules put on the stream directly. */
  delivered: number;
  /** Error-store entries written while the stream was down. */
  inErrorStore: number;
  /** Acknowledged messages that reached the stream only through `fleet telemetry replay`. */
  replayed: number;
  /** Distinct messages of the stream found in the archive. */
  archived: number;
  /** Acknowledged messages found nowhere on the stream. */
  lost: number;
  /** Messages the devices dropped from a full buffer (never acknowledged). */
  droppedByDevices: number;
  /** Records on the stream more than once (a re-sent PUBLISH whose PUBACK was lost). */
  duplicates: number;
  /** Last Will records on the stream. */
  lastWills: number;
  /** Stream records no ledger accounts for (the injected malformed report). */
  unledgered: number;
  byKind: { telemetry: MessageAccount; health: MessageAccount };
  /** Per MQTT version of the units: streaming units, acknowledged messages, and those lost. */
  byMqttVersion: Partial<Record<MqttVersion, { devices: number; acked: number; lost: number }>>;
  outage?: { atMs: number; forMs: number };
  replay: Pick<ReplayResult, 'counts'>;
  /** Health per firmware × ring, from the stream's reports. */
  cohorts: CohortHealth[];
  links: LedgerReport['links'];
  registry: {
    /** Streaming units whose registry record has a lastSeen. */
    lastSeenSet: number;
    /** Units that switched firmware. */
    switched: number;
    /** Of those, records showing the new firmware. */
    firmwareRecorded: number;
    /** Of those, FIRMWARE_CHANGED trail entries (exactly one each expected). */
    firmwareChangedEntries: number;
  };
  consumer: {
    /** Messages in the health consumer's dead-letter queue. */
    deadLetters: number;
    deadLetterReasons: Record<string, number>;
    /**
     * What the consumer itself reported as metrics (its EMF documents, read from its log), per
     * firmware version: the figures the alarms and the rollout gates see.
     */
    metricsByFirmware: Record<string, { reports: number; unexpectedReboots: number; crashResets: number }>;
  };
  /** Records in the local Timestream / InfluxDB stores (the time-series options). */
  timeSeries: ReturnType<LabRuntime['stats']>['timeSeries'];
  /** Firmware the units switched to, by behaviour. */
  firmware: typeof LAB_FIRMWARE;
  timings: { streamMs: number; settleMs: number; replayMs: number; accountMs: number };
}

/** Identity of a message: thing, kind and its own time (the ledger's key). */
const identity = (thing: string, kind: string, ts: number): string => `${thing}\u0000${kind}\u0000${ts}`;

interface StreamContent {
  /** Identity → records seen (direct). */
  direct: Map<string, number>;
  /** Identities of replayed records. */
  replayed: Set<string>;
  lastWills: number;
  /** Health reports in stream order, with their thing. */
  health: { thing: string; report: HealthReport }[];
  /** Records that are not a valid message (the injected one). */
  invalid: number;
}

/** Run the phase on the ACTIVE units' agents. Never throws for a failed count: see the report. */
export async function runTelemetryPhase(
  lab: LabRuntime,
  ctx: CliContext,
  registry: Registry,
  agents: readonly DeviceAgent[],
  options: TelemetryPhaseOptions = {},
): Promise<TelemetrySection> {
  const log = options.log ?? (() => undefined);
  const settings = {
    readingIntervalMs: options.readingIntervalMs ?? 500,
    readingsPerMessage: options.readingsPerMessage ?? 4,
    healthIntervalMs: options.healthIntervalMs ?? 2000,
    delivery: 'basicIngest' as const,
  };
  const durationMs = options.durationMs ?? 14_000;
  const rules = ctx.resources.telemetryRules;
  const stream = ctx.resources.telemetryStream;
  if (!rules || !stream)
    throw new Error('the stack exports no telemetry stream or rules: nothing to stream to');

  const emf = collectConsumerMetrics(lab);
  const t0 = Date.now();
  await reconnectAll(agents);
  const fleet = streamFleet({
    agents,
    ...settings,
    rules,
    seed: options.seed ?? 'lab',
    durationMs,
    profiles: { [LAB_FIRMWARE.flaky]: 'flaky', [LAB_FIRMWARE.crashLooping]: 'crash-looping' },
    profileSettings: {
      flaky: { dropEveryMs: 3_000, offlineMs: 800 },
      crashLooping: { crashEveryMs: 2_500, crashReason: 'WATCHDOG' },
      rebootMs: 300,
    },
    reconnectBackoff: { baseMs: 200, capMs: 2_000 },
    bufferMessages: 1_000,
  });
  const things = [...fleet.devices.keys()].sort();
  const crashing = pick(things, options.crashLoopingShare ?? 0.05, 0);
  const flaky = pick(things, options.flakyShare ?? 0.1, crashing.length);
  log(
    `streaming from ${things.length} units for ${(durationMs / 1000).toFixed(0)} s: ${flaky.length} switch to ${LAB_FIRMWARE.flaky} (flaky link), ${crashing.length} to ${LAB_FIRMWARE.crashLooping} (crash-looping)`,
  );
  const switching = [
    ...flaky.map((t) => fleet.devices.get(t)!.setFirmware(LAB_FIRMWARE.flaky)),
    ...crashing.map((t) => fleet.devices.get(t)!.setFirmware(LAB_FIRMWARE.crashLooping)),
  ];

  const malformedFrom = things.find((t) => !flaky.includes(t) && !crashing.includes(t));
  const timers: NodeJS.Timeout[] = [];
  const later = (ms: number, f: () => Promise<void>): Promise<void> =>
    new Promise((resolve) => timers.push(setTimeout(() => void f().then(resolve, resolve), ms)));
  const tasks: Promise<void>[] = [];
  let outage: TelemetrySection['outage'];
  if (options.kinesisOutage ?? true) {
    const atMs = options.outageAtMs ?? 3_000;
    const forMs = options.outageForMs ?? 6_000;
    outage = { atMs, forMs };
    tasks.push(
      later(atMs, async () => {
        log(`Kinesis stops answering for ${(forMs / 1000).toFixed(1)} s`);
        await lab.faults.pauseKinesis();
        await new Promise((r) => setTimeout(r, forMs));
        await lab.faults.resumeKinesis();
        log('Kinesis is back');
      }),
    );
  }
  const agentOf = new Map(agents.map((a) => [a.identityAfterEnrollment?.thingName ?? '', a]));
  const malformedAgent = malformedFrom ? agentOf.get(malformedFrom) : undefined;
  if (malformedAgent)
    tasks.push(later(Math.min(1_000, durationMs / 4), () => publishMalformed(malformedAgent, ctx)));
  const ledger = await fleet.done;
  await Promise.all([...switching, ...tasks]);
  timers.forEach(clearTimeout);
  const streamMs = Date.now() - t0;

  // Everything the rules started, and everything the stream's consumers read, has finished.
  const t1 = Date.now();
  await lab.idle();
  await lab.streamsIdle(30_000);
  const settleMs = Date.now() - t1;

  const t2 = Date.now();
  log('fleet telemetry replay');
  const replay = await telemetryReplay({ json: true }, ctx);
  await lab.idle();
  await lab.streamsIdle(30_000);
  await lab.flushFirehose();
  const replayMs = Date.now() - t2;

  const t3 = Date.now();
  const content = await readStream(ctx, stream);
  const archivedIds = await readArchive(lab);
  const account = reconcile(ledger, content, archivedIds);
  const cohorts = await healthCohorts(content, registry, requireResource(ctx, 'thingPrefix'));
  const registryCheck = await checkRegistry(ctx, registry, things, [...flaky, ...crashing], {
    [LAB_FIRMWARE.flaky]: flaky,
    [LAB_FIRMWARE.crashLooping]: crashing,
  });
  const dlq = lab.deadLetters(labStackOutputs(lab)[STACK_OUTPUTS.healthDeadLetterQueue] ?? '');
  const deadLetterReasons: Record<string, number> = {};
  for (const m of dlq) {
    const reason = (JSON.parse(m.body) as { reason?: string }).reason ?? 'unknown';
    deadLetterReasons[reason] = (deadLetterReasons[reason] ?? 0) + 1;
  }
  const accountMs = Date.now() - t3;

  return {
    devices: things.length,
    durationMs,
    settings,
    published: account.telemetry.published + account.health.published,
    readings: ledger.telemetry.readingsAcked,
    delivered: account.telemetry.delivered + account.health.delivered,
    inErrorStore: replay.counts.found,
    replayed: account.telemetry.replayed + account.health.replayed,
    archived: account.telemetry.archived + account.health.archived,
    lost: account.telemetry.lost + account.health.lost,
    droppedByDevices: ledger.telemetry.dropped + ledger.health.dropped,
    duplicates: [...content.direct.values()].filter((n) => n > 1).length,
    lastWills: content.lastWills,
    unledgered: account.unledgered,
    byKind: { telemetry: account.telemetry, health: account.health },
    byMqttVersion: accountByMqttVersion(ledger, content),
    outage,
    replay: { counts: replay.counts },
    cohorts,
    links: ledger.links,
    registry: registryCheck,
    consumer: { deadLetters: dlq.length, deadLetterReasons, metricsByFirmware: emf.stop() },
    timeSeries: lab.stats().timeSeries,
    firmware: LAB_FIRMWARE,
    timings: { streamMs, settleMs, replayMs, accountMs },
  };
}

/** Sum the health consumer's EMF metrics per firmware version while the phase runs. */
function collectConsumerMetrics(lab: LabRuntime): {
  stop(): TelemetrySection['consumer']['metricsByFirmware'];
} {
  const out: TelemetrySection['consumer']['metricsByFirmware'] = {};
  const names = {
    [METRICS.healthReports.name]: 'reports',
    [METRICS.unexpectedReboots.name]: 'unexpectedReboots',
    [METRICS.crashResets.name]: 'crashResets',
  } as const;
  const unsubscribe = lab.runner.addLogListener((functionName, line) => {
    if (!/HealthConsumer/.test(functionName) || !line.includes('"_aws"')) return;
    let doc: Record<string, unknown>;
    try {
      doc = JSON.parse(line.slice(line.indexOf('{'))) as Record<string, unknown>;
    } catch {
      return;
    }
    const fw = doc.FirmwareVersion;
    if (typeof fw !== 'string') return;
    const acc = (out[fw] ??= { reports: 0, unexpectedReboots: 0, crashResets: 0 });
    for (const [metric, field] of Object.entries(names)) {
      const v = doc[metric];
      const values = Array.isArray(v) ? v : typeof v === 'number' ? [v] : [];
      for (const n of values) if (typeof n === 'number') acc[field] += n;
    }
  });
  return {
    stop: () => {
      unsubscribe();
      return out;
    },
  };
}

/** Every `1/share`-th thing after skipping `offset` of them, at least one. */
function pick(things: readonly string[], share: number, offset: number): string[] {
  const n = Math.max(1, Math.round(things.length * share));
  return things.slice(offset, offset + n);
}

/** Reconnect the agents as their things, a few at a time. */
async function reconnectAll(agents: readonly DeviceAgent[]): Promise<void> {
  const queue = [...agents];
  await Promise.all(
    Array.from({ length: Math.min(32, queue.length) }, async () => {
      for (let a = queue.shift(); a; a = queue.shift()) await a.reconnect();
    }),
  );
}

/** A health report whose firmware is not a version: the consumer must dead-letter it. */
async function publishMalformed(agent: DeviceAgent, ctx: CliContext): Promise<void> {
  const thing = agent.identityAfterEnrollment?.thingName;
  const session = agent.session;
  const rule = ctx.resources.telemetryRules?.health;
  if (!thing || !session || !rule) return;
  const topic = topics.basicIngest(rule, topics.health(requireResource(ctx, 'topicPrefix'), thing));
  const bad = {
    ts: Date.now(),
    fw: 'not-a-version',
    bootId: 'x',
    uptimeS: 1,
    resetReason: 'POWER_ON',
    heapFreeB: 1,
    rssiDbm: -50,
  };
  await session.publish(topic, JSON.stringify(bad)).catch(() => undefined);
}

/** Every record of the stream, from the start of each shard to its end. */
async function readStream(ctx: CliContext, stream: string): Promise<StreamContent> {
  const out: StreamContent = { direct: new Map(), replayed: new Set(), lastWills: 0, health: [], invalid: 0 };
  for (const r of await readStreamRecords(kinesisClient(ctx), stream)) addRecord(out, r.data);
  return out;
}

function addRecord(out: StreamContent, text: string): void {
  const r = JSON.parse(text) as Record<string, unknown> & {
    type?: string;
    thing?: string;
    replayed?: boolean;
  };
  const thing = String(r.thing ?? '');
  let key: string | undefined;
  if (r.type === 'telemetry') {
    const first = (r.readings as { ts?: number }[] | undefined)?.[0]?.ts;
    if (typeof first === 'number') key = identity(thing, 'telemetry', first);
  } else if (r.type === 'health') {
    if (r.connection === 'lost') {
      out.lastWills++;
      return;
    }
    const report = healthReportSchema.safeParse(pickHealth(r));
    if (report.success) {
      key = identity(thing, 'health', report.data.ts);
      if (!r.replayed || !out.replayed.has(key)) out.health.push({ thing, report: report.data });
    }
  }
  if (!key) {
    out.invalid++;
    return;
  }
  if (r.replayed) out.replayed.add(key);
  else out.direct.set(key, (out.direct.get(key) ?? 0) + 1);
}

function pickHealth(r: Record<string, unknown>): Record<string, unknown> {
  const { ts, fw, bootId, uptimeS, resetReason, heapFreeB, heapMinB, rssiDbm } = r;
  return Object.fromEntries(
    Object.entries({ ts, fw, bootId, uptimeS, resetReason, heapFreeB, heapMinB, rssiDbm }).filter(
      ([, v]) => v !== undefined,
    ),
  );
}

/** Identities in the archive bucket (gzip objects of newline-separated records). */
async function readArchive(lab: LabRuntime): Promise<Set<string>> {
  const ids = new Set<string>();
  const bucket = labStackOutputs(lab)[STACK_OUTPUTS.telemetryArchiveBucket];
  if (!bucket) return ids;
  for (const key of await lab.s3.listKeys(bucket, 'records/')) {
    const body = await lab.s3.getObject(bucket, key);
    const text = key.endsWith('.gz') ? gunzipSync(body).toString('utf8') : body.toString('utf8');
    for (const line of text.split('\n')) {
      if (!line.trim()) continue;
      const tmp: StreamContent = {
        direct: new Map(),
        replayed: new Set(),
        lastWills: 0,
        health: [],
        invalid: 0,
      };
      addRecord(tmp, line);
      for (const k of [...tmp.direct.keys(), ...tmp.replayed]) ids.add(k);
    }
  }
  return ids;
}

function reconcile(
  ledger: LedgerReport,
  content: StreamContent,
  archived: Set<string>,
): { telemetry: MessageAccount; health: MessageAccount; unledgered: number } {
  const empty = (): MessageAccount => ({ published: 0, delivered: 0, replayed: 0, archived: 0, lost: 0 });
  const byKind = { telemetry: empty(), health: empty() };
  const ledgered = new Set<string>();
  for (const k of ledger.keys({ state: 'acked' })) {
    const id = identity(k.thing, k.kind, k.ts);
    ledgered.add(id);
    const a = byKind[k.kind];
    a.published++;
    const direct = content.direct.has(id);
    const replayed = content.replayed.has(id);
    if (direct) a.delivered++;
    else if (replayed) a.replayed++;
    else a.lost++;
    if (archived.has(id)) a.archived++;
  }
  const onStream = new Set([...content.direct.keys(), ...content.replayed]);
  const unledgered = [...onStream].filter((id) => !ledgered.has(id)).length + content.invalid;
  return { ...byKind, unledgered };
}

/** Streaming units, acknowledged messages and lost ones, per MQTT version of the units. */
function accountByMqttVersion(
  ledger: LedgerReport,
  content: StreamContent,
): TelemetrySection['byMqttVersion'] {
  const out: TelemetrySection['byMqttVersion'] = {};
  for (const d of Object.values(ledger.byDevice)) {
    const v = (out[d.mqttVersion] ??= { devices: 0, acked: 0, lost: 0 });
    v.devices++;
    v.acked += d.telemetry.acked + d.health.acked;
  }
  for (const k of ledger.keys({ state: 'acked' })) {
    const id = identity(k.thing, k.kind, k.ts);
    const version = ledger.byDevice[k.thing]?.mqttVersion;
    if (version && !content.direct.has(id) && !content.replayed.has(id)) out[version]!.lost++;
  }
  return out;
}

/** Health per firmware × ring from the stream's reports (rings from the registry). */
async function healthCohorts(
  content: StreamContent,
  registry: Registry,
  prefix: string,
): Promise<CohortHealth[]> {
  const rings = new Map<string, Ring | undefined>();
  for (const thing of new Set(content.health.map((h) => h.thing))) {
    const serial = serialFromThingName(prefix, thing);
    rings.set(thing, serial ? (await registry.getDevice(serial))?.ring : undefined);
  }
  // A device's reports in the order it made them (replayed ones arrive late on the stream).
  const inputs: HealthInput[] = [...content.health]
    .sort((a, b) => a.thing.localeCompare(b.thing) || a.report.ts - b.report.ts)
    .map((h) => ({ thing: h.thing, ring: rings.get(h.thing), report: h.report }));
  return aggregateHealth(inputs, new Map()).cohorts.sort(
    (a, b) => a.firmware.localeCompare(b.firmware) || a.ring.localeCompare(b.ring),
  );
}

/** What the health consumer must have written to the registry. */
async function checkRegistry(
  ctx: CliContext,
  registry: Registry,
  things: readonly string[],
  switched: readonly string[],
  firmwareOf: Record<string, readonly string[]>,
): Promise<TelemetrySection['registry']> {
  const prefix = requireResource(ctx, 'thingPrefix');
  let lastSeenSet = 0;
  let firmwareRecorded = 0;
  let firmwareChangedEntries = 0;
  const expected = new Map<string, string>();
  for (const [fw, list] of Object.entries(firmwareOf)) for (const t of list) expected.set(t, fw);
  const tables = registryTables(ctx);
  for (const thing of things) {
    const serial = serialFromThingName(prefix, thing);
    if (!serial) continue;
    const device = await registry.getDevice(serial);
    if (device?.lastSeen) lastSeenSet++;
    const fw = expected.get(thing);
    if (!fw) continue;
    if (device?.currentFirmware === fw) firmwareRecorded++;
    const trail = await ctx.clients.doc.send(
      new QueryCommand({
        TableName: tables.events,
        KeyConditionExpression: '#pk = :s',
        FilterExpression: '#type = :t',
        ExpressionAttributeNames: { '#pk': TABLES.events.partitionKey, '#type': 'type' },
        ExpressionAttributeValues: { ':s': serial, ':t': 'FIRMWARE_CHANGED' },
      }),
    );
    firmwareChangedEntries += trail.Items?.length ?? 0;
  }
  return { lastSeenSet, switched: switched.length, firmwareRecorded, firmwareChangedEntries };
}

/** What the telemetry phase must show. */
export function telemetryExpectations(t: TelemetrySection): Expectation[] {
  const crash = t.cohorts.filter((c) => c.firmware === t.firmware.crashLooping);
  const others = t.cohorts.filter((c) => c.firmware !== t.firmware.crashLooping);
  const rebootsOf = (cs: CohortHealth[]): number => cs.reduce((a, c) => a + c.unexpectedReboots, 0);
  const r = t.replay.counts;
  const out: Expectation[] = [
    {
      name: 'telemetry: every acknowledged message reached the stream (lost = 0)',
      ok: t.published > 0 && t.lost === 0,
      detail: `published ${t.published}, delivered ${t.delivered}, replayed ${t.replayed}, lost ${t.lost}`,
    },
    {
      name: 'telemetry: the archive holds every message of the stream',
      ok: t.archived === t.published - t.lost,
      detail: `archived ${t.archived} of ${t.published - t.lost}`,
    },
    {
      name: 'telemetry: replay re-ingested the whole error store',
      ok: r.failed === 0 && r.unreplayable === 0 && r.replayed === r.found - r.skipped,
      detail: `found ${r.found}, replayed ${r.replayed}, skipped ${r.skipped}, unreplayable ${r.unreplayable}, failed ${r.failed}`,
    },
    {
      name: 'health: the crash-looping release shows unexpected reboots, the others none',
      ok: rebootsOf(crash) > 0 && rebootsOf(others) === 0,
      detail: `${t.firmware.crashLooping}: ${rebootsOf(crash)}; others: ${rebootsOf(others)}`,
    },
    {
      name: "health: the consumer's metrics show unexpected reboots for the crash-looping release only",
      ok:
        (t.consumer.metricsByFirmware[t.firmware.crashLooping]?.unexpectedReboots ?? 0) > 0 &&
        Object.entries(t.consumer.metricsByFirmware).every(
          ([fw, m]) => fw === t.firmware.crashLooping || m.unexpectedReboots === 0,
        ),
      detail: Object.entries(t.consumer.metricsByFirmware)
        .map(([fw, m]) => `${fw}: ${m.unexpectedReboots} of ${m.reports} reports`)
        .join('; '),
    },
    {
      name: 'health: the registry holds the new firmware and one FIRMWARE_CHANGED entry per switched unit',
      ok:
        t.registry.firmwareRecorded === t.registry.switched &&
        t.registry.firmwareChangedEntries === t.registry.switched,
      detail: `${t.registry.switched} switched, ${t.registry.firmwareRecorded} recorded, ${t.registry.firmwareChangedEntries} trail entries`,
    },
    {
      name: 'health: lastSeen recorded for every streaming unit',
      ok: t.registry.lastSeenSet === t.devices,
      detail: `${t.registry.lastSeenSet} of ${t.devices}`,
    },
    {
      name: 'health: the malformed report went to the dead-letter queue, and nothing else',
      ok: t.consumer.deadLetters === 1 && t.consumer.deadLetterReasons.MALFORMED === 1,
      detail: JSON.stringify(t.consumer.deadLetterReasons),
    },
  ];
  if (t.outage)
    out.push({
      name: 'telemetry: the Kinesis outage sent messages to the error store',
      ok: r.found > 0,
      detail: `${r.found} error-store entries`,
    });
  for (const table of t.timeSeries.timestream)
    out.push({
      name: `telemetry: Timestream ${table.database}.${table.table} received the health reports`,
      ok: table.records > 0,
      detail: `${table.records} records in ${table.writes} writes`,
    });
  for (const target of t.timeSeries.influxdb)
    out.push({
      name: `telemetry: InfluxDB ${target.database}.${target.table} received the health reports`,
      ok: target.points > 0,
      detail: `${target.points} points`,
    });
  return out;
}
