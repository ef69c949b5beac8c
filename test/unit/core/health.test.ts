/**
 * core/health.ts: what one report says against the previous state (every reset reason on every
 * path), thresholds, firmware changes, the cohort key and the counting rule, cohort aggregation,
 * merging, the rate helpers and the firmware dimension cap.
 */
import {
  aggregateHealth,
  assessReport,
  CohortHealth,
  cohortKey,
  countFreshReport,
  DEFAULT_HEALTH_THRESHOLDS,
  DeviceHealthState,
  FirmwareDimensions,
  HealthInput,
  mergeCohorts,
  newTally,
  OTHER_FIRMWARE_DIMENSION,
  rebootsPerDeviceHour,
  unexpectedRebootRate,
} from '../../../core/health';
import { HealthReport, RESET_REASONS, ResetReason } from '../../../core/telemetry';

const T = 1_760_000_000_000;

const report = (over: Partial<HealthReport> = {}): HealthReport => ({
  ts: T,
  fw: '1.0.0',
  bootId: 'boot-2',
  uptimeS: 30,
  resetReason: 'POWER_ON',
  heapFreeB: 60_000,
  rssiDbm: -60,
  ...over,
});

const previous: DeviceHealthState = { bootId: 'boot-1', uptimeS: 3600, ts: T - 60_000, fw: '1.0.0' };

/** Per reset reason: [unexpected on a new boot, crash]. Written out, not derived from the constants. */
const REASONS: [ResetReason, boolean, boolean][] = [
  ['POWER_ON', false, false],
  ['REQUESTED', false, false],
  ['WATCHDOG', true, true],
  ['PANIC', true, true],
  ['BROWNOUT', true, false],
  ['EXTERNAL', true, false],
  ['UNKNOWN', true, false],
];

test('the table covers every reset reason', () => {
  expect(REASONS.map(([r]) => r).sort()).toEqual([...RESET_REASONS].sort());
});

const flags = (a: ReturnType<typeof assessReport>) => ({
  stale: a.stale,
  newBoot: a.newBoot,
  unexpectedReboot: a.unexpectedReboot,
  crash: a.crash,
  uptimeWentBackwards: a.uptimeWentBackwards,
});

describe('assessReport: every reset reason on every path', () => {
  test.each(REASONS)('%s on a new boot id', (resetReason, unexpected, crash) => {
    const a = assessReport(report({ resetReason, bootId: 'boot-2', uptimeS: 30 }), previous);
    expect(flags(a)).toEqual({
      stale: false,
      newBoot: true,
      unexpectedReboot: unexpected,
      crash,
      uptimeWentBackwards: false,
    });
    expect(a.next).toEqual({ bootId: 'boot-2', uptimeS: 30, ts: T, fw: '1.0.0' });
  });

  test.each(REASONS)('%s within the same boot (uptime forward): nothing to count', (resetReason) => {
    const a = assessReport(report({ resetReason, bootId: 'boot-1', uptimeS: 3660 }), previous);
    expect(flags(a)).toEqual({
      stale: false,
      newBoot: false,
      unexpectedReboot: false,
      crash: false,
      uptimeWentBackwards: false,
    });
    expect(a.next).toEqual({ bootId: 'boot-1', uptimeS: 3660, ts: T, fw: '1.0.0' });
  });

  test.each(REASONS)("%s on a device's first report ever: the baseline, nothing counted", (resetReason) => {
    const a = assessReport(report({ resetReason, fw: '9.9.9' }), undefined);
    expect(flags(a)).toEqual({
      stale: false,
      newBoot: false,
      unexpectedReboot: false,
      crash: false,
      uptimeWentBackwards: false,
    });
    expect(a.firmwareChanged).toBe(false);
    expect(a.next).toEqual({ bootId: 'boot-2', uptimeS: 30, ts: T, fw: '9.9.9' });
  });

  test.each(REASONS)(
    '%s with uptime going backwards under the same boot id: always an unexpected reboot',
    (resetReason, _unexpected, crash) => {
      const a = assessReport(report({ resetReason, bootId: 'boot-1', uptimeS: 10 }), previous);
      expect(flags(a)).toEqual({
        stale: false,
        newBoot: true,
        unexpectedReboot: true,
        crash,
        uptimeWentBackwards: true,
      });
    },
  );

  test.each(
    REASONS.flatMap(([r]) => [
      [r, 'a duplicate (same time)', 0] as const,
      [r, 'out of order (older)', -1] as const,
    ]),
  )('%s in %s: stale, no flag, the state stays', (resetReason, _what, dt) => {
    const a = assessReport(
      report({
        resetReason,
        ts: previous.ts + dt,
        bootId: 'boot-9',
        uptimeS: 1,
        fw: '2.0.0',
        heapFreeB: 0,
        rssiDbm: -120,
      }),
      previous,
    );
    expect(a).toEqual({
      stale: true,
      newBoot: false,
      unexpectedReboot: false,
      crash: false,
      uptimeWentBackwards: false,
      lowHeap: false,
      weakRssi: false,
      firmwareChanged: false,
      next: previous,
    });
  });

  test('equal uptime under the same boot id is not going backwards', () => {
    expect(flags(assessReport(report({ bootId: 'boot-1', uptimeS: 3600 }), previous))).toMatchObject({
      newBoot: false,
      uptimeWentBackwards: false,
    });
  });

  test('a new boot id with a smaller uptime is a new boot, not uptime going backwards', () => {
    const a = assessReport(report({ bootId: 'boot-2', uptimeS: 5, resetReason: 'REQUESTED' }), previous);
    expect(a).toMatchObject({ newBoot: true, uptimeWentBackwards: false, unexpectedReboot: false });
  });
});

describe('thresholds', () => {
  test('the defaults', () => {
    expect(DEFAULT_HEALTH_THRESHOLDS).toEqual({ lowHeapBytes: 16_384, weakRssiDbm: -85 });
  });

  test.each<[string, Partial<HealthReport>, { lowHeap: boolean; weakRssi: boolean }]>([
    ['healthy', {}, { lowHeap: false, weakRssi: false }],
    ['free heap at the threshold', { heapFreeB: 16_384 }, { lowHeap: false, weakRssi: false }],
    ['free heap one byte under', { heapFreeB: 16_383 }, { lowHeap: true, weakRssi: false }],
    ['no free heap', { heapFreeB: 0 }, { lowHeap: true, weakRssi: false }],
    ['RSSI at the threshold', { rssiDbm: -85 }, { lowHeap: false, weakRssi: false }],
    ['RSSI one dBm under', { rssiDbm: -86 }, { lowHeap: false, weakRssi: true }],
    ['both', { heapFreeB: 1, rssiDbm: -120 }, { lowHeap: true, weakRssi: true }],
  ])('%s (default thresholds)', (_name, over, expected) => {
    const a = assessReport(report(over), previous);
    expect({ lowHeap: a.lowHeap, weakRssi: a.weakRssi }).toEqual(expected);
  });

  test('given thresholds replace the defaults; the lowest heap since boot is not judged', () => {
    const thresholds = { lowHeapBytes: 100_000, weakRssiDbm: -50 };
    const a = assessReport(report({ heapFreeB: 60_000, heapMinB: 0, rssiDbm: -60 }), previous, thresholds);
    expect({ lowHeap: a.lowHeap, weakRssi: a.weakRssi }).toEqual({ lowHeap: true, weakRssi: true });
    const b = assessReport(report({ heapFreeB: 60_000, heapMinB: 0 }), previous);
    expect(b.lowHeap).toBe(false);
  });

  test('the first report ever is judged against the thresholds too', () => {
    expect(assessReport(report({ heapFreeB: 1, rssiDbm: -99 }), undefined)).toMatchObject({
      lowHeap: true,
      weakRssi: true,
    });
  });
});

describe('firmware change', () => {
  test.each<[string, Partial<HealthReport>, DeviceHealthState | undefined, boolean]>([
    ['another version than the previous report', { fw: '1.1.0' }, previous, true],
    ['a pre-release of the same version', { fw: '1.0.0-rc.1' }, previous, true],
    ['the same version', { fw: '1.0.0' }, previous, false],
    ['the first report ever', { fw: '1.1.0' }, undefined, false],
    ['a stale report of another version', { fw: '1.1.0', ts: previous.ts }, previous, false],
  ])('%s', (_name, over, prior, expected) => {
    expect(assessReport(report(over), prior).firmwareChanged).toBe(expected);
  });
});

describe('the cohort key and the counting rule', () => {
  test('one key per firmware x ring, whatever characters a version holds', () => {
    expect(cohortKey('1.0.0', 'canary')).toBe(cohortKey('1.0.0', 'canary'));
    const keys = [
      cohortKey('1.0.0', 'canary'),
      cohortKey('1.0.0', 'broad'),
      cohortKey('1.0.1', 'canary'),
      cohortKey('1.0.0-canary', 'unknown'),
      cohortKey('1.0.0', 'unknown'),
    ];
    expect(new Set(keys).size).toBe(keys.length);
  });

  test('a report counts once, with its flags; its device once per cohort', () => {
    const c = newTally();
    const crash = assessReport(report({ bootId: 'x', resetReason: 'PANIC', heapFreeB: 1 }), previous);
    const plain = assessReport(report({ rssiDbm: -100 }), undefined);
    countFreshReport(c, 'd1', crash);
    countFreshReport(c, 'd1', plain);
    countFreshReport(c, 'd2', plain);
    expect(c).toEqual({
      reports: 3,
      activeDevices: 2,
      unexpectedReboots: 1,
      crashResets: 1,
      lowHeapReports: 1,
      weakRssiReports: 2,
      devices: new Set(['d1', 'd2']),
    });
  });
});

describe('aggregateHealth', () => {
  const input = (thing: string, over: Partial<HealthReport>, ring?: HealthInput['ring']): HealthInput => ({
    thing,
    ring,
    report: report(over),
  });

  test('per firmware x ring, each report against the state its device reached so far', () => {
    const prior = new Map<string, DeviceHealthState>([
      ['t1', { bootId: 'a', uptimeS: 100, ts: T - 10_000, fw: '1.0.0' }],
      ['t2', { bootId: 'x', uptimeS: 100, ts: T - 10_000, fw: '1.0.0' }],
    ]);
    const frozen = new Map(prior);
    const inputs = [
      input('t1', { ts: T, bootId: 'a', uptimeS: 110 }, 'canary'),
      input('t1', { ts: T + 1000, bootId: 'b', uptimeS: 1, resetReason: 'PANIC' }, 'canary'),
      // Compared with the report just before, not with the previous state: the same boot.
      input('t1', { ts: T + 2000, bootId: 'b', uptimeS: 2 }, 'canary'),
      input(
        't2',
        { ts: T, bootId: 'y', uptimeS: 1, fw: '1.1.0', resetReason: 'REQUESTED', heapFreeB: 1 },
        'canary',
      ),
      input('t3', { ts: T, rssiDbm: -90 }),
      input('t1', { ts: T + 2000, bootId: 'b', uptimeS: 2 }, 'canary'),
    ];
    const { cohorts, assessments, states } = aggregateHealth(inputs, prior, DEFAULT_HEALTH_THRESHOLDS);
    expect(assessments.map((a) => [a.stale, a.newBoot, a.unexpectedReboot, a.crash])).toEqual([
      [false, false, false, false],
      [false, true, true, true],
      [false, false, false, false],
      [false, true, false, false],
      [false, false, false, false],
      [true, false, false, false],
    ]);
    const byKey = Object.fromEntries(cohorts.map((c) => [`${c.firmware}/${c.ring}`, c]));
    expect(byKey['1.0.0/canary']).toEqual({
      firmware: '1.0.0',
      ring: 'canary',
      reports: 3,
      activeDevices: 1,
      unexpectedReboots: 1,
      crashResets: 1,
      lowHeapReports: 0,
      weakRssiReports: 0,
      staleReports: 1,
      firmwareChanges: 0,
    });
    expect(byKey['1.1.0/canary']).toMatchObject({
      reports: 1,
      activeDevices: 1,
      firmwareChanges: 1,
      lowHeapReports: 1,
    });
    expect(byKey['1.0.0/unknown']).toMatchObject({ reports: 1, activeDevices: 1, weakRssiReports: 1 });
    expect(states.get('t1')).toEqual({ bootId: 'b', uptimeS: 2, ts: T + 2000, fw: '1.0.0' });
    expect(states.get('t3')).toEqual({ bootId: 'boot-2', uptimeS: 30, ts: T, fw: '1.0.0' });
    expect(prior).toEqual(frozen);
  });

  test('the previous state may come from a function', () => {
    const lookup = jest.fn((thing: string) => (thing === 't1' ? previous : undefined));
    const { assessments } = aggregateHealth(
      [input('t1', { resetReason: 'WATCHDOG' }), input('t1', { ts: T + 1, uptimeS: 31 }), input('t2', {})],
      lookup,
    );
    expect(assessments.map((a) => a.unexpectedReboot)).toEqual([true, false, false]);
    // Asked once per device: later reports follow the state the batch reached.
    expect(lookup.mock.calls.map(([t]) => t)).toEqual(['t1', 't2']);
  });

  test('distinct devices per cohort; a cohort of stale reports only has no active device', () => {
    const { cohorts } = aggregateHealth(
      [
        input('a', {}, 'broad'),
        input('b', {}, 'broad'),
        input('a', { ts: T + 1, uptimeS: 31 }, 'broad'),
        input('c', { fw: '0.9.0', ts: T - 1 }, 'broad'),
      ],
      new Map([['c', { ...previous, ts: T }]]),
    );
    expect(cohorts.find((c) => c.firmware === '1.0.0')).toMatchObject({ reports: 3, activeDevices: 2 });
    expect(cohorts.find((c) => c.firmware === '0.9.0')).toMatchObject({
      reports: 0,
      activeDevices: 0,
      staleReports: 1,
    });
  });

  test('no input, no cohort', () => {
    expect(aggregateHealth([], new Map())).toEqual({ cohorts: [], assessments: [], states: new Map() });
  });
});

describe('mergeCohorts', () => {
  const cohort = (firmware: string, ring: CohortHealth['ring'], n: number): CohortHealth => ({
    firmware,
    ring,
    reports: n,
    activeDevices: n,
    unexpectedReboots: n,
    crashResets: n,
    lowHeapReports: n,
    weakRssiReports: n,
    staleReports: n,
    firmwareChanges: n,
  });

  test('sums the counters of cohorts with the same key and keeps the others apart', () => {
    const a = [cohort('1.0.0', 'canary', 1), cohort('1.0.0', 'broad', 2)];
    const b = [cohort('1.0.0', 'canary', 10), cohort('2.0.0', 'canary', 5)];
    const copy = JSON.parse(JSON.stringify([a, b]));
    expect(mergeCohorts(a, b)).toEqual([
      cohort('1.0.0', 'canary', 11),
      cohort('1.0.0', 'broad', 2),
      cohort('2.0.0', 'canary', 5),
    ]);
    expect([a, b]).toEqual(copy);
  });

  test('nothing to merge', () => {
    expect(mergeCohorts()).toEqual([]);
    expect(mergeCohorts([])).toEqual([]);
  });
});

describe('rate helpers', () => {
  test.each<[number, number, number, number | undefined]>([
    [0, 0, 300, undefined],
    [120, 2, 60, 1],
    [12, 1, 300, 1],
    [100, 0, 300, 0],
  ])(
    'rebootsPerDeviceHour(%d reports, %d reboots, every %d s) = %s',
    (reports, unexpectedReboots, interval, expected) => {
      expect(rebootsPerDeviceHour({ reports, unexpectedReboots }, interval)).toBe(expected);
    },
  );

  test.each<[number, number, number | undefined]>([
    [0, 0, undefined],
    [10, 0, 0],
    [10, 1, 0.1],
    [4, 4, 1],
  ])('unexpectedRebootRate(%d reports, %d reboots) = %s', (reports, unexpectedReboots, expected) => {
    expect(unexpectedRebootRate({ reports, unexpectedReboots })).toBe(expected);
  });
});

describe('FirmwareDimensions', () => {
  test('the first versions seen keep their name; later ones are "other"; a named one stays named', () => {
    const dims = new FirmwareDimensions(2);
    expect(['1.0.0', '1.1.0', '2.0.0', '1.0.0', '3.0.0', '1.1.0'].map((v) => dims.of(v))).toEqual([
      '1.0.0',
      '1.1.0',
      OTHER_FIRMWARE_DIMENSION,
      '1.0.0',
      OTHER_FIRMWARE_DIMENSION,
      '1.1.0',
    ]);
    expect(OTHER_FIRMWARE_DIMENSION).toBe('other');
  });

  test('a cap of zero names no version', () => {
    expect(new FirmwareDimensions(0).of('1.0.0')).toBe('other');
  });

  test('made-up versions cannot grow the set past the cap', () => {
    const dims = new FirmwareDimensions(3);
    const values = new Set(Array.from({ length: 1000 }, (_, i) => dims.of(`0.0.${i}`)));
    expect(values.size).toBe(4);
  });
});
