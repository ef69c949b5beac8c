/** The scenario's MQTT version section (pure parts): per-version figures, expectations, the closing note. */
import type { DeviceRunResult, MqttVersion } from '../../../device';
import type { UnitOutcome } from '../../../lab/scenario/expectations';
import {
  checkProbeOptions,
  mqttExpectations,
  mqttSection,
  type BurstStats,
  type ProbeResult,
} from '../../../lab/scenario/mqtt-versions';
import type { PlannedDevice } from '../../../lab/scenario/plan';
import { mqttClosingNote, mqttLines } from '../../../lab/scenario/report';

function unit(
  serial: string,
  mqttVersion: MqttVersion,
  outcome: 'enrolled' | 'denied' | 'gaveUp',
  kind: PlannedDevice['kind'] = 'good',
  enrollMs = 100,
): UnitOutcome {
  const base = { serial, specSerial: serial, mqttVersion, retries: 0 };
  const result: DeviceRunResult =
    outcome === 'enrolled'
      ? {
          ...base,
          outcome,
          thingName: `fleet-${serial}`,
          certificateId: 'c',
          enrollMs,
          deviceConfiguration: {},
        }
      : outcome === 'denied'
        ? {
            ...base,
            outcome,
            api: 'RegisterThing',
            errorCode: 'AccessDenied',
            errorMessage: 'x',
            elapsedMs: 1,
          }
        : { ...base, outcome, phase: 'provisioning', lastError: 'x', cause: 'x', elapsedMs: 1 };
  return {
    planned: {
      spec: { identity: { serial, lot: 'L', hwRev: 'A', firmware: '1.0.0' }, mqttVersion },
      kind,
      template: 't',
    },
    result,
  };
}

const burst = (
  attempted: number,
  succeeded: number,
  perSecond: number,
  p50Ms = 5,
  failures = {},
): BurstStats => ({
  attempted,
  succeeded,
  failures,
  wallMs: 1000,
  perSecond,
  roundsPerSecond: [perSecond],
  p50Ms,
  p99Ms: p50Ms * 3,
});

const units = [
  unit('A1', '3.1.1', 'enrolled', 'good', 100),
  unit('A2', '3.1.1', 'enrolled', 'good', 300),
  unit('B1', '5', 'enrolled', 'good', 120),
  unit('B2', '5', 'denied', 'unknownSerial'),
];
const active = new Set(['A1', 'A2', 'B1']);
const probe: ProbeResult = {
  '3.1.1': { connect: burst(2, 2, 400), publish: burst(40, 40, 2000) },
  '5': { connect: burst(1, 1, 380), publish: burst(20, 20, 2100) },
};

test('per version: units, enrollment, the probe and the stream', () => {
  const section = mqttSection({
    mqtt5Share: 0.5,
    units,
    active,
    probe: { result: probe, messagesPerUnit: 20, concurrency: 32, rounds: 2 },
    stream: { '3.1.1': { devices: 2, acked: 30, lost: 0 }, '5': { devices: 1, acked: 15, lost: 0 } },
  });
  expect(section.probe).toEqual({ messagesPerUnit: 20, concurrency: 32, rounds: 2 });
  expect(section.versions).toEqual([
    expect.objectContaining({
      version: '3.1.1',
      units: 2,
      good: 2,
      enrolled: 2,
      active: 2,
      enrollP50Ms: 100,
      enrollP99Ms: 300,
    }),
    expect.objectContaining({
      version: '5',
      units: 2,
      good: 1,
      enrolled: 1,
      active: 1,
      stream: { devices: 1, acked: 15, lost: 0 },
    }),
  ]);
  const x = mqttExpectations(section, units);
  expect(x.every((e) => e.ok)).toBe(true);
  expect(x.map((e) => e.name)).toEqual([
    'MQTT 3.1.1 and 5: both versions enrolled and activated units in the same run',
    'MQTT 3.1.1: every good unit on it enrolled',
    'MQTT 3.1.1: the probe connected every ACTIVE unit and every message was acknowledged',
    'MQTT 3.1.1: its units streamed and nothing they published was lost',
    'MQTT 5: every good unit on it enrolled',
    'MQTT 5: the probe connected every ACTIVE unit and every message was acknowledged',
    'MQTT 5: its units streamed and nothing they published was lost',
  ]);
  expect(mqttClosingNote(section)).toBe(
    'MQTT 5 against 3.1.1 in this run: connects 380.0/s against 400.0/s (×0.95), publishes 2100.0/s against 2000.0/s (×1.05); connect p50 5.0 against 5.0 ms, PUBACK p50 5.0 against 5.0 ms',
  );
  const table = mqttLines(section);
  expect(table[0]).toBe('MQTT versions in the same run (50% of the units on MQTT 5, the rest on 3.1.1)');
  expect(table[1]).toMatch(/^ {2}version +units +enrolled +active +enroll p50\/p99 ms +connects\/s/);
  expect(table[2]).toMatch(/^ {2}3\.1\.1 +2 +2 +2 +100\/300 +400\.0 +5\.0\/15 +2000\.0 +5\.0\/15 +30 +0$/);
  expect(table[3]).toMatch(/^ {2}5 +2 +1 +1 /);
});

test('a version that lost messages, missed a connect or enrolled no good unit fails, naming why', () => {
  const section = mqttSection({
    mqtt5Share: 0.5,
    units: [unit('A1', '3.1.1', 'enrolled'), unit('B1', '5', 'denied')],
    active: new Set(['A1']),
    probe: {
      result: {
        '3.1.1': {
          connect: burst(1, 1, 100),
          publish: burst(20, 18, 100, 5, { 'publish refused on t: PUBACK 0x87 Not authorized': 2 }),
        },
      },
      messagesPerUnit: 20,
      concurrency: 32,
      rounds: 1,
    },
    stream: { '3.1.1': { devices: 1, acked: 10, lost: 1 } },
  });
  const failed = mqttExpectations(section, [
    unit('A1', '3.1.1', 'enrolled'),
    unit('B1', '5', 'denied'),
  ]).filter((e) => !e.ok);
  expect(failed.map((e) => [e.name, e.detail])).toEqual([
    [
      'MQTT 3.1.1 and 5: both versions enrolled and activated units in the same run',
      '3.1.1: 1 ACTIVE, 5: 0 ACTIVE',
    ],
    [
      'MQTT 3.1.1: the probe connected every ACTIVE unit and every message was acknowledged',
      '1/1 connected, 18/20 acknowledged: 2× publish refused on t: PUBACK 0x87 Not authorized',
    ],
    [
      'MQTT 3.1.1: its units streamed and nothing they published was lost',
      '1 units, 10 acknowledged, 1 lost',
    ],
    ['MQTT 5: every good unit on it enrolled', '0/1'],
  ]);
  expect(mqttClosingNote(section)).toBeUndefined();
});

test('a fleet on one version does not ask for both', () => {
  const section = mqttSection({
    mqtt5Share: 1,
    units: [unit('B1', '5', 'enrolled')],
    active: new Set(['B1']),
  });
  expect(section.versions.map((v) => v.version)).toEqual(['5']);
  expect(mqttExpectations(section, [unit('B1', '5', 'enrolled')]).map((e) => e.name)).toEqual([
    'MQTT 5: every good unit on it enrolled',
  ]);
  expect(mqttLines(section).at(-1)).toBe('  probe: not run');
});

test.each([
  [
    { messagesPerUnit: 101 },
    /messagesPerUnit must be a whole number from 1 to 100 \(AWS IoT Core's publishes per second per connection\), got 101/,
  ],
  [{ messagesPerUnit: 0 }, /got 0/],
  [{ concurrency: 0 }, /concurrency must be a positive whole number, got 0/],
  [{ rounds: 0 }, /rounds must be a positive whole number, got 0/],
])('probe options %j are refused', (o, message) => {
  expect(() => checkProbeOptions(o)).toThrow(message);
});
