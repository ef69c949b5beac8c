/**
 * The health consumer's cohort counters (`cohortMetrics`, lambda/telemetry/health-plan.ts) are
 * core/health.ts's: for the same reports they agree with `aggregateHealth` counter for counter
 * (the same cohort key and counting rule), active devices included; past the firmware cap,
 * versions merge into one cohort whose active devices are distinct devices; stale reports take
 * no place under the cap.
 */
import {
  aggregateHealth,
  assessReport,
  DEFAULT_HEALTH_THRESHOLDS,
  type DeviceHealthState,
  FirmwareDimensions,
  type HealthInput,
} from '../../../core/health';
import type { Ring } from '../../../core/model';
import { cohortMetrics, type CountedReport } from '../../../lambda/telemetry/health-plan';
import { report, T0 } from './support';

const RINGS: Ring[] = ['canary', 'early', 'broad'];
const VERSIONS = ['1.0.0', '1.1.0', '2.0.0-rc.1'];

/** A day of reports of 12 devices: versions switch, some boots are unexpected, some old. */
function inputs(): HealthInput[] {
  const out: HealthInput[] = [];
  for (let n = 0; n < 120; n++) {
    const d = n % 12;
    const round = Math.floor(n / 12);
    const reboot = (n * 7) % 11 === 0;
    out.push({
      thing: `SN-C-${d}`,
      ring: d === 11 ? undefined : RINGS[d % 3],
      report: report({
        // Every fifth round of device 3 is a duplicate of the round before: stale.
        ts: T0 + (d === 3 && round % 5 === 4 ? round - 1 : round) * 60_000,
        fw: VERSIONS[(d + Math.floor(round / 4)) % 3],
        bootId: reboot ? `b-${n}` : 'b-0',
        uptimeS: 600 + round * 60,
        resetReason: reboot ? (['WATCHDOG', 'POWER_ON', 'BROWNOUT'] as const)[n % 3] : 'POWER_ON',
        heapFreeB: n % 4 === 0 ? 1000 : 60_000,
        rssiDbm: n % 6 === 0 ? -100 : -60,
      }),
    });
  }
  return out;
}

const previous = new Map<string, DeviceHealthState>(
  Array.from({ length: 12 }, (_, d) => [
    `SN-C-${d}`,
    { bootId: 'b-0', uptimeS: 60, ts: T0 - 60_000, fw: VERSIONS[d % 3] },
  ]),
);

/** The same reports as the consumer counts them (committed devices; serial = thing here). */
function counted(ins: HealthInput[]): CountedReport[] {
  const { assessments } = aggregateHealth(ins, previous, DEFAULT_HEALTH_THRESHOLDS);
  return ins.map((input, i) => ({
    serial: input.thing,
    ring: input.ring,
    report: input.report,
    assessment: assessments[i],
  }));
}

test("the consumer's counters are aggregateHealth's, cohort for cohort", () => {
  const ins = inputs();
  const expected = aggregateHealth(ins, previous)
    .cohorts.filter((c) => c.reports > 0)
    .map(({ staleReports: _s, firmwareChanges: _f, ...c }) => c);
  const actual = cohortMetrics(counted(ins), [], new FirmwareDimensions(50)).map(
    ({ cohort: { devices: _d, firmwareChanges: _f, ...c } }) => c,
  );
  const byKey = <T extends { firmware: string; ring: string }>(cs: T[]) =>
    [...cs].sort((a, b) => `${a.firmware}/${a.ring}`.localeCompare(`${b.firmware}/${b.ring}`));
  expect(byKey(actual)).toEqual(byKey(expected));
  expect(expected.some((c) => c.unexpectedReboots > 0 && c.activeDevices > 1)).toBe(true);
});

test('past the cap, versions merge into "other" and its active devices are distinct devices', () => {
  const reports = counted(inputs());
  const metrics = cohortMetrics(reports, [], new FirmwareDimensions(1));
  const named = metrics[0].cohort.firmware;
  const others = metrics.filter((m) => m.cohort.firmware === 'other');
  const all = aggregateHealth(inputs(), previous).cohorts;
  let someDeviceOnTwoVersions = false;
  for (const { cohort } of others) {
    const merged = all.filter((c) => c.firmware !== named && c.ring === cohort.ring);
    expect(cohort.reports).toBe(merged.reduce((a, c) => a + c.reports, 0));
    const devices = new Set(
      reports
        .filter((r) => !r.assessment.stale && r.report.fw !== named && (r.ring ?? 'unknown') === cohort.ring)
        .map((r) => r.serial),
    );
    expect(cohort.activeDevices).toBe(devices.size);
    if (cohort.activeDevices < merged.reduce((a, c) => a + c.activeDevices, 0))
      someDeviceOnTwoVersions = true;
  }
  expect(others.length).toBeGreaterThan(0);
  expect(someDeviceOnTwoVersions).toBe(true);
});

test('a batch of stale reports takes no place under the cap and publishes nothing', () => {
  const dims = new FirmwareDimensions(1);
  const before: DeviceHealthState = { bootId: 'b-0', uptimeS: 60, ts: T0, fw: '1.0.0' };
  const counted = (fw: string, ts: number): CountedReport => {
    const r = report({ fw, ts });
    return { serial: 'SN-C-0', report: r, assessment: assessReport(r, before) };
  };
  expect(cohortMetrics([counted('9.9.9', T0 - 60_000)], [], dims)).toEqual([]);
  const [m] = cohortMetrics([counted('1.0.0', T0 + 60_000)], [], dims);
  expect(m.cohort).toMatchObject({ firmware: '1.0.0', ring: 'unknown', reports: 1, activeDevices: 1 });
});
