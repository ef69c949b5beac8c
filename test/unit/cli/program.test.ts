/**
 * The command tree in-process: one exit-code convention (commander usage errors are 2), input
 * files checked before any resource is resolved, unexpected errors explained fix-first, and the
 * SDK clients of every command's context closed whatever the outcome.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { IoTClient } from '@aws-sdk/client-iot';
import { DynamoDBDocumentClient, ScanCommand } from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { CliContext, createContext, destroyContext } from '../../../cli/context';
import { describeExitCodes, EXIT_CODES } from '../../../cli/errors';
import { memorySink } from '../../../cli/output';
import { ContextFactory, explain, main } from '../../../cli/program';

function harness(factory?: ContextFactory) {
  const stderr: string[] = [];
  const stdout: string[] = [];
  const calls: unknown[][] = [];
  const makeContext: ContextFactory =
    factory ??
    (async (...args) => {
      calls.push(args);
      return createContext({ resources: {}, out: memorySink() });
    });
  const io = {
    stderr: (t: string) => void stderr.push(t),
    stdout: (t: string) => void stdout.push(t),
    env: {},
  };
  return {
    run: (argv: string[]) => main(argv, makeContext, io),
    stderr: () => stderr.join(''),
    stdout: () => stdout.join(''),
    calls,
  };
}

describe('exit codes', () => {
  test('the convention is exported once', () => {
    expect(EXIT_CODES).toEqual({ ok: 0, failed: 1, usage: 2 });
    const help = describeExitCodes();
    expect(help).toMatch(/^Exit codes:\n {2}0 {2}success\n {2}1 {2}a check failed/);
    expect(help).toMatch(/\n {2}2 {2}bad usage: unknown option, missing or invalid argument/);
  });

  test.each([
    ['unknown option', ['lot', 'list', '--colour'], /unknown option '--colour'/],
    ['unknown command', ['lots'], /unknown command 'lots'/],
    ['missing argument', ['lot', 'create'], /missing required argument 'lot'/],
    ['missing required option', ['lot', 'hold', 'L1'], /required option '--reason <text>' not specified/],
    [
      'invalid value',
      ['enrollment', 'list', '--limit', '0'],
      /argument '0' is invalid\. use a positive whole number/,
    ],
    ['no command at all', [], /Usage: fleet/],
    [
      'a --since that is not a time',
      ['enrollment', 'list', '--since', 'banana'],
      /--since "banana" is not a time/,
    ],
    ['an empty window', ['enrollment', 'list', '--since', '1h', '--until', '2h'], /must be before --until/],
    [
      'a reason code that is not one',
      ['enrollment', 'list', '--reason', 'NOPE'],
      /not a decision reason code/,
    ],
    ['a bad lot name', ['lot', 'create', 'bad lot'], /lot "bad lot" is invalid/],
    ['a blank hold reason', ['lot', 'hold', 'L1', '--reason', ' '], /needs --reason/],
    ['a bad claim lot', ['claim', 'revoke', '--lot', 'a/b'], /lot "a\/b" is invalid/],
    ['a blank serial', ['device', 'show', ' '], /give the serial number/],
    ['a blank reset reason', ['device', 'reset', 'SN1', '--reason', ' '], /needs --reason/],
    [
      'a replay --since that is not a time',
      ['telemetry', 'replay', '--since', 'last week'],
      /--since "last week" is not a time/,
    ],
    [
      'a replay window that ends before it starts',
      ['telemetry', 'replay', '--since', '2h', '--until', '3h'],
      /--since \(.*\) must be before --until/,
    ],
    [
      'a replay --rule that is no rule name',
      ['telemetry', 'replay', '--rule', 'a/b'],
      /--rule "a\/b" is not a topic rule name/,
    ],
    [
      'a replay --rule that is not one of the rules',
      [
        'telemetry',
        'replay',
        '--rule',
        'other',
        '--telemetry-rules',
        '{"telemetry":"t_rule","health":"h_rule"}',
      ],
      /--rule "other" is not one of the telemetry rules \(t_rule, h_rule\)/,
    ],
    [
      'replay rule names that are not JSON',
      ['telemetry', 'replay', '--telemetry-rules', '{telemetry}'],
      /flag --telemetry-rules is not valid JSON/,
    ],
  ])('%s exits 2 without resolving anything', async (_name, argv, message) => {
    const h = harness();
    expect(await h.run(argv)).toBe(EXIT_CODES.usage);
    expect(h.stderr()).toMatch(message);
    expect(h.calls).toHaveLength(0);
  });

  test.each([[['--help']], [['help', 'lot']], [['lot', '--help']]])('%j exits 0', async (argv) => {
    const h = harness();
    expect(await h.run(argv)).toBe(EXIT_CODES.ok);
    expect(h.stdout()).toMatch(/Usage: fleet/);
  });

  test('fleet --help documents the exit codes, the contract flags and manifest validate', async () => {
    const h = harness();
    expect(await h.run(['--help'])).toBe(EXIT_CODES.ok);
    const text = h.stdout().replace(/\s+/g, ' ');
    expect(text).toContain(describeExitCodes().replace(/\s+/g, ' '));
    expect(text).toMatch(
      /--serial-pattern <regex> serial number pattern \(env FLEET_SERIAL_PATTERN, output SerialPattern\)/,
    );
    expect(text).toMatch(/--ring-shares <canary:early> .*\(env FLEET_RING_SHARES, output RingShares\)/);
    expect(text).toMatch(
      /--topic-prefix <prefix> topic prefix \(env FLEET_TOPIC_PREFIX, output TopicPrefix\)/,
    );
    expect(text).toMatch(/fleet manifest validate <file> +check a manifest offline/);
  });
});

test('fleet telemetry replay resolves the stream only when it puts records', async () => {
  const h = harness();
  await h.run(['telemetry', 'replay', '--since', '6h']);
  await h.run(['telemetry', 'replay', '--dry-run', '--rule', 'health', '--bucket', 'b']);
  expect(h.calls.map(([, needs, wants]) => [needs, wants])).toEqual([
    [['telemetryErrorBucket', 'telemetryRules', 'telemetryStream'], []],
    [['telemetryErrorBucket', 'telemetryRules'], ['telemetryStream']],
  ]);
  expect(h.calls[1][0]).toMatchObject({ bucket: 'b', dryRun: true, rule: 'health' });
});

test('fleet --help lists telemetry replay; its help names the flags and what is left in place', async () => {
  const h = harness();
  expect(await h.run(['--help'])).toBe(EXIT_CODES.ok);
  expect(h.stdout()).toMatch(/fleet telemetry replay +re-ingest the messages the telemetry and health rules/);
  const one = harness();
  expect(await one.run(['telemetry', 'replay', '--help'])).toBe(EXIT_CODES.ok);
  const text = one.stdout().replace(/\s+/g, ' ');
  for (const flag of [
    '--since <time>',
    '--until <time>',
    '--rule <name>',
    '--dry-run',
    '--json',
    '--stream <name>',
    '--bucket <name>',
  ])
    expect(text).toContain(flag);
  expect(text).toContain('(env FLEET_TELEMETRY_STREAM, output TelemetryStreamName)');
  expect(text).toContain('moves the object to replayed/<key>: a second replay does not ingest it again');
});

test('fleet device reset --help says the certificate is revoked and detached first, and what that needs', async () => {
  const h = harness();
  expect(await h.run(['device', 'reset', '--help'])).toBe(EXIT_CODES.ok);
  const text = h.stdout().replace(/\s+/g, ' ');
  expect(text).toMatch(
    /^Usage: fleet device reset \[options\] <serial> revoke the certificate of a unit stuck in PROVISIONING/,
  );
  expect(text).toContain(
    "Before the registry forgets the unit's certificate, the certificate is revoked in AWS IoT and detached from the thing",
  );
  expect(text).toContain('previousCertificate = revoked, already-revoked or not-found');
  expect(text).toContain(
    'Needs iot:DescribeCertificate, iot:UpdateCertificate and iot:DetachThingPrincipal.',
  );
});

describe('input files are checked before any resource is resolved', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleet-files-'));
    await writeFile(join(dir, 'ca.pem'), '-----BEGIN CERTIFICATE-----\n');
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test.each([
    [
      ['manifest', 'import', '/nonexistent/units.csv'],
      /^error: cannot read manifest \/nonexistent\/units\.csv: no such file; check the path\n$/,
    ],
    [
      ['manifest', 'validate', '/nonexistent/units.csv'],
      /^error: cannot read manifest \/nonexistent\/units\.csv: no such file/,
    ],
    [['manifest', 'import', '/tmp'], /cannot read manifest \/tmp: it is a directory/],
  ])('%j', async (argv, message) => {
    const h = harness();
    expect(await h.run(argv)).toBe(EXIT_CODES.usage);
    expect(h.stderr()).toMatch(message);
    expect(h.calls).toHaveLength(0);
  });

  test('fleet sim names the missing PEM file and its flag', async () => {
    const h = harness();
    const code = await h.run([
      'sim',
      '--endpoint',
      '127.0.0.1:1',
      '--ca',
      join(dir, 'ca.pem'),
      '--claim-cert',
      join(dir, 'claim.pem'),
      '--claim-key',
      join(dir, 'claim.key'),
    ]);
    expect(code).toBe(EXIT_CODES.usage);
    expect(h.stderr()).toBe(
      `error: cannot read claim certificate ${join(dir, 'claim.pem')}: no such file; check the path given to --claim-cert\n`,
    );
    expect(h.calls).toHaveLength(0);
  });

  test('a resolution failure of manifest import points at the offline check', async () => {
    const h = harness(async () => {
      const { resolveResources } = await import('../../../cli/context');
      return createContext({
        resources: await resolveResources({
          flags: {},
          env: {},
          needs: ['serialPattern'],
          readStackOutputs: async () => {
            throw Object.assign(new Error('Region is missing'), { name: 'Error' });
          },
        }),
      });
    });
    const file = join(dir, 'units.csv');
    await writeFile(file, 'serial,lot,hwRev,factoryFirmware\nSN-0001,L1,A,1.0.0\n');
    expect(await h.run(['manifest', 'import', file, '--dry-run'])).toBe(EXIT_CODES.usage);
    expect(h.stderr()).toMatch(/^error: no AWS region: set AWS_REGION or AWS_PROFILE/);
    expect(h.stderr()).toContain(`(to check the rows without AWS: fleet manifest validate ${file})`);
  });
});

describe('explain: the first sentence names the fix', () => {
  test.each([
    [
      'no region',
      Object.assign(new Error('Region is missing'), { name: 'Error' }),
      /^no AWS region: set AWS_REGION or AWS_PROFILE/,
    ],
    [
      'no credentials',
      Object.assign(new Error('Could not load credentials from any providers'), {
        name: 'CredentialsProviderError',
      }),
      /^no AWS credentials: set a profile with AWS_PROFILE/,
    ],
    [
      'expired credentials',
      Object.assign(new Error('The security token included in the request is expired'), {
        name: 'ExpiredTokenException',
      }),
      /^the AWS credentials have expired: refresh them/,
    ],
    [
      'endpoint unreachable',
      Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:4566'), { name: 'Error' }),
      /^cannot reach the AWS endpoint: check the network and any AWS_ENDPOINT_URL_\* variable \(connect ECONNREFUSED/,
    ],
    [
      'access denied',
      Object.assign(new Error('nope'), { name: 'AccessDeniedException' }),
      /^the AWS credentials were refused: check/,
    ],
  ])('%s', (_name, err, message) => {
    expect(explain(err)).toMatch(message);
  });

  test('an SDK setup error raised by a command exits 2, with the fix first', async () => {
    const h = harness(async () => {
      throw Object.assign(new Error('Could not load credentials from any providers'), {
        name: 'CredentialsProviderError',
      });
    });
    expect(await h.run(['lot', 'list'])).toBe(EXIT_CODES.usage);
    expect(h.stderr()).toMatch(/^error: no AWS credentials: set a profile with AWS_PROFILE/);
  });
});

describe('the run wrapper closes the SDK clients of the context it made', () => {
  const config = { region: 'us-east-1', credentials: { accessKeyId: 'x', secretAccessKey: 'y' } };

  /** A context with real SDK clients (DynamoDB answers mocked), and spies on every destroy(). */
  function tracked() {
    const dynamo = new DynamoDBClient(config);
    const doc = DynamoDBDocumentClient.from(dynamo);
    const iot = new IoTClient(config);
    const docMock = mockClient(doc);
    const destroyed = [jest.spyOn(dynamo, 'destroy'), jest.spyOn(doc, 'destroy'), jest.spyOn(iot, 'destroy')];
    const ctx = createContext({
      resources: { devicesTable: 'Devices', lotsTable: 'Lots', eventsTable: 'Events' },
      clients: { dynamo, doc, iot },
      out: memorySink(),
    });
    const calls = () => destroyed.map((d) => d.mock.calls.length);
    return { ctx, docMock, calls, restore: () => docMock.restore() };
  }

  test.each([
    ['the command succeeds', true, EXIT_CODES.ok],
    ['the command fails', false, EXIT_CODES.failed],
  ])('%s: each client is destroyed once', async (_name, succeeds, code) => {
    const t = tracked();
    try {
      if (succeeds) t.docMock.on(ScanCommand).resolves({ Items: [] });
      else
        t.docMock
          .on(ScanCommand)
          .rejects(Object.assign(new Error('no table'), { name: 'ResourceNotFoundException' }));
      const h = harness(async () => t.ctx);
      expect(await h.run(['lot', 'list'])).toBe(code);
      expect(t.calls()).toEqual([1, 1, 1]);
    } finally {
      t.restore();
    }
  });

  test('a command whose result is exit code 1 closes them too', async () => {
    const t = tracked();
    try {
      const dir = await mkdtemp(join(tmpdir(), 'fleet-destroy-'));
      const file = join(dir, 'm.csv');
      await writeFile(file, 'serial,lot,hwRev,factoryFirmware\nbad serial,L1,A,1.0.0\n');
      const ctx: CliContext = {
        ...t.ctx,
        resources: {
          ...t.ctx.resources,
          serialPattern: '^SN-[0-9]+$',
          ringShares: { canaryPercent: 2, earlyPercent: 18 },
        },
      };
      const h = harness(async () => ctx);
      expect(await h.run(['manifest', 'import', file])).toBe(EXIT_CODES.failed);
      await rm(dir, { recursive: true, force: true });
      expect(t.calls()).toEqual([1, 1, 1]);
    } finally {
      t.restore();
    }
  });

  test('destroyContext destroys the three clients', () => {
    const t = tracked();
    destroyContext(t.ctx);
    t.restore();
    expect(t.calls()).toEqual([1, 1, 1]);
  });
});
