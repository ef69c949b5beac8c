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
