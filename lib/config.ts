/**
 * Typed fleet configuration: defaults, validation and derived settings.
 *
 * `bin/app.ts` is the only caller that reads raw input (CDK context, a JSON overrides file);
 * it passes that input to {@link resolveFleetConfig}, and every construct receives the
 * resulting {@link FleetConfig} (or parts of it) through props.
 *
 * Invalid input fails synth with a {@link FleetConfigError} whose message names the key path,
 * the offending value and the fix, one line per problem.
 */
import { RemovalPolicy } from 'aws-cdk-lib';
import { z } from 'zod';
import { DEFAULT_SERIAL_PATTERN, RINGS, type Ring } from '../core/model';

/** Deployment stages. `dev` is disposable; `staging` and `prod` retain data. */
export const STAGES = ['dev', 'staging', 'prod'] as const;
export type Stage = (typeof STAGES)[number];

/** CloudWatch Logs retention periods (days) accepted by AWS. */
export const LOG_RETENTION_DAYS = [
  1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653,
] as const;

/** Settings of one template's pre-provisioning hook function. */
export interface HookConfig {
  /** Lambda memory (MB). More memory means more CPU and a faster cold start. @default 1024 */
  readonly memorySize: number;
  /** Milliseconds the hook may spend on AWS calls before failing closed (AWS allows 5 s in total). @default 3500 */
  readonly budgetMs: number;
  /** Provisioned concurrency for enrollment bursts (0 = none). @default 0 */
  readonly provisionedConcurrency: number;
  /** Reserved concurrency cap. @default - unreserved (account pool) */
  readonly reservedConcurrency?: number;
}

/** One fleet provisioning template (one per product line or device class). */
export interface ProvisioningTemplateConfig {
  /** Fixed template name devices publish to: 1-36 of `A-Z a-z 0-9 _ -`. @default 'fleet-default' */
  readonly name: string;
  /** Thing type assigned to devices enrolled by this template. @default 'fleet-device' */
  readonly thingTypeName: string;
  /** MQTT client id prefix claim-certificate connections must use. @default 'prov-' */
  readonly claimClientIdPrefix: string;
  /** Template description (at most 500 characters). */
  readonly description: string;
  /** Pre-provisioning hook settings. */
  readonly hook: HookConfig;
}

/** One stage of a staged OTA rollout. */
export interface OtaStageConfig {
  /** Stage name, e.g. `canary`. */
  readonly name: string;
  /** Ring the stage targets. */
  readonly targetRing: Ring;
  /** IoT Jobs rollout rate: job executions started per minute (1-1000). */
  readonly maximumPerMinute: number;
  /** Abort the stage when this percentage of executed things failed (0 < x <= 100). */
  readonly abortFailureThresholdPercent: number;
  /** Executed things required before the abort threshold is evaluated (>= 1). */
  readonly minNumberOfExecutedThings: number;
  /** Minutes the stage must stay healthy before promotion. */
  readonly soakMinutes: number;
  /** Minutes a job execution may stay IN_PROGRESS before it times out (1-10080). */
  readonly inProgressTimeoutMinutes: number;
  /** Retries of a FAILED or TIMED_OUT job execution (0-10). */
  readonly retryAttempts: number;
}

/** Fully resolved fleet configuration. */
export interface FleetConfig {
  readonly stage: Stage;
  /** MQTT topic prefix: `dt/<topicPrefix>/<thing>/…`. @default 'fleet' */
  readonly topicPrefix: string;
  /** Prefix of thing names (`<prefix>-<serial>`) and thing groups. @default 'fleet' */
  readonly thingNamePrefix: string;
  /** Regular expression (source) serial numbers must match. @default DEFAULT_SERIAL_PATTERN */
  readonly serialPattern: string;
  /** Ring shares in percent; broad takes the rest. */
  readonly rings: { readonly canaryPercent: number; readonly earlyPercent: number };
  readonly provisioning: { readonly templates: readonly ProvisioningTemplateConfig[] };
  /** Topic rule names devices may publish to through Basic Ingest. */
  readonly basicIngestRuleNames: readonly string[];
  /** Retention of the functions' log groups (days). @default 30 */
  readonly logRetentionDays: (typeof LOG_RETENTION_DAYS)[number];
  /** Default OTA rollout plan, in stage order. */
  readonly ota: { readonly stages: readonly OtaStageConfig[] };
  /** Derived: RETAIN unless the stage is `dev`. */
  readonly removalPolicy: RemovalPolicy;
  /** Derived: true in `prod`. */
  readonly deletionProtection: boolean;
}

/** Raised for invalid configuration. `issues` lists every problem; the message has one per line. */
export class FleetConfigError extends Error {
  constructor(public readonly issues: readonly string[]) {
    super(
      issues.length === 1
        ? `invalid fleet configuration: ${issues[0]}`
        : `invalid fleet configuration (${issues.length} problems):\n  - ${issues.join('\n  - ')}`,
    );
    this.name = 'FleetConfigError';
  }
}

/** Name-safe token used by prefixes: letters, digits, `_` and `-`. */
const PREFIX_RE = /^[A-Za-z0-9_-]{1,32}$/;
const TEMPLATE_NAME_RE = /^[0-9A-Za-z_-]+$/;
const THING_TYPE_RE = /^[a-zA-Z0-9:_-]{1,128}$/;
const RULE_NAME_RE = /^[a-zA-Z0-9_]{1,128}$/;
const STAGE_NAME_RE = /^[a-z0-9-]{1,32}$/;

const int = (min: number, max: number, fix: string) =>
  z.number({ error: fix }).int({ error: fix }).min(min, { error: fix }).max(max, { error: fix });

const hookSchema = z.strictObject({
  memorySize: int(128, 10240, 'use an integer number of MB between 128 and 10240').default(1024),
  budgetMs: int(
    100,
    4500,
    'use an integer between 100 and 4500 (AWS IoT waits at most 5 s for the hook)',
  ).default(3500),
  provisionedConcurrency: int(0, 1000, 'use an integer between 0 and 1000 (0 disables it)').default(0),
  reservedConcurrency: int(1, 10000, 'use an integer between 1 and 10000, or omit it').optional(),
});

const templateSchema = z.strictObject({
  name: z
    .string({ error: 'use 1-36 characters of A-Z a-z 0-9 _ -' })
    .min(1, { error: 'use 1-36 characters of A-Z a-z 0-9 _ -' })
    .max(36, { error: 'use 1-36 characters of A-Z a-z 0-9 _ -' })
    .regex(TEMPLATE_NAME_RE, { error: 'use 1-36 characters of A-Z a-z 0-9 _ -' }),
  thingTypeName: z
    .string({ error: 'use 1-128 characters of A-Z a-z 0-9 : _ -' })
    .regex(THING_TYPE_RE, { error: 'use 1-128 characters of A-Z a-z 0-9 : _ -' })
    .default('fleet-device'),
  claimClientIdPrefix: z
    .string({ error: 'use 1-32 characters of A-Z a-z 0-9 _ -' })
    .regex(PREFIX_RE, { error: 'use 1-32 characters of A-Z a-z 0-9 _ -' })
    .default('prov-'),
  description: z
    .string({ error: 'use a string of at most 500 characters' })
    .max(500, { error: 'use a string of at most 500 characters' })
    .default('Fleet provisioning by claim with an allowlist pre-provisioning hook'),
  hook: hookSchema.prefault({}),
});

const DEFAULT_TEMPLATES = [{ name: 'fleet-default' }];

const otaStageSchema = z.strictObject({
  name: z.string({ error: 'use 1-32 characters of a-z 0-9 -' }).regex(STAGE_NAME_RE, {
    error: 'use 1-32 characters of a-z 0-9 -',
  }),
  targetRing: z.enum(RINGS, { error: `use one of ${RINGS.join(', ')}` }),
  maximumPerMinute: int(1, 1000, 'use an integer between 1 and 1000 (IoT Jobs rollout rate)'),
  abortFailureThresholdPercent: z
    .number({ error: 'use a number greater than 0 and at most 100' })
    .gt(0, { error: 'use a number greater than 0 and at most 100' })
    .max(100, { error: 'use a number greater than 0 and at most 100' }),
  minNumberOfExecutedThings: int(1, 1_000_000, 'use an integer of at least 1'),
  soakMinutes: int(0, 10080, 'use an integer between 0 and 10080 (7 days)'),
  inProgressTimeoutMinutes: int(
    1,
    10080,
    'use an integer between 1 and 10080 (IoT Jobs in-progress timeout)',
  ),
  retryAttempts: int(0, 10, 'use an integer between 0 and 10 (IoT Jobs retry limit)'),
});

/** Default rollout plan: a small canary, a wider early wave, then everyone else. */
export const DEFAULT_OTA_STAGES: readonly OtaStageConfig[] = [
  {
    name: 'canary',
    targetRing: 'canary',
    maximumPerMinute: 10,
    abortFailureThresholdPercent: 10,
    minNumberOfExecutedThings: 5,
    soakMinutes: 60,
    inProgressTimeoutMinutes: 30,
    retryAttempts: 2,
  },
  {
    name: 'early',
    targetRing: 'early',
    maximumPerMinute: 50,
    abortFailureThresholdPercent: 5,
    minNumberOfExecutedThings: 20,
    soakMinutes: 120,
    inProgressTimeoutMinutes: 30,
    retryAttempts: 2,
  },
  {
    name: 'broad',
    targetRing: 'broad',
    maximumPerMinute: 200,
    abortFailureThresholdPercent: 2,
    minNumberOfExecutedThings: 100,
    soakMinutes: 60,
    inProgressTimeoutMinutes: 30,
    retryAttempts: 2,
  },
];

const inputSchema = z
  .strictObject({
    stage: z.enum(STAGES, { error: `use one of ${STAGES.join(', ')}` }).default('dev'),
    topicPrefix: z
      .string({ error: 'use 1-32 characters of A-Z a-z 0-9 _ - (one MQTT topic level)' })
      .regex(PREFIX_RE, { error: 'use 1-32 characters of A-Z a-z 0-9 _ - (one MQTT topic level)' })
      .default('fleet'),
    thingNamePrefix: z
      .string({ error: 'use 1-32 characters of A-Z a-z 0-9 _ -' })
      .regex(PREFIX_RE, { error: 'use 1-32 characters of A-Z a-z 0-9 _ -' })
      .default('fleet'),
    serialPattern: z
      .string({ error: 'use a regular expression source string, e.g. "^[A-Z0-9]{4,32}$"' })
      .min(1, { error: 'use a regular expression source string, e.g. "^[A-Z0-9]{4,32}$"' })
      .refine(compiles, {
        error: 'use a valid JavaScript regular expression source, e.g. "^[A-Z0-9]{4,32}$"',
      })
      .default(DEFAULT_SERIAL_PATTERN),
    rings: z
      .strictObject({
        canaryPercent: z
          .number({ error: 'use a number greater than 0 and below 100' })
          .gt(0, { error: 'use a number greater than 0 and below 100' })
          .lt(100, { error: 'use a number greater than 0 and below 100' })
          .default(2),
        earlyPercent: z
          .number({ error: 'use a number between 0 and 100' })
          .min(0, { error: 'use a number between 0 and 100' })
          .lt(100, { error: 'use a number between 0 and 100' })
          .default(18),
      })
      .prefault({}),
    provisioning: z
      .strictObject({
        templates: z
          .array(templateSchema, { error: 'use a list of templates, e.g. [{"name":"fleet-default"}]' })
          .min(1, { error: 'declare at least one template, e.g. [{"name":"fleet-default"}]' })
          .max(20, { error: 'declare at most 20 templates' })
          .prefault(DEFAULT_TEMPLATES),
      })
      .prefault({}),
    basicIngestRuleNames: z
      .array(
        z
          .string({ error: 'use 1-128 characters of a-z A-Z 0-9 _ (topic rule name)' })
          .regex(RULE_NAME_RE, { error: 'use 1-128 characters of a-z A-Z 0-9 _ (topic rule name)' }),
        { error: 'use a list of topic rule names, e.g. ["fleet_telemetry"]' },
      )
      .max(10, { error: 'list at most 10 Basic Ingest rules' })
      .default(['fleet_telemetry', 'fleet_health']),
    logRetentionDays: z
      .number({ error: `use one of ${LOG_RETENTION_DAYS.join(', ')}` })
      .refine((d) => (LOG_RETENTION_DAYS as readonly number[]).includes(d), {
        error: `use one of ${LOG_RETENTION_DAYS.join(', ')}`,
      })
      .default(30),
    ota: z
      .strictObject({
        stages: z
          .array(otaStageSchema, { error: 'use a list of rollout stages' })
          .min(1, { error: 'declare at least one rollout stage' })
          .max(RINGS.length, { error: `declare at most ${RINGS.length} stages (one per ring)` })
          .prefault(DEFAULT_OTA_STAGES.map((s) => ({ ...s }))),
      })
      .prefault({}),
  })
  .superRefine((cfg, ctx) => {
    const { canaryPercent, earlyPercent } = cfg.rings;
    if (canaryPercent + earlyPercent >= 100) {
      ctx.addIssue({
        code: 'custom',
        path: ['rings', 'earlyPercent'],
        input: earlyPercent,
        message: `keep canaryPercent + earlyPercent (now ${canaryPercent + earlyPercent}) below 100 so the broad ring is not empty`,
      });
    }
    const seenNames = new Map<string, number>();
    cfg.provisioning.templates.forEach((t, i) => {
      const first = seenNames.get(t.name);
      if (first !== undefined) {
        ctx.addIssue({
          code: 'custom',
          path: ['provisioning', 'templates', i, 'name'],
          input: t.name,
          message: `give every template a unique name (this one repeats provisioning.templates[${first}].name)`,
        });
      } else {
        seenNames.set(t.name, i);
      }
      // A claim connection must never be able to take a device's client id (= thing name):
      // AWS IoT disconnects the older session on a duplicate client id.
      const thingHead = `${cfg.thingNamePrefix}-`;
      if (thingHead.startsWith(t.claimClientIdPrefix) || t.claimClientIdPrefix.startsWith(thingHead)) {
        ctx.addIssue({
          code: 'custom',
          path: ['provisioning', 'templates', i, 'claimClientIdPrefix'],
          input: t.claimClientIdPrefix,
          message: `use a prefix that cannot collide with the thing names "${thingHead}…" (neither may start with the other), e.g. "prov-"`,
        });
      }
      const { provisionedConcurrency, reservedConcurrency } = t.hook;
      if (reservedConcurrency !== undefined && provisionedConcurrency > reservedConcurrency) {
        ctx.addIssue({
          code: 'custom',
          path: ['provisioning', 'templates', i, 'hook', 'provisionedConcurrency'],
          input: provisionedConcurrency,
          message: `keep it at most hook.reservedConcurrency (${reservedConcurrency}), or raise reservedConcurrency`,
        });
      }
    });
    const rules = new Set<string>();
    cfg.basicIngestRuleNames.forEach((r, i) => {
      if (rules.has(r)) {
        ctx.addIssue({
          code: 'custom',
          path: ['basicIngestRuleNames', i],
          input: r,
          message: 'list every rule name once',
        });
      }
      rules.add(r);
    });
    let lastRing = -1;
    const stageNames = new Set<string>();
    cfg.ota.stages.forEach((s, i) => {
      if (stageNames.has(s.name)) {
        ctx.addIssue({
          code: 'custom',
          path: ['ota', 'stages', i, 'name'],
          input: s.name,
          message: 'give every stage a unique name',
        });
      }
      stageNames.add(s.name);
      const ring = RINGS.indexOf(s.targetRing);
      if (ring <= lastRing) {
        ctx.addIssue({
          code: 'custom',
          path: ['ota', 'stages', i, 'targetRing'],
          input: s.targetRing,
          message: `order the stages so each targets a later ring than the one before (${RINGS.join(' → ')})`,
        });
      }
      lastRing = Math.max(lastRing, ring);
    });
  });

function compiles(source: string): boolean {
  try {
    new RegExp(source);
    return true;
  } catch {
    return false;
  }
}

/** `provisioning.templates[0].name` from a zod path. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else out += out === '' ? String(seg) : `.${String(seg)}`;
  }
  return out === '' ? '(root)' : out;
}

function valueAt(input: unknown, path: readonly PropertyKey[]): unknown {
  let cur: unknown = input;
  for (const seg of path) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<PropertyKey, unknown>)[seg];
  }
  return cur;
}

function describe(value: unknown): string {
  const json = JSON.stringify(value);
  return json.length > 80 ? `${json.slice(0, 77)}...` : json;
}

/**
 * Validate raw configuration (e.g. parsed JSON overrides plus the `stage` context value),
 * apply defaults and derive stage-dependent settings.
 *
 * @throws FleetConfigError naming each invalid key path, its value and the fix.
 */
export function resolveFleetConfig(input: unknown = {}): FleetConfig {
  const raw = input ?? {};
  const parsed = inputSchema.safeParse(raw);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((issue) => {
      if (issue.code === 'unrecognized_keys') {
        const at = formatPath(issue.path);
        return issue.keys
          .map(
            (k) =>
              `${at === '(root)' ? k : `${at}.${k}`}: unknown key; remove it or fix its spelling (see the configuration reference)`,
          )
          .join('\n  - ');
      }
      const value = 'input' in issue && issue.input !== undefined ? issue.input : valueAt(raw, issue.path);
      const text = issue.message.startsWith('Invalid input')
        ? `use a value of the documented type (${issue.message})`
        : issue.message;
      return value === undefined
        ? `${formatPath(issue.path)}: missing; ${text}`
        : `${formatPath(issue.path)}: ${describe(value)} is invalid; ${text}`;
    });
    throw new FleetConfigError(issues);
  }
  const cfg = parsed.data;
  return {
    ...cfg,
    logRetentionDays: cfg.logRetentionDays as FleetConfig['logRetentionDays'],
    removalPolicy: cfg.stage === 'dev' ? RemovalPolicy.DESTROY : RemovalPolicy.RETAIN,
    deletionProtection: cfg.stage === 'prod',
  };
}

/** Ring shares in the `<canary>:<early>` form the hook reads. */
export function ringSharesOf(config: Pick<FleetConfig, 'rings'>): string {
  return `${config.rings.canaryPercent}:${config.rings.earlyPercent}`;
}
