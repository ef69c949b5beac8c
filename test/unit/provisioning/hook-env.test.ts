/**
 * The hook's environment parsers accept exactly what the stack can set: FLEET_HOOK_BUDGET_MS the
 * fleet config's `provisioning.templates[].hook.budgetMs` range, FLEET_UNLISTED_TRAIL_RETENTION_DAYS core/trail.ts's range.
 * A value outside fails at init with an EnvError naming the variable and the fix.
 */
import { EnvError, HOOK_BUDGET_MS } from '../../../core/env';
import { UNLISTED_RETENTION_DAYS } from '../../../core/trail';
import { resolveFleetConfig } from '../../../lib/config';
import { parseBudgetMs, parseRetentionDays } from '../../../lambda/provisioning/pre-provisioning-hook';

function accepts(parse: (text: string) => number, text: string): boolean {
  try {
    parse(text);
    return true;
  } catch (err) {
    expect(err).toBeInstanceOf(EnvError);
    return false;
  }
}

function configAccepts(budgetMs: number): boolean {
  try {
    resolveFleetConfig({ provisioning: { templates: [{ name: 'fleet-default', hook: { budgetMs } }] } });
    return true;
  } catch {
    return false;
  }
}

describe('FLEET_HOOK_BUDGET_MS', () => {
  test.each([99, 100, 101, 3500, 4499, 4500, 4501, 0, 5000, 10_000])(
    '%s ms: accepted exactly when the fleet config accepts hook.budgetMs',
    (ms) => {
      expect(accepts(parseBudgetMs, String(ms))).toBe(configAccepts(ms));
    },
  );

  test('the range is the config range, bounds included', () => {
    expect(configAccepts(3500)).toBe(true);
    expect(parseBudgetMs(String(HOOK_BUDGET_MS.min))).toBe(100);
    expect(parseBudgetMs(String(HOOK_BUDGET_MS.max))).toBe(4500);
    expect(configAccepts(HOOK_BUDGET_MS.min - 1)).toBe(false);
    expect(configAccepts(HOOK_BUDGET_MS.max + 1)).toBe(false);
  });

  test.each(['3500ms', '3500.5', '3.5e3', 'abc', '-200', '0x1f4', '', ' '])(
    '%j is refused naming the variable and the fix',
    (text) => {
      expect(() => parseBudgetMs(text)).toThrow(
        /FLEET_HOOK_BUDGET_MS ".*" is not a whole number of milliseconds between 100 and 4500; set provisioning\.templates\[\]\.hook\.budgetMs/,
      );
    },
  );
});

describe('FLEET_UNLISTED_TRAIL_RETENTION_DAYS', () => {
  test.each([
    [String(UNLISTED_RETENTION_DAYS.min), true],
    ['30', true],
    [String(UNLISTED_RETENTION_DAYS.max), true],
    [String(UNLISTED_RETENTION_DAYS.max + 1), false],
    ['36500', false],
    ['0', false],
    ['1.5', false],
  ])('%s: accepted %s', (text, ok) => {
    expect(accepts(parseRetentionDays, text)).toBe(ok);
  });

  test('the refusal names the range of core/trail.ts', () => {
    expect(() => parseRetentionDays('3651')).toThrow(
      /FLEET_UNLISTED_TRAIL_RETENTION_DAYS "3651" .* set it to 1-3650/,
    );
  });
});
