/**
 * Typed fleet configuration: defaults, validation and derived settings.
 *
 * `bin/app.ts` is the only caller that reads raw input (CDK context, a JSON overrides file);
 * it passes that input to {@link resolveFleetConfig}, and every construct receives the
 * resulting {@link FleetConfig} (or parts of it) through props.
 *
 * Invalid input fails synth with a {@link FleetConfigError} whose message names the key path,
 * the offending value and the fix, one line per problem. Every problem is reported at once:
 * cross-field rules (ring-share sum, name prefixes, concurrency) run next to the per-key checks.
 *
 * Every default lives here, in {@link FLEET_DEFAULTS}; the constructs take the resolved values.
 */
import { RemovalPolicy } from 'aws-cdk-lib';
import { HOOK_BUDGET_MS } from '../core/env';
import type { RecordType } from '../core/telemetry';
import { z } from 'zod';
import {
  DEFAULT_CLAIM_CLIENT_ID_PREFIX,
  DEFAULT_SERIAL_PATTERN,
  DEFAULT_THING_NAME_PREFIX,
  DEFAULT_TOPIC_PREFIX,
  UNLISTED_RETENTION_DAYS,
} from '../core/model';
import type { RingShares } from '../core/rings';
import { TIME_SERIES_RULE_SUFFIX, timeSeriesRuleName } from '../core/time-series';

/** Deployment stages. `dev` is disposable; `staging` and `prod` retain data. */
export const STAGES = ['dev', 'staging', 'prod'] as const;
export type Stage = (typeof STAGES)[number];

/** CloudWatch Logs retention periods (days) accepted by AWS. */
export const LOG_RETENTION_DAYS = [
  1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653,
] as const;

/**
 * The one place every configuration default lives. Names that AWS IoT keeps per account and
 * region (template, thing type, thing groups) derive from `thingNamePrefix`: see
 * {@link defaultTemplateName} and {@link defaultThingTypeName}.
 */
export const FLEET_DEFAULTS = {
  stage: 'dev',
  topicPrefix: DEFAULT_TOPIC_PREFIX,
  thingNamePrefix: DEFAULT_THING_NAME_PREFIX,
  serialPattern: DEFAULT_SERIAL_PATTERN,
  rings: { canaryPercent: 2, earlyPercent: 18 },
  /** The default template is `<thingNamePrefix>-default`. */
  templateNameSuffix: 'default',
  /** The default thing type is `<thingNamePrefix>-device`. */
  thingTypeNameSuffix: 'device',
  claimClientIdPrefix: DEFAULT_CLAIM_CLIENT_ID_PREFIX,
  templateDescription: 'Fleet provisioning by claim with an allowlist pre-provisioning hook',
  hook: { memorySize: 1024, budgetMs: 3500, provisionedConcurrency: 0 },
  logRetentionDays: 30,
  trail: { unlistedSerialRetentionDays: 30 },
  telemetry: {
    /** The default topic rule names are `<thingNamePrefix as [A-Za-z0-9_]>_<suffix>`: see {@link defaultRuleNames}. */
    ruleNameSuffixes: { telemetry: 'telemetry', health: 'health' },
    basicIngest: true,
    stream: { mode: 'ON_DEMAND', provisionedShardCount: 1, retentionHours: 24 },
    archive: { enabled: true, bufferingIntervalSeconds: 300, bufferingSizeMiB: 64 },
    errorStore: { retentionDays: 90 },
    lastSeenIntervalSeconds: 900,
    healthIntervalSeconds: 300,
    /** The same values as core/health.ts DEFAULT_HEALTH_THRESHOLDS (a decision core lib may not import; a test ties them). */
    thresholds: { lowHeapBytes: 16_384, weakRssiDbm: -85 },
    maxFirmwareDimensions: 50,
    consumer: {
      batchSize: 100,
      maxBatchingWindowSeconds: 5,
      parallelizationFactor: 1,
      retryAttempts: -1,
      maxRecordAgeSeconds: 21_600,
      memorySize: 512,
      timeoutSeconds: 60,
    },
    alarms: {
      unexpectedRebootRatePercent: 5,
      rebootRateEvaluationPeriods: 3,
      iteratorAgeMs: 300_000,
      archiveFreshnessSeconds: 1800,
    },
    timestream: { enabled: false },
    influxdb: { enabled: false, version: 'V3' },
  },
  ota: {
    /** The default package name is `<thingNamePrefix>-firmware`: see {@link defaultPackageName}. */
    packageNameSuffix: 'firmware',
    presignedUrlExpiresInSec: 3600,
    manageJobEvents: true,
    stageClasses: {
      canary: {
        rollout: { maximumPerMinute: 10 },
        abort: [{ failureType: 'ALL', thresholdPercentage: 20, minNumberOfExecutedThings: 3 }],
        inProgressTimeoutMinutes: 60,
        retries: { FAILED: 0, TIMED_OUT: 0 },
      },
      early: {
        rollout: {
          maximumPerMinute: 100,
          exponential: { baseRatePerMinute: 20, incrementFactor: 2, numberOfSucceededThings: 50 },
        },
        abort: [{ failureType: 'ALL', thresholdPercentage: 10, minNumberOfExecutedThings: 10 }],
        inProgressTimeoutMinutes: 120,
        retries: { FAILED: 1, TIMED_OUT: 0 },
      },
      broad: {
        rollout: {
          maximumPerMinute: 500,
          exponential: { baseRatePerMinute: 50, incrementFactor: 2, numberOfSucceededThings: 200 },
        },
        abort: [{ failureType: 'ALL', thresholdPercentage: 5, minNumberOfExecutedThings: 50 }],
        inProgressTimeoutMinutes: 240,
        retries: { FAILED: 2, TIMED_OUT: 1 },
      },
    },
  },
} as const;

/** Default provisioning template name of a stack: `<thingNamePrefix>-default`. */
export const defaultTemplateName = (thingNamePrefix: string): string =>
  `${thingNamePrefix}-${FLEET_DEFAULTS.templateNameSuffix}`;
/** Default thing type name of a stack: `<thingNamePrefix>-device`. */
export const defaultThingTypeName = (thingNamePrefix: string): string =>
  `${thingNamePrefix}-${FLEET_DEFAULTS.thingTypeNameSuffix}`;
/**
 * Default topic rule names of a stack: the thing-name prefix with every character outside
 * `A-Z a-z 0-9 _` replaced by `_`, then `_telemetry` / `_health` (prefix `fleet`: `fleet_telemetry`,
 * `fleet_health`).
 */
export const defaultRuleNames = (thingNamePrefix: string): Record<RecordType, string> => {
  const base = thingNamePrefix.replace(/[^A-Za-z0-9_]/g, '_');
  const { telemetry, health } = FLEET_DEFAULTS.telemetry.ruleNameSuffixes;
  return { telemetry: `${base}_${telemetry}`, health: `${base}_${health}` };
};

/** Default Software Package Catalog package of a stack's firmware: `<thingNamePrefix>-firmware`. */
export const defaultPackageName = (thingNamePrefix: string): string =>
  `${thingNamePrefix}-${FLEET_DEFAULTS.ota.packageNameSuffix}`;

/** Settings of one template's pre-provisioning hook function. */
export interface HookConfig {
  /** Lambda memory (MB). More memory means more CPU and a faster cold start. @default 1024 */
  readonly memorySize: number;
  /**
   * Milliseconds within which the hook answers, audit entry included: the hard limit. Reads, the
   * IoT lookup and the transition get it minus an audit reserve of min(500, budgetMs/4) ms, then
   * the hook fails closed. AWS IoT waits at most 5 s. @default 3500
   */
  readonly budgetMs: number;
  /** Provisioned concurrency for enrollment bursts (0 = none). @default 0 */
  readonly provisionedConcurrency: number;
  /** Reserved concurrency cap. @default - unreserved (account pool) */
  readonly reservedConcurrency?: number;
}

/** One fleet provisioning template (one per product line or device class). */
export interface ProvisioningTemplateConfig {
  /** Fixed template name devices publish to: `<thingNamePrefix>-…`, at most 36 of `A-Z a-z 0-9 _ -`. @default '<thingNamePrefix>-default' */
  readonly name: string;
  /** Thing type assigned to devices enrolled by this template: `<thingNamePrefix>-…`. @default '<thingNamePrefix>-device' */
  readonly thingTypeName: string;
  /** MQTT client id prefix claim-certificate connections must use. @default 'prov-' */
  readonly claimClientIdPrefix: string;
  /** Template description (at most 500 characters). */
  readonly description: string;
  /** Pre-provisioning hook settings. */
  readonly hook: HookConfig;
}

/** Capacity modes of the telemetry stream. */
export const STREAM_MODES = ['ON_DEMAND', 'PROVISIONED'] as const;
export type StreamModeName = (typeof STREAM_MODES)[number];

/** The Kinesis stream both topic rules write to. */
export interface TelemetryStreamConfig {
  /** Capacity mode. ON_DEMAND scales by itself (fixed hourly charge); PROVISIONED is billed per shard. @default 'ON_DEMAND' */
  readonly mode: StreamModeName;
  /** Shards of a PROVISIONED stream (absent for ON_DEMAND). @default 1 (PROVISIONED only) */
  readonly shardCount?: number;
  /** Hours a record stays on the stream (24 to 8760). @default 24 */
  readonly retentionHours: number;
}

/** The Firehose archive of the stream to S3 (GZIP, newline-delimited JSON, hour-partitioned keys). */
export interface ArchiveConfig {
  /** Archive the stream to S3. @default true */
  readonly enabled: boolean;
  /** Seconds Firehose buffers before it writes an object (0 to 900). @default 300 */
  readonly bufferingIntervalSeconds: number;
  /** MiB Firehose buffers before it writes an object (1 to 128). @default 64 */
  readonly bufferingSizeMiB: number;
  /** Days after which archived objects move to S3 Standard-IA (at least 30). @default - never */
  readonly transitionToInfrequentAccessDays?: number;
}

/** The health consumer: its function and its event-source mapping on the stream. */
export interface ConsumerConfig {
  /** Records per invocation (1 to 10000). @default 100 */
  readonly batchSize: number;
  /** Seconds the mapping waits to fill a batch (0 to 300). @default 5 */
  readonly maxBatchingWindowSeconds: number;
  /**
   * Concurrent batches per shard (1 to 10). Lambda keeps the records of one partition key (one
   * device: the key is the thing name) in order at any factor; above 1, a shard's devices are
   * processed several batches at a time. @default 1
   */
  readonly parallelizationFactor: number;
  /**
   * Retries of a failing batch before Lambda gives up on it and writes it, records included, to
   * the error store (-1, or 0 to 10000; -1: retry until `maxRecordAgeSeconds`).
   * @default -1 — the consumer fails a record only when a registry call fails (throttling, an
   * outage): records it cannot use go to the dead-letter queue instead. Those failures pass, so
   * the batch is retried until it succeeds, bounded by `maxRecordAgeSeconds`; a fixed count gives
   * up after minutes of throttling, however soon the registry would recover. A batch stuck for
   * another reason holds its shard until then, which the iterator-age alarm reports.
   */
  readonly retryAttempts: number;
  /**
   * Age in seconds past which Lambda gives up on records and writes them to the error store
   * unprocessed (60 to 604800, and at most `stream.retentionHours` × 3600 − 3600: a record the
   * stream has already trimmed is skipped, not kept). @default 21600 (6 hours)
   */
  readonly maxRecordAgeSeconds: number;
  /** Lambda memory (MB). @default 512 */
  readonly memorySize: number;
  /** Lambda timeout (seconds, 1 to 900). @default 60 */
  readonly timeoutSeconds: number;
}

/** Alarm thresholds of the telemetry capability (the alarms have no actions yet). */
export interface TelemetryAlarmsConfig {
  /** Unexpected reboots per 100 health reports, per firmware version and fleet-wide, above which the alarm fires. @default 5 */
  readonly unexpectedRebootRatePercent: number;
  /** Consecutive health intervals the reboot rate must stay above the threshold. @default 3 */
  readonly rebootRateEvaluationPeriods: number;
  /** Age (ms) of the oldest unread record, on the stream and at the consumer, above which the alarm fires. @default 300000 */
  readonly iteratorAgeMs: number;
  /** Age (s) of the oldest record not yet in the archive bucket above which the alarm fires. @default 1800 */
  readonly archiveFreshnessSeconds: number;
}

/**
 * Timestream for LiveAnalytics as a second action of the health rule. Off by default: the service
 * has been closed to new customers since 20 June 2025. The database and table must exist.
 */
export type TimestreamConfig =
  | { readonly enabled: false }
  | {
      readonly enabled: true;
      /** Existing Timestream database (not created by the stack). */
      readonly databaseName: string;
      /** Existing table of that database. */
      readonly tableName: string;
    };

/** InfluxDB versions the AWS IoT InfluxDB action writes to. */
export const INFLUXDB_VERSIONS = ['V2', 'V3'] as const;

/** The VPC AWS IoT reaches a private InfluxDB endpoint through (a VPC topic rule destination). */
export interface InfluxDbVpcConfig {
  readonly vpcId: string;
  readonly subnetIds: readonly string[];
  readonly securityGroupIds: readonly string[];
}

/**
 * InfluxDB (e.g. Timestream for InfluxDB) as a second action of the health rule, through an
 * InfluxDB topic rule destination. Off by default: InfluxDB runs on instances in a VPC.
 */
export type InfluxDbConfig =
  | { readonly enabled: false }
  | {
      readonly enabled: true;
      /** HTTPS endpoint (port 443, 8086, 8181 or 8443), e.g. `https://<id>.timestream-influxdb.<region>.on.aws:8086`. */
      readonly endpoint: string;
      /** InfluxDB version. @default 'V3' */
      readonly version: (typeof INFLUXDB_VERSIONS)[number];
      /** ARN of the Secrets Manager secret holding the InfluxDB token. */
      readonly secretArn: string;
      /** Key of the token inside a JSON secret. @default - the secret is the token */
      readonly secretKey?: string;
      /** Database (V3) or bucket (V2). */
      readonly databaseName: string;
      /** Table (V3) or measurement (V2). */
      readonly tableName: string;
      /** Organization (required for V2, ignored by V3). */
      readonly organization?: string;
      /** VPC of a private endpoint. @default - the endpoint is reached over the internet */
      readonly vpc?: InfluxDbVpcConfig;
    };

/** Per-report health conditions (the consumer's FLEET_HEALTH_* variables). */
export interface HealthThresholdsConfig {
  /** Free heap below this many bytes is low. @default 16384 */
  readonly lowHeapBytes: number;
  /** RSSI below this many dBm is a weak link. @default -85 */
  readonly weakRssiDbm: number;
}

/** Telemetry and self-health settings. */
export interface TelemetryConfig {
  /**
   * Fixed topic rule names, part of the device contract (Basic Ingest topics
   * `$aws/rules/<ruleName>/dt/<topicPrefix>/<thing>/<type>`; the device policy allows exactly these).
   * @default '<thingNamePrefix as A-Za-z0-9_>_telemetry' and '…_health'
   */
  readonly ruleNames: Readonly<Record<RecordType, string>>;
  /**
   * Devices may publish through Basic Ingest (`$aws/rules/<ruleName>/…`: no messaging charge). Turn
   * it off only when the device policy would not fit AWS IoT's 2048 characters otherwise (a long
   * topicPrefix); devices then publish on the broker topics.
   * @default true
   */
  readonly basicIngest: boolean;
  readonly stream: TelemetryStreamConfig;
  readonly archive: ArchiveConfig;
  readonly errorStore: {
    /** Days the error store keeps an entry (current and noncurrent versions). @default 90 */
    readonly retentionDays: number;
  };
  /** Seconds between two registry lastSeen writes of one device. @default 900 */
  readonly lastSeenIntervalSeconds: number;
  /** The device contract's health report interval (seconds); the reboot-rate alarms evaluate per interval. @default 300 */
  readonly healthIntervalSeconds: number;
  /** Per-report conditions: low heap below `lowHeapBytes`, weak link below `weakRssiDbm`. @default 16384 B / -85 dBm */
  readonly thresholds: HealthThresholdsConfig;
  /** Distinct firmware versions with their own metric dimension value (the rest: `other`). @default 50 */
  readonly maxFirmwareDimensions: number;
  readonly consumer: ConsumerConfig;
  readonly alarms: TelemetryAlarmsConfig;
  /** @default { enabled: false } */
  readonly timestream: TimestreamConfig;
  /** @default { enabled: false } */
  readonly influxdb: InfluxDbConfig;
}

/** Stage classes of a staged rollout: one AWS IoT job template each. */
export const STAGE_CLASSES = ['canary', 'early', 'broad'] as const;
export type StageClass = (typeof STAGE_CLASSES)[number];

/** Failure types an abort criterion counts (AWS IoT `AbortCriteria.failureType`). */
export const ABORT_FAILURE_TYPES = ['FAILED', 'REJECTED', 'TIMED_OUT', 'ALL'] as const;

/** One abort criterion of a job template: cancel the job once the threshold is met. */
export interface AbortCriterionConfig {
  /** Which outcomes count. @default 'ALL' in every stage class */
  readonly failureType: (typeof ABORT_FAILURE_TYPES)[number];
  /** Percentage of executed things with that outcome that aborts the job (at most 100, two decimals). @default 20 / 10 / 5 (canary / early / broad) */
  readonly thresholdPercentage: number;
  /** Things that must have been notified before the job can abort (at least 1). @default 3 / 10 / 50 (canary / early / broad) */
  readonly minNumberOfExecutedThings: number;
}

/**
 * Rollout rate of a job template: a constant `maximumPerMinute`, or an exponential rate that
 * starts at `baseRatePerMinute` and grows by `incrementFactor` each time the named count is
 * reached, capped by `maximumPerMinute`.
 */
export interface RolloutRateConfig {
  /** Most things notified per minute (1 to 1000). @default 10 / 100 / 500 (canary / early / broad) */
  readonly maximumPerMinute: number;
  /**
   * Exponential rate (base 1 to 1000 per minute, factor 1.1 to 5 with one decimal, exactly one of
   * the two counts that raise it). @default - canary: constant rate; early: base 20, factor 2 per 50
   * succeeded; broad: base 50, factor 2 per 200 succeeded
   */
  readonly exponential?: {
    readonly baseRatePerMinute: number;
    readonly incrementFactor: number;
    /** Exactly one of the two criteria. */
    readonly numberOfNotifiedThings?: number;
    readonly numberOfSucceededThings?: number;
  };
}

/** The job template settings of one stage class. */
export interface StageClassConfig {
  /** Rollout rate. @default see {@link RolloutRateConfig} */
  readonly rollout: RolloutRateConfig;
  /** Abort criteria (1 to 4, one per failure type). @default one ALL criterion per class (see above) */
  readonly abort: readonly AbortCriterionConfig[];
  /** Minutes a device has from IN_PROGRESS to a terminal status before it is TIMED_OUT (1 to 10080). @default 60 / 120 / 240 */
  readonly inProgressTimeoutMinutes: number;
  /** Retries per device after FAILED and after TIMED_OUT (0 to 10 each, 10 combined at most). @default 0+0 / 1+0 / 2+1 */
  readonly retries: { readonly FAILED: number; readonly TIMED_OUT: number };
}

/** Firmware releases and staged OTA (issue 9). */
export interface OtaConfig {
  /** Software Package Catalog package of the firmware. @default '<thingNamePrefix>-firmware' */
  readonly packageName: string;
  /** Lifetime of the presigned firmware URLs devices get in their job documents (60 to 3600 s). @default 3600 */
  readonly presignedUrlExpiresInSec: number;
  /**
   * Enable the account's JOB and JOB_EXECUTION event messages with a custom resource (and restore
   * the previous settings when the stack is deleted). Turn off when another stack of the account
   * manages the event configuration. @default true
   */
  readonly manageJobEvents: boolean;
  /** Job template settings per stage class. @default FLEET_DEFAULTS.ota.stageClasses */
  readonly stageClasses: Readonly<Record<StageClass, StageClassConfig>>;
}

/** Fully resolved fleet configuration. */
export interface FleetConfig {
  readonly stage: Stage;
  /** MQTT topic prefix: `dt/<topicPrefix>/<thing>/…`. @default 'fleet' */
  readonly topicPrefix: string;
  /**
   * Prefix of thing names (`<prefix>-<serial>`) and of every name AWS IoT keeps per account and
   * region: thing groups, thing types and provisioning templates. @default 'fleet'
   */
  readonly thingNamePrefix: string;
  /** Regular expression (source) serial numbers must match. @default DEFAULT_SERIAL_PATTERN */
  readonly serialPattern: string;
  /** Ring shares in percent; broad takes the rest. @default 2 / 18 */
  readonly rings: RingShares;
  readonly provisioning: { readonly templates: readonly ProvisioningTemplateConfig[] };
  /** Telemetry and self-health: topic rules, stream, archive, error store, consumer, alarms, time-series options. */
  readonly telemetry: TelemetryConfig;
  /** Firmware releases and staged OTA: package, job templates, job events. @default - see {@link OtaConfig} */
  readonly ota: OtaConfig;
  /** Retention of the functions' log groups (days). @default 30 */
  readonly logRetentionDays: (typeof LOG_RETENTION_DAYS)[number];
  readonly trail: {
    /**
     * Days the audit trail keeps entries of serials that are not on the manifest (DynamoDB TTL),
     * so a claim holder cannot grow the trail without bound. @default 30
     */
    readonly unlistedSerialRetentionDays: number;
  };
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
const TEMPLATE_NAME_RE = /^[0-9A-Za-z_-]{1,36}$/;
const THING_TYPE_RE = /^[a-zA-Z0-9:_-]{1,128}$/;
const RULE_NAME_RE = /^[a-zA-Z0-9_]{1,128}$/;
const MAX_TEMPLATE_NAME = 36;

const int = (min: number, max: number, fix: string) =>
  z.number({ error: fix }).int({ error: fix }).min(min, { error: fix }).max(max, { error: fix });
const str = (re: RegExp, fix: string) => z.string({ error: fix }).regex(re, { error: fix });

const hookSchema = z
  .strictObject({
    memorySize: int(128, 10240, 'use an integer number of MB between 128 and 10240').default(
      FLEET_DEFAULTS.hook.memorySize,
    ),
    budgetMs: int(
      HOOK_BUDGET_MS.min,
      HOOK_BUDGET_MS.max,
      `use an integer between ${HOOK_BUDGET_MS.min} and ${HOOK_BUDGET_MS.max} (AWS IoT waits at most 5 s for the hook)`,
    ).default(FLEET_DEFAULTS.hook.budgetMs),
    provisionedConcurrency: int(0, 1000, 'use an integer between 0 and 1000 (0 disables it)').default(
      FLEET_DEFAULTS.hook.provisionedConcurrency,
    ),
    reservedConcurrency: int(1, 10000, 'use an integer between 1 and 10000, or omit it').optional(),
  })
  .superRefine((hook, ctx) => {
    const { provisionedConcurrency, reservedConcurrency } = hook;
    if (reservedConcurrency !== undefined && provisionedConcurrency > reservedConcurrency) {
      ctx.addIssue({
        code: 'custom',
        path: ['provisionedConcurrency'],
        input: provisionedConcurrency,
        message: `keep it at most hook.reservedConcurrency (${reservedConcurrency}), or raise reservedConcurrency`,
      });
    }
  });

const templateSchema = z.strictObject({
  name: str(TEMPLATE_NAME_RE, 'use 1-36 characters of A-Z a-z 0-9 _ -'),
  /** Defaults to `<thingNamePrefix>-device` once the prefix is known. */
  thingTypeName: str(THING_TYPE_RE, 'use 1-128 characters of A-Z a-z 0-9 : _ -').optional(),
  claimClientIdPrefix: str(PREFIX_RE, 'use 1-32 characters of A-Z a-z 0-9 _ -').default(
    FLEET_DEFAULTS.claimClientIdPrefix,
  ),
  description: z
    .string({ error: 'use a string of at most 500 characters' })
    .max(500, { error: 'use a string of at most 500 characters' })
    .default(FLEET_DEFAULTS.templateDescription),
  hook: hookSchema.prefault({}),
});

const ringShare = (min: 'gt' | 'min', fix: string) => {
  const n = z.number({ error: fix });
  return (min === 'gt' ? n.gt(0, { error: fix }) : n.min(0, { error: fix })).lt(100, { error: fix });
};

const ringsSchema = z
  .strictObject({
    canaryPercent: ringShare('gt', 'use a number greater than 0 and below 100').default(
      FLEET_DEFAULTS.rings.canaryPercent,
    ),
    earlyPercent: ringShare('min', 'use a number between 0 and 100').default(
      FLEET_DEFAULTS.rings.earlyPercent,
    ),
  })
  .superRefine(({ canaryPercent, earlyPercent }, ctx) => {
    if (canaryPercent + earlyPercent >= 100) {
      ctx.addIssue({
        code: 'custom',
        path: ['earlyPercent'],
        input: earlyPercent,
        message: `keep canaryPercent + earlyPercent (now ${canaryPercent + earlyPercent}) below 100 so the broad ring is not empty`,
      });
    }
  });

const T = FLEET_DEFAULTS.telemetry;
const RULE_NAME_FIX = 'use 1-128 characters of a-z A-Z 0-9 _ (topic rule name)';
const TIMESTREAM_NAME_RE = /^[a-zA-Z0-9_.-]{3,256}$/;
const AWS_ID = (kind: string) => new RegExp(`^${kind}-[0-9a-f]{8,17}$`);
const optionalName = (re: RegExp, fix: string) => str(re, fix).optional();

const timestreamSchema = z.strictObject({
  enabled: z.boolean({ error: 'use true or false' }).default(T.timestream.enabled),
  databaseName: optionalName(
    TIMESTREAM_NAME_RE,
    'use 3-256 characters of a-z A-Z 0-9 _ . - (an existing database)',
  ),
  tableName: optionalName(
    TIMESTREAM_NAME_RE,
    'use 3-256 characters of a-z A-Z 0-9 _ . - (an existing table)',
  ),
});

const idList = (kind: string, what: string) =>
  z
    .array(str(AWS_ID(kind), `use ${what} ids (${kind}-…)`), { error: `use a list of ${what} ids` })
    .min(1, { error: `list at least one ${what} id` })
    .max(16, { error: `list at most 16 ${what} ids` });

const influxdbSchema = z.strictObject({
  enabled: z.boolean({ error: 'use true or false' }).default(T.influxdb.enabled),
  endpoint: str(
    /^https:\/\/[A-Za-z0-9.-]+(:(443|8086|8181|8443))?(\/.*)?$/,
    'use an https:// URL with port 443, 8086, 8181 or 8443 (AWS IoT supports no other)',
  ).optional(),
  version: z
    .enum(INFLUXDB_VERSIONS, { error: `use one of ${INFLUXDB_VERSIONS.join(', ')}` })
    .default(T.influxdb.version),
  secretArn: str(
    /^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:.+$/,
    'use the full ARN of the Secrets Manager secret holding the InfluxDB token',
  ).optional(),
  secretKey: optionalName(/^.{1,256}$/, 'use the key of the token inside the JSON secret'),
  databaseName: optionalName(/^.{1,256}$/, 'use the database (V3) or bucket (V2) name'),
  tableName: optionalName(/^.{1,256}$/, 'use the table (V3) or measurement (V2) name'),
  organization: optionalName(/^.{1,256}$/, 'use the InfluxDB organization name'),
  vpcId: str(AWS_ID('vpc'), 'use a VPC id (vpc-…)').optional(),
  subnetIds: idList('subnet', 'subnet').optional(),
  securityGroupIds: idList('sg', 'security group').optional(),
});

const telemetrySchema = z.strictObject({
  ruleNames: z
    .strictObject({
      telemetry: str(RULE_NAME_RE, RULE_NAME_FIX).optional(),
      health: str(RULE_NAME_RE, RULE_NAME_FIX).optional(),
    })
    .prefault({}),
  basicIngest: z.boolean({ error: 'use true or false' }).default(T.basicIngest),
  stream: z
    .strictObject({
      mode: z.enum(STREAM_MODES, { error: `use one of ${STREAM_MODES.join(', ')}` }).default(T.stream.mode),
      shardCount: int(1, 4096, 'use an integer number of shards between 1 and 4096').optional(),
      retentionHours: int(24, 8760, 'use an integer number of hours between 24 and 8760').default(
        T.stream.retentionHours,
      ),
    })
    .prefault({}),
  archive: z
    .strictObject({
      enabled: z.boolean({ error: 'use true or false' }).default(T.archive.enabled),
      bufferingIntervalSeconds: int(0, 900, 'use an integer number of seconds between 0 and 900').default(
        T.archive.bufferingIntervalSeconds,
      ),
      bufferingSizeMiB: int(1, 128, 'use an integer number of MiB between 1 and 128').default(
        T.archive.bufferingSizeMiB,
      ),
      transitionToInfrequentAccessDays: int(
        30,
        36500,
        'use an integer number of days of at least 30 (S3 Standard-IA minimum), or omit it',
      ).optional(),
    })
    .prefault({}),
  errorStore: z
    .strictObject({
      retentionDays: int(1, 3650, 'use an integer number of days between 1 and 3650').default(
        T.errorStore.retentionDays,
      ),
    })
    .prefault({}),
  lastSeenIntervalSeconds: int(60, 86_400, 'use an integer number of seconds between 60 and 86400').default(
    T.lastSeenIntervalSeconds,
  ),
  healthIntervalSeconds: int(60, 86_400, 'use an integer number of seconds between 60 and 86400').default(
    T.healthIntervalSeconds,
  ),
  thresholds: z
    .strictObject({
      lowHeapBytes: int(0, 2 ** 31, 'use an integer number of bytes').default(T.thresholds.lowHeapBytes),
      weakRssiDbm: int(-150, 0, 'use an integer number of dBm between -150 and 0').default(
        T.thresholds.weakRssiDbm,
      ),
    })
    .prefault({}),
  maxFirmwareDimensions: int(
    1,
    500,
    'use an integer between 1 and 500 (each value is a custom metric)',
  ).default(T.maxFirmwareDimensions),
  consumer: z
    .strictObject({
      batchSize: int(1, 10_000, 'use an integer between 1 and 10000').default(T.consumer.batchSize),
      maxBatchingWindowSeconds: int(0, 300, 'use an integer number of seconds between 0 and 300').default(
        T.consumer.maxBatchingWindowSeconds,
      ),
      parallelizationFactor: int(1, 10, 'use an integer between 1 and 10').default(
        T.consumer.parallelizationFactor,
      ),
      retryAttempts: int(
        -1,
        10_000,
        'use -1 (retry until maxRecordAgeSeconds) or an integer between 0 and 10000',
      ).default(T.consumer.retryAttempts),
      maxRecordAgeSeconds: int(60, 604_800, 'use an integer number of seconds between 60 and 604800').default(
        T.consumer.maxRecordAgeSeconds,
      ),
      memorySize: int(128, 10240, 'use an integer number of MB between 128 and 10240').default(
        T.consumer.memorySize,
      ),
      timeoutSeconds: int(1, 900, 'use an integer number of seconds between 1 and 900').default(
        T.consumer.timeoutSeconds,
      ),
    })
    .prefault({}),
  alarms: z
    .strictObject({
      unexpectedRebootRatePercent: z
        .number({ error: 'use a number greater than 0 and at most 100' })
        .gt(0, { error: 'use a number greater than 0 and at most 100' })
        .max(100, { error: 'use a number greater than 0 and at most 100' })
        .default(T.alarms.unexpectedRebootRatePercent),
      rebootRateEvaluationPeriods: int(1, 100, 'use an integer between 1 and 100').default(
        T.alarms.rebootRateEvaluationPeriods,
      ),
      iteratorAgeMs: int(
        1000,
        7 * 86_400_000,
        'use an integer number of ms between 1000 and 604800000',
      ).default(T.alarms.iteratorAgeMs),
      archiveFreshnessSeconds: int(
        60,
        86_400,
        'use an integer number of seconds between 60 and 86400',
      ).default(T.alarms.archiveFreshnessSeconds),
    })
    .prefault({}),
  timestream: timestreamSchema.prefault({}),
  influxdb: influxdbSchema.prefault({}),
});

type TelemetryInput = z.output<typeof telemetrySchema>;

const O = FLEET_DEFAULTS.ota;
const PACKAGE_NAME_RE = /^[a-zA-Z0-9_.-]{1,128}$/;
const positive = (max: number, fix: string) => int(1, max, fix);

const exponentialSchema = z
  .strictObject({
    baseRatePerMinute: positive(1000, 'use an integer between 1 and 1000'),
    incrementFactor: z
      .number({ error: 'use a number between 1.1 and 5 with one decimal, e.g. 2' })
      .min(1.1, { error: 'use a number between 1.1 and 5 with one decimal, e.g. 2' })
      .max(5, { error: 'use a number between 1.1 and 5 with one decimal, e.g. 2' })
      .refine((n) => Number.isInteger(Math.round(n * 10)) && Math.abs(n * 10 - Math.round(n * 10)) < 1e-9, {
        error: 'use one decimal at most, e.g. 1.5 (AWS IoT takes one digit after the point)',
      }),
    numberOfNotifiedThings: positive(1_000_000, 'use a positive integer').optional(),
    numberOfSucceededThings: positive(1_000_000, 'use a positive integer').optional(),
  })
  .superRefine((e, ctx) => {
    const set = [e.numberOfNotifiedThings, e.numberOfSucceededThings].filter((v) => v !== undefined).length;
    if (set !== 1)
      ctx.addIssue({
        code: 'custom',
        path: [],
        input: e,
        message:
          'set exactly one of numberOfNotifiedThings and numberOfSucceededThings (the count that raises the rate)',
      });
  });

const rolloutSchema = z
  .strictObject({
    maximumPerMinute: positive(1000, 'use an integer between 1 and 1000 (things notified per minute)'),
    exponential: exponentialSchema.optional(),
  })
  .superRefine((r, ctx) => {
    if (r.exponential && r.exponential.baseRatePerMinute > r.maximumPerMinute)
      ctx.addIssue({
        code: 'custom',
        path: ['exponential', 'baseRatePerMinute'],
        input: r.exponential.baseRatePerMinute,
        message: `keep it at most maximumPerMinute (${r.maximumPerMinute}), or raise maximumPerMinute`,
      });
  });

const abortCriterionSchema = z.strictObject({
  failureType: z.enum(ABORT_FAILURE_TYPES, { error: `use one of ${ABORT_FAILURE_TYPES.join(', ')}` }),
  thresholdPercentage: z
    .number({ error: 'use a percentage above 0 and at most 100, two decimals at most' })
    .gt(0, { error: 'use a percentage above 0 and at most 100, two decimals at most' })
    .max(100, { error: 'use a percentage above 0 and at most 100, two decimals at most' }),
  minNumberOfExecutedThings: positive(
    1_000_000,
    'use a positive integer (things notified before the job may abort)',
  ),
});

const stageClassSchema = (d: StageClassConfig) =>
  z
    .strictObject({
      rollout: rolloutSchema.default(d.rollout as z.input<typeof rolloutSchema>),
      abort: z
        .array(abortCriterionSchema, { error: 'use a list of abort criteria' })
        .min(1, { error: 'keep at least one abort criterion: a stage without one never stops on failures' })
        .max(4, { error: 'use at most 4 criteria, one per failure type' })
        .superRefine((list, ctx) => {
          const seen = new Set<string>();
          list.forEach((c, i) => {
            if (seen.has(c.failureType))
              ctx.addIssue({
                code: 'custom',
                path: [i, 'failureType'],
                input: c.failureType,
                message: 'use each failure type once (AWS IoT keeps one criterion per type)',
              });
            seen.add(c.failureType);
          });
        })
        .default(d.abort.map((c) => ({ ...c }))),
      inProgressTimeoutMinutes: positive(
        10_080,
        'use an integer number of minutes between 1 and 10080 (7 days)',
      ).default(d.inProgressTimeoutMinutes),
      retries: z
        .strictObject({
          FAILED: int(0, 10, 'use an integer between 0 and 10').default(d.retries.FAILED),
          TIMED_OUT: int(0, 10, 'use an integer between 0 and 10').default(d.retries.TIMED_OUT),
        })
        .superRefine((r, ctx) => {
          if (r.FAILED + r.TIMED_OUT > 10)
            ctx.addIssue({
              code: 'custom',
              path: ['TIMED_OUT'],
              input: r.TIMED_OUT,
              message: `keep FAILED + TIMED_OUT (now ${r.FAILED + r.TIMED_OUT}) at most 10: AWS IoT allows 10 retries per device in all`,
            });
        })
        .prefault({}),
    })
    .prefault({});

const otaSchema = z.strictObject({
  packageName: str(
    PACKAGE_NAME_RE,
    'use 1-128 characters of a-z A-Z 0-9 _ . - (Software Package Catalog name)',
  ).optional(),
  presignedUrlExpiresInSec: int(
    60,
    3600,
    'use an integer number of seconds between 60 and 3600 (AWS IoT presigned URL lifetime)',
  ).default(O.presignedUrlExpiresInSec),
  manageJobEvents: z.boolean({ error: 'use true or false' }).default(O.manageJobEvents),
  stageClasses: z
    .strictObject({
      canary: stageClassSchema(O.stageClasses.canary),
      early: stageClassSchema(O.stageClasses.early),
      broad: stageClassSchema(O.stageClasses.broad),
    })
    .prefault({}),
});

const baseSchema = z.strictObject({
  stage: z.enum(STAGES, { error: `use one of ${STAGES.join(', ')}` }).default(FLEET_DEFAULTS.stage),
  topicPrefix: str(PREFIX_RE, 'use 1-32 characters of A-Z a-z 0-9 _ - (one MQTT topic level)').default(
    FLEET_DEFAULTS.topicPrefix,
  ),
  thingNamePrefix: str(PREFIX_RE, 'use 1-32 characters of A-Z a-z 0-9 _ -').default(
    FLEET_DEFAULTS.thingNamePrefix,
  ),
  serialPattern: z
    .string({ error: 'use a regular expression source string, e.g. "^[A-Z0-9]{4,32}$"' })
    .min(1, { error: 'use a regular expression source string, e.g. "^[A-Z0-9]{4,32}$"' })
    .refine(compiles, {
      error: 'use a valid JavaScript regular expression source, e.g. "^[A-Z0-9]{4,32}$"',
    })
    .refine((p) => !compiles(p) || (p.startsWith('^') && p.endsWith('$') && !p.endsWith('\\$')), {
      error:
        'anchor the pattern with ^ and $ so it matches the whole serial, e.g. "^[A-Z0-9]{4,32}$" (unanchored, "SN1/x" would match "SN1")',
    })
    .default(FLEET_DEFAULTS.serialPattern),
  rings: ringsSchema.prefault({}),
  provisioning: z
    .strictObject({
      templates: z
        .array(templateSchema, { error: 'use a list of templates, e.g. [{"name":"fleet-sensor"}]' })
        .min(1, { error: 'declare at least one template, or omit the key for the default one' })
        .max(20, { error: 'declare at most 20 templates' })
        .superRefine((templates, ctx) => {
          const seen = new Map<string, number>();
          templates.forEach((t, i) => {
            const first = seen.get(t.name);
            if (first === undefined) seen.set(t.name, i);
            else
              ctx.addIssue({
                code: 'custom',
                path: [i, 'name'],
                input: t.name,
                message: `give every template a unique name (this one repeats provisioning.templates[${first}].name)`,
              });
          });
        })
        .optional(),
    })
    .prefault({}),
  logRetentionDays: z
    .number({ error: `use one of ${LOG_RETENTION_DAYS.join(', ')}` })
    .refine((d) => (LOG_RETENTION_DAYS as readonly number[]).includes(d), {
      error: `use one of ${LOG_RETENTION_DAYS.join(', ')}`,
    })
    .default(FLEET_DEFAULTS.logRetentionDays),
  trail: z
    .strictObject({
      unlistedSerialRetentionDays: int(
        UNLISTED_RETENTION_DAYS.min,
        UNLISTED_RETENTION_DAYS.max,
        `use an integer number of days between ${UNLISTED_RETENTION_DAYS.min} and ${UNLISTED_RETENTION_DAYS.max} (DynamoDB TTL of trail entries of serials not on the manifest)`,
      ).default(FLEET_DEFAULTS.trail.unlistedSerialRetentionDays),
    })
    .prefault({}),
  telemetry: telemetrySchema.prefault({}),
  ota: otaSchema.prefault({}),
});

const inputSchema = baseSchema
  // Rules that tie the templates to the thing-name prefix, and the telemetry settings that must
  // fit together. They run even when other keys are invalid (so every problem is reported at
  // once), on whatever parts are well-formed.
  .superRefine(checkNamesAgainstPrefix, { when: () => true })
  .superRefine(checkTelemetry, { when: () => true });

type ParsedInput = z.output<typeof baseSchema>;

function checkNamesAgainstPrefix(cfg: ParsedInput, ctx: z.RefinementCtx): void {
  const prefix = cfg.thingNamePrefix;
  if (typeof prefix !== 'string' || !PREFIX_RE.test(prefix)) return;
  const head = `${prefix}-`;
  const issue = (path: PropertyKey[], input: unknown, message: string) =>
    ctx.addIssue({ code: 'custom', path, input, message });
  const templates = Array.isArray(cfg.provisioning?.templates) ? cfg.provisioning.templates : undefined;
  if (templates === undefined) {
    const name = defaultTemplateName(prefix);
    if (name.length > MAX_TEMPLATE_NAME) {
      issue(
        ['provisioning', 'templates'],
        undefined,
        `the default template name "${name}" is longer than ${MAX_TEMPLATE_NAME} characters; name the template (e.g. [{"name":"${head}a"}]) or shorten thingNamePrefix`,
      );
    }
    return;
  }
  templates.forEach((t: unknown, i) => {
    if (t === null || typeof t !== 'object') return;
    const { name, thingTypeName, claimClientIdPrefix } = t as Record<string, unknown>;
    const at = ['provisioning', 'templates', i];
    if (typeof name === 'string' && TEMPLATE_NAME_RE.test(name) && !name.startsWith(head)) {
      issue(
        [...at, 'name'],
        name,
        `start it with the thing-name prefix "${head}" (e.g. "${`${head}${name}`.slice(0, MAX_TEMPLATE_NAME)}"), so stacks that share an account and region keep their templates apart`,
      );
    }
    if (
      typeof thingTypeName === 'string' &&
      THING_TYPE_RE.test(thingTypeName) &&
      !thingTypeName.startsWith(head)
    ) {
      issue(
        [...at, 'thingTypeName'],
        thingTypeName,
        `start it with the thing-name prefix "${head}" (e.g. "${head}${thingTypeName}"), so stacks that share an account and region keep their thing types apart`,
      );
    }
    // A claim connection must never be able to take a device's client id (= thing name):
    // AWS IoT disconnects the older session on a duplicate client id.
    if (
      typeof claimClientIdPrefix === 'string' &&
      (head.startsWith(claimClientIdPrefix) || claimClientIdPrefix.startsWith(head))
    ) {
      issue(
        [...at, 'claimClientIdPrefix'],
        claimClientIdPrefix,
        `use a prefix that cannot collide with the thing names "${head}…" (neither may start with the other), e.g. "${FLEET_DEFAULTS.claimClientIdPrefix}"`,
      );
    }
  });
}

/**
 * Seconds the health consumer's `maxRecordAgeSeconds` stays below the stream's retention: the
 * mapping gives up on a record (and writes it to the error store) at least this long before the
 * stream trims it.
 */
export const MAX_RECORD_AGE_MARGIN_SECONDS = 3600;

/** Telemetry settings that must fit together (each check skips parts that are malformed). */
function checkTelemetry(
  cfg: { thingNamePrefix: string; telemetry: TelemetryInput },
  ctx: z.RefinementCtx,
): void {
  const t = cfg.telemetry as Partial<TelemetryInput> | undefined;
  if (!t || typeof t !== 'object') return;
  const at = (...path: PropertyKey[]) => ['telemetry', ...path];
  const issue = (path: PropertyKey[], input: unknown, message: string) =>
    ctx.addIssue({ code: 'custom', path, input, message });

  if (t.stream?.mode === 'ON_DEMAND' && t.stream.shardCount !== undefined) {
    issue(
      at('stream', 'shardCount'),
      t.stream.shardCount,
      'remove it, or set telemetry.stream.mode to "PROVISIONED" (an ON_DEMAND stream scales by itself and takes no shard count)',
    );
  }

  const prefix = cfg.thingNamePrefix;
  if (typeof prefix === 'string' && PREFIX_RE.test(prefix) && t.ruleNames) {
    const defaults = defaultRuleNames(prefix);
    const telemetry = t.ruleNames.telemetry ?? defaults.telemetry;
    const health = t.ruleNames.health ?? defaults.health;
    if (telemetry === health) {
      issue(
        at('ruleNames', t.ruleNames.health !== undefined ? 'health' : 'telemetry'),
        health,
        'give the telemetry and health rules different names (each record type has its own rule)',
      );
    }
    // A rule's error-store entries are listed under `<ruleName>/`; `aws/` holds the batches the
    // health consumer's mapping gave up on (aws/lambda/…), which are not rule errors.
    for (const type of ['telemetry', 'health'] as const) {
      const name = t.ruleNames[type];
      if (name === 'aws' || name === 'replaying' || name === 'replayed')
        issue(
          at('ruleNames', type),
          name,
          `use another name: the error store keeps ${name === 'aws' ? "the health consumer's failed batches under aws/" : `entries being or already replayed under ${name}/`}, where a rule named ${name} would list them as its entries`,
        );
    }
    if (telemetry === timeSeriesRuleName(health))
      issue(
        at('ruleNames', 'telemetry'),
        telemetry,
        `use another name: ${telemetry} is the name of the health rule's time-series rule (<health rule>${TIME_SERIES_RULE_SUFFIX})`,
      );
  }

  // Records the stream trims before the mapping gives up on them are skipped, not written to the
  // on-failure destination: the mapping must give up while they are still on the stream, with an
  // hour to spare for a batch that is being retried or read late when its age runs out.
  const retention = t.stream?.retentionHours;
  const maxAge = t.consumer?.maxRecordAgeSeconds;
  if (typeof retention === 'number' && typeof maxAge === 'number') {
    const limit = retention * 3600 - MAX_RECORD_AGE_MARGIN_SECONDS;
    if (maxAge > limit)
      issue(
        at('consumer', 'maxRecordAgeSeconds'),
        maxAge,
        `use at most ${limit} (telemetry.stream.retentionHours ${retention} × 3600 − ${MAX_RECORD_AGE_MARGIN_SECONDS}), ` +
          'or raise telemetry.stream.retentionHours: a record the stream trims before the health consumer ' +
          'gives up on it is skipped, not kept in the error store',
      );
  }

  const freshness = t.alarms?.archiveFreshnessSeconds;
  const buffering = t.archive?.bufferingIntervalSeconds;
  if (
    t.archive?.enabled &&
    typeof freshness === 'number' &&
    typeof buffering === 'number' &&
    freshness <= buffering
  ) {
    issue(
      at('alarms', 'archiveFreshnessSeconds'),
      freshness,
      `use more than telemetry.archive.bufferingIntervalSeconds (${buffering}): Firehose holds records that long before it writes them`,
    );
  }

  const ts = t.timestream;
  if (ts?.enabled === true) {
    for (const key of ['databaseName', 'tableName'] as const) {
      if (ts[key] === undefined)
        issue(
          at('timestream', key),
          undefined,
          `missing; name the existing Timestream for LiveAnalytics ${key === 'databaseName' ? 'database' : 'table'} (the stack does not create it), or set telemetry.timestream.enabled to false`,
        );
    }
  }

  const ix = t.influxdb;
  if (ix?.enabled === true) {
    const required = {
      endpoint: 'the https:// endpoint of the InfluxDB instance or cluster',
      secretArn: 'the ARN of the Secrets Manager secret holding the InfluxDB token',
      databaseName: 'the database (V3) or bucket (V2) to write to',
      tableName: 'the table (V3) or measurement (V2) to write to',
    } as const;
    for (const [key, what] of Object.entries(required) as [keyof typeof required, string][]) {
      if (ix[key] === undefined)
        issue(
          at('influxdb', key),
          undefined,
          `missing; set ${what}, or set telemetry.influxdb.enabled to false`,
        );
    }
    if (ix.version === 'V2' && ix.organization === undefined) {
      issue(at('influxdb', 'organization'), undefined, 'missing; InfluxDB V2 needs the organization name');
    }
    const vpcKeys = ['vpcId', 'subnetIds', 'securityGroupIds'] as const;
    const given = vpcKeys.filter((k) => ix[k] !== undefined);
    if (given.length > 0 && given.length < vpcKeys.length) {
      for (const k of vpcKeys.filter((v) => ix[v] === undefined))
        issue(
          at('influxdb', k),
          undefined,
          `missing; a private endpoint needs vpcId, subnetIds and securityGroupIds together (${given.join(', ')} given), or remove them all for a public endpoint`,
        );
    }
  }
}

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

/**
 * Optimal string alignment distance (Levenshtein plus adjacent transpositions), case-insensitive:
 * how many single-character edits turn `a` into `b`.
 */
export function editDistance(a: string, b: string): number {
  const s = a.toLowerCase();
  const t = b.toLowerCase();
  const d: number[][] = Array.from({ length: s.length + 1 }, (_, i) =>
    Array.from({ length: t.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i <= s.length; i++) {
    for (let j = 1; j <= t.length; j++) {
      const cost = s[i - 1] === t[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && s[i - 1] === t[j - 2] && s[i - 2] === t[j - 1]) {
        d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[s.length][t.length];
}

/** The known key closest to `key`, if it is close enough to be a likely misspelling. */
export function closestKey(key: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const k of known) {
    const distance = editDistance(key, k);
    if (distance < bestDistance) {
      best = k;
      bestDistance = distance;
    }
  }
  const tolerance = Math.max(2, Math.floor(key.length / 3));
  return best !== undefined && bestDistance <= tolerance ? best : undefined;
}

/** The keys of the (strict) object schema found at `path`, unwrapping defaults, optionals and arrays. */
function knownKeysAt(schema: z.core.$ZodType, path: readonly PropertyKey[]): string[] {
  let cur: z.core.$ZodType | undefined = schema;
  const unwrap = (s: z.core.$ZodType): z.core.$ZodType => {
    let x = s;
    for (;;) {
      const def = x._zod.def as { type: string; innerType?: z.core.$ZodType; in?: z.core.$ZodType };
      if (def.innerType) x = def.innerType;
      else if (def.type === 'pipe' && def.in) x = def.in;
      else return x;
    }
  };
  for (const seg of path) {
    if (!cur) return [];
    const def = unwrap(cur)._zod.def as {
      type: string;
      shape?: Record<string, z.core.$ZodType>;
      element?: z.core.$ZodType;
    };
    cur = def.type === 'array' ? def.element : def.shape?.[String(seg)];
  }
  if (!cur) return [];
  const def = unwrap(cur)._zod.def as { shape?: Record<string, z.core.$ZodType> };
  return Object.keys(def.shape ?? {});
}

/** Top-level keys that moved: the message names where they live now. */
const MOVED_KEYS: Readonly<Record<string, string>> = {
  basicIngestRuleNames:
    'the Basic Ingest rules are now telemetry.ruleNames ({"telemetry": "…", "health": "…"}, default <thingNamePrefix>_telemetry and _health)',
};

/** Keys of the `telemetry` section that were removed or moved: the message says so. */
const REMOVED_TELEMETRY_KEYS: Readonly<Record<string, string>> = {
  telemetryIntervalSeconds: 'was removed (nothing read it); delete it',
  basicIngestRuleNames:
    'the Basic Ingest rules are telemetry.ruleNames ({"telemetry": "…", "health": "…"}); use that key',
};

function unknownKeyIssue(path: readonly PropertyKey[], key: string): string {
  const inTelemetry =
    path.length === 1 && path[0] === 'telemetry' && Object.hasOwn(REMOVED_TELEMETRY_KEYS, key);
  if (inTelemetry) return `telemetry: unknown key ${key}; ${REMOVED_TELEMETRY_KEYS[key]}`;
  const moved = path.length === 0 && Object.hasOwn(MOVED_KEYS, key) ? MOVED_KEYS[key] : undefined;
  if (moved !== undefined) return `unknown key ${key}; ${moved}`;
  const known = knownKeysAt(inputSchema, path);
  const at = path.length === 0 ? '' : `${formatPath(path)}: `;
  const suggestion = closestKey(key, known);
  return suggestion !== undefined
    ? `${at}unknown key ${key}; did you mean ${suggestion}?`
    : `${at}unknown key ${key}; remove it${known.length > 0 ? ` (known keys: ${known.join(', ')})` : ''}`;
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
    const issues = parsed.error.issues.flatMap((issue) => {
      if (issue.code === 'unrecognized_keys') return issue.keys.map((k) => unknownKeyIssue(issue.path, k));
      const value = 'input' in issue && issue.input !== undefined ? issue.input : valueAt(raw, issue.path);
      const text = issue.message.startsWith('Invalid input')
        ? `use a value of the documented type (${issue.message})`
        : issue.message;
      return [
        value === undefined
          ? `${formatPath(issue.path)}: ${issue.code === 'custom' ? '' : 'missing; '}${text}`
          : `${formatPath(issue.path)}: ${describe(value)} is invalid; ${text}`,
      ];
    });
    throw new FleetConfigError(issues);
  }
  const cfg = parsed.data;
  const prefix = cfg.thingNamePrefix;
  const templates = (
    cfg.provisioning.templates ?? [templateSchema.parse({ name: defaultTemplateName(prefix) })]
  ).map((t) => ({ ...t, thingTypeName: t.thingTypeName ?? defaultThingTypeName(prefix) }));
  return {
    ...cfg,
    provisioning: { templates },
    telemetry: resolveTelemetry(cfg.telemetry, prefix),
    ota: {
      ...cfg.ota,
      packageName: cfg.ota.packageName ?? defaultPackageName(prefix),
    } as OtaConfig,
    logRetentionDays: cfg.logRetentionDays as FleetConfig['logRetentionDays'],
    removalPolicy: cfg.stage === 'dev' ? RemovalPolicy.DESTROY : RemovalPolicy.RETAIN,
    deletionProtection: cfg.stage === 'prod',
  };
}

/** Defaults that depend on other keys, and the time-series options as their resolved variants. */
function resolveTelemetry(t: TelemetryInput, thingNamePrefix: string): TelemetryConfig {
  const defaults = defaultRuleNames(thingNamePrefix);
  const { shardCount, ...stream } = t.stream;
  const ix = t.influxdb;
  const timestream: TimestreamConfig = t.timestream.enabled
    ? { enabled: true, databaseName: t.timestream.databaseName!, tableName: t.timestream.tableName! }
    : { enabled: false };
  const influxdb: InfluxDbConfig = ix.enabled
    ? {
        enabled: true,
        endpoint: ix.endpoint!,
        version: ix.version,
        secretArn: ix.secretArn!,
        secretKey: ix.secretKey,
        databaseName: ix.databaseName!,
        tableName: ix.tableName!,
        organization: ix.organization,
        vpc:
          ix.vpcId === undefined
            ? undefined
            : { vpcId: ix.vpcId, subnetIds: ix.subnetIds!, securityGroupIds: ix.securityGroupIds! },
      }
    : { enabled: false };
  return {
    ...t,
    ruleNames: {
      telemetry: t.ruleNames.telemetry ?? defaults.telemetry,
      health: t.ruleNames.health ?? defaults.health,
    },
    stream:
      stream.mode === 'PROVISIONED'
        ? { ...stream, shardCount: shardCount ?? FLEET_DEFAULTS.telemetry.stream.provisionedShardCount }
        : stream,
    timestream,
    influxdb,
  };
}

/** The CDK context keys the app reads (`-c key=value`); bin/app.ts documents them. */
export const CONTEXT_KEYS = ['stage', 'config', 'stackName'] as const;

/**
 * Context keys that are probably a misspelling of one the app reads (`-c stag=prod` would
 * otherwise deploy the default stage). Keys of other tools (namespaced with `:` or `@`, or not
 * close to ours) are left alone.
 */
export function contextKeyProblems(keys: readonly string[]): string[] {
  const known: readonly string[] = CONTEXT_KEYS;
  return keys
    .filter((k) => !known.includes(k) && !/[:@/]/.test(k))
    .flatMap((k) => {
      const near = closestKey(k, known);
      return near === undefined
        ? []
        : [
            `context ${k}: unknown key; did you mean ${near}? (pass -c ${near}=<value>; keys are case-sensitive)`,
          ];
    });
}
