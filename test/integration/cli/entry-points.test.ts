/**
 * The real entry points (`fleet`, `npm run bench`) as child processes, as an operator meets them:
 * a reader that goes away early, help, bad arguments on a machine without AWS setup, and an
 * AWS_PROFILE that does not exist. Each answer is one line (or the help) and the exit code
 * convention, never a stack trace.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EXIT_CODES } from '../../../cli/errors';

const root = join(__dirname, '..', '..', '..');
const tsx = join(root, 'node_modules', '.bin', 'tsx');

jest.setTimeout(60_000);

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'fleet-entry-'));
  writeFileSync(join(dir, 'config'), '[default]\nregion = eu-west-1\n\n[profile ops]\nregion = eu-west-1\n');
  writeFileSync(join(dir, 'credentials'), '[ci]\naws_access_key_id = AKIDEXAMPLE\n');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** An environment without AWS region, profile, credentials or fleet names; `extra` on top. */
function offlineEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    AWS_CONFIG_FILE: join(dir, 'none'),
    AWS_SHARED_CREDENTIALS_FILE: join(dir, 'none'),
    // The SDK's last credential source is the EC2 metadata service: never ask it (no network).
    AWS_EC2_METADATA_DISABLED: 'true',
    ...extra,
  };
  for (const name of Object.keys(env)) {
    if (name in extra) continue;
    if (
      /^(AWS_(REGION|DEFAULT_REGION|PROFILE|ACCESS_KEY_ID|SECRET_ACCESS_KEY|SESSION_TOKEN))$|^FLEET_/.test(
        name,
      )
    )
      delete env[name];
  }
  return env;
}

function run(script: string, args: string[], env = offlineEnv()) {
  const r = spawnSync(tsx, [join(root, script), ...args], {
    cwd: root,
    encoding: 'utf8',
    env,
    timeout: 60_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('fleet --help into a reader that is gone (| head -1): exits 0 quietly, no EPIPE stack', async () => {
  const child = spawn(tsx, [join(root, 'bin', 'fleet.ts'), '--help'], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  // The reader closes before the help is written: the write fails with EPIPE.
  child.stdout.destroy();
  let stderr = '';
  child.stderr.on('data', (c) => (stderr += String(c)));
  const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
  expect({ code, stderr }).toEqual({ code: EXIT_CODES.ok, stderr: '' });
});

describe('npm run bench', () => {
  test('--help prints a usage line listing the benchmarks and exits 0', () => {
    const r = run('bench/run.ts', ['--help']);
    expect(r.code).toBe(EXIT_CODES.ok);
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/^usage: npm run bench \[-- NAME\]\n/);
    expect(r.stdout).toContain(
      'benchmarks: broker, bundles, enrollment, health-consumer, hook, lab-scale, telemetry-pipeline',
    );
  });

  test('an unknown benchmark name: one line naming the benchmarks, exit 2', () => {
    const r = run('bench/run.ts', ['nosuch']);
    expect(r.code).toBe(EXIT_CODES.usage);
    expect(r.stderr).toBe(
      'bench: no benchmark matches "nosuch"; use one of broker, bundles, enrollment, health-consumer, hook, lab-scale, telemetry-pipeline, or none to run all\n',
    );
    expect(r.stdout).toBe('');
  });
});

describe('arguments are checked before any AWS setup', () => {
  test('enrollment list --since banana without a region reports --since, not the region', () => {
    const r = run('bin/fleet.ts', ['enrollment', 'list', '--since', 'banana']);
    expect(r.code).toBe(EXIT_CODES.usage);
    expect(r.stderr).toBe(
      'error: --since "banana" is not a time; use an ISO time (2026-07-01T08:00:00Z), a date (2026-07-01, UTC) or a duration before now (30m, 24h, 7d, 2w)\n',
    );
  });

  test('lot hold with a bad lot name without a region reports the lot name', () => {
    const r = run('bin/fleet.ts', ['lot', 'hold', 'bad lot', '--reason', 'x']);
    expect(r.code).toBe(EXIT_CODES.usage);
    expect(r.stderr).toMatch(/^error: lot "bad lot" is invalid; use 1-48 characters/);
  });
});

describe('AWS_PROFILE naming a profile that does not exist', () => {
  test('the error names the profile and where it was looked for, with the profiles that exist', () => {
    const r = run(
      'bin/fleet.ts',
      ['lot', 'list'],
      offlineEnv({
        AWS_PROFILE: 'nosuch',
        AWS_CONFIG_FILE: join(dir, 'config'),
        AWS_SHARED_CREDENTIALS_FILE: join(dir, 'credentials'),
      }),
    );
    expect(r.code).toBe(EXIT_CODES.usage);
    expect(r.stderr.split('\n')[0]).toBe(
      `error: AWS profile nosuch is not in ${join(dir, 'config')} or ${join(dir, 'credentials')}; ` +
        'set AWS_PROFILE to one that is (default, ops, ci), create it ("aws configure --profile nosuch" or ' +
        '"aws configure sso --profile nosuch"), or unset AWS_PROFILE; it is needed to read lotsTable from the outputs of stack IotFleetStack, or give them directly:',
    );
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  test('an existing profile keeps the SDK-based message', () => {
    const r = run(
      'bin/fleet.ts',
      ['lot', 'list'],
      offlineEnv({
        AWS_PROFILE: 'ops',
        AWS_CONFIG_FILE: join(dir, 'config'),
        AWS_SHARED_CREDENTIALS_FILE: join(dir, 'credentials'),
        // Were a request ever sent, nothing listens there: the credentials are missing before.
        AWS_ENDPOINT_URL_CLOUDFORMATION: 'http://127.0.0.1:9',
      }),
    );
    expect(r.code).toBe(EXIT_CODES.usage);
    expect(r.stderr).toMatch(/^error: no AWS credentials: set a profile with AWS_PROFILE/);
  });
});
