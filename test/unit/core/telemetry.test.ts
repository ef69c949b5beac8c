/**
 * core/telemetry.ts, the device contract: payload schemas (valid, and each kind of malformed
 * input), the stream record (identity never from the payload), the consumer's parse, the rules'
 * SQL, the error-store layout and topic parsing.
 */
import {
  ERROR_STORE,
  errorActionMessageSchema,
  errorStoreKeyTime,
  healthReportSchema,
  LAST_WILL_PAYLOAD,
  lastWillSchema,
  parseHealthRecord,
  PAYLOAD_FIELDS,
  ruleSql,
  TELEMETRY_LIMITS,
  telemetryPayloadSchema,
  thingOfDataTopic,
  toStreamRecord,
} from '../../../core/telemetry';

const T = 1_760_000_000_000;

const report = (over: Record<string, unknown> = {}): Record<string, unknown> => ({
  ts: T,
  fw: '1.2.3',
  bootId: 'b-1',
  uptimeS: 60,
  resetReason: 'POWER_ON',
  heapFreeB: 50_000,
  heapMinB: 40_000,
  rssiDbm: -70,
  ...over,
});

const values = (n: number): Record<string, number> =>
  Object.fromEntries(Array.from({ length: n }, (_, i) => [`v${i}_c`, i]));
const telemetry = (over: Record<string, unknown> = {}): Record<string, unknown> => ({
  seq: 7,
  readings: [{ ts: T, values: { temperature_c: 21.5, humidity_pct: 40 } }],
  ...over,
});

const envelope = {
  thing: 'fleet-SN-1',
  clientId: 'fleet-SN-1',
  principal: 'c'.repeat(64),
  receivedAt: T + 500,
};
const record = (payload: unknown, over: Record<string, unknown> = {}): string =>
  JSON.stringify({ ...toStreamRecord('health', payload, envelope), ...over });

describe('health report schema', () => {
  test('a full report and one without heapMinB are valid', () => {
    expect(healthReportSchema.safeParse(report()).success).toBe(true);
    const { heapMinB: _omit, ...rest } = report();
    expect(healthReportSchema.safeParse(rest).success).toBe(true);
  });

  test.each<[string, Record<string, unknown>, string]>([
    ['a missing field', (({ fw: _fw, ...r }) => r)(report()), 'fw'],
    ['uptime as a string', report({ uptimeS: '60' }), 'uptimeS'],
    ['a negative uptime', report({ uptimeS: -1 }), 'uptimeS'],
    ['a fractional heap', report({ heapFreeB: 1.5 }), 'heapFreeB'],
    ['a firmware version with build metadata', report({ fw: '1.2.3+abc' }), 'fw'],
    ['a firmware version of two numbers', report({ fw: '1.2' }), 'fw'],
    ['an unknown reset reason', report({ resetReason: 'COSMIC_RAY' }), 'resetReason'],
    ['an empty boot id', report({ bootId: '' }), 'bootId'],
    [
      'a boot id over the limit',
      report({ bootId: 'x'.repeat(TELEMETRY_LIMITS.maxBootIdLength + 1) }),
      'bootId',
    ],
    ['a positive RSSI', report({ rssiDbm: 3 }), 'rssiDbm'],
    ['an RSSI under -150 dBm', report({ rssiDbm: -151 }), 'rssiDbm'],
    ['a time before 2020 (clock never set)', report({ ts: Date.UTC(2019, 11, 31) }), 'ts'],
    ['a time in seconds', report({ ts: Math.floor(T / 1000) }), 'ts'],
    ['an unexpected field', report({ temperature: 40 }), ''],
  ])('%s is refused', (_name, payload, path) => {
    const r = healthReportSchema.safeParse(payload);
    expect(r.success).toBe(false);
    expect(r.error!.issues.map((i) => i.path.join('.'))).toContain(path);
  });

  test('the Last Will payload', () => {
    expect(lastWillSchema.safeParse(LAST_WILL_PAYLOAD).success).toBe(true);
    expect(lastWillSchema.safeParse({ connection: 'found' }).success).toBe(false);
    expect(lastWillSchema.safeParse({ connection: 'lost', ts: T }).success).toBe(false);
  });
});

describe('telemetry payload schema', () => {
  test.each<[string, Record<string, unknown>]>([
    ['one reading', telemetry()],
    [
      'the most readings, each with the most values',
      telemetry({
        readings: Array.from({ length: TELEMETRY_LIMITS.maxReadingsPerMessage }, () => ({
          ts: T,
          values: values(TELEMETRY_LIMITS.maxValuesPerReading),
        })),
      }),
    ],
    ['seq at 2^32 - 1', telemetry({ seq: 0xffffffff })],
    [
      'a value name of 64 characters',
      telemetry({ readings: [{ ts: T, values: { [`a${'b'.repeat(63)}`]: 1 } }] }),
    ],
  ])('%s is valid', (_name, payload) => {
    expect(telemetryPayloadSchema.safeParse(payload).success).toBe(true);
  });

  test.each<[string, Record<string, unknown>]>([
    ['no reading', telemetry({ readings: [] })],
    [
      'too many readings',
      telemetry({
        readings: Array.from({ length: TELEMETRY_LIMITS.maxReadingsPerMessage + 1 }, () => ({
          ts: T,
          values: { a: 1 },
        })),
      }),
    ],
    [
      'too many values',
      telemetry({ readings: [{ ts: T, values: values(TELEMETRY_LIMITS.maxValuesPerReading + 1) }] }),
    ],
    ['a reading without values', telemetry({ readings: [{ ts: T, values: {} }] })],
    ['a value name in capitals', telemetry({ readings: [{ ts: T, values: { Temperature_C: 1 } }] })],
    ['a value name starting with a digit', telemetry({ readings: [{ ts: T, values: { '1temp': 1 } }] })],
    [
      'a value name of 65 characters',
      telemetry({ readings: [{ ts: T, values: { [`a${'b'.repeat(64)}`]: 1 } }] }),
    ],
    ['a value that is not a number', telemetry({ readings: [{ ts: T, values: { temp_c: '21' } }] })],
    ['a negative seq', telemetry({ seq: -1 })],
    ['seq past 2^32 - 1', telemetry({ seq: 2 ** 32 })],
    ['a reading time before 2020', telemetry({ readings: [{ ts: 1000, values: { a: 1 } }] })],
    ['an unexpected field', telemetry({ device: 'x' })],
  ])('%s is refused', (_name, payload) => {
    expect(telemetryPayloadSchema.safeParse(payload).success).toBe(false);
  });
});

describe('toStreamRecord: the record a rule would have produced', () => {
  test('the envelope, the type and the selected payload fields only', () => {
    expect(toStreamRecord('health', { ...report(), junk: 1 }, envelope)).toEqual({
      type: 'health',
      ...envelope,
      ...report(),
    });
    expect(toStreamRecord('telemetry', telemetry({ ts: T }), { thing: 't', receivedAt: T })).toEqual({
      type: 'telemetry',
      thing: 't',
      receivedAt: T,
      seq: 7,
      readings: telemetry().readings,
    });
  });

  test('a payload carrying identity or envelope fields does not change the envelope', () => {
    const forged = {
      ...report(),
      thing: 'fleet-SOMEONE-ELSE',
      principal: 'f'.repeat(64),
      clientId: 'evil',
      receivedAt: 1,
      type: 'telemetry',
      traceId: 'forged',
      replayed: true,
    };
    const r = toStreamRecord('health', forged, { ...envelope, traceId: 'real' });
    expect(r).toMatchObject({ type: 'health', ...envelope, traceId: 'real' });
    expect(r).not.toHaveProperty('replayed');
  });

  test('undefined envelope fields are left out; a payload that is not an object gives the envelope only', () => {
    expect(toStreamRecord('health', [1, 2], { thing: 't', receivedAt: T, clientId: undefined })).toEqual({
      type: 'health',
      thing: 't',
      receivedAt: T,
    });
    expect(toStreamRecord('health', 'text', { thing: 't', receivedAt: T })).toEqual({
      type: 'health',
      thing: 't',
      receivedAt: T,
    });
    expect(toStreamRecord('health', null, { thing: 't', receivedAt: T, replayed: true })).toEqual({
      type: 'health',
      thing: 't',
      receivedAt: T,
      replayed: true,
    });
  });

  test('the Last Will becomes a health record with the connection field', () => {
    expect(toStreamRecord('health', LAST_WILL_PAYLOAD, envelope)).toEqual({
      type: 'health',
      ...envelope,
      connection: 'lost',
    });
  });
});

describe('parseHealthRecord', () => {
  test('a report', () => {
    const { heapMinB: _omit, ...withoutMin } = report();
    expect(parseHealthRecord(record(report()))).toEqual({
      kind: 'report',
      thing: 'fleet-SN-1',
      receivedAt: T + 500,
      report: report(),
    });
    expect(parseHealthRecord(record(withoutMin))).toEqual({
      kind: 'report',
      thing: 'fleet-SN-1',
      receivedAt: T + 500,
      report: withoutMin,
    });
  });

  test('a Last Will', () => {
    expect(parseHealthRecord(record(LAST_WILL_PAYLOAD))).toEqual({
      kind: 'lastWill',
      thing: 'fleet-SN-1',
      receivedAt: T + 500,
    });
  });

  test('a report time at the clock-ahead limit is taken; one millisecond more is not', () => {
    const limit = T + 500 + TELEMETRY_LIMITS.maxClockAheadMs;
    expect(parseHealthRecord(record(report({ ts: limit }))).kind).toBe('report');
    expect(parseHealthRecord(record(report({ ts: limit + 1 })))).toEqual({
      kind: 'malformed',
      thing: 'fleet-SN-1',
      problem: expect.stringMatching(
        /^ts \d+ is more than 5 min after the receive time \d+: set the device clock/,
      ),
    });
  });

  test.each<[string, string, RegExp, string | undefined]>([
    ['not JSON', '{"type": "health"', /^record is not JSON$/, undefined],
    ['a JSON array', '[1,2]', /^record is not a JSON object$/, undefined],
    ['JSON null', 'null', /^record is not a JSON object$/, undefined],
    [
      'a record without thing',
      JSON.stringify({ type: 'health', receivedAt: T, ...report() }),
      /^envelope: thing/,
      undefined,
    ],
    [
      'a record with a thing name over 128 characters',
      record(report(), { thing: 'x'.repeat(129) }),
      /^envelope: thing/,
      undefined,
    ],
    [
      'a record without receive time',
      record(report(), { receivedAt: undefined }),
      /^envelope: receivedAt/,
      undefined,
    ],
    [
      'a telemetry record',
      JSON.stringify(toStreamRecord('telemetry', telemetry(), envelope)),
      /record type telemetry is not health/,
      'fleet-SN-1',
    ],
    ['a report missing a field', record(report({ heapFreeB: undefined })), /^heapFreeB: /, 'fleet-SN-1'],
    ['a field of the wrong type', record(report({ rssiDbm: '-70' })), /^rssiDbm: /, 'fleet-SN-1'],
    ['a bad firmware version', record(report({ fw: 'v1' })), /^fw: /, 'fleet-SN-1'],
    ['a bad reset reason', record(report({ resetReason: 'REBOOT' })), /^resetReason: /, 'fleet-SN-1'],
    ['a time before 2020', record(report({ ts: 1_500_000_000_000 })), /^ts: /, 'fleet-SN-1'],
    ['a Last Will with report fields', record({ ...LAST_WILL_PAYLOAD, ts: T }), /^last will: /, 'fleet-SN-1'],
    ['another connection state', record({ connection: 'found' }), /^last will: connection: /, 'fleet-SN-1'],
  ])('%s is malformed, with the field named', (_name, data, problem, thing) => {
    const parsed = parseHealthRecord(data);
    expect(parsed).toEqual({
      kind: 'malformed',
      problem: expect.stringMatching(problem),
      ...(thing ? { thing } : {}),
    });
  });

  test('every problem of a report is listed', () => {
    const parsed = parseHealthRecord(record(report({ fw: 'x', uptimeS: -1, rssiDbm: 1 })));
    expect(parsed.kind === 'malformed' && parsed.problem.split('; ').map((p) => p.split(':')[0])).toEqual([
      'fw',
      'uptimeS',
      'rssiDbm',
    ]);
  });
});

describe('ruleSql', () => {
  test('the health rule selects the payload fields by name and takes identity from the topic and connection', () => {
    expect(ruleSql('health', 'fleet')).toBe(
      "SELECT ts, fw, bootId, uptimeS, resetReason, heapFreeB, heapMinB, rssiDbm, connection, 'health' AS type, " +
        'topic(3) AS thing, clientid() AS clientId, principal() AS principal, timestamp() AS receivedAt, ' +
        "traceid() AS traceId FROM 'dt/fleet/+/health'",
    );
  });

  test('the telemetry rule, another prefix, extra projections last', () => {
    expect(ruleSql('telemetry', 'acme', ["get_thing_shadow(topic(3), 'arn') AS shadow"])).toBe(
      "SELECT seq, readings, 'telemetry' AS type, topic(3) AS thing, clientid() AS clientId, " +
        'principal() AS principal, timestamp() AS receivedAt, traceid() AS traceId, ' +
        "get_thing_shadow(topic(3), 'arn') AS shadow FROM 'dt/acme/+/telemetry'",
    );
  });

  test('no payload field can stand for an envelope field', () => {
    for (const fields of Object.values(PAYLOAD_FIELDS))
      for (const f of fields)
        expect(['type', 'thing', 'clientId', 'principal', 'receivedAt', 'traceId', 'replayed']).not.toContain(
          f,
        );
  });
});

describe('error store', () => {
  test('the S3 key template of a rule', () => {
    expect(ERROR_STORE.keyTemplate('fleet_health')).toBe(
      'fleet_health/${parse_time("yyyy/MM/dd/HH", timestamp(), "UTC")}/${timestamp()}-${newuuid()}.json',
    );
  });

  test.each<[string, string]>([
    ['2025-10-09T08:53:20.000Z', 'fleet_health/2025/10/09/08/'],
    ['2026-01-01T00:00:00.000Z', 'fleet_health/2026/01/01/00/'],
    ['2026-12-31T23:59:59.999Z', 'fleet_health/2026/12/31/23/'],
  ])('the UTC hour prefix of %s is %s', (at, prefix) => {
    expect(ERROR_STORE.hourPrefix('fleet_health', new Date(at))).toBe(prefix);
  });

  test.each<[string, number | undefined]>([
    ['fleet_health/2025/10/09/08/1760000000000-5f0c7a52-0b9e-4d55-9b7e-2a1b3c4d5e6f.json', 1_760_000_000_000],
    ['replayed/fleet_health/2025/10/09/08/1760000000000-abc.json', 1_760_000_000_000],
    ['fleet_health/2025/10/09/1760000000000-abc.json', undefined],
    ['fleet_health/2025/10/09/08/notatime-abc.json', undefined],
    ['fleet_health/2025/10/09/08/1760000000000-abc.txt', undefined],
    ['fleet_health/2025/10/09/08/176000-abc.json', undefined],
  ])('errorStoreKeyTime(%s) = %s', (key, time) => {
    expect(errorStoreKeyTime(key)).toBe(time);
  });

  test('the AWS IoT error-action message', () => {
    const message = {
      ruleName: 'fleet_health',
      topic: 'dt/fleet/fleet-SN-1/health',
      cloudwatchTraceId: 't',
      clientId: 'fleet-SN-1',
      base64OriginalPayload: Buffer.from('{}').toString('base64'),
      failures: [{ failedAction: 'KinesisAction', failedResource: 'stream', errorMessage: 'throttled' }],
    };
    expect(errorActionMessageSchema.safeParse(message).success).toBe(true);
    expect(errorActionMessageSchema.safeParse({ ...message, failures: undefined }).success).toBe(false);
  });
});

describe('thingOfDataTopic', () => {
  test.each<[string, { thing: string; type: string } | undefined]>([
    ['dt/fleet/fleet-SN-1/health', { thing: 'fleet-SN-1', type: 'health' }],
    ['dt/acme/fleet-SN-1/telemetry', { thing: 'fleet-SN-1', type: 'telemetry' }],
    ['$aws/rules/fleet_health/dt/fleet/fleet-SN-1/health', { thing: 'fleet-SN-1', type: 'health' }],
    ['dt/fleet//health', undefined],
    ['dt/fleet/fleet-SN-1', undefined],
    ['dt/fleet/fleet-SN-1/health/extra', undefined],
    ['cmd/fleet/fleet-SN-1/health', undefined],
    ['$aws/rules/fleet_health', undefined],
  ])('%s', (topic, expected) => {
    expect(thingOfDataTopic(topic)).toEqual(expected);
  });
});
