/**
 * Every Lambda entry point (`lambda/**\/*.handler.ts`), bundled with the construct's own esbuild
 * options, stays within MAX_BUNDLE_BYTES minified: cold starts are paid in enrollment bursts
 * and when the telemetry stream scales out, and the hook answers within a 5 s budget. Sizes are deterministic, so this is no timed test.
 */
import { readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { buildSync } from 'esbuild';
import { MAX_BUNDLE_BYTES, REPO_ROOT } from '../../../lib/common/fleet-function';
import { bundleOptions } from '../../helpers/bundle';

function handlerEntries(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return handlerEntries(path);
    return e.name.endsWith('.handler.ts') ? [relative(REPO_ROOT, path)] : [];
  });
}

const entries = handlerEntries(join(REPO_ROOT, 'lambda'));

test('the handlers are found', () => {
  expect(entries).toEqual(
    expect.arrayContaining([
      'lambda/provisioning/pre-provisioning-hook.handler.ts',
      'lambda/provisioning/presence.handler.ts',
      'lambda/telemetry/health-consumer.handler.ts',
    ]),
  );
});

test.each(entries)('%s: index.js within the bundle budget, map without sources', (entry) => {
  const result = buildSync({
    ...bundleOptions(entry, join(REPO_ROOT, '.bundle-size', 'index.js')),
    write: false,
  });
  const js = result.outputFiles.find((f) => f.path.endsWith('index.js'));
  const map = result.outputFiles.find((f) => f.path.endsWith('index.js.map'));
  expect(js).toBeDefined();
  expect(map).toBeDefined();
  const kib = (n: number): string => `${(n / 1024).toFixed(1)} KiB`;
  if (js!.contents.byteLength > MAX_BUNDLE_BYTES) {
    throw new Error(
      `${entry} bundles to ${kib(js!.contents.byteLength)}, over the ${kib(MAX_BUNDLE_BYTES)} budget: ` +
        'run `npm run bench -- bundles` to see the largest inputs, and import less (docs/performance.md)',
    );
  }
  expect(js!.contents.byteLength).toBeLessThanOrEqual(MAX_BUNDLE_BYTES);
  expect((JSON.parse(map!.text) as { sourcesContent?: unknown }).sourcesContent).toBeUndefined();
});
