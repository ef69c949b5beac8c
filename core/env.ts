/**
 * Environment variable contract between the constructs (lib/) that set variables on the
 * functions and the handlers (lambda/) that read them. Handlers read the environment only
 * through {@link readEnv}; constructs use the same names from {@link ENV}.
 */
export const ENV = {
  devicesTable: 'FLEET_DEVICES_TABLE',
  lotsTable: 'FLEET_LOTS_TABLE',
  eventsTable: 'FLEET_EVENTS_TABLE',
  /** Prefix of thing names (`<prefix>-<serial>`) and thing groups. */
  thingNamePrefix: 'FLEET_THING_PREFIX',
  /** Regular expression (source) serial numbers must match. */
  serialPattern: 'FLEET_SERIAL_PATTERN',
  /** Comma-separated provisioning template names the hook serves. */
  templateNames: 'FLEET_TEMPLATE_NAMES',
  /** Ring shares as `canary:early` percentages, e.g. `2:18` (broad takes the rest). */
  ringShares: 'FLEET_RING_SHARES',
  /**
   * Hard limit, in milliseconds, of the hook's whole answer, audit entry included (within
   * {@link HOOK_BUDGET_MS}, the fleet config's `hook.budgetMs`; AWS IoT waits at most 5 s). Reads,
   * the IoT lookup and the transition get this minus an audit reserve; past it the hook fails closed.
   */
  hookBudgetMs: 'FLEET_HOOK_BUDGET_MS',
  /**
   * ARN prefix of this stack's provisioning templates, `arn:<partition>:iot:<region>:<account>:provisioningtemplate/`:
   * the hook serves only its own templates in its own account, partition and region.
   */
  templateArnPrefix: 'FLEET_TEMPLATE_ARN_PREFIX',
  /** Days the trail keeps entries of serials that are not on the manifest (DynamoDB TTL). */
  unlistedTrailRetentionDays: 'FLEET_UNLISTED_TRAIL_RETENTION_DAYS',
  /** Seconds between two registry lastSeen writes of one device (the health consumer's throttle). */
  lastSeenIntervalSeconds: 'FLEET_LAST_SEEN_INTERVAL_S',
  /** Free heap (bytes) under which a health report counts as low heap. */
  lowHeapBytes: 'FLEET_HEALTH_LOW_HEAP_BYTES',
  /** RSSI (dBm) under which a health report counts as a weak link. */
  weakRssiDbm: 'FLEET_HEALTH_WEAK_RSSI_DBM',
  /** Distinct firmware versions that get their own metric dimension value (the rest: `other`). */
  maxFirmwareDimensions: 'FLEET_MAX_FIRMWARE_DIMENSIONS',
  /** URL of the SQS queue the health consumer sends records it cannot use to. */
  healthDeadLetterQueueUrl: 'FLEET_HEALTH_DLQ_URL',
  /** The staged OTA rollouts table (the rollout API and controller). */
  rolloutsTable: 'FLEET_ROLLOUTS_TABLE',
  /** Name of the firmware package in the AWS IoT Software Package Catalog. */
  firmwarePackage: 'FLEET_FIRMWARE_PACKAGE',
  /** JSON object: job template ARN per stage class (`{"canary":"arn:…:jobtemplate/…"}`). */
  jobTemplateArns: 'FLEET_JOB_TEMPLATE_ARNS',
  /** `arn:<partition>:iot:<region>:<account>:`, the prefix of the things, groups and packages jobs name. */
  iotArnPrefix: 'FLEET_IOT_ARN_PREFIX',
} as const;

/** Bounds of FLEET_HOOK_BUDGET_MS and of the config's `hook.budgetMs`, in milliseconds. */
export const HOOK_BUDGET_MS = { min: 100, max: 4500 } as const;

export type EnvKey = keyof typeof ENV;

/** Raised when a required variable is missing or malformed; the message names the fix. */
export class EnvError extends Error {}

/**
 * Read the named variables, failing with one message that lists every missing one.
 * `source` is injectable for tests; handlers pass nothing and get `process.env`.
 */
export function readEnv<K extends EnvKey>(
  keys: readonly K[],
  source: Record<string, string | undefined> = process.env,
): Record<K, string> {
  const missing = keys.filter((k) => !source[ENV[k]]);
  if (missing.length > 0) {
    throw new EnvError(
      `missing environment variable(s) ${missing.map((k) => ENV[k]).join(', ')}; ` +
        'they are set by the stack constructs: redeploy the stack, or export them for a local run',
    );
  }
  const out = {} as Record<K, string>;
  for (const k of keys) out[k] = source[ENV[k]] as string;
  return out;
}
