/**
 * The telemetry and health device contract, written once: payload schemas (zod), limits, the
 * record the topic rules put on the stream, the rules' SQL, and the layout of the error store the
 * rules' error actions write to. The health consumer, the simulator, the lab, the replay command
 * and docs/device-contract.md (its examples are tested against these schemas) all use this module.
 *
 * Identity never comes from a payload: the rules take the thing from the topic (`topic(3)`) and
 * the client id and certificate from the connection (`clientid()`, `principal()`), and add the
 * time the rules engine received the message (`timestamp()`). The rules select payload fields by
 * name, so a payload field cannot overwrite them.
 */
import * as z from 'zod/mini';
import { describeIssues, type PathIssue } from './issues';
import { FIRMWARE_PATTERN } from './model';

/** Kinds of record on the telemetry stream (the `type` field). */
export const RECORD_TYPES = ['telemetry', 'health'] as const;
export type RecordType = (typeof RECORD_TYPES)[number];

/** Limits of the device contract. */
export const TELEMETRY_LIMITS = {
  /**
   * Largest payload a device sends (bytes). AWS IoT Core refuses MQTT packets over 128 KiB,
   * payload, topic and headers together; this leaves 1 KiB for the topic (at most 256 bytes),
   * the fixed header and MQTT 5 properties.
   */
  maxPayloadBytes: 127 * 1024,
  /** AWS IoT Core meters messages in 5 KB steps: keep a message under this to pay for one. */
  meteredStepBytes: 5 * 1024,
  /** Readings one telemetry message may carry. */
  maxReadingsPerMessage: 100,
  /** Values one reading may carry. */
  maxValuesPerReading: 32,
  /** Longest value name. */
  maxValueNameLength: 64,
  /** Longest boot id. */
  maxBootIdLength: 64,
  /** A device timestamp more than this far ahead of the receive time is refused (clock not set). */
  maxClockAheadMs: 5 * 60_000,
} as const;

/** Names of values in a reading: lower snake case with the unit as suffix, e.g. `temperature_c`. */
export const VALUE_NAME_PATTERN = /^[a-z][a-z0-9_]{0,63}$/;

/** Epoch milliseconds after 2020-01-01 (a device whose clock was never set sends less). */
const MIN_EPOCH_MS = Date.UTC(2020, 0, 1);
const epochMs = z.int().check(z.gte(MIN_EPOCH_MS));

/** One reading: a time and named numeric values. */
export const readingSchema = z.strictObject({
  /** Time of the reading, epoch milliseconds (UTC). */
  ts: epochMs,
  values: z.record(z.string().check(z.regex(VALUE_NAME_PATTERN)), z.number()).check(
    z.refine((v) => Object.keys(v).length >= 1, 'a reading needs at least one value'),
    z.refine(
      (v) => Object.keys(v).length <= TELEMETRY_LIMITS.maxValuesPerReading,
      `a reading holds at most ${TELEMETRY_LIMITS.maxValuesPerReading} values`,
    ),
  ),
});
export type Reading = z.infer<typeof readingSchema>;

/** A telemetry message: a batch of readings (`dt/<prefix>/<thing>/telemetry`). */
export const telemetryPayloadSchema = z.strictObject({
  /** Message counter of the device, from 0, +1 per message (wraps at 2^32). */
  seq: z.int().check(z.gte(0), z.lte(0xffffffff)),
  readings: z.array(readingSchema).check(z.minLength(1), z.maxLength(TELEMETRY_LIMITS.maxReadingsPerMessage)),
});
export type TelemetryPayload = z.infer<typeof telemetryPayloadSchema>;

/**
 * Why the device restarted, as it reports in every health report of the boot.
 * - POWER_ON: power was applied. REQUESTED: the firmware or the cloud asked for the restart
 *   (update installed, remote reboot, provisioning finished). These two are expected.
 * - WATCHDOG, PANIC: a hang or a crash. BROWNOUT: supply voltage dropped. EXTERNAL: reset pin.
 *   UNKNOWN: the hardware does not say. All five are unexpected reboots.
 */
export const RESET_REASONS = [
  'POWER_ON',
  'REQUESTED',
  'WATCHDOG',
  'PANIC',
  'BROWNOUT',
  'EXTERNAL',
  'UNKNOWN',
] as const;
export type ResetReason = (typeof RESET_REASONS)[number];
/** Reset reasons that are not a fault. */
export const EXPECTED_RESET_REASONS: readonly ResetReason[] = ['POWER_ON', 'REQUESTED'];
/** Reset reasons that are a crash (counted apart from other unexpected reboots). */
export const CRASH_RESET_REASONS: readonly ResetReason[] = ['WATCHDOG', 'PANIC'];

/** A health report (`dt/<prefix>/<thing>/health`), every health interval and once after each boot. */
export const healthReportSchema = z.strictObject({
  /** Time of the report, epoch milliseconds (UTC). */
  ts: epochMs,
  /** Running firmware version (MAJOR.MINOR.PATCH[-pre]). */
  fw: z.string().check(z.regex(FIRMWARE_PATTERN)),
  /** New on every boot (a random id or a boot counter). */
  bootId: z.string().check(z.minLength(1), z.maxLength(TELEMETRY_LIMITS.maxBootIdLength)),
  /** Seconds since this boot. */
  uptimeS: z.int().check(z.gte(0)),
  resetReason: z.enum(RESET_REASONS),
  /** Free heap now, bytes. */
  heapFreeB: z.int().check(z.gte(0)),
  /** Lowest free heap since boot, bytes. */
  heapMinB: z.optional(z.int().check(z.gte(0))),
  /** Received signal strength of the network link, dBm. */
  rssiDbm: z.int().check(z.gte(-150), z.lte(0)),
});
export type HealthReport = z.infer<typeof healthReportSchema>;

/** The Last Will: the broker publishes it on the health topic when the session drops. */
export const lastWillSchema = z.strictObject({ connection: z.literal('lost') });
export type LastWillPayload = z.infer<typeof lastWillSchema>;
export const LAST_WILL_PAYLOAD: LastWillPayload = { connection: 'lost' };

/** Payload fields each rule selects, in order (anything else in a payload is dropped). */
export const PAYLOAD_FIELDS = {
  telemetry: ['seq', 'readings'],
  health: ['ts', 'fw', 'bootId', 'uptimeS', 'resetReason', 'heapFreeB', 'heapMinB', 'rssiDbm', 'connection'],
} as const satisfies Record<RecordType, readonly string[]>;

/** Fields the rules add to every record, from the topic, the connection and the rules engine. */
export interface RecordEnvelope {
  type: RecordType;
  /** Thing name: third level of `dt/<prefix>/<thing>/…`. */
  thing: string;
  /** MQTT client id of the publisher. */
  clientId?: string;
  /** Certificate id of the publisher (absent on replayed records: the error store does not keep it). */
  principal?: string;
  /** When the rules engine received the message, epoch milliseconds. */
  receivedAt: number;
  /** Rules engine trace id: the same on a replayed record as on the error-store entry. */
  traceId?: string;
  /** Set on records `fleet telemetry replay` re-ingested. */
  replayed?: boolean;
}

export type StreamRecord = RecordEnvelope & Record<string, unknown>;

/**
 * The rule SQL (version 2016-03-23) of one record type. `extra` adds projections (e.g. the
 * registry enrichment of the time-series option). Works for the direct topic and for Basic
 * Ingest, where `topic()` does not include `$aws/rules/<rule>/`.
 */
export function ruleSql(type: RecordType, topicPrefix: string, extra: readonly string[] = []): string {
  const fields = [
    ...PAYLOAD_FIELDS[type],
    `'${type}' AS type`,
    'topic(3) AS thing',
    'clientid() AS clientId',
    'principal() AS principal',
    'timestamp() AS receivedAt',
    'traceid() AS traceId',
    ...extra,
  ];
  return `SELECT ${fields.join(', ')} FROM 'dt/${topicPrefix}/+/${type}'`;
}

/** The record a rule would have produced for `payload`: what replay re-ingests. */
export function toStreamRecord(
  type: RecordType,
  payload: unknown,
  envelope: Omit<RecordEnvelope, 'type'>,
): StreamRecord {
  const out: StreamRecord = { type, ...envelope } as StreamRecord;
  if (payload && typeof payload === 'object' && !Array.isArray(payload)) {
    for (const f of PAYLOAD_FIELDS[type]) {
      const v = (payload as Record<string, unknown>)[f];
      if (v !== undefined) out[f] = v;
    }
  }
  for (const k of Object.keys(out)) if (out[k] === undefined) delete out[k];
  return out;
}

/** The envelope fields of a stream record, validated. */
export const envelopeSchema = z.looseObject({
  type: z.enum(RECORD_TYPES),
  thing: z.string().check(z.minLength(1), z.maxLength(128)),
  clientId: z.optional(z.string()),
  principal: z.optional(z.string()),
  receivedAt: z.int().check(z.gte(0)),
  traceId: z.optional(z.string()),
  replayed: z.optional(z.boolean()),
});

/** What the health consumer makes of one stream record. */
export type ParsedHealthRecord =
  | { kind: 'report'; thing: string; receivedAt: number; report: HealthReport }
  | { kind: 'lastWill'; thing: string; receivedAt: number }
  | { kind: 'malformed'; thing?: string; problem: string };

/**
 * A health report as the health rule puts it on the stream: the envelope and the report's fields
 * in one flat object, validated in one pass (the rule selects fields by name, so a record holds
 * nothing else). The schema decides what a valid record is; {@link isHealthRecord} is its
 * hand-written fast path.
 */
export const healthRecordSchema = z.object({
  ...envelopeSchema.shape,
  type: z.literal('health'),
  ...healthReportSchema.shape,
});
/** The parsed form of {@link healthRecordSchema}. */
type HealthRecord = RecordEnvelope & HealthReport;

const RESET_REASON_SET: ReadonlySet<unknown> = new Set(RESET_REASONS);
const isOptionalString = (v: unknown): boolean => v === undefined || typeof v === 'string';
/** zod's `z.int()` with a lower (and upper) bound: a safe integer in range. */
const isIntIn = (v: unknown, min: number, max = Number.MAX_SAFE_INTEGER): boolean =>
  Number.isSafeInteger(v) && (v as number) >= min && (v as number) <= max;

/**
 * The consumer's hot path: true only for a record {@link healthRecordSchema} accepts, field for
 * field the same checks, without building zod's per-field results. Anything else (false) goes
 * through the schema, which has the last word and names what is wrong. Its fields are the
 * schema's (a test holds the two to the same answers and the same keys).
 */
export function isHealthRecord(r: Record<string, unknown>): r is HealthRecord & Record<string, unknown> {
  const { thing, fw, bootId } = r;
  return (
    r.type === 'health' &&
    typeof thing === 'string' &&
    thing.length >= 1 &&
    thing.length <= 128 &&
    isOptionalString(r.clientId) &&
    isOptionalString(r.principal) &&
    isIntIn(r.receivedAt, 0) &&
    isOptionalString(r.traceId) &&
    (r.replayed === undefined || typeof r.replayed === 'boolean') &&
    isIntIn(r.ts, MIN_EPOCH_MS) &&
    typeof fw === 'string' &&
    FIRMWARE_PATTERN.test(fw) &&
    typeof bootId === 'string' &&
    bootId.length >= 1 &&
    bootId.length <= TELEMETRY_LIMITS.maxBootIdLength &&
    isIntIn(r.uptimeS, 0) &&
    RESET_REASON_SET.has(r.resetReason) &&
    isIntIn(r.heapFreeB, 0) &&
    (r.heapMinB === undefined || isIntIn(r.heapMinB, 0)) &&
    isIntIn(r.rssiDbm, -150, 0)
  );
}

/** Parse one stream record (its decoded bytes) as the health consumer reads it. */
export function parseHealthRecord(data: string): ParsedHealthRecord {
  let doc: unknown;
  try {
    doc = JSON.parse(data);
  } catch {
    return { kind: 'malformed', problem: 'record is not JSON' };
  }
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc))
    return { kind: 'malformed', problem: 'record is not a JSON object' };
  const record = doc as Record<string, unknown>;
  if (
    record.connection === undefined &&
    (isHealthRecord(record) || z.safeParse(healthRecordSchema, record).success)
  ) {
    const d = record as unknown as HealthRecord;
    const { thing, receivedAt } = d;
    const report: HealthReport = {
      ts: d.ts,
      fw: d.fw,
      bootId: d.bootId,
      uptimeS: d.uptimeS,
      resetReason: d.resetReason,
      heapFreeB: d.heapFreeB,
      rssiDbm: d.rssiDbm,
    };
    if (d.heapMinB !== undefined) report.heapMinB = d.heapMinB;
    if (report.ts > receivedAt + TELEMETRY_LIMITS.maxClockAheadMs)
      return {
        kind: 'malformed',
        thing,
        problem: `ts ${report.ts} is more than ${TELEMETRY_LIMITS.maxClockAheadMs / 60_000} min after the receive time ${receivedAt}: set the device clock (SNTP) before reporting`,
      };
    return { kind: 'report', thing, receivedAt, report };
  }
  // The slow path: say precisely what is wrong.
  const env = envelopeSchema.safeParse(record);
  if (!env.success) return { kind: 'malformed', problem: `envelope: ${issueText(env.error.issues)}` };
  const { thing, receivedAt, type } = env.data;
  if (type !== 'health') return { kind: 'malformed', thing, problem: `record type ${type} is not health` };
  const payload = Object.fromEntries(
    PAYLOAD_FIELDS.health.flatMap((f) => (f in record ? [[f, record[f]]] : [])),
  );
  if ('connection' in payload) {
    const will = lastWillSchema.safeParse(payload);
    if (will.success) return { kind: 'lastWill', thing, receivedAt };
    return { kind: 'malformed', thing, problem: `last will: ${issueText(will.error.issues)}` };
  }
  const report = healthReportSchema.safeParse(payload);
  return {
    kind: 'malformed',
    thing,
    problem: report.success
      ? 'record does not match the health record schema'
      : issueText(report.error.issues),
  };
}

const issueText = (issues: readonly PathIssue[]): string => describeIssues(issues, '(payload)');

/**
 * The error store: the rules' error actions write one object per failed message to an S3 bucket,
 * under `<ruleName>/<yyyy>/<MM>/<dd>/<HH>/<receivedAt>-<uuid>.json` (UTC), holding the AWS IoT
 * error-action message. `fleet telemetry replay` moves an object it re-ingested under
 * {@link ERROR_STORE.replayedPrefix}, so a second replay does not ingest it again.
 */
export const ERROR_STORE = {
  replayedPrefix: 'replayed/',
  /** S3 action key template (AWS IoT substitution templates). */
  keyTemplate: (ruleName: string): string =>
    `${ruleName}/\${parse_time("yyyy/MM/dd/HH", timestamp(), "UTC")}/\${timestamp()}-\${newuuid()}.json`,
  /** Prefix under which the entries of `ruleName` for the UTC hour of `at` lie. */
  hourPrefix: (ruleName: string, at: Date): string =>
    `${ruleName}/${at.toISOString().slice(0, 13).replace(/-/g, '/').replace('T', '/')}/`,
} as const;

/** The receive time encoded in an error-store key, or undefined when the key is not one. */
export function errorStoreKeyTime(key: string): number | undefined {
  const m = /\/\d{4}\/\d{2}\/\d{2}\/\d{2}\/(\d{10,16})-[^/]+\.json$/.exec(key);
  return m ? Number(m[1]) : undefined;
}

/** The AWS IoT error-action message (rule-error-handling). */
export const errorActionMessageSchema = z.looseObject({
  ruleName: z.string(),
  topic: z.string(),
  cloudwatchTraceId: z.optional(z.string()),
  clientId: z.optional(z.string()),
  base64OriginalPayload: z.string(),
  failures: z.array(
    z.looseObject({
      failedAction: z.string(),
      failedResource: z.optional(z.string()),
      errorMessage: z.optional(z.string()),
    }),
  ),
});
export type ErrorActionMessage = z.infer<typeof errorActionMessageSchema>;

/** The thing of a `dt/<prefix>/<thing>/<type>` topic (a Basic Ingest prefix is removed first). */
export function thingOfDataTopic(topic: string): { thing: string; type: string } | undefined {
  const t = topic.startsWith('$aws/rules/') ? topic.split('/').slice(3).join('/') : topic;
  const parts = t.split('/');
  if (parts.length !== 4 || parts[0] !== 'dt' || parts[2] === '') return undefined;
  return { thing: parts[2], type: parts[3] };
}
