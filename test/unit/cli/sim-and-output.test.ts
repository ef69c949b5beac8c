import { PassThrough } from 'node:stream';
import { sim } from '../../../cli/commands/sim';
import { createContext, FleetResources } from '../../../cli/context';
import { UsageError } from '../../../cli/errors';
import { consoleSink, memorySink } from '../../../cli/output';

const base = { endpoint: 'localhost:8883', claimCert: 'c.pem', claimKey: 'k.pem', ca: 'ca.pem' };
const TEMPLATES = [
  { templateName: 'a', claimPolicyName: 'p', thingTypeName: 't', claimClientIdPrefix: 'prov-' },
  { templateName: 'b', claimPolicyName: 'p', thingTypeName: 't', claimClientIdPrefix: 'prov-' },
];
const ctx = (resources: FleetResources = { provisioningTemplates: TEMPLATES, topicPrefix: 'fleet' }) =>
  createContext({ resources, out: memorySink() });

describe('fleet sim argument checks (before any connection)', () => {
  test.each([
    [{ ...base, endpoint: '' }, /needs --endpoint/],
    [{ ...base, ca: '' }, /needs --ca/],
    [
      { ...base, template: 'a', serials: ['SN-1'], manifest: 'm.csv' },
      /only one of --serial, --manifest and --identities/,
    ],
    [{ ...base, template: 'a', devices: 0 }, /--devices "0" must be a positive whole number/],
    [{ ...base, template: 'a', maxAttempts: 0 }, /--max-attempts "0" must be a positive whole number/],
    [{ ...base }, /choose one with --template/],
    [{ ...base, template: 'zzz' }, /not one of the stack's provisioning templates/],
    [{ ...base, template: 'a', manifest: '/nonexistent.csv' }, /cannot read manifest \/nonexistent.csv/],
  ])('%j', async (opts, message) => {
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
