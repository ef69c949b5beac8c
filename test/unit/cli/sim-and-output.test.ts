import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import {
  profileWarnings,
  checkSimOptions,
  simMqttVersion,
  checkStreamFlags,
  sim,
  simNeeds,
  simStream,
  type SimOptions,
} from '../../../cli/commands/sim';
import { createContext, FleetResources } from '../../../cli/context';
import { UsageError } from '../../../cli/errors';
import { consoleSink, memorySink } from '../../../cli/output';
import { TestCa } from '../../integration/device/support/pki';

/** Real PEM files: the claim pair of a test CA, a key of another pair, a CA, and a non-PEM file. */
let dir: string;
const pem = { ca: '', cert: '', key: '', otherKey: '', text: '' };
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sim-args-'));
  const ca = await TestCa.create();
  const claim = await ca.issue('claim');
  const other = await ca.issue('other');
  for (const [name, content] of [
    ['ca', ca.certPem],
    ['cert', claim.certPem],
    ['key', claim.keyPem],
    ['otherKey', other.keyPem],
    ['text', 'my-host\n'],
  ] as const) {
    pem[name] = join(dir, `${name}.pem`);
    await writeFile(pem[name], content);
  }
  Object.assign(base, { claimCert: pem.cert, claimKey: pem.key, ca: pem.ca });
});
afterAll(() => rm(dir, { recursive: true, force: true }));

const base: SimOptions = { endpoint: 'localhost:8883', claimCert: '', claimKey: '', ca: '' };
const TEMPLATES = [
  { templateName: 'a', claimPolicyName: 'p', thingTypeName: 't', claimClientIdPrefix: 'prov-' },
  { templateName: 'b', claimPolicyName: 'p', thingTypeName: 't', claimClientIdPrefix: 'prov-' },
];
const ctx = (resources: FleetResources = { provisioningTemplates: TEMPLATES, topicPrefix: 'fleet' }) =>
  createContext({ resources, out: memorySink() });

describe('fleet sim argument checks (before any connection)', () => {
  test.each([
    [{ endpoint: '' }, /needs --endpoint/],
    [{ ca: '' }, /needs --ca/],
    [
      { template: 'a', serials: ['SN-1'], manifest: 'm.csv' },
      /only one of --serial, --manifest and --identities/,
    ],
    [{ template: 'a', devices: 0 }, /--devices "0" must be a positive whole number/],
    [{ template: 'a', maxAttempts: 0 }, /--max-attempts "0" must be a positive whole number/],
    [{ endpoint: 'host:99999' }, /--endpoint host:99999: Invalid port/],
    [{}, /choose one with --template/],
    [{ template: 'zzz' }, /not one of the stack's provisioning templates/],
    [{ template: 'a', manifest: '/nonexistent.csv' }, /cannot read manifest \/nonexistent.csv/],
    [
      { template: 'a', mqtt: 'mqtt5' },
      /^--mqtt "mqtt5" is not an MQTT version the simulator speaks; use --mqtt 3\.1\.1 or --mqtt 5$/,
    ],
    [{ template: 'a', mqtt: '4' }, /^--mqtt "4" is not an MQTT version/],
  ])('%j', async (given, message) => {
    const opts = { ...base, ...given };
    await expect(sim(opts, ctx())).rejects.toThrow(UsageError);
    await expect(sim(opts, ctx())).rejects.toThrow(message);
  });

  test.each([
    [
      { topicPrefix: 'fleet' },
      /missing provisioningTemplates: pass --templates, set FLEET_PROVISIONING_TEMPLATES, or read it from the stack output ProvisioningTemplates/,
    ],
    [
      { provisioningTemplates: TEMPLATES },
      /missing topicPrefix: pass --topic-prefix, set FLEET_TOPIC_PREFIX, or read it from the stack output TopicPrefix/,
    ],
  ])('the stack contract is required, even with --template (%j)', async (resources, message) => {
    await expect(sim({ ...base, template: 'a' }, ctx(resources))).rejects.toThrow(UsageError);
    await expect(sim({ ...base, template: 'a' }, ctx(resources))).rejects.toThrow(message);
  });
});

describe('fleet sim checks the PEM files before any connection: one line naming the flag, the file and the fix', () => {
  test.each([
    [
      'swapped certificate and key',
      () => ({ claimCert: pem.key, claimKey: pem.cert }),
      () =>
        `--claim-cert ${pem.key} holds a private key and --claim-key ${pem.cert} a certificate: they are swapped; pass --claim-cert ${pem.cert} --claim-key ${pem.key}`,
    ],
    [
      'a key of another certificate',
      () => ({ claimKey: pem.otherKey }),
      () =>
        `--claim-key ${pem.otherKey} is not the private key of --claim-cert ${pem.cert}; give the claim.private.key written by "fleet claim create" together with that certificate`,
    ],
    [
      'a CA file that is not PEM',
      () => ({ ca: pem.text }),
      () =>
        `--ca ${pem.text} holds no PEM block, not a CA certificate; give the CA that signs the endpoint's server certificate (AmazonRootCA1.pem for AWS IoT, the lab's ca.pem for the lab)`,
    ],
    [
      'a key given as the certificate',
      () => ({ claimCert: pem.otherKey }),
      () =>
        `--claim-cert ${pem.otherKey} holds a PRIVATE KEY block, not a certificate; give the claim certificate (claim.cert.pem written by "fleet claim create")`,
    ],
    [
      'a certificate given as the key',
      () => ({ claimKey: pem.ca }),
      () =>
        `--claim-key ${pem.ca} holds a CERTIFICATE block, not a private key; give the claim private key (claim.private.key written by "fleet claim create")`,
    ],
  ])('%s', async (_name, given, message) => {
    const opts = { ...base, template: 'a', ...given() };
    const err = await checkSimOptions(opts).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(UsageError);
    expect((err as Error).message).toBe(message());
    // sim() itself refuses before any connection (nothing listens on the endpoint's port).
    await expect(sim({ ...opts, endpoint: '127.0.0.1:1' }, ctx())).rejects.toThrow(message());
  });

  test('the good set passes', async () => {
    await expect(checkSimOptions(base)).resolves.toBeUndefined();
  });
});

describe('fleet sim needs the stack templates only when --template and --claim-client-id-prefix are not both given', () => {
  test.each([
    [{}, ['provisioningTemplates', 'topicPrefix']],
    [{ template: 'a' }, ['provisioningTemplates', 'topicPrefix']],
    [{ claimClientIdPrefix: 'prov-' }, ['provisioningTemplates', 'topicPrefix']],
    [{ template: 'a', claimClientIdPrefix: 'prov-' }, ['topicPrefix']],
    [{ template: 'a', claimClientIdPrefix: 'prov-', manifest: 'm.csv' }, ['topicPrefix', 'serialPattern']],
  ])('%j needs %j', (opts, needs) => {
    expect(simNeeds(opts)).toEqual(needs);
  });
});

test.each([
  [undefined, '3.1.1'],
  ['3.1.1', '3.1.1'],
  ['5', '5'],
] as const)('--mqtt %j runs every session on MQTT %s', (mqtt, version) => {
  expect(simMqttVersion({ mqtt })).toBe(version);
});

describe('fleet sim streaming flags', () => {
  test.each([
    [{ telemetryIntervalS: 5 }, /^--telemetry-interval only apply when streaming; add --stream-seconds N/],
    [
      { direct: true, profiles: ['1.0.0=flaky'] },
      /^--direct, --profile only apply when streaming; add --stream-seconds N \(e.g. --stream-seconds 60\)$/,
    ],
    [{ streamSeconds: 0 }, /^--stream-seconds "0" must be a positive whole number, e.g. 60$/],
    [{ streamSeconds: 1.5 }, /^--stream-seconds "1.5" must be a positive whole number/],
    [
      { streamSeconds: 10, telemetryIntervalS: 0 },
      /^--telemetry-interval "0" must be a number of seconds ≥ 0.001/,
    ],
    [
      { streamSeconds: 10, healthIntervalS: -1 },
      /^--health-interval "-1" must be a number of seconds ≥ 0.001/,
    ],
    [
      { streamSeconds: 10, readingsPerMessage: 0 },
      /^--readings-per-message "0" must be a whole number from 1 to 100/,
    ],
    [
      { streamSeconds: 10, profiles: ['1.0.0=flaky', '1.0.0=healthy'] },
      /^--profile firmware 1.0.0 is given two profiles/,
    ],
    [{ streamSeconds: 10, profiles: ['=flaky'] }, /^--profile "=flaky" is not <firmware>=<profile>/],
  ])('%j is bad usage naming the flag and the fix', (given, message) => {
    const run = () => checkStreamFlags({ ...base, ...given });
    expect(run).toThrow(UsageError);
    expect(run).toThrow(message);
  });

  test('good streaming flags pass, and become the simulator settings in milliseconds', () => {
    const opts: SimOptions = {
      ...base,
      streamSeconds: 90,
      telemetryIntervalS: 0.5,
      readingsPerMessage: 12,
      healthIntervalS: 60,
      profiles: ['1.1.0-rc1=crash-looping', '1.0.0=healthy'],
      seed: 's1',
    };
    expect(() => checkStreamFlags(opts)).not.toThrow();
    const rules = { telemetry: 'fleet_telemetry', health: 'fleet_health' };
    expect(simStream(opts, ctx({ telemetryRules: rules }))).toEqual({
      durationMs: 90_000,
      readingIntervalMs: 500,
      readingsPerMessage: 12,
      healthIntervalMs: 60_000,
      delivery: 'basicIngest',
      rules,
      profiles: { '1.1.0-rc1': 'crash-looping', '1.0.0': 'healthy' },
      seed: 's1',
    });
    expect(simStream({ ...base, streamSeconds: 5, direct: true }, ctx({}))).toEqual({
      durationMs: 5_000,
      readingIntervalMs: 10_000,
      readingsPerMessage: 6,
      healthIntervalMs: 300_000,
      delivery: 'direct',
      profiles: {},
    });
    expect(simStream(base, ctx())).toBeUndefined();
  });

  test('Basic Ingest without the rule names names every way to give them, and --direct', () => {
    expect(() => simStream({ ...base, streamSeconds: 5 }, ctx())).toThrow(
      `streaming over Basic Ingest needs the telemetry rule names: pass --telemetry-rules '{"telemetry":"fleet_telemetry","health":"fleet_health"}', set FLEET_TELEMETRY_RULES, deploy the stack with output TelemetryRules, or publish to the direct topics with --direct`,
    );
  });

  test.each([
    [{ template: 'a', claimClientIdPrefix: 'p-', streamSeconds: 5 }, ['topicPrefix', 'telemetryRules']],
    [{ template: 'a', claimClientIdPrefix: 'p-', streamSeconds: 5, direct: true }, ['topicPrefix']],
    [{ streamSeconds: 5 }, ['provisioningTemplates', 'topicPrefix', 'telemetryRules']],
  ])('streaming %j needs %j', (opts, needs) => {
    expect(simNeeds(opts)).toEqual(needs);
  });
});

describe('consoleSink', () => {
  const stream = (isTTY: boolean) =>
    Object.assign(new PassThrough(), { isTTY }) as unknown as NodeJS.WriteStream;

  test('no progress bar when stderr is not a TTY', () => {
    const stderr = stream(false);
    const chunks: string[] = [];
    (stderr as unknown as PassThrough).on('data', (c) => chunks.push(String(c)));
    const sink = consoleSink({ stderr, stdout: stream(false), progressThreshold: 1 });
    const bar = sink.progress('importing', 1000);
    bar.update(500);
    bar.stop();
    expect(chunks.join('')).toBe('');
  });

  test('a progress bar on a TTY stderr for large jobs only', () => {
    const stderr = stream(true);
    const chunks: string[] = [];
    (stderr as unknown as PassThrough).on('data', (c) => chunks.push(String(c)));
    const sink = consoleSink({ stderr, stdout: stream(false), progressThreshold: 500 });
    sink.progress('small', 10).stop();
    expect(chunks.join('')).toBe('');
    const bar = sink.progress('importing', 1000);
    bar.update(1000);
    bar.stop();
    expect(chunks.join('')).toMatch(/importing/);
  });

  test('info/json go to stdout, warn to stderr', () => {
    const stdout = stream(false);
    const stderr = stream(false);
    const out: string[] = [];
    const err: string[] = [];
    (stdout as unknown as PassThrough).on('data', (c) => out.push(String(c)));
    (stderr as unknown as PassThrough).on('data', (c) => err.push(String(c)));
    const sink = consoleSink({ stdout, stderr });
    sink.info('hello');
    sink.json({ a: 1 });
    sink.warn('careful');
    expect(out.join('')).toBe('hello\n{\n  "a": 1\n}\n');
    expect(err.join('')).toBe('careful\n');
  });
});

describe('fleet sim warns of profiles that cannot show within the run', () => {
  test('crash-looping needs more than its crash interval, flaky more than half its drop interval', () => {
    expect(profileWarnings({ '1.0.0': 'crash-looping' }, 10)).toEqual([
      '--profile 1.0.0=crash-looping: nothing will show in 10 s (the first crash comes about 20 s after a boot); use --stream-seconds 60 or more',
    ]);
    expect(profileWarnings({ '1.0.0': 'flaky' }, 5)[0]).toMatch(/first link drop comes about 8 s/);
    expect(profileWarnings({ '1.0.0': 'crash-looping', '1.0.1': 'flaky', '1.0.2': 'healthy' }, 60)).toEqual(
      [],
    );
  });
});
