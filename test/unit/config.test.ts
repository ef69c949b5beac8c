import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import * as os from 'node:os';
import { join, resolve } from 'node:path';
import { RemovalPolicy } from 'aws-cdk-lib';
import { DEFAULT_HEALTH_THRESHOLDS } from '../../core/health';
import { DEFAULT_SERIAL_PATTERN } from '../../core/model';
import {
  contextKeyProblems,
  closestKey,
  defaultRuleNames,
  editDistance,
  FLEET_DEFAULTS,
  FleetConfigError,
  formatPath,
  resolveFleetConfig,
} from '../../lib/config';

function errorOf(input: unknown): FleetConfigError {
  try {
    resolveFleetConfig(input);
  } catch (e) {
    if (e instanceof FleetConfigError) return e;
    throw e;
  }
  throw new Error('expected a FleetConfigError');
}

describe('resolveFleetConfig defaults', () => {
  const cfg = resolveFleetConfig({});

  test('top-level defaults', () => {
    expect(cfg).toMatchObject({
      stage: 'dev',
      topicPrefix: 'fleet',
      thingNamePrefix: 'fleet',
      serialPattern: DEFAULT_SERIAL_PATTERN,
      rings: { canaryPercent: 2, earlyPercent: 18 },
      logRetentionDays: 30,
      trail: { unlistedSerialRetentionDays: 30 },
    });
  });

  test('FLEET_DEFAULTS is what an empty config resolves to', () => {
    expect(cfg).toMatchObject({
      stage: FLEET_DEFAULTS.stage,
      topicPrefix: FLEET_DEFAULTS.topicPrefix,
      thingNamePrefix: FLEET_DEFAULTS.thingNamePrefix,
      rings: FLEET_DEFAULTS.rings,
      logRetentionDays: FLEET_DEFAULTS.logRetentionDays,
      trail: FLEET_DEFAULTS.trail,
    });
  });

  test('one default template with its hook settings', () => {
    expect(cfg.provisioning.templates).toEqual([
      {
        name: 'fleet-default',
        thingTypeName: 'fleet-device',
        claimClientIdPrefix: 'prov-',
        description: expect.any(String),
        hook: { memorySize: 1024, budgetMs: 3500, provisionedConcurrency: 0 },
      },
    ]);
  });

  test('the default template and thing type derive from the thing-name prefix', () => {
    const c = resolveFleetConfig({ thingNamePrefix: 'acme' });
    expect(c.provisioning.templates.map((t) => [t.name, t.thingTypeName])).toEqual([
      ['acme-default', 'acme-device'],
    ]);
  });

  test('the ota section is a known key; a near miss is named', () => {
    expect(Object.keys(cfg)).toContain('ota');
    expect(errorOf({ otaa: {} }).issues).toEqual(['unknown key otaa; did you mean ota?']);
  });

  test('undefined and null mean all defaults', () => {
    expect(resolveFleetConfig(undefined)).toEqual(cfg);
    expect(resolveFleetConfig(null)).toEqual(cfg);
  });

  test('partial template input is completed with defaults', () => {
    const c = resolveFleetConfig({
      provisioning: { templates: [{ name: 'fleet-gw', hook: { budgetMs: 3000 } }] },
    });
    expect(c.provisioning.templates[0]).toMatchObject({
      name: 'fleet-gw',
      thingTypeName: 'fleet-device',
      claimClientIdPrefix: 'prov-',
      hook: { memorySize: 1024, budgetMs: 3000, provisionedConcurrency: 0 },
    });
  });
});

describe('derived settings', () => {
  test.each([
    ['dev', RemovalPolicy.DESTROY, false],
    ['staging', RemovalPolicy.RETAIN, false],
    ['prod', RemovalPolicy.RETAIN, true],
  ] as const)('%s: removal %s, deletion protection %s', (s, removal, protection) => {
    const c = resolveFleetConfig({ stage: s });
    expect(c.removalPolicy).toBe(removal);
    expect(c.deletionProtection).toBe(protection);
  });
});

describe('invalid configuration names the key and the fix', () => {
  test.each([
    [
      { provisioning: { templates: [{ name: 'My Template' }] } },
      'provisioning.templates[0].name: "My Template" is invalid; use 1-36 characters of A-Z a-z 0-9 _ -',
    ],
    [{ provisioning: { templates: [{ name: 'x'.repeat(37) }] } }, 'provisioning.templates[0].name'],
    [
      { provisioning: { templates: [{ name: '' }] } },
      'provisioning.templates[0].name: "" is invalid; use 1-36',
    ],
    [
      { provisioning: { templates: [{ name: 'fleet-a' }, { name: 'fleet-a' }] } },
      'provisioning.templates[1].name: "fleet-a" is invalid; give every template a unique name',
    ],
    [
      { provisioning: { templates: [] } },
      'provisioning.templates: [] is invalid; declare at least one template, or omit the key',
    ],
    [{ provisioning: { templates: [{}] } }, 'provisioning.templates[0].name: missing; use 1-36 characters'],
    [
      { provisioning: { templates: [{ name: 'fleet-a', claimClientIdPrefix: 'fleet-' }] } },
      'provisioning.templates[0].claimClientIdPrefix: "fleet-" is invalid; use a prefix that cannot collide with the thing names',
    ],
    [
      { provisioning: { templates: [{ name: 'fleet-a', thingTypeName: 'bad type' }] } },
      'provisioning.templates[0].thingTypeName: "bad type" is invalid; use 1-128 characters',
    ],
    [
      { provisioning: { templates: [{ name: 'fleet-a', hook: { budgetMs: 5000 } }] } },
      'provisioning.templates[0].hook.budgetMs: 5000 is invalid; use an integer between 100 and 4500',
    ],
    [
      { provisioning: { templates: [{ name: 'fleet-a', hook: { memorySize: 64 } }] } },
      'provisioning.templates[0].hook.memorySize: 64 is invalid; use an integer number of MB between 128 and 10240',
    ],
    [
      {
        provisioning: {
          templates: [{ name: 'fleet-a', hook: { provisionedConcurrency: 5, reservedConcurrency: 2 } }],
        },
      },
      'provisioning.templates[0].hook.provisionedConcurrency: 5 is invalid; keep it at most hook.reservedConcurrency (2)',
    ],
    [
      { provisioning: { templates: [{ name: 'fleet-a', description: 'd'.repeat(501) }] } },
      'provisioning.templates[0].description',
    ],
    [{ stage: 'qa' }, 'stage: "qa" is invalid; use one of dev, staging, prod'],
    [
      { topicPrefix: 'a/b' },
      'topicPrefix: "a/b" is invalid; use 1-32 characters of A-Z a-z 0-9 _ - (one MQTT topic level)',
    ],
    [{ topicPrefix: '#' }, 'topicPrefix: "#" is invalid'],
    [{ thingNamePrefix: 'a b' }, 'thingNamePrefix: "a b" is invalid; use 1-32 characters'],
    [{ serialPattern: '([' }, 'serialPattern: "([" is invalid; use a valid JavaScript regular expression'],
    [{ serialPattern: 42 }, 'serialPattern: 42 is invalid; use a regular expression source string'],
    [
      { serialPattern: '[A-Z0-9]{4,32}' },
      'serialPattern: "[A-Z0-9]{4,32}" is invalid; anchor the pattern with ^ and $',
    ],
    [{ serialPattern: '^[A-Z0-9]{4,32}' }, 'anchor the pattern with ^ and $'],
    [
      { rings: { canaryPercent: 50, earlyPercent: 50 } },
      'rings.earlyPercent: 50 is invalid; keep canaryPercent + earlyPercent (now 100) below 100',
    ],
    [
      { rings: { canaryPercent: 0 } },
      'rings.canaryPercent: 0 is invalid; use a number greater than 0 and below 100',
    ],
    [{ rings: { earlyPercent: -1 } }, 'rings.earlyPercent: -1 is invalid; use a number between 0 and 100'],
    [
      { telemetry: { ruleNames: { telemetry: 'fleet-telemetry' } } },
      'telemetry.ruleNames.telemetry: "fleet-telemetry" is invalid; use 1-128 characters of a-z A-Z 0-9 _ (topic rule name)',
    ],
    [{ telemetry: { ruleNames: { health: 'h'.repeat(129) } } }, 'telemetry.ruleNames.health: "hhhh'],
    [
      { telemetry: { ruleNames: { telemetry: 'fleet_health' } } },
      'telemetry.ruleNames.telemetry: "fleet_health" is invalid; give the telemetry and health rules different names',
    ],
    [
      { basicIngestRuleNames: ['fleet_telemetry'] },
      'unknown key basicIngestRuleNames; the Basic Ingest rules are now telemetry.ruleNames',
    ],
    [{ logRetentionDays: 31 }, 'logRetentionDays: 31 is invalid; use one of 1, 3, 5, 7, 14, 30'],
    [
      { provisioning: { templates: [{ name: 'other' }] } },
      'provisioning.templates[0].name: "other" is invalid; start it with the thing-name prefix "fleet-" (e.g. "fleet-other")',
    ],
    [
      { thingNamePrefix: 'acme', provisioning: { templates: [{ name: 'acme-a', thingTypeName: 'sensor' }] } },
      'provisioning.templates[0].thingTypeName: "sensor" is invalid; start it with the thing-name prefix "acme-"',
    ],
    [
      { thingNamePrefix: 'p'.repeat(30) },
      `provisioning.templates: the default template name "${'p'.repeat(30)}-default" is longer than 36 characters; name the template`,
    ],
    [
      { trail: { unlistedSerialRetentionDays: 0 } },
      'trail.unlistedSerialRetentionDays: 0 is invalid; use an integer number of days between 1 and 3650',
    ],
    [{ trail: { unlistedSerialRetentionDays: 3651 } }, 'trail.unlistedSerialRetentionDays: 3651 is invalid'],
    [{ trail: { unlistedSerialRetentionDays: 1.5 } }, 'trail.unlistedSerialRetentionDays: 1.5 is invalid'],
    [{ topicPrefx: 'x' }, 'unknown key topicPrefx; did you mean topicPrefix?'],
    [{ Stage: 'dev' }, 'unknown key Stage; did you mean stage?'],
    [{ rings: { canaryPercnt: 1 } }, 'rings: unknown key canaryPercnt; did you mean canaryPercent?'],
    [
      { trail: { retentionDays: 1 } },
      'trail: unknown key retentionDays; remove it (known keys: unlistedSerialRetentionDays)',
    ],
    [
      { provisioning: { templates: [{ name: 'fleet-a', hook: { budget: 1 } }] } },
      'provisioning.templates[0].hook: unknown key budget; did you mean budgetMs?',
    ],
    [
      { provisioning: { templates: [{ name: 'fleet-a', thingtypename: 'fleet-x' }] } },
      'provisioning.templates[0]: unknown key thingtypename; did you mean thingTypeName?',
    ],
    [{ provisioning: { template: [] } }, 'provisioning: unknown key template; did you mean templates?'],
    [{ colour: 'red' }, 'unknown key colour; remove it (known keys: stage, topicPrefix'],
    [[], '(root): [] is invalid'],
  ])('%j → %s', (input, expected) => {
    const err = errorOf(input);
    expect(err.message).toContain(expected);
    expect(err.issues.some((i) => i.includes(expected))).toBe(true);
  });

  test('reports every problem at once, one per line', () => {
    const err = errorOf({ stage: 'qa', logRetentionDays: 31, topicPrefix: '' });
    expect(err.issues).toHaveLength(3);
    expect(err.message.split('\n')).toHaveLength(4);
    expect(err.name).toBe('FleetConfigError');
  });

  test('cross-field rules are reported alongside the other problems', () => {
    const err = errorOf({
      stage: 'qa',
      topicPrefx: 'x',
      rings: { canaryPercent: 50, earlyPercent: 60 },
      provisioning: {
        templates: [
          {
            name: 'other',
            claimClientIdPrefix: 'fleet-',
            hook: { provisionedConcurrency: 5, reservedConcurrency: 2, budget: 1 },
          },
        ],
      },
    });
    expect([...err.issues].sort()).toEqual(
      [
        'stage: "qa" is invalid; use one of dev, staging, prod',
        'unknown key topicPrefx; did you mean topicPrefix?',
        'rings.earlyPercent: 60 is invalid; keep canaryPercent + earlyPercent (now 110) below 100 so the broad ring is not empty',
        'provisioning.templates[0].hook: unknown key budget; did you mean budgetMs?',
        'provisioning.templates[0].hook.provisionedConcurrency: 5 is invalid; keep it at most hook.reservedConcurrency (2), or raise reservedConcurrency',
        'provisioning.templates[0].name: "other" is invalid; start it with the thing-name prefix "fleet-" (e.g. "fleet-other"), so stacks that share an account and region keep their templates apart',
        'provisioning.templates[0].claimClientIdPrefix: "fleet-" is invalid; use a prefix that cannot collide with the thing names "fleet-…" (neither may start with the other), e.g. "prov-"',
      ].sort(),
    );
  });

  test('an invalid prefix does not add prefix errors on the templates', () => {
    const err = errorOf({ thingNamePrefix: 'a b', provisioning: { templates: [{ name: 'x' }] } });
    expect(err.issues).toEqual(['thingNamePrefix: "a b" is invalid; use 1-32 characters of A-Z a-z 0-9 _ -']);
  });
});

describe('telemetry settings', () => {
  const { telemetry } = resolveFleetConfig({});

  test('defaults: every value comes from FLEET_DEFAULTS.telemetry', () => {
    const T = FLEET_DEFAULTS.telemetry;
    expect(telemetry).toEqual({
      ruleNames: { telemetry: 'fleet_telemetry', health: 'fleet_health' },
      basicIngest: T.basicIngest,
      stream: { mode: 'ON_DEMAND', retentionHours: 24 },
      archive: { enabled: true, bufferingIntervalSeconds: 300, bufferingSizeMiB: 64 },
      errorStore: { retentionDays: 90 },
      lastSeenIntervalSeconds: 900,
      healthIntervalSeconds: 300,
      thresholds: { lowHeapBytes: 16384, weakRssiDbm: -85 },
      maxFirmwareDimensions: 50,
      consumer: {
        batchSize: 100,
        maxBatchingWindowSeconds: 5,
        parallelizationFactor: 1,
        retryAttempts: -1,
        maxRecordAgeSeconds: 21600,
        memorySize: 512,
        timeoutSeconds: 60,
      },
      alarms: {
        unexpectedRebootRatePercent: 5,
        rebootRateEvaluationPeriods: 3,
        iteratorAgeMs: 300000,
        archiveFreshnessSeconds: 1800,
      },
      timestream: { enabled: false },
      influxdb: { enabled: false },
    });
    expect(telemetry.consumer).toEqual(T.consumer);
    expect(telemetry.alarms).toEqual(T.alarms);
    expect(telemetry.thresholds).toEqual(T.thresholds);
    // lib may not import the health core; its defaults are the same values.
    expect(T.thresholds).toEqual(DEFAULT_HEALTH_THRESHOLDS);
    expect(telemetry.archive).toEqual(T.archive);
  });

  test.each([
    ['fleet', 'fleet_telemetry', 'fleet_health'],
    ['acme-eu', 'acme_eu_telemetry', 'acme_eu_health'],
    ['Acme_1', 'Acme_1_telemetry', 'Acme_1_health'],
  ])('rule names derive from thingNamePrefix %s', (prefix, t, h) => {
    expect(defaultRuleNames(prefix)).toEqual({ telemetry: t, health: h });
    expect(resolveFleetConfig({ thingNamePrefix: prefix }).telemetry.ruleNames).toEqual({
      telemetry: t,
      health: h,
    });
  });

  test('a named rule keeps its name, the other keeps its default', () => {
    expect(
      resolveFleetConfig({ telemetry: { ruleNames: { health: 'fleet_self_health' } } }).telemetry.ruleNames,
    ).toEqual({
      telemetry: 'fleet_telemetry',
      health: 'fleet_self_health',
    });
  });

  test('a provisioned stream gets one shard by default, or the configured count', () => {
    expect(resolveFleetConfig({ telemetry: { stream: { mode: 'PROVISIONED' } } }).telemetry.stream).toEqual({
      mode: 'PROVISIONED',
      shardCount: 1,
      retentionHours: 24,
    });
    expect(
      resolveFleetConfig({
        telemetry: { stream: { mode: 'PROVISIONED', shardCount: 4, retentionHours: 168 } },
      }).telemetry.stream,
    ).toEqual({ mode: 'PROVISIONED', shardCount: 4, retentionHours: 168 });
  });

  test('the time-series options resolve to their enabled variants', () => {
    const c = resolveFleetConfig({
      telemetry: {
        timestream: { enabled: true, databaseName: 'fleet_db', tableName: 'health' },
        influxdb: {
          enabled: true,
          endpoint: 'https://abc.timestream-influxdb.eu-west-1.on.aws:8086',
          secretArn: 'arn:aws:secretsmanager:eu-west-1:111122223333:secret:influx-AbCdEf',
          databaseName: 'fleet',
          tableName: 'health',
          vpcId: 'vpc-0123456789abcdef0',
          subnetIds: ['subnet-0123456789abcdef0'],
          securityGroupIds: ['sg-0123456789abcdef0'],
        },
      },
    });
    expect(c.telemetry.timestream).toEqual({ enabled: true, databaseName: 'fleet_db', tableName: 'health' });
    expect(c.telemetry.influxdb).toEqual({
      enabled: true,
      endpoint: 'https://abc.timestream-influxdb.eu-west-1.on.aws:8086',
      version: 'V3',
      secretArn: 'arn:aws:secretsmanager:eu-west-1:111122223333:secret:influx-AbCdEf',
      secretKey: undefined,
      databaseName: 'fleet',
      tableName: 'health',
      organization: undefined,
      vpc: {
        vpcId: 'vpc-0123456789abcdef0',
        subnetIds: ['subnet-0123456789abcdef0'],
        securityGroupIds: ['sg-0123456789abcdef0'],
      },
    });
  });

  const influx = {
    enabled: true,
    endpoint: 'https://abc.timestream-influxdb.eu-west-1.on.aws:8086',
    secretArn: 'arn:aws:secretsmanager:eu-west-1:111122223333:secret:influx-AbCdEf',
    databaseName: 'fleet',
    tableName: 'health',
  };

  test.each([
    [
      { stream: { shardCount: 2 } },
      'telemetry.stream.shardCount: 2 is invalid; remove it, or set telemetry.stream.mode to "PROVISIONED"',
    ],
    [
      { stream: { mode: 'SERVERLESS' } },
      'telemetry.stream.mode: "SERVERLESS" is invalid; use one of ON_DEMAND, PROVISIONED',
    ],
    [
      { stream: { retentionHours: 12 } },
      'telemetry.stream.retentionHours: 12 is invalid; use an integer number of hours between 24 and 8760',
    ],
    [
      { archive: { bufferingIntervalSeconds: 901 } },
      'telemetry.archive.bufferingIntervalSeconds: 901 is invalid',
    ],
    [{ archive: { bufferingSizeMiB: 0 } }, 'telemetry.archive.bufferingSizeMiB: 0 is invalid'],
    [{ archive: { transitionToInfrequentAccessDays: 7 } }, 'at least 30 (S3 Standard-IA minimum)'],
    [
      { archive: { bufferingIntervalSeconds: 900 }, alarms: { archiveFreshnessSeconds: 600 } },
      'telemetry.alarms.archiveFreshnessSeconds: 600 is invalid; use more than telemetry.archive.bufferingIntervalSeconds (900)',
    ],
    [{ errorStore: { retentionDays: 0 } }, 'telemetry.errorStore.retentionDays: 0 is invalid'],
    [
      { thresholds: { weakRssiDbm: 10 } },
      'telemetry.thresholds.weakRssiDbm: 10 is invalid; use an integer number of dBm between -150 and 0',
    ],
    [{ consumer: { batchSize: 20000 } }, 'telemetry.consumer.batchSize: 20000 is invalid'],
    [{ consumer: { parallelizationFactor: 11 } }, 'telemetry.consumer.parallelizationFactor: 11 is invalid'],
    [{ consumer: { maxRecordAgeSeconds: 10 } }, 'telemetry.consumer.maxRecordAgeSeconds: 10 is invalid'],
    [
      { alarms: { unexpectedRebootRatePercent: 0 } },
      'telemetry.alarms.unexpectedRebootRatePercent: 0 is invalid',
    ],
    [{ maxFirmwareDimensions: 0 }, 'telemetry.maxFirmwareDimensions: 0 is invalid'],
    [
      { timestream: { enabled: true } },
      'telemetry.timestream.databaseName: missing; name the existing Timestream for LiveAnalytics database (the stack does not create it), or set telemetry.timestream.enabled to false',
    ],
    [
      { timestream: { enabled: true, databaseName: 'db' } },
      'telemetry.timestream.databaseName: "db" is invalid; use 3-256 characters',
    ],
    [
      { timestream: { enabled: true, databaseName: 'fleet_db' } },
      'telemetry.timestream.tableName: missing; name the existing Timestream for LiveAnalytics table',
    ],
    [
      { influxdb: { enabled: true } },
      'telemetry.influxdb.endpoint: missing; set the https:// endpoint of the InfluxDB instance or cluster, or set telemetry.influxdb.enabled to false',
    ],
    [
      { influxdb: { ...influx, endpoint: 'http://db:8086' } },
      'telemetry.influxdb.endpoint: "http://db:8086" is invalid; use an https:// URL',
    ],
    [{ influxdb: { ...influx, endpoint: 'https://db:9999' } }, 'port 443, 8086, 8181 or 8443'],
    [
      { influxdb: { ...influx, secretArn: 'influx-token' } },
      'telemetry.influxdb.secretArn: "influx-token" is invalid; use the full ARN',
    ],
    [
      { influxdb: { ...influx, version: 'V2' } },
      'telemetry.influxdb.organization: missing; InfluxDB V2 needs the organization name',
    ],
    [
      { influxdb: { ...influx, vpcId: 'vpc-0123456789abcdef0' } },
      'telemetry.influxdb.subnetIds: missing; a private endpoint needs vpcId, subnetIds and securityGroupIds together',
    ],
    [
      { influxdb: { ...influx, subnetIds: ['sn-1'] } },
      'telemetry.influxdb.subnetIds[0]: "sn-1" is invalid; use subnet ids (subnet-…)',
    ],
    [{ timestreem: {} }, 'telemetry: unknown key timestreem; did you mean timestream?'],
    [{ stream: { shardCont: 2 } }, 'telemetry.stream: unknown key shardCont; did you mean shardCount?'],
    [{ consumer: { batchsize: 10 } }, 'telemetry.consumer: unknown key batchsize; did you mean batchSize?'],
    [{ influxdb: { endpont: 'x' } }, 'telemetry.influxdb: unknown key endpont; did you mean endpoint?'],
  ])('%j → %s', (telemetryInput, expected) => {
    const err = errorOf({ telemetry: telemetryInput });
    expect(err.issues.some((i) => i.includes(expected))).toBe(true);
  });

  test('every telemetry problem is reported at once, beside the others', () => {
    const err = errorOf({
      stage: 'qa',
      telemetry: {
        stream: { shardCount: 2 },
        timestream: { enabled: true },
        influxdb: { enabled: true, version: 'V2' },
        consumer: { batchSize: 0 },
      },
    });
    expect([...err.issues].map((i) => i.split(':')[0]).sort()).toEqual(
      [
        'stage',
        'telemetry.consumer.batchSize',
        'telemetry.stream.shardCount',
        'telemetry.timestream.databaseName',
        'telemetry.timestream.tableName',
        'telemetry.influxdb.endpoint',
        'telemetry.influxdb.secretArn',
        'telemetry.influxdb.databaseName',
        'telemetry.influxdb.tableName',
        'telemetry.influxdb.organization',
      ].sort(),
    );
  });
});

test('the shipped example configuration is valid', () => {
  const example: unknown = JSON.parse(
    readFileSync(join(__dirname, '../../examples/fleet.config.json'), 'utf8'),
  );
  const c = resolveFleetConfig(example);
  expect(c.provisioning.templates.map((t) => [t.name, t.thingTypeName])).toEqual([
    ['acme-sensor', 'acme-sensor'],
    ['acme-gateway', 'acme-gateway'],
  ]);
});

test('the README configuration example is the shipped example file', () => {
  const readme = readFileSync(join(__dirname, '../../README.md'), 'utf8');
  const block = /Example `fleet.config.json`[\s\S]*?```json\n([\s\S]*?)```/.exec(readme);
  expect(block).not.toBeNull();
  expect(JSON.parse(block![1])).toEqual(
    JSON.parse(readFileSync(join(__dirname, '../../examples/fleet.config.json'), 'utf8')),
  );
});

describe('key suggestions', () => {
  test.each([
    ['topicPrefx', 'topicPrefix', 1],
    ['budegtMs', 'budgetMs', 1],
    ['STAGE', 'stage', 0],
    ['kitten', 'sitting', 3],
    ['', 'abc', 3],
  ])('editDistance(%s, %s) = %d', (a, b, d) => {
    expect(editDistance(a, b)).toBe(d);
    expect(editDistance(b, a)).toBe(d);
  });

  test('closestKey suggests only likely misspellings', () => {
    expect(closestKey('topicPrefx', ['stage', 'topicPrefix', 'thingNamePrefix'])).toBe('topicPrefix');
    expect(closestKey('colour', ['stage', 'topicPrefix'])).toBeUndefined();
    expect(closestKey('x', [])).toBeUndefined();
  });
});

test('formatPath', () => {
  expect(formatPath(['provisioning', 'templates', 0, 'name'])).toBe('provisioning.templates[0].name');
  expect(formatPath([])).toBe('(root)');
});

describe('CDK context keys', () => {
  test.each([
    ['stag', 'stage'],
    ['stackname', 'stackName'],
    ['confg', 'config'],
  ])('-c %s is refused as a likely misspelling of %s', (key, near) => {
    expect(contextKeyProblems([key])).toEqual([
      `context ${key}: unknown key; did you mean ${near}? (pass -c ${near}=<value>; keys are case-sensitive)`,
    ]);
  });

  test("the app's own keys and other tools' keys pass", () => {
    expect(
      contextKeyProblems([
        'stage',
        'config',
        'stackName',
        'cli-telemetry',
        '@aws-cdk/core:checkSecretUsage',
        'aws:cdk:bundling-stacks',
        'acknowledged-issue-numbers',
      ]),
    ).toEqual([]);
  });

  test('synth of the app stops on a misspelt key with one line, before building anything', () => {
    const run = spawnSync(process.execPath, [require.resolve('tsx/cli'), 'bin/app.ts'], {
      cwd: resolve(__dirname, '..', '..'),
      env: { ...process.env, CDK_CONTEXT_JSON: JSON.stringify({ stag: 'prod' }), CDK_OUTDIR: os.tmpdir() },
      encoding: 'utf8',
    });
    expect(run.status).toBe(1);
    expect(run.stderr.trim()).toBe(
      'invalid fleet configuration: context stag: unknown key; did you mean stage? (pass -c stage=<value>; keys are case-sensitive)',
    );
  });
});

describe('telemetry rule names and removed keys', () => {
  const problemsOf = (telemetry: unknown): readonly string[] => {
    try {
      resolveFleetConfig({ telemetry } as never);
    } catch (e) {
      if (e instanceof FleetConfigError) return e.issues;
      throw e;
    }
    return [];
  };

  test.each(['aws', 'replaying', 'replayed'])(
    'a rule named %s would list error-store entries that are not its own',
    (name) => {
      expect(problemsOf({ ruleNames: { telemetry: name } })).toEqual([
        expect.stringContaining(`telemetry.ruleNames.telemetry: "${name}" is invalid; use another name`),
      ]);
    },
  );

  test("the telemetry rule cannot take the name of the health rule's time-series rule", () => {
    expect(problemsOf({ ruleNames: { telemetry: 'x_health_timeseries', health: 'x_health' } })).toEqual([
      expect.stringContaining("is the name of the health rule's time-series rule"),
    ]);
  });

  test('a removed telemetry key says it was removed, not a look-alike', () => {
    expect(problemsOf({ telemetryIntervalSeconds: 60 })).toEqual([
      'telemetry: unknown key telemetryIntervalSeconds; was removed (nothing read it); delete it',
    ]);
    expect(problemsOf({ basicIngestRuleNames: ['a'] })[0]).toContain('use that key');
  });
});
