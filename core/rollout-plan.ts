/**
 * The rollout plan: what a staged firmware rollout does, stage by stage, and the request that
 * starts one. Parsed with zod; every error names the field and how to fix it. Pure: no AWS SDK,
 * no I/O.
 *
 * A plan is a list of stages. Each stage makes one AWS IoT job (its targets, rollout rate, abort
 * criteria, timeouts and retries are CreateJob's, within AWS's ranges) and then holds the rollout
 * until its gates agree: soak (time and device-hours), success and failure percentages over
 * unique devices, the health gate, the silence gate, named alarms and, optionally, an approval.
 * The rollback policy is the plan's: on abort, every device that reached the new version gets a
 * job back to the version it had before.
 *
 * Sources for the ranges: AWS IoT API reference, CreateJob, AbortCriteria, RetryCriteria,
 * AwsJobExponentialRolloutRate, RateIncreaseCriteria, TimeoutConfig, MaintenanceWindow.
 */
import { createHash } from 'node:crypto';
import * as z from 'zod/mini';
import { describeIssues } from './issues';
import { FIRMWARE_PATTERN, RINGS } from './model';

/** Failure types of an abort criterion (CreateJob `abortConfig`). */
export const ABORT_FAILURE_TYPES = ['FAILED', 'REJECTED', 'TIMED_OUT', 'ALL'] as const;
/** Failure types a retry criterion may name (REJECTED is never retried). */
export const RETRY_FAILURE_TYPES = ['FAILED', 'TIMED_OUT', 'ALL'] as const;
/** What AWS does when a scheduled job reaches its end time. */
export const END_BEHAVIORS = ['STOP_ROLLOUT', 'CANCEL', 'FORCE_CANCEL'] as const;

const THING_NAME = /^[a-zA-Z0-9:_-]{1,128}$/;
const NAME = /^[a-z][a-z0-9-]{0,31}$/;

const intIn = (min: number, max: number, what: string) =>
  z.int().check(z.gte(min, `${what} must be at least ${min}`), z.lte(max, `${what} must be at most ${max}`));
const percent = (what: string) =>
  z
    .number()
    .check(
      z.gte(0, `${what} is a percentage: use 0 to 100`),
      z.lte(100, `${what} is a percentage: use 0 to 100`),
    );
const nonNegative = (what: string) =>
  z.number().check(z.gte(0, `${what} cannot be negative; use 0 to disable`));

/** Who a stage targets: rings, or explicit things (single-device remediation). */
export const stageTargetsSchema = z
  .strictObject({
    rings: z.optional(
      z.array(z.enum(RINGS)).check(z.minLength(1, 'name at least one ring: canary, early or broad')),
    ),
    things: z.optional(
      z
        .array(z.string().check(z.regex(THING_NAME, 'a thing name is 1-128 characters of [a-zA-Z0-9:_-]')))
        .check(
          z.minLength(1, 'name at least one thing'),
          z.maxLength(100, 'a job targets at most 100 things'),
        ),
    ),
  })
  .check(
    z.refine((t) => (t.rings === undefined) !== (t.things === undefined), {
      message: 'give exactly one of "rings" (a wave) or "things" (a remediation)',
    }),
  );

/** The canary draw: every hardware revision × lot of the rollout's target set is represented. */
export const canarySchema = z.strictObject({
  /** Devices per hardware revision × lot stratum (fewer only when the stratum has fewer). */
  minPerStratum: intIn(1, 100, 'canary.minPerStratum'),
});

const rateIncreaseSchema = z
  .strictObject({
    numberOfNotifiedThings: z.optional(intIn(1, 1_000_000, 'numberOfNotifiedThings')),
    numberOfSucceededThings: z.optional(intIn(1, 1_000_000, 'numberOfSucceededThings')),
  })
  .check(
    z.refine((c) => (c.numberOfNotifiedThings === undefined) !== (c.numberOfSucceededThings === undefined), {
      message: 'set exactly one of numberOfNotifiedThings or numberOfSucceededThings',
    }),
  );

/** Rollout rate (`jobExecutionsRolloutConfig`): a ceiling, optionally ramped exponentially. */
export const rateSchema = z.strictObject({
  maximumPerMinute: intIn(1, 1000, 'rate.maximumPerMinute'),
  exponential: z.optional(
    z.strictObject({
      baseRatePerMinute: intIn(1, 1000, 'rate.exponential.baseRatePerMinute'),
      incrementFactor: z.number().check(
        z.gte(1, 'incrementFactor must be 1 to 5'),
        z.lte(5, 'incrementFactor must be 1 to 5'),
        z.refine((v) => Math.round(v * 10) === v * 10, 'incrementFactor has at most one decimal, e.g. 1.5'),
      ),
      rateIncreaseCriteria: rateIncreaseSchema,
    }),
  ),
});

/** One abort criterion, counted over unique devices by the controller (and by AWS over executions). */
export const abortCriterionSchema = z.strictObject({
  failureType: z.enum(ABORT_FAILURE_TYPES),
  thresholdPercentage: percent('thresholdPercentage').check(
    z.refine((v) => Math.round(v * 100) === v * 100, 'thresholdPercentage has at most two decimals'),
  ),
  minNumberOfExecutedThings: intIn(1, 1_000_000, 'minNumberOfExecutedThings'),
});

/** One retry criterion (`jobExecutionsRetryConfig`). */
export const retryCriterionSchema = z.strictObject({
  failureType: z.enum(RETRY_FAILURE_TYPES),
  numberOfRetries: intIn(0, 10, 'numberOfRetries'),
});

/** Timeouts: the in-progress timer of the job, the step timer the device sets per step. */
export const timeoutsSchema = z
  .strictObject({
    inProgressMinutes: intIn(1, 10_080, 'timeouts.inProgressMinutes'),
    stepMinutes: z.optional(intIn(1, 10_080, 'timeouts.stepMinutes')),
  })
  .check(
    z.refine((t) => t.stepMinutes === undefined || t.stepMinutes <= t.inProgressMinutes, {
      message: 'stepMinutes cannot exceed inProgressMinutes; lower it or raise inProgressMinutes',
      path: ['stepMinutes'],
    }),
  );

/** Soak: the stage holds for at least this long, and this much device time on the new version. */
export const soakSchema = z.strictObject({
  minMinutes: nonNegative('soak.minMinutes'),
  minDeviceHours: nonNegative('soak.minDeviceHours'),
});

/**
 * Health gate: the updated cohort's unexpected reboot rate against the fleet baseline. It fails
 * when the rate exceeds the baseline by more than `maxAbsoluteDelta` AND by more than
 * `maxRatio` times (with a zero baseline, the delta alone decides); it judges only once the
 * updated cohort has `minReports` reports.
 */
export const healthGateSchema = z.strictObject({
  maxRatio: z.number().check(z.gte(1, 'health.maxRatio is a multiple of the baseline: use 1 or more')),
  maxAbsoluteDelta: z
    .number()
    .check(z.gte(0, 'health.maxAbsoluteDelta is a share of reports: use 0 to 1'), z.lte(1, 'use 0 to 1')),
  minReports: intIn(1, 1_000_000, 'health.minReports'),
});

/** What must hold before the next stage starts. */
export const promotionSchema = z.strictObject({
  minSuccessPercent: percent('promotion.minSuccessPercent'),
  maxFailurePercent: percent('promotion.maxFailurePercent'),
  health: z.optional(healthGateSchema),
  /** A device that succeeded or was mid-install and sent no health report within this many minutes counts as failed. */
  silenceMinutes: z.optional(intIn(1, 10_080, 'promotion.silenceMinutes')),
  /** CloudWatch alarm names that must be OK (one in ALARM aborts). */
  alarms: z.optional(
    z.array(z.string().check(z.minLength(1, 'an alarm name cannot be empty'), z.maxLength(255))),
  ),
  requireApproval: z.optional(z.boolean()),
});

/** Scheduling the controller adds per job (templates cannot carry it). */
export const scheduleSchema = z.strictObject({
  /** Minutes from the stage's start to the job's start time. */
  startAfterMinutes: z.optional(intIn(0, 525_600, 'schedule.startAfterMinutes')),
  /** Minutes from the job's start to its end time (AWS wants 30 or more). */
  endAfterMinutes: z.optional(intIn(30, 1_051_200, 'schedule.endAfterMinutes')),
  endBehavior: z.optional(z.enum(END_BEHAVIORS)),
  maintenanceWindows: z.optional(
    z.array(
      z.strictObject({
        startTime: z
          .string()
          .check(z.regex(/^cron\(.+\)$/, 'a window start is a cron expression, e.g. cron(0 2 ? * SUN *)')),
        durationInMinutes: intIn(1, 1430, 'durationInMinutes'),
      }),
    ),
  ),
  /** How often a job canceled at its scheduled start is recreated before the rollout pauses. */
  restartsOnCanceledStart: z.optional(intIn(0, 10, 'schedule.restartsOnCanceledStart')),
});

/** One stage: one job and its gates. */
export const stageSchema = z.strictObject({
  name: z.string().check(z.regex(NAME, 'a stage name is lowercase letters, digits and dashes, up to 32')),
  /** The job template class (one `AWS::IoT::JobTemplate` per class); defaults to the stage name. */
  templateClass: z.optional(
    z.string().check(z.regex(NAME, 'a template class is lowercase letters, digits and dashes')),
  ),
  targets: stageTargetsSchema,
  canary: z.optional(canarySchema),
  rate: rateSchema,
  abort: z
    .array(abortCriterionSchema)
    .check(z.minLength(1, 'give at least one abort criterion, e.g. ALL at 10%')),
  timeouts: timeoutsSchema,
  retries: z.optional(
    z.array(retryCriterionSchema).check(z.maxLength(2, 'give at most two retry criteria (AWS limit)')),
  ),
  soak: soakSchema,
  promotion: promotionSchema,
  schedule: z.optional(scheduleSchema),
});

/** The rollback policy of a plan. */
export const rollbackPolicySchema = z.strictObject({
  /** Roll back on abort. @default true */
  enabled: z.boolean(),
  /** Cancel the aborted stage's job with force (also IN_PROGRESS executions). */
  forceCancel: z.boolean(),
  /** In-progress timeout of the rollback jobs. */
  inProgressMinutes: intIn(1, 10_080, 'rollback.inProgressMinutes'),
  /** Retries of FAILED and TIMED_OUT rollback executions. */
  retries: intIn(0, 10, 'rollback.retries'),
});

/** A rollout plan. */
export const rolloutPlanSchema = z
  .strictObject({
    stages: z
      .array(stageSchema)
      .check(z.minLength(1, 'give at least one stage'), z.maxLength(20, 'a plan has at most 20 stages')),
    rollback: rollbackPolicySchema,
  })
  .check(
    z.refine((p) => new Set(p.stages.map((s) => s.name)).size === p.stages.length, {
      message: 'stage names must be unique; rename the repeated one',
      path: ['stages'],
    }),
  );

export type StageTargets = z.infer<typeof stageTargetsSchema>;
export type RolloutRate = z.infer<typeof rateSchema>;
export type AbortCriterion = z.infer<typeof abortCriterionSchema>;
export type RetryCriterion = z.infer<typeof retryCriterionSchema>;
export type HealthGate = z.infer<typeof healthGateSchema>;
export type PromotionCriteria = z.infer<typeof promotionSchema>;
export type StageSchedule = z.infer<typeof scheduleSchema>;
export type Stage = z.infer<typeof stageSchema>;
export type RollbackPolicy = z.infer<typeof rollbackPolicySchema>;
export type RolloutPlan = z.infer<typeof rolloutPlanSchema>;

const CONSERVATIVE_ABORT: AbortCriterion[] = [
  { failureType: 'ALL', thresholdPercentage: 10, minNumberOfExecutedThings: 1 },
  { failureType: 'REJECTED', thresholdPercentage: 5, minNumberOfExecutedThings: 1 },
];

/**
 * The default preset: canary → early → broad with conservative thresholds. The canary is the
 * canary ring topped up so every hardware revision × lot is represented; any failure in it
 * aborts. The config layer may override it; this is the one place the default lives.
 */
export const DEFAULT_ROLLOUT_PLAN: RolloutPlan = {
  stages: [
    {
      name: 'canary',
      targets: { rings: ['canary'] },
      canary: { minPerStratum: 1 },
      rate: { maximumPerMinute: 10 },
      abort: CONSERVATIVE_ABORT,
      timeouts: { inProgressMinutes: 60, stepMinutes: 20 },
      retries: [{ failureType: 'TIMED_OUT', numberOfRetries: 1 }],
      soak: { minMinutes: 240, minDeviceHours: 24 },
      promotion: {
        minSuccessPercent: 100,
        maxFailurePercent: 0,
        health: { maxRatio: 1.5, maxAbsoluteDelta: 0.02, minReports: 20 },
        silenceMinutes: 30,
        alarms: [],
        requireApproval: false,
      },
    },
    {
      name: 'early',
      targets: { rings: ['early'] },
      rate: {
        maximumPerMinute: 50,
        exponential: {
          baseRatePerMinute: 5,
          incrementFactor: 2,
          rateIncreaseCriteria: { numberOfSucceededThings: 20 },
        },
      },
      abort: [
        { failureType: 'ALL', thresholdPercentage: 5, minNumberOfExecutedThings: 10 },
        { failureType: 'REJECTED', thresholdPercentage: 2, minNumberOfExecutedThings: 10 },
      ],
      timeouts: { inProgressMinutes: 60, stepMinutes: 20 },
      retries: [{ failureType: 'TIMED_OUT', numberOfRetries: 1 }],
      soak: { minMinutes: 720, minDeviceHours: 200 },
      promotion: {
        minSuccessPercent: 98,
        maxFailurePercent: 2,
        health: { maxRatio: 1.5, maxAbsoluteDelta: 0.02, minReports: 100 },
        silenceMinutes: 30,
        alarms: [],
        requireApproval: true,
      },
    },
    {
      name: 'broad',
      targets: { rings: ['broad'] },
      rate: {
        maximumPerMinute: 200,
        exponential: {
          baseRatePerMinute: 20,
          incrementFactor: 2,
          rateIncreaseCriteria: { numberOfSucceededThings: 100 },
        },
      },
      abort: [{ failureType: 'ALL', thresholdPercentage: 5, minNumberOfExecutedThings: 50 }],
      timeouts: { inProgressMinutes: 60, stepMinutes: 20 },
      retries: [{ failureType: 'TIMED_OUT', numberOfRetries: 1 }],
      soak: { minMinutes: 0, minDeviceHours: 0 },
      promotion: {
        minSuccessPercent: 98,
        maxFailurePercent: 2,
        health: { maxRatio: 1.5, maxAbsoluteDelta: 0.02, minReports: 100 },
        silenceMinutes: 30,
        alarms: [],
        requireApproval: false,
      },
    },
  ],
  rollback: { enabled: true, forceCancel: true, inProgressMinutes: 60, retries: 2 },
};

/** Named plans a request may ask for with `preset`. */
export const ROLLOUT_PRESETS: Readonly<Record<string, RolloutPlan>> = { default: DEFAULT_ROLLOUT_PLAN };

/** A rollout request as the API and the CLI send it. */
export const rolloutRequestSchema = z
  .strictObject({
    release: z
      .string()
      .check(z.regex(FIRMWARE_PATTERN, 'release is a published firmware version, e.g. 2.1.0 or 2.1.0-rc.1')),
    plan: z.optional(rolloutPlanSchema),
    preset: z.optional(z.string().check(z.minLength(1, 'name a preset, e.g. "default"'))),
  })
  .check(
    z.refine((r) => r.plan === undefined || r.preset === undefined, {
      message: 'give "plan" or "preset", not both',
      path: ['preset'],
    }),
  );

/** A parsed request: the release and the plan it resolves to. */
export interface RolloutRequest {
  release: string;
  plan: RolloutPlan;
  /** The preset the plan came from, when it came from one. */
  preset?: string;
}

/** A rollout request or plan that does not parse; the message names each field and its fix. */
export class RolloutPlanError extends Error {}

/**
 * Parse a rollout request. Without `plan` or `preset` the `default` preset applies. Errors name
 * the field (`plan.stages.0.rate.maximumPerMinute: …`) and the fix.
 */
export function parseRolloutRequest(
  input: unknown,
  presets: Readonly<Record<string, RolloutPlan>> = ROLLOUT_PRESETS,
): RolloutRequest {
  const r = rolloutRequestSchema.safeParse(input);
  if (!r.success) throw new RolloutPlanError(`rollout request is invalid: ${describeIssues(r.error.issues)}`);
  if (r.data.plan) return { release: r.data.release, plan: r.data.plan };
  const name = r.data.preset ?? 'default';
  const plan = Object.hasOwn(presets, name) ? presets[name] : undefined;
  if (!plan) {
    throw new RolloutPlanError(
      `rollout request is invalid: preset: unknown preset "${name}"; use one of ${Object.keys(presets).join(', ')} or give a plan`,
    );
  }
  return { release: r.data.release, plan, preset: name };
}

/** Parse a plan alone (a `--plan FILE`, a config override). */
export function parseRolloutPlan(input: unknown): RolloutPlan {
  const r = rolloutPlanSchema.safeParse(input);
  if (!r.success)
    throw new RolloutPlanError(`rollout plan is invalid: ${describeIssues(r.error.issues, '(plan)')}`);
  return r.data;
}

function canonical(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(canonical);
  if (value && typeof value === 'object') {
    return Object.fromEntries(
      Object.keys(value)
        .sort()
        .filter((k) => (value as Record<string, unknown>)[k] !== undefined)
        .map((k) => [k, canonical((value as Record<string, unknown>)[k])]),
    );
  }
  return value;
}

/** Hex fingerprint of a plan, independent of key order: the same plan always gives the same one. */
export function planFingerprint(plan: RolloutPlan): string {
  return createHash('sha256')
    .update(JSON.stringify(canonical(plan)))
    .digest('hex');
}

/**
 * The rollout id of a release and plan: starting the same release with the same plan twice gives
 * the same id (the API returns the existing rollout); a different plan gives a different id, so
 * the API can refuse it as a conflict while the first runs.
 */
export function rolloutIdFor(release: string, plan: RolloutPlan): string {
  return `${release}~${planFingerprint(plan).slice(0, 12)}`;
}

/** The job template class of a stage. */
export function templateClassOf(stage: Stage): string {
  return stage.templateClass ?? stage.name;
}
