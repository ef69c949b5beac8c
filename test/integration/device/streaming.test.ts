/**
 * Streaming devices against the lab's AWS IoT Core (loopback): enrolled through the fleet
 * provisioning MQTT API, then telemetry and health over Basic Ingest or the direct topics, QoS 1,
 * with the Last Will the broker publishes when a link drops. Time is a ManualScheduler: nothing
 * happens until the test advances it, and every wait is for an event, bounded.
 */
import {
  healthReportSchema,
  LAST_WILL_PAYLOAD,
  telemetryPayloadSchema,
  type HealthReport,
  type TelemetryPayload,
} from '../../../core/telemetry';
import {
  ManualScheduler,
  streamFleet,
  type DeviceAgent,
  type FleetStream,
  type LedgerKey,
  type LedgerReport,
  type StreamEvent,
  type StreamFleetOptions,
} from '../../../device';
import type { IotMessage } from '../../../lab/iot';
import { LabFleet, RULES } from './support/lab-fleet';

let lab: LabFleet;
beforeAll(async () => {
  lab = await LabFleet.start();
});
afterAll(async () => {
  await lab.stop();
});

const open: FleetStream[] = [];
const agents: DeviceAgent[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((s) => s.stop().catch(() => undefined)));
  await Promise.all(agents.splice(0).map((a) => a.close()));
});

/** Enroll `units` (serial → firmware) and stream from them on a fresh ManualScheduler. */
async function stream(
  units: Record<string, string>,
  options: Partial<StreamFleetOptions> = {},
): Promise<{ fleet: FleetStream; clock: ManualScheduler; events: StreamEvent[] }> {
  const { list } = await lab.enroll(units);
  agents.push(...list);
  const clock = new ManualScheduler();
  const events: StreamEvent[] = [];
  const fleet = streamFleet({
    agents: list,
    scheduler: clock,
    rules: RULES,
    seed: 'streaming-test',
    stagger: false,
    readingIntervalMs: 1_000,
    readingsPerMessage: 5,
    healthIntervalMs: 10_000,
    onEvent: (e) => events.push(e),
    ...options,
  });
  open.push(fleet);
  await fleet.whenSettled();
  return { fleet, clock, events };
}

/** Advance the fake clock step by step, letting each step's I/O finish before the next. */
async function advance(fleet: FleetStream, clock: ManualScheduler, ms: number, step = 250): Promise<void> {
  for (let done = 0; done < ms; done += step) {
    clock.advance(Math.min(step, ms - done));
    await fleet.whenSettled();
  }
}

/**
 * Advance until every device is online with an empty buffer (a flaky link may be down when a
 * fixed advance ends). Bounded by `maxMs` of fake time.
 */
async function advanceUntilIdle(fleet: FleetStream, clock: ManualScheduler, maxMs = 60_000): Promise<void> {
  for (let spent = 0; ![...fleet.devices.values()].every((d) => d.isIdle()); spent += 250) {
    if (spent >= maxMs) throw new Error(`not idle after ${maxMs} ms of fake time`);
    clock.advance(250);
    await fleet.whenSettled();
  }
}

const isData = (m: IotMessage, thing: string, kind: 'telemetry' | 'health'): boolean =>
  m.topic.endsWith(`/fleet/${thing}/${kind}`) && m.clientId === thing;
const body = (m: IotMessage): Record<string, unknown> =>
  JSON.parse(m.payload.toString()) as Record<string, unknown>;
const isWill = (m: IotMessage): boolean => m.payload.toString() === JSON.stringify(LAST_WILL_PAYLOAD);

/** The (thing, kind, ts) identity of a received data message, as the ledger keys messages. */
function identity(m: IotMessage): string {
  const b = body(m);
  const kind = m.topic.endsWith('/telemetry') ? 'telemetry' : 'health';
  const ts = kind === 'telemetry' ? (b as TelemetryPayload).readings[0].ts : (b as HealthReport).ts;
  return `${m.clientId}/${kind}/${ts}`;
}
const keyId = (k: LedgerKey): string => `${k.thing}/${k.kind}/${k.ts}`;

/** Every acked key arrived exactly once; nothing arrived that the ledger does not know. */
function expectReconciled(report: LedgerReport): void {
  const things = new Set(Object.keys(report.byDevice));
  const received = lab.messages
    .filter((m) => things.has(m.clientId ?? '') && !isWill(m) && m.topic.includes('/fleet/'))
    .map(identity);
  const acked = [...report.keys({ state: 'acked' })].map(keyId);
  expect([...received].sort()).toEqual([...acked].sort());
  for (const kind of ['telemetry', 'health'] as const) {
    const c = report[kind];
    expect(c.created).toBe(c.acked + c.dropped + c.pending);
  }
}

test('healthy units stream over Basic Ingest: valid payloads, QoS 1, seq from 0, an exact ledger', async () => {
  const { fleet, clock } = await stream({ HLT0001: '1.0.0', HLT0002: '1.0.0' });
  const things = [...fleet.devices.keys()];
  expect(things).toEqual(['fleet-HLT0001', 'fleet-HLT0002']);
  const device = fleet.devices.get('fleet-HLT0001')!;
  expect(device.dataTopics).toEqual({
    telemetry: '$aws/rules/fleet_telemetry/dt/fleet/fleet-HLT0001/telemetry',
    health: '$aws/rules/fleet_health/dt/fleet/fleet-HLT0001/health',
  });
  const publish = jest.spyOn(agents.find((a) => a.serial === 'HLT0001')!.session!.client, 'publish');

  await advance(fleet, clock, 10_000);
  await fleet.whenIdle();
  const report = await fleet.stop();

  for (const thing of things) {
    const telemetry = lab.messages.filter((m) => isData(m, thing, 'telemetry'));
    const health = lab.messages.filter((m) => isData(m, thing, 'health'));
    expect(telemetry.map((m) => m.topic)).toEqual([
      `$aws/rules/fleet_telemetry/dt/fleet/${thing}/telemetry`,
      `$aws/rules/fleet_telemetry/dt/fleet/${thing}/telemetry`,
    ]);
    const payloads = telemetry.map((m) => telemetryPayloadSchema.parse(body(m)));
    expect(payloads.map((p) => p.seq)).toEqual([0, 1]);
    expect(payloads.map((p) => p.readings.length)).toEqual([5, 5]);
    expect(Object.keys(payloads[0].readings[0].values).sort()).toEqual([
      'battery_v',
      'humidity_pct',
      'temperature_c',
    ]);
    // One report right after the boot, one at the health interval.
    const reports = health.map((m) => healthReportSchema.parse(body(m)));
    expect(reports.map((r) => [r.resetReason, r.uptimeS, r.fw])).toEqual([
      ['POWER_ON', 0, '1.0.0'],
      ['POWER_ON', 10, '1.0.0'],
    ]);
    expect(new Set(reports.map((r) => r.bootId)).size).toBe(1);
    expect(health.every((m) => m.topic === `$aws/rules/fleet_health/dt/fleet/${thing}/health`)).toBe(true);
  }
  expect(publish.mock.calls.length).toBeGreaterThan(0);
  for (const call of publish.mock.calls) expect(call[2]).toMatchObject({ qos: 1 });

  expect(report.devices).toBe(2);
  expect(report.telemetry).toMatchObject({
    created: 4,
    published: 4,
    acked: 4,
    failed: 0,
    buffered: 0,
    dropped: 0,
    pending: 0,
    readingsAcked: 20,
  });
  expect(report.health).toMatchObject({ created: 4, published: 4, acked: 4, dropped: 0, pending: 0 });
  expect(report.links).toMatchObject({ connects: 2, abruptEnds: 0, closes: 2, reboots: {} });
  expectReconciled(report);
  expect(JSON.parse(JSON.stringify(report)).keys).toHaveLength(8);
  // Stopped with DISCONNECT: no Last Will.
  expect(lab.messages.filter((m) => things.includes(m.clientId ?? '') && isWill(m))).toEqual([]);
});

test('--direct: the dt/<prefix>/<thing>/… topics, which subscribers can watch', async () => {
  const { fleet, clock } = await stream({ DIR0001: '1.0.0' }, { delivery: 'direct', rules: undefined });
  await advance(fleet, clock, 5_000);
  await fleet.whenIdle();
  const report = await fleet.stop();
  const mine = lab.messages.filter((m) => m.clientId === 'fleet-DIR0001');
  expect(mine.map((m) => m.topic)).toEqual([
    'dt/fleet/fleet-DIR0001/health',
    'dt/fleet/fleet-DIR0001/telemetry',
  ]);
  expect(report.telemetry.acked).toBe(1);
  expectReconciled(report);
});

test('Basic Ingest without rule names fails before anything is published, naming the fix', async () => {
  const { list } = await lab.enroll({ NORULE01: '1.0.0' });
  agents.push(...list);
  expect(() => streamFleet({ agents: list, scheduler: new ManualScheduler(), rules: undefined })).toThrow(
    /Basic Ingest needs the telemetry rule name \(the stack's TelemetryRules output\)/,
  );
});

test('flaky: the link drops (Last Will), readings are buffered and re-sent after the reconnect, none lost', async () => {
  const { fleet, clock, events } = await stream(
    { FLK0001: '1.2.0' },
    {
      profiles: { '1.2.0': 'flaky' },
      profileSettings: { flaky: { dropEveryMs: 6_000, offlineMs: 4_000 } },
    },
  );
  const device = fleet.devices.get('fleet-FLK0001')!;
  expect(device.profile).toBe('flaky');
  await advance(fleet, clock, 40_000);
  await advanceUntilIdle(fleet, clock);
  const report = await fleet.stop();

  const drops = events.filter((e) => e.type === 'offline' && e.cause === 'drop');
  expect(drops.length).toBeGreaterThanOrEqual(3);
  // The broker published one Last Will per drop, on the direct health topic.
  await lab.until(
    () => lab.messages.filter((m) => m.clientId === 'fleet-FLK0001' && isWill(m)).length === drops.length,
    'one Last Will per link drop',
  );
  const wills = lab.messages.filter((m) => m.clientId === 'fleet-FLK0001' && isWill(m));
  expect(new Set(wills.map((m) => m.topic))).toEqual(new Set(['dt/fleet/fleet-FLK0001/health']));

  const d = report.byDevice['fleet-FLK0001'];
  expect(d.links.abruptEnds).toBe(drops.length);
  expect(d.links.connects).toBe(drops.length + 1);
  expect(d.telemetry.buffered).toBeGreaterThan(0);
  expect(d.telemetry.resent).toBe(d.telemetry.buffered);
  expect(d.telemetry).toMatchObject({ dropped: 0, pending: 0, failed: 0 });
  expect(d.telemetry.acked).toBe(d.telemetry.created);
  expect(d.telemetry.readingsAcked).toBe(d.telemetry.acked * 5);
  expect(d.telemetry.readingsAcked).toBeGreaterThanOrEqual(40);
  expect(d.health.acked).toBe(d.health.created);
  // Every buffered message went out once the link was back.
  for (const k of report.keys({ thing: 'fleet-FLK0001' })) expect(k.state).toBe('acked');
  expect([...report.keys({ kind: 'telemetry' })].filter((k) => k.buffered).length).toBe(d.telemetry.buffered);
  // A health report right after each reconnect; one boot throughout.
  const reports = lab.messages
    .filter((m) => isData(m, 'fleet-FLK0001', 'health') && !isWill(m))
    .map((m) => healthReportSchema.parse(body(m)));
  expect(new Set(reports.map((r) => r.bootId)).size).toBe(1);
  expect(reports.length).toBeGreaterThanOrEqual(drops.length + 1);
  expectReconciled(report);
});

test('a full buffer drops the oldest messages first and counts them', async () => {
  const { fleet, clock } = await stream(
    { BUF0001: '1.2.0' },
    {
      readingsPerMessage: 1,
      bufferMessages: 3,
      healthIntervalMs: 3_600_000,
      profiles: { '1.2.0': 'flaky' },
      profileSettings: { flaky: { dropEveryMs: 2_000, offlineMs: 10_000 } },
    },
  );
  // The first drop comes within 3 s; the link stays down 10 s.
  await advance(fleet, clock, 12_000);
  const report = fleet.ledger();
  const d = report.byDevice['fleet-BUF0001'];
  expect(d.links.abruptEnds).toBe(1);
  expect(d.telemetry.dropped).toBeGreaterThan(0);
  const dropped = [...report.keys({ state: 'dropped' })];
  const kept = [...report.keys({ kind: 'telemetry' })].filter((k) => k.buffered && k.state !== 'dropped');
  expect(kept.length).toBeGreaterThan(0);
  expect(Math.max(...dropped.map((k) => k.ts))).toBeLessThan(Math.min(...kept.map((k) => k.ts)));
  expect(d.telemetry.readingsDropped).toBe(d.telemetry.dropped);
  await advanceUntilIdle(fleet, clock);
  const final = await fleet.stop();
  expect(final.telemetry.created).toBe(final.telemetry.acked + final.telemetry.dropped);
  expect(final.telemetry.pending).toBe(0);
  expectReconciled(final);
});

test('crash-looping: the session dies (Last Will), a new boot with uptime 0 and WATCHDOG reports at once', async () => {
  const { fleet, clock, events } = await stream(
    { CRS0001: '1.1.0-rc1', CRS0002: '1.0.0' },
    {
      profiles: { '1.0.0': 'healthy', '1.1.0-rc1': 'crash-looping' },
      profileSettings: { crashLooping: { crashEveryMs: 4_500 }, rebootMs: 1_000 },
    },
  );
  expect(fleet.devices.get('fleet-CRS0001')!.profile).toBe('crash-looping');
  expect(fleet.devices.get('fleet-CRS0002')!.profile).toBe('healthy');
  // Boots at 0, 5.5 s and 11 s; crashes at 4.5 s, 10 s (and 15.5 s).
  await advance(fleet, clock, 13_000);
  await fleet.whenIdle();

  const crashes = events.filter((e) => e.type === 'offline' && e.cause === 'crash');
  expect(crashes.map((e) => e.thing)).toEqual(['fleet-CRS0001', 'fleet-CRS0001']);
  const boots = events.filter((e): e is Extract<StreamEvent, { type: 'boot' }> => e.type === 'boot');
  expect(boots.filter((b) => b.thing === 'fleet-CRS0001').map((b) => b.resetReason)).toEqual([
    'POWER_ON',
    'WATCHDOG',
    'WATCHDOG',
  ]);
  await lab.until(
    () => lab.messages.filter((m) => m.clientId === 'fleet-CRS0001' && isWill(m)).length === 2,
    'a Last Will per crash',
  );
  const reports = lab.messages
    .filter((m) => isData(m, 'fleet-CRS0001', 'health') && !isWill(m))
    .map((m) => healthReportSchema.parse(body(m)));
  const firstOfBoot = [...new Map(reports.map((r) => [r.bootId, r])).values()].map((r) =>
    reports.find((x) => x.bootId === r.bootId),
  );
  expect(firstOfBoot.map((r) => [r!.resetReason, r!.uptimeS])).toEqual([
    ['POWER_ON', 0],
    ['WATCHDOG', 0],
    ['WATCHDOG', 0],
  ]);
  expect(new Set(firstOfBoot.map((r) => r!.bootId)).size).toBe(3);
  // The boot's report is sent right after the reconnect: at the boot's own time.
  const bootTimes = boots.filter((b) => b.thing === 'fleet-CRS0001').map((b) => b.bootId);
  expect(firstOfBoot.map((r) => r!.bootId)).toEqual(bootTimes);
  // The crash-looping firmware leaks heap; the healthy one stays connected throughout.
  expect(lab.messages.filter((m) => m.clientId === 'fleet-CRS0002' && isWill(m))).toEqual([]);

  const report = await fleet.stop();
  const d = report.byDevice['fleet-CRS0001'];
  expect(d.links).toMatchObject({ abruptEnds: 2, connects: 3, reboots: { WATCHDOG: 2 } });
  expect(d.bootIds).toHaveLength(3);
  // Readings of the batch in progress die with the device (5 per message, 4 taken per boot).
  expect(d.telemetry.readingsLost).toBe(8);
  expect(report.byDevice['fleet-CRS0002'].links).toMatchObject({ abruptEnds: 0, reboots: {} });
  expectReconciled(report);
});

test('setFirmware reboots with REQUESTED (no Last Will) into the new version and its profile', async () => {
  const { fleet, clock, events } = await stream(
    { OTA0001: '1.1.0-rc1' },
    {
      profiles: { '1.1.0-rc1': 'crash-looping' },
      profileSettings: { crashLooping: { crashEveryMs: 5_000 }, rebootMs: 1_000 },
    },
  );
  const device = fleet.devices.get('fleet-OTA0001')!;
  await advance(fleet, clock, 2_000);
  await device.setFirmware('1.0.0');
  expect(device.online).toBe(false);
  await advance(fleet, clock, 30_000);
  await fleet.whenIdle();
  expect(device.firmware).toBe('1.0.0');
  expect(device.profile).toBe('healthy');
  const boots = events.filter((e): e is Extract<StreamEvent, { type: 'boot' }> => e.type === 'boot');
  expect(boots.map((b) => [b.resetReason, b.firmware, b.profile])).toEqual([
    ['POWER_ON', '1.1.0-rc1', 'crash-looping'],
    ['REQUESTED', '1.0.0', 'healthy'],
  ]);
  const report = await fleet.stop();
  expect(report.byDevice['fleet-OTA0001'].links).toMatchObject({
    abruptEnds: 0,
    closes: 2,
    reboots: { REQUESTED: 1 },
  });
  const reports = lab.messages
    .filter((m) => isData(m, 'fleet-OTA0001', 'health') && !isWill(m))
    .map((m) => healthReportSchema.parse(body(m)));
  const afterUpdate = reports.find((r) => r.resetReason === 'REQUESTED')!;
  expect(afterUpdate).toMatchObject({ fw: '1.0.0', uptimeS: 0 });
  expect(lab.messages.filter((m) => m.clientId === 'fleet-OTA0001' && isWill(m))).toEqual([]);
  // The batch in progress was sent before the reboot: nothing lost.
  expect(report.telemetry.readingsLost).toBe(0);
  expectReconciled(report);
});
