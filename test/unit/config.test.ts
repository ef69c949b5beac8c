import { RemovalPolicy } from 'aws-cdk-lib';
import { DEFAULT_SERIAL_PATTERN } from '../../core/model';
import {
  DEFAULT_OTA_STAGES,
  FleetConfigError,
  formatPath,
  resolveFleetConfig,
  ringSharesOf,
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

const stage = (over: Record<string, unknown> = {}) => ({
  name: 'canary',
  targetRing: 'canary',
  maximumPerMinute: 10,
  abortFailureThresholdPercent: 10,
  minNumberOfExecutedThings: 5,
  soakMinutes: 60,
  inProgressTimeoutMinutes: 30,
  retryAttempts: 2,
  ...over,
});

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
    });
    expect(ringSharesOf(cfg)).toBe('2:18');
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

  test('OTA stages canary → early → broad', () => {
    expect(cfg.ota.stages).toEqual(DEFAULT_OTA_STAGES);
    expect(cfg.ota.stages.map((s) => s.targetRing)).toEqual(['canary', 'early', 'broad']);
  });

  test('undefined and null mean all defaults', () => {
    expect(resolveFleetConfig(undefined)).toEqual(cfg);
    expect(resolveFleetConfig(null)).toEqual(cfg);
  });

  test('partial template input is completed with defaults', () => {
    const c = resolveFleetConfig({ provisioning: { templates: [{ name: 'gw', hook: { budgetMs: 3000 } }] } });
    expect(c.provisioning.templates[0]).toMatchObject({
      name: 'gw',
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
      { provisioning: { templates: [{ name: 'a' }, { name: 'a' }] } },
      'provisioning.templates[1].name: "a" is invalid; give every template a unique name',
    ],
    [
      { provisioning: { templates: [] } },
      'provisioning.templates: [] is invalid; declare at least one template',
    ],
    [{ provisioning: { templates: [{}] } }, 'provisioning.templates[0].name: missing; use 1-36 characters'],
    [
      { provisioning: { templates: [{ name: 'a', claimClientIdPrefix: 'fleet-' }] } },
      'provisioning.templates[0].claimClientIdPrefix: "fleet-" is invalid; use a prefix that cannot collide with the thing names',
    ],
    [
      { provisioning: { templates: [{ name: 'a', thingTypeName: 'bad type' }] } },
      'provisioning.templates[0].thingTypeName: "bad type" is invalid; use 1-128 characters',
    ],
    [
      { provisioning: { templates: [{ name: 'a', hook: { budgetMs: 5000 } }] } },
      'provisioning.templates[0].hook.budgetMs: 5000 is invalid; use an integer between 100 and 4500',
    ],
    [
      { provisioning: { templates: [{ name: 'a', hook: { memorySize: 64 } }] } },
      'provisioning.templates[0].hook.memorySize: 64 is invalid; use an integer number of MB between 128 and 10240',
    ],
    [
      {
        provisioning: {
          templates: [{ name: 'a', hook: { provisionedConcurrency: 5, reservedConcurrency: 2 } }],
        },
      },
      'provisioning.templates[0].hook.provisionedConcurrency: 5 is invalid; keep it at most hook.reservedConcurrency (2)',
    ],
    [
      { provisioning: { templates: [{ name: 'a', description: 'd'.repeat(501) }] } },
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
      { ota: { stages: [stage({ maximumPerMinute: 0 })] } },
      'ota.stages[0].maximumPerMinute: 0 is invalid; use an integer between 1 and 1000',
    ],
    [
      { ota: { stages: [stage({ abortFailureThresholdPercent: 0 })] } },
      'ota.stages[0].abortFailureThresholdPercent: 0 is invalid; use a number greater than 0 and at most 100',
    ],
    [
      { ota: { stages: [stage({ minNumberOfExecutedThings: 0 })] } },
      'ota.stages[0].minNumberOfExecutedThings: 0 is invalid; use an integer of at least 1',
    ],
    [
      { ota: { stages: [stage({ inProgressTimeoutMinutes: 20000 })] } },
      'ota.stages[0].inProgressTimeoutMinutes: 20000 is invalid; use an integer between 1 and 10080',
    ],
    [
      { ota: { stages: [stage({ retryAttempts: 11 })] } },
      'ota.stages[0].retryAttempts: 11 is invalid; use an integer between 0 and 10',
    ],
    [
      { ota: { stages: [stage({ soakMinutes: 1.5 })] } },
      'ota.stages[0].soakMinutes: 1.5 is invalid; use an integer',
    ],
    [
      { ota: { stages: [stage({ targetRing: 'all' })] } },
      'ota.stages[0].targetRing: "all" is invalid; use one of canary, early, broad',
    ],
    [
      {
        ota: {
          stages: [stage({ name: 'b', targetRing: 'early' }), stage({ name: 'a', targetRing: 'canary' })],
        },
      },
      'ota.stages[1].targetRing: "canary" is invalid; order the stages so each targets a later ring',
    ],
    [
      { ota: { stages: [stage({ name: 'x' }), stage({ name: 'x', targetRing: 'early' })] } },
      'ota.stages[1].name: "x" is invalid; give every stage a unique name',
    ],
    [{ ota: { stages: [] } }, 'ota.stages: [] is invalid; declare at least one rollout stage'],
    [
      { ota: { stages: [{ name: 'c' }] } },
      'ota.stages[0].targetRing: missing; use one of canary, early, broad',
    ],
    [{ topicPrefx: 'x' }, 'topicPrefx: unknown key; remove it or fix its spelling'],
    [
      { provisioning: { templates: [{ name: 'a', hook: { budget: 1 } }] } },
      'provisioning.templates[0].hook.budget: unknown key',
    ],
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
});

test('formatPath', () => {
  expect(formatPath(['provisioning', 'templates', 0, 'name'])).toBe('provisioning.templates[0].name');
  expect(formatPath([])).toBe('(root)');
});
