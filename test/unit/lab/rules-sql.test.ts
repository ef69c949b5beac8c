import { parsePayload, runStatement, type MessageContext } from '../../../lab/rules/evaluate';
import { parseSql, SqlError } from '../../../lab/rules/sql';
import { compileTemplate } from '../../../lab/rules/templates';
import { parseBasicIngest, topicMatches, validateTopicFilter } from '../../../lab/rules/topic-filter';

const msg = (payload: unknown, topic = 'dt/fleet/fleet-001/telemetry'): MessageContext => ({
  topic,
  payload: Buffer.from(typeof payload === 'string' ? payload : JSON.stringify(payload)),
  clientId: 'fleet-001',
  principal: 'abc123certid',
  accountId: '123456789012',
  timestamp: 1700000000000,
  traceId: 'trace-1',
});

const doc = {
  temp: 21.5,
  fw: '1.2.0',
  state: { reported: { rssi: -60, ok: true } },
  list: [10, 20],
  name: 'a',
};

describe('SQL parse + evaluate', () => {
  test.each<[string, string, unknown]>([
    ['SELECT *', "SELECT * FROM 'dt/#'", doc],
    ['fields', "SELECT temp, fw FROM 'dt/#'", { temp: 21.5, fw: '1.2.0' }],
    [
      'nested field, default name is the last segment',
      "SELECT state.reported.rssi FROM 'dt/#'",
      { rssi: -60 },
    ],
    ['alias', "SELECT state.reported.rssi AS signal FROM 'dt/#'", { signal: -60 }],
    ['array index', "SELECT list[1] AS second FROM 'dt/#'", { second: 20 }],
    ['topic()', "SELECT topic() AS t FROM 'dt/#'", { t: 'dt/fleet/fleet-001/telemetry' }],
    ['topic(n)', "SELECT topic(3) AS thing FROM 'dt/#'", { thing: 'fleet-001' }],
    ['topic(n) out of range is omitted', "SELECT topic(9) AS x FROM 'dt/#'", {}],
    ['timestamp()', "SELECT timestamp() AS ts FROM 'dt/#'", { ts: 1700000000000 }],
    [
      'clientid()/principal()',
      "SELECT clientid() AS c, principal() AS p FROM 'dt/#'",
      { c: 'fleet-001', p: 'abc123certid' },
    ],
    ['star plus fields', "SELECT *, topic(3) AS thing FROM 'dt/#'", { ...doc, thing: 'fleet-001' }],
    ['missing field omitted', "SELECT nope, temp FROM 'dt/#'", { temp: 21.5 }],
    ['literals', "SELECT 'x' AS s, 3 AS n, true AS b FROM 'dt/#'", { s: 'x', n: 3, b: true }],
    ['arithmetic', "SELECT temp * 2 AS t2 FROM 'dt/#'", { t2: 43 }],
    ['keywords are case-insensitive', "select temp as t from 'dt/#' where temp > 1", { t: 21.5 }],
    ['quoted string with escaped quote', "SELECT 'it''s' AS s FROM 'a'", { s: "it's" }],
  ])('%s', (_name, sql, expected) => {
    const out = runStatement(parseSql(sql), msg(doc));
    expect(out).toEqual({ matched: true, json: expected });
  });

  test.each<[string, boolean]>([
    ['temp > 20', true],
    ['temp < 20', false],
    ["temp >= 21.5 AND fw = '1.2.0'", true],
    ["temp <= 21.4 OR fw <> '1.2.0'", false],
    ["fw != '1.2.0'", false],
    ['NOT (temp > 20)', false],
    ['state.reported.ok = true', true],
    ["(temp > 100 OR name = 'a') AND list[0] = 10", true],
    ['nope = 1', false],
    ['NOT nope = 1', false],
    ["temp = '21.5'", false],
    ['nope = 1 OR temp > 1', true],
    ["topic(4) = 'telemetry'", true],
    ["clientid() = 'fleet-001'", true],
  ])('WHERE %s → %s', (where, matched) => {
    const out = runStatement(parseSql(`SELECT * FROM 'dt/#' WHERE ${where}`), msg(doc));
    expect(out.matched).toBe(matched);
  });

  test('newuuid() yields a fresh uuid', () => {
    const out = runStatement(parseSql("SELECT newuuid() AS id FROM 'a'"), msg(doc));
    expect(out.matched && out.json?.id).toMatch(/^[0-9a-f-]{36}$/);
  });

  test('SELECT * passes a non-JSON payload through as bytes', () => {
    const out = runStatement(parseSql("SELECT * FROM 'a'"), msg('\u0001\u0002binary'));
    expect(out).toEqual({ matched: true, binary: Buffer.from('\u0001\u0002binary') });
  });

  test('FROM is optional (Basic Ingest-only rules)', () => {
    expect(parseSql('SELECT temp').from).toBeUndefined();
  });

  test.each<[string, RegExp]>([
    ["SELECT get_thing_shadow('a','b','c') FROM 'a'", /get_thing_shadow\(\) is not supported/],
    ["SELECT * FROM 'a' WHERE a IN (1)", /unsupported SQL/],
    ['SELECT * FROM a', /FROM expects a quoted topic filter/],
    ["SELECT topic(1, 2) FROM 'a'", /takes 0 or 1 argument/],
    ["SELECT 'open FROM 'a'", /unterminated|unsupported/],
    ["SELECT * FROM 'a' WHERE a ~ 1", /unexpected character/],
    ["SELECT a AS FROM 'x'", /alias|unsupported/],
  ])('rejects %s', (sql, message) => {
    expect(() => parseSql(sql)).toThrow(SqlError);
    expect(() => parseSql(sql)).toThrow(message);
  });
});

describe('topic filters', () => {
  test.each<[string, string, boolean]>([
    ['dt/fleet/+/telemetry', 'dt/fleet/t1/telemetry', true],
    ['dt/fleet/+/telemetry', 'dt/fleet/t1/health', false],
    ['dt/fleet/+/telemetry', 'dt/fleet/t1/x/telemetry', false],
    ['dt/#', 'dt/fleet/t1/telemetry', true],
    ['dt/#', 'dt', true],
    ['#', 'anything/at/all', true],
    ['#', '$aws/events/presence/connected/x', false],
    ['+/events/#', '$aws/events/x', false],
    ['$aws/events/presence/+/+', '$aws/events/presence/connected/fleet-1', true],
    ['$aws/events/presence/+/+', '$aws/events/presence/connected', false],
    ['a/b', 'a/b', true],
    ['a/b', 'a/b/c', false],
  ])('%s matches %s → %s', (filter, topic, expected) => {
    expect(topicMatches(filter, topic)).toBe(expected);
  });

  test.each(['a/#/b', 'a/b#', 'a/+b', ''])('invalid filter %p', (f) => {
    expect(() => validateTopicFilter(f)).toThrow();
  });

  test.each<[string, ReturnType<typeof parseBasicIngest>]>([
    ['$aws/rules/Telemetry/dt/fleet/t1/telemetry', { ruleName: 'Telemetry', topic: 'dt/fleet/t1/telemetry' }],
    ['dt/fleet/t1/telemetry', undefined],
    ['$aws/rules/OnlyName', undefined],
  ])('Basic Ingest %s', (topic, expected) => {
    expect(parseBasicIngest(topic)).toEqual(expected);
  });
});

describe('substitution templates', () => {
  test.each<[string, string]>([
    ['${topic()}', 'dt/fleet/fleet-001/telemetry'],
    ['out/${topic(3)}/x', 'out/fleet-001/x'],
    ['${clientid()}-${fw}', 'fleet-001-1.2.0'],
    ['${state.reported.rssi}', '-60'],
    ['no placeholders', 'no placeholders'],
    ['${missing}|', '|'],
  ])('%s', (template, expected) => {
    expect(compileTemplate(template)(msg(doc), parsePayload(msg(doc).payload))).toBe(expected);
  });

  test('rejects an unsupported expression', () => {
    expect(() => compileTemplate('${aws_lambda("x")}')).toThrow(/not supported/);
  });
});

describe('parse_time()', () => {
  // 2023-11-14T22:13:20.042Z
  const at = 1700000000042;
  const ctx = { ...msg(doc), timestamp: at };

  test.each<[string, string]>([
    [`parse_time('yyyy/MM/dd/HH', timestamp())`, '2023/11/14/22'],
    [`parse_time("yyyy/MM/dd/HH", timestamp(), "UTC")`, '2023/11/14/22'],
    [`parse_time("yyyy-MM-dd'T'HH:mm:ss.SSS", timestamp())`, '2023-11-14T22:13:20.042'],
    [`parse_time('yy M d H m s', timestamp())`, '23 11 14 22 13 20'],
    [`parse_time("yyyy.MM.dd 'at' HH:mm", timestamp(), 'Asia/Tokyo')`, '2023.11.15 at 07:13'],
    [`parse_time('HH', timestamp(), 'America/Sao_Paulo')`, '19'],
    [`parse_time('''day'' dd', 0)`, 'day 01'],
    [`parse_time('HH''''mm', 0)`, "00'00"],
  ])('%s', (expr, expected) => {
    const out = runStatement(parseSql(`SELECT ${expr} AS t FROM 'a'`), ctx);
    expect(out).toEqual({ matched: true, json: { t: expected } });
  });

  test('a non-numeric time is Undefined (the field is omitted)', () => {
    const out = runStatement(parseSql(`SELECT parse_time('yyyy', fw) AS t FROM 'a'`), ctx);
    expect(out).toEqual({ matched: true, json: {} });
  });

  test.each<[string, RegExp]>([
    [`SELECT parse_time('yyyy EEE', timestamp()) FROM 'a'`, /letter 'EEE' is not supported/],
    [`SELECT parse_time('yyyy', timestamp(), 'Mars/Olympus') FROM 'a'`, /unknown time zone 'Mars\/Olympus'/],
    [`SELECT parse_time('yyyy') FROM 'a'`, /takes 2 or 3 argument/],
  ])('rejects at load: %s', (sql, message) => {
    expect(() => parseSql(sql)).toThrow(message);
  });

  test('the error-store key template: functions only, double-quoted arguments', () => {
    const key = compileTemplate(
      'fleet_telemetry/${parse_time("yyyy/MM/dd/HH", timestamp(), "UTC")}/${timestamp()}-${newuuid()}.json',
    )(ctx, doc);
    expect(key).toMatch(/^fleet_telemetry\/2023\/11\/14\/22\/1700000000042-[0-9a-f-]{36}\.json$/);
  });
});

describe('get_registry_data()', () => {
  const registry = (api: string, thing: string): unknown =>
    api === 'DescribeThing' && thing === 'fleet-001'
      ? {
          thingName: 'fleet-001',
          thingTypeName: 'fleet-device',
          attributes: { lot: 'LAB-A', ring: 'canary' },
          version: 3,
        }
      : api === 'ListThingGroupsForThing' && thing === 'fleet-001'
        ? {
            thingGroups: [
              { groupName: 'canary', groupArn: 'arn:aws:iot:us-east-1:123456789012:thinggroup/canary' },
            ],
          }
        : undefined;
  const ctx = { ...msg(doc), registryData: registry };
  const role = 'arn:aws:iam::123456789012:role/registry';

  test('DescribeThing: attributes of the thing named by the topic', () => {
    const sql = `SELECT get_registry_data('DescribeThing', topic(3), '${role}').attributes.lot AS lot, get_registry_data('DescribeThing', topic(3), '${role}').attributes.ring AS ring, get_registry_data("DescribeThing", topic(3), "${role}").thingTypeName FROM 'dt/#'`;
    expect(runStatement(parseSql(sql), ctx)).toEqual({
      matched: true,
      json: { lot: 'LAB-A', ring: 'canary', thingTypeName: 'fleet-device' },
    });
  });

  test('ListThingGroupsForThing, and an unknown thing is Undefined', () => {
    const sql = `SELECT get_registry_data('ListThingGroupsForThing', topic(3), '${role}').thingGroups[0].groupName AS g, get_registry_data('DescribeThing', 'nobody', '${role}').attributes.lot AS lot FROM 'dt/#'`;
    expect(runStatement(parseSql(sql), ctx)).toEqual({ matched: true, json: { g: 'canary' } });
  });

  test('in a substitution template', () => {
    const t = compileTemplate(`\${get_registry_data("DescribeThing", topic(3), "${role}").attributes.lot}`);
    expect(t(ctx, doc)).toBe('LAB-A');
  });

  test('an unsupported registry API fails at load', () => {
    expect(() => parseSql(`SELECT get_registry_data('DescribeThingGroup', 'g', 'r') FROM 'a'`)).toThrow(
      /registry API 'DescribeThingGroup' is not supported/,
    );
  });
});

describe('the telemetry rule SQL', () => {
  test('selects payload fields by name and adds the envelope from the topic, connection and engine', () => {
    const sql =
      "SELECT seq, readings, 'telemetry' AS type, topic(3) AS thing, clientid() AS clientId, principal() AS principal, timestamp() AS receivedAt, traceid() AS traceId FROM 'dt/fleet/+/telemetry'";
    const payload = {
      seq: 7,
      readings: [{ ts: 1700000000000, values: { temperature_c: 21.5 } }],
      thing: 'spoof',
    };
    const out = runStatement(parseSql(sql), msg(payload));
    expect(out).toEqual({
      matched: true,
      json: {
        seq: 7,
        readings: payload.readings,
        type: 'telemetry',
        thing: 'fleet-001',
        clientId: 'fleet-001',
        principal: 'abc123certid',
        receivedAt: 1700000000000,
        traceId: 'trace-1',
      },
    });
  });
});

describe('SET clause', () => {
  const registry = (api: string, thing: string): unknown =>
    api === 'DescribeThing' ? { thingName: thing, attributes: { lot: 'LAB-A' } } : undefined;
  const ctx = (): MessageContext => ({ ...msg(doc), registryData: registry });

  test('variables hold expression results for SELECT and WHERE, with JSON extensions', () => {
    const sql =
      "SET @registry = get_registry_data('DescribeThing', topic(3), 'arn:aws:iam::1:role/r'), @c = (temp - 32) * 5 / 9 " +
      "SELECT @registry.attributes.lot AS lot, @c AS celsius, @registry.thingName FROM 'dt/#' WHERE @c < 0";
    const c = ctx();
    expect(runStatement(parseSql(sql), c)).toEqual({
      matched: true,
      json: { lot: 'LAB-A', celsius: ((21.5 - 32) * 5) / 9, thingName: 'fleet-001' },
    });
    expect(c.vars).toMatchObject({ registry: { attributes: { lot: 'LAB-A' } } });
  });

  test('a later assignment reads an earlier one; `set` is still a field name elsewhere', () => {
    const sql = "SET @a = temp, @b = @a + 1 SELECT @b AS b, set FROM 'dt/#'";
    expect(runStatement(parseSql(sql), { ...msg({ temp: 1, set: 'x' }) })).toEqual({
      matched: true,
      json: { b: 2, set: 'x' },
    });
  });

  test.each<[string, RegExp]>([
    ["SET @a = 1, @a = 2 SELECT @a FROM 'x'", /assigned twice/],
    ["SET @a = @b SELECT 1 FROM 'x'", /@b is used before it is set/],
    ["SELECT @nope FROM 'x'", /@nope is not set/],
    ["SET a = 1 SELECT 1 FROM 'x'", /expected a variable/],
    ["SET @ = 1 SELECT 1 FROM 'x'", /bad variable name/],
  ])('rejects %s', (sql, message) => {
    expect(() => parseSql(sql)).toThrow(message);
  });
});
