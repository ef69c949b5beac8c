/**
 * The rollout controller core: plan schema (errors name the field and the fix), target selection
 * with the stratified canary, and every transition of the pure step.
 */
import { firmwareJobDocument, rolloutJobId, type ReleaseRecord } from '../../../core/ota';
import {
  devicesOnNewVersion,
  jobIdsOf,
  newRollout,
  resolveStart,
  RolloutConflictError,
  stageCounts,
  step,
  type CreateJobAction,
  type RolloutObservation,
  type StepResult,
} from '../../../core/rollout';
import type { ExecutionObservation, ExecutionStatus } from '../../../core/rollout-ledger';
import {
  DEFAULT_ROLLOUT_PLAN,
  parseRolloutPlan,
  parseRolloutRequest,
  planFingerprint,
  rolloutIdFor,
  RolloutPlanError,
  type RolloutPlan,
  type Stage,
} from '../../../core/rollout-plan';
import {
  exclusionOf,
  selectStageTargets,
  stratumKey,
  type RolloutCandidate,
} from '../../../core/rollout-targets';

const T0 = Date.UTC(2026, 11, 6, 0, 0, 0);
/** The Date `minutes` after T0. */
const at = (minutes: number) => new Date(T0 + minutes * 60_000);

const releaseOf = (version: string): ReleaseRecord => ({
  version,
  hwRevs: ['A', 'B'],
  sizeBytes: 1024,
  sha256: 'a'.repeat(64),
  signature: 'MEUCIQ==',
  signatureAlgorithm: 'ECDSA-P256-SHA256',
  s3: { bucket: 'fw', key: `firmware/${version}.bin` },
  publishedAt: '2026-12-05T00:00:00.000Z',
});

const RELEASE = releaseOf('2.0.0');

const dev = (thing: string, over: Partial<RolloutCandidate> = {}): RolloutCandidate => ({
  thing,
  serial: `SN-${thing}`,
  lot: 'L1',
  hwRev: 'A',
  ring: 'broad',
  status: 'ACTIVE',
  firmware: '1.0.0',
  lotOnHold: false,
  ...over,
});

/**
 * Eligible: c1 (canary A×L1), c2 (canary B×L1, on 1.1.0), e1/e2 (broad A×L2: no canary in that
 * stratum), b1 (broad B×L1). Excluded: x-hold, x-hwrev, x-rma, x-retired, x-new, x-prov.
 */
const CANDIDATES: RolloutCandidate[] = [
  dev('c1', { ring: 'canary' }),
  dev('c2', { ring: 'canary', hwRev: 'B', firmware: '1.1.0' }),
  dev('e1', { lot: 'L2' }),
  dev('e2', { lot: 'L2' }),
  dev('b1', { hwRev: 'B' }),
  dev('x-hold', { lot: 'L3', lotOnHold: true }),
  dev('x-hwrev', { hwRev: 'C' }),
  dev('x-rma', { status: 'RMA' }),
  dev('x-retired', { status: 'RETIRED' }),
  dev('x-new', { firmware: '2.0.0' }),
  dev('x-prov', { status: 'PROVISIONING' }),
];

const stage = (name: string, over: Partial<Stage> = {}): Stage => ({
  name,
  targets: { rings: [name === 'canary' ? 'canary' : 'broad'] },
  rate: { maximumPerMinute: 10 },
  abort: [{ failureType: 'ALL', thresholdPercentage: 50, minNumberOfExecutedThings: 2 }],
  timeouts: { inProgressMinutes: 60, stepMinutes: 20 },
  retries: [{ failureType: 'FAILED', numberOfRetries: 1 }],
  soak: { minMinutes: 30, minDeviceHours: 2 },
  promotion: {
    minSuccessPercent: 100,
    maxFailurePercent: 0,
    health: { maxRatio: 2, maxAbsoluteDelta: 0.05, minReports: 4 },
    silenceMinutes: 30,
    alarms: ['fleet-errors'],
    requireApproval: false,
  },
  ...over,
});

/** Canary (canary ring topped up per stratum) then broad. */
const PLAN: RolloutPlan = {
  stages: [stage('canary', { canary: { minPerStratum: 1 } }), stage('broad')],
  rollback: { enabled: true, forceCancel: true, inProgressMinutes: 30, retries: 1 },
};

/** A plan whose canary stage is changed by `over`. */
const planWith = (over: Partial<Stage>, rest: Partial<RolloutPlan> = {}): RolloutPlan => ({
  ...PLAN,
  stages: [{ ...PLAN.stages[0], ...over }, PLAN.stages[1]],
  ...rest,
});

/** One execution observation. */
const ex = (
  jobId: string,
  thing: string,
  status: ExecutionStatus,
  minutes: number,
  over: Partial<ExecutionObservation> = {},
): ExecutionObservation => ({
  jobId,
  thing,
  status,
  executionNumber: 1,
  lastUpdatedAt: T0 + minutes * 60_000,
  ...over,
});

const canary = DEFAULT_ROLLOUT_PLAN.stages[0];
const withStage = (over: Record<string, unknown>) => ({
  release: '2.0.0',
  plan: { ...DEFAULT_ROLLOUT_PLAN, stages: [{ ...canary, ...over }] },
});

test('the default preset parses under its own schema and is what a bare request gets', () => {
  expect(parseRolloutPlan(DEFAULT_ROLLOUT_PLAN)).toEqual(DEFAULT_ROLLOUT_PLAN);
  expect(DEFAULT_ROLLOUT_PLAN.stages.map((s) => s.name)).toEqual(['canary', 'early', 'broad']);
  expect(parseRolloutRequest({ release: '2.0.0' })).toEqual({
    release: '2.0.0',
    plan: DEFAULT_ROLLOUT_PLAN,
    preset: 'default',
  });
  expect(parseRolloutRequest({ release: '2.0.0', plan: PLAN }).plan).toEqual(PLAN);
});

test.each<[string, unknown, string]>([
  ['bad release', { release: 'v2' }, 'release: release is a published firmware version'],
  [
    'plan and preset',
    { release: '2.0.0', plan: PLAN, preset: 'default' },
    'preset: give "plan" or "preset", not both',
  ],
  [
    'unknown preset',
    { release: '2.0.0', preset: 'fast' },
    'preset: unknown preset "fast"; use one of default',
  ],
  ['no stages', { release: '2.0.0', plan: { ...PLAN, stages: [] } }, 'plan.stages: give at least one stage'],
  [
    'rings and things',
    withStage({ targets: { rings: ['canary'], things: ['t1'] } }),
    'plan.stages.0.targets: give exactly one of',
  ],
  ['unknown ring', withStage({ targets: { rings: ['beta'] } }), 'plan.stages.0.targets.rings.0'],
  [
    'rate too high',
    withStage({ rate: { maximumPerMinute: 5000 } }),
    'plan.stages.0.rate.maximumPerMinute: rate.maximumPerMinute must be at most 1000',
  ],
  [
    'factor with two decimals',
    withStage({
      rate: {
        maximumPerMinute: 10,
        exponential: {
          baseRatePerMinute: 1,
          incrementFactor: 1.25,
          rateIncreaseCriteria: { numberOfNotifiedThings: 5 },
        },
      },
    }),
    'plan.stages.0.rate.exponential.incrementFactor: incrementFactor has at most one decimal',
  ],
  [
    'both rate increase criteria',
    withStage({
      rate: {
        maximumPerMinute: 10,
        exponential: {
          baseRatePerMinute: 1,
          incrementFactor: 2,
          rateIncreaseCriteria: { numberOfNotifiedThings: 5, numberOfSucceededThings: 5 },
        },
      },
    }),
    'rateIncreaseCriteria: set exactly one of',
  ],
  [
    'abort threshold',
    withStage({ abort: [{ failureType: 'ALL', thresholdPercentage: 120, minNumberOfExecutedThings: 1 }] }),
    'plan.stages.0.abort.0.thresholdPercentage: thresholdPercentage is a percentage: use 0 to 100',
  ],
  [
    'min executed',
    withStage({ abort: [{ failureType: 'FAILED', thresholdPercentage: 10, minNumberOfExecutedThings: 0 }] }),
    'plan.stages.0.abort.0.minNumberOfExecutedThings: minNumberOfExecutedThings must be at least 1',
  ],
  [
    'retry REJECTED',
    withStage({ retries: [{ failureType: 'REJECTED', numberOfRetries: 1 }] }),
    'plan.stages.0.retries.0.failureType',
  ],
  [
    'step over in-progress',
    withStage({ timeouts: { inProgressMinutes: 10, stepMinutes: 20 } }),
    'plan.stages.0.timeouts.stepMinutes: stepMinutes cannot exceed inProgressMinutes',
  ],
  [
    'negative soak',
    withStage({ soak: { minMinutes: -1, minDeviceHours: 0 } }),
    'plan.stages.0.soak.minMinutes: soak.minMinutes cannot be negative',
  ],
  [
    'health ratio',
    withStage({
      promotion: { ...canary.promotion, health: { maxRatio: 0.5, maxAbsoluteDelta: 0.1, minReports: 5 } },
    }),
    'plan.stages.0.promotion.health.maxRatio',
  ],
  [
    'duplicate stage names',
    { release: '2.0.0', plan: { ...PLAN, stages: [PLAN.stages[0], PLAN.stages[0]] } },
    'plan.stages: stage names must be unique',
  ],
  ['unknown key', withStage({ soakHours: 3 }), 'plan.stages.0'],
])('a request with %s is refused, naming the field and the fix', (_name, input, message) => {
  expect(() => parseRolloutRequest(input)).toThrow(RolloutPlanError);
  expect(() => parseRolloutRequest(input)).toThrow(message);
});

test('the rollout id depends on release and plan, not on key order', () => {
  const reordered = JSON.parse(JSON.stringify({ rollback: PLAN.rollback, stages: PLAN.stages }));
  expect(planFingerprint(reordered)).toBe(planFingerprint(PLAN));
  expect(rolloutIdFor('2.0.0', PLAN)).toBe(rolloutIdFor('2.0.0', reordered));
  expect(rolloutIdFor('2.0.0', PLAN)).not.toBe(rolloutIdFor('2.0.1', PLAN));
  expect(rolloutIdFor('2.0.0', PLAN)).not.toBe(rolloutIdFor('2.0.0', DEFAULT_ROLLOUT_PLAN));
});

test.each([
  ['x-hold', 'LOT_ON_HOLD'],
  ['x-hwrev', 'INCOMPATIBLE_HW_REV'],
  ['x-rma', 'DEVICE_RMA'],
  ['x-retired', 'DEVICE_RETIRED'],
  ['x-new', 'ALREADY_ON_VERSION'],
  ['x-prov', 'NOT_ACTIVE'],
  ['b1', undefined],
])('%s is excluded as %s', (thing, reason) => {
  const c = CANDIDATES.find((d) => d.thing === thing);
  expect(c && exclusionOf(c, RELEASE)).toBe(reason);
});

test('the canary takes its ring and represents every hardware revision × lot of the rollout', () => {
  const sel = selectStageTargets(
    PLAN.stages[0],
    CANDIDATES,
    RELEASE,
    new Set(),
    new Set(['canary', 'broad']),
  );
  const eligible = CANDIDATES.filter((c) => !exclusionOf(c, RELEASE));
  expect(new Set(sel.targets.map(stratumKey))).toEqual(new Set(eligible.map(stratumKey)));
  expect(sel.targets.map((t) => t.thing)).toEqual(expect.arrayContaining(['c1', 'c2']));
  expect(sel.targets).toHaveLength(3);
  expect(sel.targets.filter((t) => t.lot === 'L2')).toHaveLength(1);
  // Deterministic: the same draw every time, in any candidate order.
  const again = selectStageTargets(
    PLAN.stages[0],
    [...CANDIDATES].reverse(),
    RELEASE,
    new Set(),
    new Set(['canary', 'broad']),
  );
  expect(again.targets).toEqual(sel.targets);
  expect(sel.targets.find((t) => t.thing === 'c2')?.previousFirmware).toBe('1.1.0');
});

test.each([
  [1, 3],
  [2, 5],
])(
  'minPerStratum %i gives a canary of %i here (fewer only where a stratum has fewer)',
  (minPerStratum, size) => {
    const sel = selectStageTargets(
      { ...PLAN.stages[0], canary: { minPerStratum } },
      CANDIDATES,
      RELEASE,
      new Set(),
      new Set(['canary', 'broad']),
    );
    expect(sel.targets).toHaveLength(size);
  },
);

test('a later stage skips devices already targeted; explicit things are checked too', () => {
  const broad = selectStageTargets(PLAN.stages[1], CANDIDATES, RELEASE, new Set(['e1']));
  expect(broad.targets.map((t) => t.thing)).toEqual(['b1', 'e2']);
  expect(broad.excluded).toEqual(expect.arrayContaining([{ thing: 'e1', reason: 'ALREADY_TARGETED' }]));
  const fix = selectStageTargets(
    { ...PLAN.stages[1], targets: { things: ['b1', 'x-rma', 'ghost'] } },
    CANDIDATES,
    RELEASE,
  );
  expect(fix.targets.map((t) => t.thing)).toEqual(['b1']);
  expect(fix.excluded).toEqual([
    { thing: 'x-rma', reason: 'DEVICE_RMA' },
    { thing: 'ghost', reason: 'UNKNOWN_THING' },
  ]);
});

// ---------------------------------------------------------------------------------------------
// The controller step
// ---------------------------------------------------------------------------------------------

const OK_ALARMS = { 'fleet-errors': 'OK' } as const;
const HEALTHY = {
  updated: [{ reports: 10, unexpectedReboots: 0 }],
  baseline: [{ reports: 100, unexpectedReboots: 1 }],
};
const RELEASES = { '1.0.0': releaseOf('1.0.0'), '1.1.0': releaseOf('1.1.0') };

const jobsOf = (...ids: string[]) =>
  Object.fromEntries(ids.map((id) => [id, { status: 'IN_PROGRESS' as const }]));
const creates = (r: StepResult) => r.actions.filter((a): a is CreateJobAction => a.kind === 'createJob');
const codes = (r: StepResult) => r.reasons.map((x) => x.code);
/** Reason codes without the rollback's progress note. */
const causes = (r: StepResult) => codes(r).filter((c) => c !== 'ROLLBACK_PENDING');
const cancels = (r: StepResult) => r.actions.filter((a) => a.kind === 'cancelJob');

/** A rollout of PLAN-like `plan` with its canary job created at T0. */
function started(plan: RolloutPlan = PLAN) {
  const s0 = newRollout(RELEASE, plan, at(0));
  const r = step(s0, { jobs: {}, executions: [], candidates: CANDIDATES }, at(0));
  const job = creates(r)[0];
  return { s0, r, state: r.state, job, things: job.things };
}

/** The canary stage with every device SUCCEEDED at +10, observed at +10 (soak starts). */
function canaryDone(plan: RolloutPlan = PLAN) {
  const { state, job, things } = started(plan);
  const executions = things.map((t) => ex(job.jobId, t, 'SUCCEEDED', 10));
  const base: RolloutObservation = {
    jobs: { [job.jobId]: { status: 'COMPLETED' } },
    executions,
    health: HEALTHY,
    lastHealthReportAt: Object.fromEntries(things.map((t) => [t, T0 + 20 * 60_000])),
    alarms: OK_ALARMS,
    candidates: CANDIDATES,
    releases: RELEASES,
  };
  const r = step(state, base, at(10));
  return { state: r.state, job, things, base, first: r };
}

describe('step', () => {
  test('PENDING needs candidates, then starts the canary with a deterministic job', () => {
    const s0 = newRollout(RELEASE, PLAN, at(0));
    const need = step(s0, { jobs: {}, executions: [] }, at(0));
    expect(need.decision).toEqual({ kind: 'need-input', candidates: { stage: 0 } });
    expect(need.actions).toEqual([]);
    const { r, job } = started();
    expect(r.decision).toEqual({ kind: 'start-stage', stage: 0 });
    expect(r.state.status).toBe('RUNNING');
    expect(job.jobId).toBe(rolloutJobId(s0.rolloutId, '2.0.0', 0));
    expect(job.things).toHaveLength(3);
    expect(job.document).toEqual(firmwareJobDocument(RELEASE));
    expect(job.abortConfig?.criteriaList[0]).toMatchObject({ failureType: 'ALL', action: 'CANCEL' });
    expect(job.timeoutConfig).toEqual({ inProgressTimeoutInMinutes: 60 });
    expect(r.state.stages[0].excluded).toEqual({});
    expect(r.actions.at(-1)).toMatchObject({ kind: 'recordState', expectedRevision: 0 });
    expect(r.state.revision).toBe(1);
  });

  test.each<[string, number, Partial<RolloutObservation>, string, string, string[]]>([
    ['promotion when every gate agrees', 60, {}, 'promote', 'RUNNING', []],
    ['soak time not yet elapsed', 30, {}, 'wait', 'RUNNING', ['SOAK_TIME', 'SOAK_DEVICE_HOURS']],
    ['soak time elapsed, device-hours not yet', 45, {}, 'wait', 'RUNNING', ['SOAK_DEVICE_HOURS']],
    [
      'too few health reports yet',
      60,
      { health: { updated: [{ reports: 2, unexpectedReboots: 0 }], baseline: HEALTHY.baseline } },
      'wait',
      'RUNNING',
      ['HEALTH_REPORTS_PENDING'],
    ],
    [
      'an alarm with insufficient data',
      60,
      { alarms: { 'fleet-errors': 'INSUFFICIENT_DATA' } },
      'wait',
      'RUNNING',
      ['ALARM_NOT_OK'],
    ],
    [
      'abort on the health gate (crash loops after a good install)',
      60,
      { health: { updated: [{ reports: 10, unexpectedReboots: 4 }], baseline: HEALTHY.baseline } },
      'abort',
      'ROLLING_BACK',
      ['HEALTH_GATE'],
    ],
    [
      'abort on an alarm in ALARM',
      20,
      { alarms: { 'fleet-errors': 'ALARM' } },
      'abort',
      'ROLLING_BACK',
      ['ALARM'],
    ],
    [
      'abort on silence after success',
      60,
      { lastHealthReportAt: {} },
      'abort',
      'ROLLING_BACK',
      ['SILENCE_GATE'],
    ],
  ])('canary done: %s', (_name, minutes, change, decision, status, reasons) => {
    const { state, base } = canaryDone();
    const r = step(state, { ...base, ...change }, at(minutes));
    expect(r.decision.kind).toBe(decision);
    expect(r.state.status).toBe(status);
    expect(causes(r)).toEqual(reasons);
    if (decision === 'promote') {
      expect(r.state.stage).toBe(1);
      expect(creates(r).map((c) => c.jobId)).toEqual([rolloutJobId(state.rolloutId, '2.0.0', 1)]);
      const canary = Object.keys(state.ledger);
      expect(creates(r)[0].things.filter((t) => canary.includes(t))).toEqual([]);
      expect(r.state.stages[1].excluded).toEqual({
        ALREADY_TARGETED: 1,
        LOT_ON_HOLD: 1,
        INCOMPATIBLE_HW_REV: 1,
        DEVICE_RMA: 1,
        DEVICE_RETIRED: 1,
        ALREADY_ON_VERSION: 1,
        NOT_ACTIVE: 1,
      });
    }
    if (decision === 'wait') expect(creates(r)).toEqual([]);
  });

  test('the health gate ignores a high ratio over a tiny delta, and a small delta over a zero baseline', () => {
    const { state, base } = canaryDone();
    const r = step(
      state,
      {
        ...base,
        health: {
          updated: [{ reports: 100, unexpectedReboots: 3 }],
          baseline: [{ reports: 100, unexpectedReboots: 1 }],
        },
      },
      at(60),
    );
    expect(r.decision.kind).toBe('promote');
  });

  test('an abort cancels nothing already ended, and rolls back per previous version', () => {
    const { state, base, things } = canaryDone();
    const r = step(state, { ...base, alarms: { 'fleet-errors': 'ALARM' } }, at(20));
    const rb = creates(r);
    expect(r.actions.filter((a) => a.kind === 'cancelJob')).toEqual([]);
    expect(rb.map((c) => [c.purpose, c.document.version, c.document.rollback, c.things.length])).toEqual([
      ['rollback', '1.0.0', true, things.length - 1],
      ['rollback', '1.1.0', true, 1],
    ]);
    expect(rb.map((c) => c.jobId)).toEqual([
      rolloutJobId(state.rolloutId, '2.0.0', 'rb1'),
      rolloutJobId(state.rolloutId, '2.0.0', 'rb2'),
    ]);
  });

  test.each<[string, (job: string, things: string[]) => ExecutionObservation[], string, string[]]>([
    [
      'one failure among one executed: below the min executed count, retry pending',
      (j, t) => [ex(j, t[0], 'FAILED', 5)],
      'wait',
      ['INSTALLING'],
    ],
    [
      'one failure among two executed: threshold reached',
      (j, t) => [ex(j, t[0], 'FAILED', 5), ex(j, t[1], 'SUCCEEDED', 5)],
      'abort',
      ['INSTALL_FAILURES'],
    ],
    [
      'a failure with its retry used up breaks the failure budget',
      (j, t) => [ex(j, t[0], 'FAILED', 5, { retryAttempt: 1 })],
      'abort',
      ['FAILURE_BUDGET'],
    ],
    [
      'rejected (never retried) breaks the failure budget',
      (j, t) => [ex(j, t[0], 'REJECTED', 5)],
      'abort',
      ['FAILURE_BUDGET'],
    ],
    [
      'mid-install and silent past the window',
      (j, t) => [ex(j, t[0], 'IN_PROGRESS', 5)],
      'abort',
      ['SILENCE_GATE'],
    ],
  ])('canary installing: %s', (_name, execs, decision, reasons) => {
    const { state, job, things } = started();
    const r = step(
      state,
      {
        jobs: jobsOf(job.jobId),
        executions: execs(job.jobId, things),
        lastHealthReportAt: {},
        alarms: OK_ALARMS,
        releases: RELEASES,
      },
      at(40),
    );
    expect(r.decision.kind).toBe(decision);
    expect(causes(r)).toEqual(reasons);
    if (decision === 'abort') {
      expect(cancels(r)).toHaveLength(1);
      expect(cancels(r)[0]).toMatchObject({
        kind: 'cancelJob',
        jobId: job.jobId,
        force: true,
        reasonCode: reasons[0],
      });
    }
  });

  test('retries do not skew the counts: a device failing then succeeding on retry counts once', () => {
    const { state, job, things, base } = canaryDone();
    const executions = [
      ex(job.jobId, things[0], 'SUCCEEDED', 10, { retryAttempt: 1 }),
      ex(job.jobId, things[0], 'FAILED', 5),
      ex(job.jobId, things[0], 'FAILED', 5),
      ...base.executions.slice(1),
    ];
    const fresh = started().state;
    const r1 = step(fresh, { ...base, executions }, at(10));
    expect(stageCounts(r1.state)[0]).toEqual({ stage: 'canary', targeted: 3, outcomes: { SUCCEEDED: 3 } });
    expect(
      r1.actions.filter((a) => a.kind === 'appendTrail').map((a) => 'outcome' in a && a.outcome),
    ).toEqual(['SUCCEEDED', 'SUCCEEDED', 'SUCCEEDED']);
    expect(step(r1.state, { ...base, executions }, at(60)).decision.kind).toBe('promote');
    expect(state.status).toBe('RUNNING');
  });

  test('duplicate and out-of-order events neither change the ledger nor repeat a trail entry', () => {
    const { state, job, things, base } = canaryDone();
    const noisy = [
      ...base.executions,
      ex(job.jobId, things[0], 'IN_PROGRESS', 3, { versionNumber: 2 }),
      ex(job.jobId, things[1], 'QUEUED', 1),
      ...base.executions,
    ];
    const r = step(state, { ...base, executions: noisy }, at(10));
    expect(r.actions).toEqual([]);
    expect(r.state).toEqual(state);
  });

  test('waiting for approval, then approve', () => {
    const plan = planWith({ promotion: { ...PLAN.stages[0].promotion, requireApproval: true } });
    const { state, base } = canaryDone(plan);
    const w = step(state, base, at(60));
    expect(w.decision).toEqual({ kind: 'await-approval', stage: 0 });
    expect(w.state.status).toBe('WAITING_APPROVAL');
    expect(creates(w)).toEqual([]);
    const again = step(w.state, base, at(61));
    expect(again.decision.kind).toBe('await-approval');
    expect(again.actions).toEqual([]);
    const approved = step(
      w.state,
      { ...base, commands: [{ id: 'c1', kind: 'approve', stage: 0, by: 'ci' }] },
      at(62),
    );
    expect(approved.decision).toEqual({ kind: 'promote', from: 0, to: 1 });
    expect(approved.state.stages[0].approvedBy).toBe('ci');
    expect(creates(approved)).toHaveLength(1);
  });

  test('pause holds promotion (the abort gates still watch), resume promotes', () => {
    const { state, base } = canaryDone();
    const pause = { id: 'p1', kind: 'pause', by: 'ops' } as const;
    const paused = step(state, { ...base, commands: [pause] }, at(15));
    expect(paused.decision.kind).toBe('pause');
    expect(paused.state.status).toBe('PAUSED');
    const held = step(paused.state, { ...base, commands: [pause] }, at(60));
    expect(held.decision.kind).toBe('wait');
    expect(codes(held)).toEqual(['OPERATOR_PAUSE']);
    expect(creates(held)).toEqual([]);
    expect(held.actions).toEqual([]);
    const alarm = step(paused.state, { ...base, alarms: { 'fleet-errors': 'ALARM' } }, at(60));
    expect(alarm.state.status).toBe('ROLLING_BACK');
    const resumed = step(
      paused.state,
      { ...base, commands: [pause, { id: 'r1', kind: 'resume', by: 'ops' }] },
      at(60),
    );
    expect(resumed.decision.kind).toBe('promote');
    expect(resumed.state.status).toBe('RUNNING');
  });

  test('a repeated invocation creates no duplicate job', () => {
    const { s0, r, job } = started();
    // The same pass again from the same record (concurrent or after a crash before recordState): same job id.
    const twice = step(s0, { jobs: {}, executions: [], candidates: CANDIDATES }, at(0));
    expect(creates(twice).map((c) => c.jobId)).toEqual([job.jobId]);
    expect(twice.actions.at(-1)).toMatchObject({ kind: 'recordState', expectedRevision: 0 });
    // The job exists: the record says PENDING (crash after createJob) → no createJob.
    const afterCrash = step(s0, { jobs: jobsOf(job.jobId), executions: [], candidates: CANDIDATES }, at(1));
    expect(creates(afterCrash)).toEqual([]);
    expect(afterCrash.state.status).toBe('RUNNING');
    // The next pass with the job observed: nothing to do, nothing to record.
    const next = step(r.state, { jobs: jobsOf(job.jobId), executions: [], alarms: OK_ALARMS }, at(1));
    expect(next.actions).toEqual([]);
    expect(next.decision.kind).toBe('wait');
    // After a promotion, repeating with the new job observed creates nothing.
    const { state, base } = canaryDone();
    const promoted = step(state, base, at(60));
    const stage1 = creates(promoted)[0].jobId;
    expect(jobIdsOf(promoted.state)).toEqual([base.executions[0].jobId, stage1]);
    const repeat = step(promoted.state, { ...base, jobs: { ...base.jobs, ...jobsOf(stage1) } }, at(61));
    expect(creates(repeat)).toEqual([]);
  });

  test('an operator abort force-cancels the running job and rolls back what reached the version', () => {
    const { state, job, things } = started();
    const r = step(
      state,
      {
        jobs: jobsOf(job.jobId),
        executions: [ex(job.jobId, things[0], 'SUCCEEDED', 5), ex(job.jobId, things[1], 'IN_PROGRESS', 6)],
        commands: [{ id: 'a1', kind: 'abort', by: 'ops', reason: 'bad build' }],
        releases: RELEASES,
      },
      at(7),
    );
    expect(r.decision).toEqual({ kind: 'abort', rollback: true });
    expect(cancels(r)).toEqual([expect.objectContaining({ force: true, reasonCode: 'OPERATOR_ABORT' })]);
    // The one terminal outcome observed goes to the trail; one rollback job per previous version.
    expect(r.actions.map((a) => a.kind)).toEqual([
      'appendTrail',
      'cancelJob',
      'createJob',
      'createJob',
      'recordState',
    ]);
    expect(
      creates(r)
        .flatMap((c) => c.things)
        .sort(),
    ).toEqual([things[0], things[1]].sort());
  });

  test('an abort with nothing on the new version ends ABORTED; rollback needs its releases first', () => {
    const { state, job, things } = started();
    const nothing = step(
      state,
      { jobs: jobsOf(job.jobId), executions: [], commands: [{ id: 'a1', kind: 'abort', by: 'ops' }] },
      at(2),
    );
    expect(nothing.state.status).toBe('ABORTED');
    expect(step(nothing.state, { jobs: {}, executions: [] }, at(3)).decision.kind).toBe('final');
    const need = step(
      state,
      {
        jobs: jobsOf(job.jobId),
        executions: [ex(job.jobId, things[0], 'SUCCEEDED', 1)],
        commands: [{ id: 'a1', kind: 'abort', by: 'ops' }],
      },
      at(2),
    );
    expect(need.state.status).toBe('ROLLING_BACK');
    expect(codes(need)).toContain('NEED_RELEASES');
    const built = step(need.state, { jobs: {}, executions: [], releases: RELEASES }, at(3));
    expect(creates(built)).toHaveLength(1);
  });

  test.each<[string, ExecutionStatus[], boolean, string, string[]]>([
    ['every device back: ROLLED_BACK', ['SUCCEEDED', 'SUCCEEDED', 'SUCCEEDED'], false, 'ROLLED_BACK', []],
    [
      'one device fails to go back: ROLLBACK_FAILED',
      ['SUCCEEDED', 'FAILED', 'SUCCEEDED'],
      false,
      'ROLLBACK_FAILED',
      ['ROLLBACK_FAILED'],
    ],
    [
      'one still rolling back',
      ['SUCCEEDED', 'IN_PROGRESS', 'SUCCEEDED'],
      false,
      'ROLLING_BACK',
      ['ROLLBACK_PENDING'],
    ],
    [
      'a rollback job canceled under it: ROLLBACK_FAILED',
      ['SUCCEEDED', 'QUEUED', 'SUCCEEDED'],
      true,
      'ROLLBACK_FAILED',
      ['ROLLBACK_FAILED'],
    ],
  ])('rollback: %s', (_name, outcomes, canceled, status, reasons) => {
    const { state, base } = canaryDone();
    const aborted = step(state, { ...base, alarms: { 'fleet-errors': 'ALARM' } }, at(20)).state;
    const groups = aborted.rollback?.groups ?? [];
    const things = groups.flatMap((g) => g.things.map((t) => ({ t, jobId: g.jobId })));
    const r = step(
      aborted,
      {
        jobs: Object.fromEntries(
          groups.map((g) => [g.jobId, { status: canceled ? 'CANCELED' : 'IN_PROGRESS' } as const]),
        ),
        executions: things.map(({ t, jobId }, i) => ex(jobId, t, outcomes[i], 30)),
      },
      at(30),
    );
    expect(r.state.status).toBe(status);
    expect(codes(r)).toEqual(reasons);
    expect(creates(r)).toEqual([]);
    if (status === 'ROLLBACK_FAILED') expect(r.reasons[0].detail).toContain(things[1].t);
    const trail = r.actions.filter((a) => a.kind === 'appendTrail' && a.rollback);
    expect(trail).toHaveLength(outcomes.filter((o) => o !== 'IN_PROGRESS' && o !== 'QUEUED').length);
  });

  test('a device with no published previous release makes the rollback fail, reported', () => {
    const { state, base } = canaryDone();
    const r = step(
      state,
      {
        ...base,
        alarms: { 'fleet-errors': 'ALARM' },
        releases: { '1.0.0': releaseOf('1.0.0'), '1.1.0': null },
      },
      at(20),
    );
    expect(codes(r)).toEqual(['ALARM', 'ROLLBACK_UNAVAILABLE', 'ROLLBACK_PENDING']);
    expect(r.state.rollback?.unrollable).toEqual(['c2']);
  });

  test('a scheduled job canceled at its start is recreated once, then the rollout pauses until resumed', () => {
    const plan = planWith({ schedule: { startAfterMinutes: 60, restartsOnCanceledStart: 1 } });
    const { state, job } = started(plan);
    expect(job.schedulingConfig?.startTime).toBe(at(60).toISOString());
    const canceled = (id: string) => ({ jobs: { [id]: { status: 'CANCELED' as const } }, executions: [] });
    const r1 = step(state, canceled(job.jobId), at(61));
    expect(r1.decision).toEqual({ kind: 'restart-stage', stage: 0 });
    const second = creates(r1)[0];
    expect(second.jobId).not.toBe(job.jobId);
    expect(second.things).toEqual(job.things);
    expect(codes(r1)).toEqual(['SCHEDULED_JOB_CANCELED']);
    const r2 = step(r1.state, canceled(second.jobId), at(122));
    expect(r2.decision.kind).toBe('pause');
    expect(r2.state.status).toBe('PAUSED');
    expect(creates(r2)).toEqual([]);
    const r3 = step(
      r2.state,
      { ...canceled(second.jobId), commands: [{ id: 'r', kind: 'resume', by: 'ops' }] },
      at(130),
    );
    expect(r3.decision).toEqual({ kind: 'restart-stage', stage: 0 });
    expect(creates(r3)[0].jobId).not.toBe(second.jobId);
  });

  test('a stage job canceled after installs started (outside the controller) aborts', () => {
    const { state, job, things } = started();
    const r = step(
      state,
      {
        jobs: { [job.jobId]: { status: 'CANCELED' } },
        executions: [ex(job.jobId, things[0], 'SUCCEEDED', 5), ex(job.jobId, things[1], 'CANCELED', 6)],
        lastHealthReportAt: { [things[0]]: T0 + 6 * 60_000 },
        health: HEALTHY,
        alarms: OK_ALARMS,
        releases: RELEASES,
      },
      at(8),
    );
    expect(causes(r)).toEqual(['JOB_CANCELED']);
    expect(cancels(r)).toEqual([]);
    expect(r.state.status).toBe('ROLLING_BACK');
  });

  test('the last stage completes the rollout; an empty stage is skipped', () => {
    const { state, base } = canaryDone();
    const promoted = step(state, base, at(60));
    const stage1 = creates(promoted)[0];
    const done = step(
      promoted.state,
      {
        ...base,
        jobs: { ...base.jobs, [stage1.jobId]: { status: 'COMPLETED' } },
        executions: [...base.executions, ...stage1.things.map((t) => ex(stage1.jobId, t, 'SUCCEEDED', 70))],
        lastHealthReportAt: {},
      },
      at(70),
    );
    expect(done.decision.kind).toBe('wait');
    const reported = Object.fromEntries(Object.keys(done.state.ledger).map((t) => [t, T0 + 75 * 60_000]));
    const end = step(
      done.state,
      {
        ...base,
        jobs: { ...base.jobs, [stage1.jobId]: { status: 'COMPLETED' } },
        executions: [...base.executions, ...stage1.things.map((t) => ex(stage1.jobId, t, 'SUCCEEDED', 70))],
        lastHealthReportAt: reported,
      },
      at(150),
    );
    expect(end.decision).toEqual({ kind: 'complete' });
    expect(end.state.status).toBe('SUCCEEDED');
    const onlyCanary = CANDIDATES.filter((c) => c.ring === 'canary' || c.thing.startsWith('x'));
    const skip = step(state, { ...base, candidates: onlyCanary }, at(60));
    expect(skip.decision).toEqual({ kind: 'complete' });
    expect(skip.state.stages[1].status).toBe('SKIPPED');
    expect(codes(skip)).toEqual(['STAGE_EMPTY']);
  });

  test('a pause in a pass whose gates fail still aborts', () => {
    const { state, base } = canaryDone();
    const r = step(
      state,
      { ...base, alarms: { 'fleet-errors': 'ALARM' }, commands: [{ id: 'p', kind: 'pause', by: 'ops' }] },
      at(20),
    );
    expect(r.decision).toEqual({ kind: 'abort', rollback: true });
    expect(r.state.status).toBe('ROLLING_BACK');
    expect(devicesOnNewVersion(r.state)).toBe(3);
  });
});

describe('resolveStart', () => {
  const other = planWith({ soak: { minMinutes: 5, minDeviceHours: 0 } });
  test.each<[string, () => ReturnType<typeof newRollout>[], RolloutPlan, boolean | 'conflict']>([
    ['nothing yet: a new PENDING rollout', () => [], PLAN, true],
    [
      'the same release and plan again: the same rollout',
      () => [newRollout(RELEASE, PLAN, at(0))],
      PLAN,
      false,
    ],
    ['another plan while the first runs: conflict', () => [started().state], other, 'conflict'],
    [
      'another plan after the first ended: a new rollout',
      () => [{ ...started().state, status: 'ROLLED_BACK' as const }],
      other,
      true,
    ],
  ])('%s', (_name, existing, plan, expected) => {
    const rollouts = existing();
    if (expected === 'conflict') {
      expect(() => resolveStart(rollouts, RELEASE, plan, at(5))).toThrow(RolloutConflictError);
      expect(() => resolveStart(rollouts, RELEASE, plan, at(5))).toThrow('abort it first');
      return;
    }
    const r = resolveStart(rollouts, RELEASE, plan, at(5));
    expect(r.created).toBe(expected);
    expect(r.rollout.rolloutId).toBe(rolloutIdFor('2.0.0', plan));
    if (!expected) expect(r.rollout).toBe(rollouts[0]);
    else expect(r.rollout.status).toBe('PENDING');
  });
});
