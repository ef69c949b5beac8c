import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import * as os from 'node:os';
import { join, resolve } from 'node:path';
import { RemovalPolicy } from 'aws-cdk-lib';
import { DEFAULT_SERIAL_PATTERN } from '../../core/model';
import {
  contextKeyProblems,
  closestKey,
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
      basicIngestRuleNames: ['fleet_telemetry', 'fleet_health'],
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
      basicIngestRuleNames: FLEET_DEFAULTS.basicIngestRuleNames,
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

  test('there is no ota key until staged OTA lands', () => {
    expect(Object.keys(cfg)).not.toContain('ota');
    expect(errorOf({ ota: { stages: [] } }).issues).toEqual([
      'unknown key ota; remove it (known keys: ' +
        'stage, topicPrefix, thingNamePrefix, serialPattern, rings, provisioning, basicIngestRuleNames, logRetentionDays, trail)',
    ]);
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
      { basicIngestRuleNames: ['fleet-telemetry'] },
      'basicIngestRuleNames[0]: "fleet-telemetry" is invalid; use 1-128 characters of a-z A-Z 0-9 _ (topic rule name)',
    ],
    [
      { basicIngestRuleNames: ['a', 'a'] },
      'basicIngestRuleNames[1]: "a" is invalid; list every rule name once',
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
