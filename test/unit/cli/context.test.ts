import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { IoTClient } from '@aws-sdk/client-iot';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { parseRingShares } from '../../../core/rings';
import {
  contextFromFlags,
  createContext,
  destroyContext,
  kinesisClient,
  parseTelemetryRules,
  parseTemplates,
  resolveResources,
  s3Client,
} from '../../../cli/context';
import { UsageError } from '../../../cli/errors';
import { formatTable } from '../../../cli/output';
import { parseTimeArg } from '../../../cli/time';

const TEMPLATES_JSON = JSON.stringify([
  { templateName: 't', claimPolicyName: 'p', thingTypeName: 'tt', claimClientIdPrefix: 'prov-' },
]);

describe('resolveResources', () => {
  const outputs = {
    DevicesTableName: 'stack-devices',
    LotsTableName: 'stack-lots',
    EventsTableName: 'stack-events',
    ThingNamePrefix: 'stackfleet',
    DevicePolicyName: 'stack-policy',
    ProvisioningTemplates: TEMPLATES_JSON,
  };

  test('flags win over environment, environment over stack outputs', async () => {
    const reader = jest.fn(async () => outputs);
    const r = await resolveResources({
      flags: { devicesTable: 'flag-devices', stack: 'MyStack' },
      env: { FLEET_DEVICES_TABLE: 'env-devices', FLEET_LOTS_TABLE: 'env-lots' },
      needs: ['devicesTable', 'lotsTable', 'eventsTable', 'provisioningTemplates'],
      readStackOutputs: reader,
    });
    expect(r).toEqual({
      devicesTable: 'flag-devices',
      lotsTable: 'env-lots',
      eventsTable: 'stack-events',
      provisioningTemplates: [
        { templateName: 't', claimPolicyName: 'p', thingTypeName: 'tt', claimClientIdPrefix: 'prov-' },
      ],
    });
    expect(reader).toHaveBeenCalledWith('MyStack');
  });

  test('the stack is not read when flags and environment supply everything needed', async () => {
    const reader = jest.fn(async () => outputs);
    const r = await resolveResources({
      flags: {},
      env: {
        FLEET_LOTS_TABLE: 'env-lots',
        FLEET_THING_PREFIX: 'p',
        FLEET_PROVISIONING_TEMPLATES: TEMPLATES_JSON,
      },
      needs: ['lotsTable'],
      wants: ['thingPrefix'],
      readStackOutputs: reader,
    });
    expect(r).toEqual({ lotsTable: 'env-lots', thingPrefix: 'p' });
    expect(reader).not.toHaveBeenCalled();
  });

  test('FLEET_STACK_NAME picks the stack; the default is IotFleetStack', async () => {
    const reader = jest.fn(async () => outputs);
    await resolveResources({
      flags: {},
      env: { FLEET_STACK_NAME: 'Other' },
      needs: ['lotsTable'],
      readStackOutputs: reader,
    });
    await resolveResources({ flags: {}, env: {}, needs: ['lotsTable'], readStackOutputs: reader });
    expect(reader.mock.calls).toEqual([['Other'], ['IotFleetStack']]);
  });

  test('missing names: a usage error naming flag, variable and output for each', async () => {
    const err = await resolveResources({
      flags: {},
      env: {},
      needs: ['devicesTable', 'provisioningTemplates'],
      readStackOutputs: async () => {
        throw new Error('Stack with id IotFleetStack does not exist');
      },
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UsageError);
    const msg = (err as Error).message;
    expect(msg).toMatch(
      /missing resource name\(s\) devicesTable, provisioningTemplates; reading the outputs of stack IotFleetStack failed/,
    );
    expect(msg).toMatch(
      /devicesTable: pass --devices-table, set FLEET_DEVICES_TABLE, or deploy stack IotFleetStack with output DevicesTableName/,
    );
    expect(msg).toMatch(/provisioningTemplates: pass --templates, set FLEET_PROVISIONING_TEMPLATES/);
  });

  test('outputs that lack a name are reported as not found in the stack', async () => {
    await expect(
      resolveResources({ flags: {}, env: {}, needs: ['devicePolicy'], readStackOutputs: async () => ({}) }),
    ).rejects.toThrow(
      /not found in the outputs of stack IotFleetStack[\s\S]*--device-policy, set FLEET_DEVICE_POLICY/,
    );
  });
});

describe('parseTemplates', () => {
  test.each([
    ['{', /not valid JSON/],
    ['[{"templateName":"t"}]', /claimPolicyName/],
    ['{"templateName":"t"}', /does not list templates/],
  ])('%s', (text, message) => {
    expect(() => parseTemplates(text, 'environment variable FLEET_PROVISIONING_TEMPLATES')).toThrow(message);
    expect(() => parseTemplates(text)).toThrow(UsageError);
  });
});

describe('contract values: serial pattern, ring shares, topic prefix', () => {
  const contract = { SerialPattern: '^unit-[0-9]{4}$', RingShares: '5:20', TopicPrefix: 'plant7' };
  const needs = ['serialPattern', 'ringShares', 'topicPrefix'] as const;

  test('resolve from the stack outputs, typed (ring shares parsed)', async () => {
    const r = await resolveResources({ flags: {}, env: {}, needs, readStackOutputs: async () => contract });
    expect(r).toEqual({
      serialPattern: '^unit-[0-9]{4}$',
      ringShares: parseRingShares('5:20'),
      topicPrefix: 'plant7',
    });
  });

  test('flags and environment win over the stack, like every other name', async () => {
    const reader = jest.fn(async () => contract);
    const r = await resolveResources({
      flags: { serialPattern: '^X', ringShares: '10:10' },
      env: { FLEET_TOPIC_PREFIX: 'envp', FLEET_RING_SHARES: '1:1' },
      needs,
      readStackOutputs: reader,
    });
    expect(r).toEqual({ serialPattern: '^X', ringShares: parseRingShares('10:10'), topicPrefix: 'envp' });
    expect(reader).not.toHaveBeenCalled();
  });

  test('no local default: a missing one names its flag, variable and stack output', async () => {
    const err = await resolveResources({
      flags: {},
      env: {},
      needs,
      readStackOutputs: async () => ({}),
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UsageError);
    const msg = (err as Error).message;
    expect(msg).toMatch(/missing resource name\(s\) serialPattern, ringShares, topicPrefix/);
    expect(msg).toMatch(
      /serialPattern: pass --serial-pattern, set FLEET_SERIAL_PATTERN, or deploy stack IotFleetStack with output SerialPattern/,
    );
    expect(msg).toMatch(
      /ringShares: pass --ring-shares, set FLEET_RING_SHARES, or deploy stack IotFleetStack with output RingShares/,
    );
    expect(msg).toMatch(
      /topicPrefix: pass --topic-prefix, set FLEET_TOPIC_PREFIX, or deploy stack IotFleetStack with output TopicPrefix/,
    );
  });

  test.each([
    [{ ringShares: '60:60' }, {}, /more than 100.*\(from flag --ring-shares\)/],
    [{}, { RingShares: 'half' }, /malformed.*\(from output RingShares of stack IotFleetStack\)/],
    [
      { serialPattern: '([' },
      {},
      /"\(\[" \(from flag --serial-pattern\) is not a valid regular expression; fix --serial-pattern/,
    ],
  ])('%j / outputs %j is a usage error naming the source', async (flags, outputs, message) => {
    const call = () =>
      resolveResources({
        flags,
        env: {},
        needs: ['serialPattern', 'ringShares'],
        readStackOutputs: async () => ({ ...contract, ...outputs }),
      });
    await expect(call()).rejects.toThrow(UsageError);
    await expect(call()).rejects.toThrow(message);
  });

  test('contextFromFlags carries them in resources; no defaults are filled in', async () => {
    const ctx = await contextFromFlags({ ringShares: '5:20' }, ['lotsTable'], ['serialPattern'], {
      FLEET_LOTS_TABLE: 'lots',
      FLEET_ACTOR: 'ops',
    });
    expect(ctx.resources).toEqual({ lotsTable: 'lots' });
    expect(ctx.actor).toBe('ops');
  });
});

describe('telemetry resources: stream, rule names, error bucket', () => {
  const needs = ['telemetryStream', 'telemetryRules', 'telemetryErrorBucket'] as const;
  const rules = { telemetry: 'fleet_telemetry', health: 'fleet_health' };

  test('resolve from the stack outputs; the rule names are parsed', async () => {
    const r = await resolveResources({
      flags: {},
      env: {},
      needs,
      readStackOutputs: async () => ({
        TelemetryStreamName: 'stack-stream',
        TelemetryRules: JSON.stringify(rules),
        TelemetryErrorBucketName: 'stack-errors',
      }),
    });
    expect(r).toEqual({
      telemetryStream: 'stack-stream',
      telemetryRules: rules,
      telemetryErrorBucket: 'stack-errors',
    });
  });

  test('--stream, --bucket and --telemetry-rules win over the environment, the environment over the stack', async () => {
    const reader = jest.fn(async () => ({}));
    const r = await resolveResources({
      flags: { stream: 'flag-stream', bucket: 'flag-bucket' },
      env: {
        FLEET_TELEMETRY_STREAM: 'env-stream',
        FLEET_TELEMETRY_RULES: JSON.stringify({ telemetry: 'a', health: 'b' }),
      },
      needs,
      readStackOutputs: reader,
    });
    expect(r).toEqual({
      telemetryStream: 'flag-stream',
      telemetryRules: { telemetry: 'a', health: 'b' },
      telemetryErrorBucket: 'flag-bucket',
    });
    expect(reader).not.toHaveBeenCalled();
  });

  test('a missing one names its flag, variable and stack output', async () => {
    const err = await resolveResources({
      flags: {},
      env: {},
      needs,
      readStackOutputs: async () => ({}),
    }).catch((e: unknown) => e);
    const msg = (err as Error).message;
    expect(msg).toMatch(
      /telemetryStream: pass --stream, set FLEET_TELEMETRY_STREAM, .* output TelemetryStreamName/,
    );
    expect(msg).toMatch(
      /telemetryRules: pass --telemetry-rules, set FLEET_TELEMETRY_RULES, .* output TelemetryRules/,
    );
    expect(msg).toMatch(
      /telemetryErrorBucket: pass --bucket, set FLEET_TELEMETRY_ERROR_BUCKET, .* output TelemetryErrorBucketName/,
    );
  });

  test.each([
    ['{', /flag --telemetry-rules is not valid JSON; give the rule name of each record type/],
    ['{"telemetry":"a"}', /does not name the rules as expected \(health: /],
    ['{"telemetry":"a/b","health":"c"}', /telemetry: .*topic rule names \(A-Z a-z 0-9 _\)/],
  ])('rule names %s are a usage error naming the source', async (text, message) => {
    expect(() => parseTelemetryRules(text, 'flag --telemetry-rules')).toThrow(UsageError);
    expect(() => parseTelemetryRules(text, 'flag --telemetry-rules')).toThrow(message);
    await expect(
      resolveResources({ flags: { telemetryRules: text }, env: {}, needs: ['telemetryRules'] }),
    ).rejects.toThrow(/flag --telemetry-rules/);
  });

  test('S3 and Kinesis clients: created on first use when the context has none, closed by destroyContext', () => {
    const dynamo = new DynamoDBClient({ region: 'us-east-1' });
    const ctx = createContext({
      resources: {},
      clients: {
        dynamo,
        doc: DynamoDBDocumentClient.from(dynamo),
        iot: new IoTClient({ region: 'us-east-1' }),
      },
    });
    const s3 = s3Client(ctx);
    const kinesis = kinesisClient(ctx);
    expect(s3Client(ctx)).toBe(s3);
    expect(ctx.clients.kinesis).toBe(kinesis);
    const spies = [jest.spyOn(s3, 'destroy'), jest.spyOn(kinesis, 'destroy')];
    destroyContext(ctx);
    expect(spies.map((s) => s.mock.calls.length)).toEqual([1, 1]);
  });
});

describe('AWS setup problems: the first sentence names the fix', () => {
  const needs = ['lotsTable', 'serialPattern'] as const;
  test.each([
    [
      'no region',
      Object.assign(new Error('Region is missing'), { name: 'Error' }),
      /^no AWS region: set AWS_REGION or AWS_PROFILE \(a profile with a region\), or pass --region; it is needed to read lotsTable, serialPattern from the outputs of stack IotFleetStack/,
    ],
    [
      'no credentials',
      Object.assign(new Error('Could not load credentials from any providers'), {
        name: 'CredentialsProviderError',
      }),
      /^no AWS credentials: set a profile with AWS_PROFILE .*, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY; it is needed to read/,
    ],
  ])('%s', async (_name, error, message) => {
    const err = await resolveResources({
      flags: {},
      env: {},
      needs,
      readStackOutputs: async () => {
        throw error;
      },
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UsageError);
    expect((err as Error).message).toMatch(message);
    expect((err as Error).message).toMatch(/lotsTable: pass --lots-table, set FLEET_LOTS_TABLE/);
  });
});

describe('parseTimeArg', () => {
  const now = new Date('2026-07-10T12:00:00.000Z');
  test.each([
    ['now', '2026-07-10T12:00:00.000Z'],
    ['30m', '2026-07-10T11:30:00.000Z'],
    ['24h', '2026-07-09T12:00:00.000Z'],
    ['7d', '2026-07-03T12:00:00.000Z'],
    ['2w', '2026-06-26T12:00:00.000Z'],
    ['2026-07-01', '2026-07-01T00:00:00.000Z'],
    ['2026-07-01T08:00:00Z', '2026-07-01T08:00:00.000Z'],
    ['2026-07-01T08:00:00+02:00', '2026-07-01T06:00:00.000Z'],
    ['2026-07-01 08:00', expect.stringMatching(/^2026-07-01T/)],
  ])('%s', (text, iso) => {
    expect(parseTimeArg(text, now, '--since').toISOString()).toEqual(iso);
  });
  test.each(['yesterday', '7 days', '2026-13-01', '-1h', ''])('%j is a usage error', (text) => {
    expect(() => parseTimeArg(text, now, '--since')).toThrow(UsageError);
    expect(() => parseTimeArg(text, now, '--since')).toThrow(/--since ".*" is not a time; use an ISO time/);
  });
});

test('formatTable aligns columns', () => {
  expect(
    formatTable(
      ['A', 'BB'],
      [
        ['xyz', '1'],
        ['q', ''],
      ],
    ),
  ).toEqual(['A    BB', '---  --', 'xyz  1', 'q']);
});
