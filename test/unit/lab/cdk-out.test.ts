/**
 * When the lab re-synthesizes: the record of the context and input files beside manifest.json,
 * compared with what is asked now. The "CDK app" here is a small Node script that writes a
 * one-stack assembly, so no bundling happens.
 */
import { mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  cliContextArgs,
  ensureCloudAssembly,
  isStale,
  readSynthRecord,
  SynthError,
  SYNTH_RECORD_FILE,
} from '../../../lab/runtime/cdk-out';

const APP = `
const { mkdirSync, writeFileSync } = require('node:fs');
const { join } = require('node:path');
const context = JSON.parse(process.env.CDK_CONTEXT_JSON);
if (context.fail) {
  console.error('invalid fleet configuration (1 problem):');
  console.error('  - stage: "nope" is invalid; use one of dev, staging, prod');
  process.exit(1);
}
const out = process.env.CDK_OUTDIR;
mkdirSync(out, { recursive: true });
writeFileSync(join(out, 'S.template.json'), JSON.stringify({ Resources: {},
  Outputs: { Account: { Value: process.env.CDK_DEFAULT_ACCOUNT || 'agnostic' } } }));
writeFileSync(join(out, 'manifest.json'), JSON.stringify({ version: '48.0.0', artifacts: {
  S: { type: 'aws:cloudformation:stack',
       properties: { templateFile: 'S.template.json', stackName: 'Fleet', tags: { stage: context.stage || 'dev' } } } } }));
`;

describe('cdk.out staleness', () => {
  let project: string;
  let config: string;
  let cdkOut: string;

  beforeEach(() => {
    project = mkdtempSync(join(tmpdir(), 'lab-cdkout-'));
    writeFileSync(join(project, 'app.js'), APP);
    writeFileSync(join(project, 'cdk.json'), JSON.stringify({ app: 'node app.js', context: {} }));
    config = join(project, 'fleet.config.json');
    writeFileSync(config, JSON.stringify({ stage: 'prod' }));
    cdkOut = join(project, 'out');
  });
  afterEach(() => rmSync(project, { recursive: true, force: true }));

  /** No CDK_DEFAULT_* from the machine running the tests. */
  const agnostic: NodeJS.ProcessEnv = { PATH: process.env.PATH };
  const ensure = (context: Record<string, unknown>, inputFiles: string[] = [], env = agnostic) =>
    ensureCloudAssembly({ projectDir: project, cdkOut, context, inputFiles, env });

  test('a missing assembly is stale; after a synth it is fresh for the same request', async () => {
    expect(isStale(project, cdkOut)).toMatch(/manifest\.json is missing/);
    const first = await ensure({ config, stage: 'prod' }, [config]);
    expect(first.reason).toMatch(/missing/);
    expect(first.assembly.stacks.map((s) => [s.stackName, s.tags])).toEqual([['Fleet', { stage: 'prod' }]]);
    expect(readSynthRecord(cdkOut)).toMatchObject({
      context: { config, stage: 'prod' },
      inputFiles: { [config]: expect.stringMatching(/^[0-9a-f]{64}$/) },
    });
    expect(
      isStale(project, cdkOut, { context: { stage: 'prod', config }, inputFiles: [config], env: agnostic }),
    ).toBeUndefined();
    const second = await ensure({ config, stage: 'prod' }, [config]);
    expect(second).toMatchObject({ synthMs: 0, reason: undefined });
  });

  test('a changed config file re-synthesizes, though no source is newer', async () => {
    await ensure({ config }, [config]);
    writeFileSync(config, JSON.stringify({ stage: 'dev' }));
    expect(isStale(project, cdkOut, { context: { config }, inputFiles: [config], env: agnostic })).toBe(
      `${config} changed since the last synth`,
    );
  });

  test('another config, or none, re-synthesizes', async () => {
    await ensure({ config }, [config]);
    expect(isStale(project, cdkOut, { env: agnostic })).toMatch(
      /^the context changed \(was \{"config":".*"\}, now \{\}\)$/,
    );
    const other = join(project, 'other.json');
    writeFileSync(other, '{}');
    expect(
      isStale(project, cdkOut, { context: { config: other }, inputFiles: [other], env: agnostic }),
    ).toMatch(/^the context changed/);
  });

  test('an assembly synthesized outside the lab (no record, or a newer manifest) is stale', async () => {
    await ensure({});
    expect(isStale(project, cdkOut, { env: agnostic })).toBeUndefined();
    const later = new Date(Date.now() + 60_000);
    utimesSync(join(cdkOut, 'manifest.json'), later, later);
    expect(isStale(project, cdkOut, { env: agnostic })).toMatch(/synthesized again outside the lab/);
    rmSync(join(cdkOut, SYNTH_RECORD_FILE));
    expect(isStale(project, cdkOut, { env: agnostic })).toMatch(/has no record of the context/);
  });

  test('a source newer than the assembly is stale', async () => {
    await ensure({});
    writeFileSync(join(project, 'cdk.json'), readFileSync(join(project, 'cdk.json')));
    const later = new Date(Date.now() + 60_000);
    utimesSync(join(project, 'cdk.json'), later, later);
    expect(isStale(project, cdkOut, { env: agnostic })).toBe('cdk.json changed since the last synth');
  });

  test.each(['tsconfig.json', 'package.json'])(
    '%s newer than the assembly is stale (the bundler reads it)',
    async (file) => {
      writeFileSync(join(project, file), '{}');
      await ensure({});
      expect(isStale(project, cdkOut, { env: agnostic })).toBeUndefined();
      const later = new Date(Date.now() + 60_000);
      utimesSync(join(project, file), later, later);
      expect(isStale(project, cdkOut, { env: agnostic })).toBe(`${file} changed since the last synth`);
    },
  );

  test('the synth environment (account, region) is recorded; another one re-synthesizes', async () => {
    const env = { ...agnostic, CDK_DEFAULT_ACCOUNT: '111111111111', CDK_DEFAULT_REGION: 'eu-west-1' };
    const first = await ensure({}, [], env);
    expect(first.assembly.stacks[0].template.Outputs?.Account.Value).toBe('111111111111');
    expect(readSynthRecord(cdkOut)?.environment).toEqual({
      CDK_DEFAULT_ACCOUNT: '111111111111',
      CDK_DEFAULT_REGION: 'eu-west-1',
    });
    expect(isStale(project, cdkOut, { env })).toBeUndefined();
    expect(isStale(project, cdkOut, { env: { ...env, CDK_DEFAULT_REGION: 'us-east-1' } })).toBe(
      'the synth environment changed (was {"CDK_DEFAULT_ACCOUNT":"111111111111","CDK_DEFAULT_REGION":"eu-west-1"}, ' +
        'now {"CDK_DEFAULT_ACCOUNT":"111111111111","CDK_DEFAULT_REGION":"us-east-1"})',
    );
    expect(isStale(project, cdkOut, { env: agnostic })).toMatch(/^the synth environment changed/);
    const again = await ensure({}, [], agnostic);
    expect(again.reason).toMatch(/^the synth environment changed/);
    expect(again.assembly.stacks[0].template.Outputs?.Account.Value).toBe('agnostic');
  });

  test('the CLI mode passes strings as they are and other context values as JSON', () => {
    expect(
      cliContextArgs({ config: '/x/fleet.config.json', rings: { canary: 2 }, strict: true, n: 3 }),
    ).toEqual([
      '--context',
      'config=/x/fleet.config.json',
      '--context',
      'rings={"canary":2}',
      '--context',
      'strict=true',
      '--context',
      'n=3',
    ]);
  });

  test('a failing app is one line naming what it printed', async () => {
    const err = await ensure({ fail: true }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SynthError);
    const message = (err as Error).message;
    expect(message.split('\n')).toHaveLength(1);
    expect(message).toMatch(
      /^the CDK app \(node app\.js\) failed to synthesize: invalid fleet configuration \(1 problem\): - stage: "nope" is invalid; use one of dev, staging, prod$/,
    );
    expect(readSynthRecord(cdkOut)).toBeUndefined();
  });
});
