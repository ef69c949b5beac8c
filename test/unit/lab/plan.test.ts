/** The lab's scenario plan (pure): units dealt over every template, each bad case present. */
import { BAD_CASE_REASON, BadCase, buildPlan, minimumDevices, PlanError } from '../../../lab/scenario/plan';

const ALL = (plan: ReturnType<typeof buildPlan>) => [
  ...plan.firstWave,
  ...plan.secondWave,
  ...plan.recoveryWave,
];

test.each([[['fleet-default']], [['acme-sensor', 'acme-gateway']], [['t1', 't2', 't3', 't4', 't5']]])(
  'with templates %j every template gets good units and every bad case appears',
  (templates) => {
    const plan = buildPlan({ devices: 200, templates });
    const units = ALL(plan);
    expect(units).toHaveLength(200);
    for (const t of templates) {
      expect(units.some((u) => u.template === t && u.kind === 'good')).toBe(true);
    }
    for (const kind of Object.keys(BAD_CASE_REASON) as BadCase[]) {
      expect(units.some((u) => u.kind === kind)).toBe(true);
    }
    expect(units.filter((u) => u.kind === 'lostAnswer')).toHaveLength(1);
    // Every lot belongs to one of the stack's templates.
    expect(plan.lots.every((l) => templates.includes(l.template))).toBe(true);
  },
);

test('the same options give the same plan', () => {
  const serials = (p: ReturnType<typeof buildPlan>) => ALL(p).map((u) => `${u.kind}:${u.template}`);
  const options = { devices: 60, templates: ['a', 'b'] };
  expect(serials(buildPlan(options))).toEqual(serials(buildPlan(options)));
});

test('a fleet too small for the templates, or a stack without a template, is a PlanError', () => {
  expect(() =>
    buildPlan({ devices: minimumDevices(6) - 1, templates: ['1', '2', '3', '4', '5', '6'] }),
  ).toThrow(PlanError);
  expect(() => buildPlan({ devices: 200, templates: [] })).toThrow(/no provisioning template/);
  expect(() =>
    buildPlan({ devices: minimumDevices(6), templates: ['1', '2', '3', '4', '5', '6'] }),
  ).not.toThrow();
});

describe('MQTT versions', () => {
  const versions = (units: ReturnType<typeof ALL>) => units.map((u) => u.spec.mqttVersion);

  test('by default half the good units and half the other cases run on MQTT 5, alternating', () => {
    const plan = buildPlan({ devices: 12, templates: ['fleet-default'] });
    const units = ALL(plan);
    const good = units.filter((u) => u.kind === 'good');
    const others = units.filter((u) => u.kind !== 'good');
    expect(versions(good)).toEqual(['3.1.1', '5', '3.1.1', '5', '3.1.1', '5']);
    expect(versions(others)).toEqual(['3.1.1', '5', '3.1.1', '5', '3.1.1', '5']);
    // The recovery unit (last) runs on MQTT 5: its lost answer and retry happen there.
    expect(plan.recoveryWave[0].spec.mqttVersion).toBe('5');
    expect(plan.counts.mqtt).toEqual({ '3.1.1': 6, '5': 6 });
  });

  test.each([
    [0, { '3.1.1': 200, '5': 0 }],
    [1, { '3.1.1': 0, '5': 200 }],
    // 182 good units → 45 on MQTT 5; 18 bad and recovery cases → 4.
    [0.25, { '3.1.1': 151, '5': 49 }],
  ])('an MQTT 5 share of %s gives %j', (mqtt5Share, counts) => {
    const plan = buildPlan({ devices: 200, templates: ['fleet-default'], mqtt5Share });
    expect(plan.counts.mqtt).toEqual(counts);
    expect(versions(ALL(plan)).filter((v) => v === '5')).toHaveLength(counts['5']);
  });

  test.each([-0.1, 1.5, Number.NaN])(
    'an MQTT 5 share of %s is a PlanError naming the range',
    (mqtt5Share) => {
      expect(() => buildPlan({ devices: 200, templates: ['t'], mqtt5Share })).toThrow(PlanError);
      expect(() => buildPlan({ devices: 200, templates: ['t'], mqtt5Share })).toThrow(
        /the MQTT 5 share must be a number from 0 to 1/,
      );
    },
  );
});
