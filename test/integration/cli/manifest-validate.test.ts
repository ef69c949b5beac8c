/**
 * `fleet manifest validate` as an operator runs it on a fresh machine: the real entry point, with
 * no AWS region, credentials, endpoint or stack in its environment.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_SERIAL_PATTERN } from '../../../core/model';

const root = join(__dirname, '..', '..', '..');
const tsx = join(root, 'node_modules', '.bin', 'tsx');
let home: string;

beforeAll(() => {
  home = mkdtempSync(join(tmpdir(), 'fleet-offline-'));
});
afterAll(() => {
  rmSync(home, { recursive: true, force: true });
});

/** Only PATH and an empty HOME: no AWS_* variable, no ~/.aws, no FLEET_* variable. */
function fleet(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(tsx, [join(root, 'bin', 'fleet.ts'), ...args], {
    cwd: root,
    encoding: 'utf8',
    env: { PATH: process.env.PATH, HOME: home },
    timeout: 60_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('the example manifest validates clean (exit 0), saying which serial pattern it used', () => {
  const r = fleet(['manifest', 'validate', 'examples/manifest.csv']);
  expect(r.stdout).toMatch(/^examples\/manifest\.csv: (\d+) row\(s\), \1 valid, 0 invalid\n$/);
  expect(r.stderr).toBe(
    `serial pattern: default ${DEFAULT_SERIAL_PATTERN}; pass --serial-pattern (or set FLEET_SERIAL_PATTERN) to use your stack's (stack output SerialPattern)\n`,
  );
  expect(r.status).toBe(0);
});

test('bad rows are listed with their line numbers and the fix; exit 1', () => {
  const file = join(home, 'units.csv');
  writeFileSync(
    file,
    [
      'serial,lot,hwRev,factoryFirmware',
      'SN-0001,L1,A,1.0.0',
      'bad serial,L1,A,1.0.0',
      '# a comment line',
      'SN-0003,L1,A,v1',
      'SN-0001,L1,A,1.0.0',
      '',
    ].join('\n'),
  );
  const r = fleet(['manifest', 'validate', file, '--serial-pattern', DEFAULT_SERIAL_PATTERN]);
  const lines = r.stdout.trimEnd().split('\n');
  expect(lines.slice(0, -1).map((l) => /^line (\d+) \(serial [^)]+\): .+; .+/.exec(l)?.[1])).toEqual([
    '3',
    '5',
    '6',
  ]);
  expect(lines.at(-1)).toBe(`${file}: 4 row(s), 1 valid, 3 invalid (3 problem(s))`);
  expect(r.stderr).toBe(''); // a pattern was given: no note
  expect(r.status).toBe(1);
});

test('a missing file: exit 2, naming the path and the fix', () => {
  const r = fleet(['manifest', 'validate', join(home, 'nope.csv')]);
  expect(r.stderr).toBe(
    `error: cannot read manifest ${join(home, 'nope.csv')}: no such file; check the path\n`,
  );
  expect(r.status).toBe(2);
});
