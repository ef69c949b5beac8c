/**
 * `npm run lab` as an operator meets it on bad input: one line naming the problem and the fix,
 * and exit code 2 (bad usage), before anything is synthesized or started.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const projectDir = resolve(__dirname, '../..');
const tsx = join(projectDir, 'node_modules', '.bin', 'tsx');

function lab(...args: string[]) {
  const r = spawnSync(tsx, ['lab/main.ts', ...args], { cwd: projectDir, encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr.trim() };
}

jest.setTimeout(60_000);

describe('npm run lab: bad input gets one line and the exit code convention (2 usage, 1 check failed)', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'lab-cli-'));
    writeFileSync(join(dir, 'a-file'), 'not a directory');
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test('a --lab-dir under a regular file names the path and the fix', () => {
    const bad = join(dir, 'a-file', 'lab');
    const r = lab('--lab-dir', bad);
    expect(r.code).toBe(2);
    expect(r.stderr.split('\n')).toEqual([
      `lab: --lab-dir ${bad} cannot be used (ENOTDIR: a part of the path is a file, not a directory); pass a writable directory, e.g. --lab-dir .lab`,
    ]);
    expect(r.stdout).toBe('');
  });

  test.each([
    [
      'under a regular file',
      () => join(dir, 'a-file', 'report.json'),
      () => `${join(dir, 'a-file')} is a file, not a directory`,
    ],
    ['a directory', () => dir, () => 'it is a directory'],
  ])('a --report %s is refused before anything starts, one line', (_name, report, why) => {
    const r = lab('--lab-dir', join(dir, 'lab'), '--report', report());
    expect(r.code).toBe(2);
    expect(r.stderr.split('\n')).toEqual([
      `lab: --report ${report()} cannot be written: ${why()}; pass a file path in a writable directory, e.g. --report lab-report.json`,
    ]);
    expect(r.stdout).toBe('');
  });

  test('a --config that does not exist names the file and an example', () => {
    const r = lab('--lab-dir', join(dir, 'lab'), '--config', 'no-such.json');
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(
      `lab: --config no-such.json: no such file (${join(projectDir, 'no-such.json')}); give the path of a FleetConfig JSON file, e.g. --config examples/fleet.config.json`,
    );
  });

  test.each([
    [['--bogus'], "error: unknown option '--bogus'"],
    [
      ['--devices', '3'],
      "error: option '--devices <n>' argument '3' is invalid. --devices must be a whole number of at least 9",
    ],
    [
      ['--concurrency', 'many'],
      "error: option '--concurrency <c>' argument 'many' is invalid. use a positive whole number, e.g. 50",
    ],
    [
      ['--mqtt5-share', '1.5'],
      "error: option '--mqtt5-share <s>' argument '1.5' is invalid. --mqtt5-share must be a number from 0 (every unit on MQTT 3.1.1) to 1 (every unit on MQTT 5); use e.g. --mqtt5-share 0.5",
    ],
    [['--mqtt5-share', 'half'], "error: option '--mqtt5-share <s>' argument 'half' is invalid."],
  ])('%j is a usage error', (args, message) => {
    const r = lab(...args);
    expect(r.code).toBe(2);
    expect(r.stderr.split('\n')[0]).toContain(message);
    expect(r.stderr.split('\n')).toEqual([expect.any(String), '(npm run lab -- --help lists every option)']);
  });

  test('a config the app rejects fails the start with one line naming the problem, exit 1', () => {
    const config = join(dir, 'bad.config.json');
    writeFileSync(config, JSON.stringify({ stage: 'nope' }));
    const r = lab('--lab-dir', join(dir, 'lab'), '--config', config, '--quiet');
    expect(r.code).toBe(1);
    expect(r.stderr.split('\n')).toEqual([
      expect.stringMatching(
        new RegExp(
          `^lab: could not start: the CDK app \\(.*\\) failed to synthesize: invalid fleet configuration.*stage: "nope" is invalid; use one of dev, staging, prod.*; fix the config ${config.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} and run again$`,
        ),
      ),
    ]);
  });

  test('--help exits 0', () => {
    const r = lab('--help');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('--config <file>');
  });
});
