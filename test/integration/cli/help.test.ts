/** The real entry point as a child process: help lists every command, usage errors exit 2. */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

const root = join(__dirname, '..', '..', '..');
const tsx = join(root, 'node_modules', '.bin', 'tsx');

function fleet(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(tsx, [join(root, 'bin', 'fleet.ts'), ...args], {
    cwd: root,
    encoding: 'utf8',
    env: { ...process.env, FLEET_DEVICES_TABLE: '', FLEET_LOTS_TABLE: '', FLEET_EVENTS_TABLE: '' },
    timeout: 60_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('fleet --help lists every command, and usage errors exit with 2 and no stack trace', () => {
  const help = fleet(['--help']);
  expect(help.status).toBe(0);
  for (const command of [
    'fleet manifest import <file>',
    'fleet lot create <lot>',
    'fleet lot hold <lot>',
    'fleet lot release <lot>',
    'fleet lot list',
    'fleet claim create',
    'fleet claim revoke',
    'fleet enrollment list',
    'fleet device show <serial>',
    'fleet device reset <serial>',
    'fleet sim',
  ]) {
    expect(help.stdout).toContain(command);
  }
  expect(help.stdout).toContain('Examples:');

  const bad = fleet(['enrollment', 'list', '--limit', 'many']);
  expect(bad.status).toBe(2);
  expect(bad.stderr).toMatch(/option '--limit <n>' argument 'many' is invalid\. use a positive whole number/);
  expect(bad.stderr).not.toMatch(/\n\s+at /);
});
