/**
 * Test helper: bundle a Lambda entry point with the construct's own esbuild options
 * (`LAMBDA_ESBUILD_OPTIONS`: platform node, target node20, CommonJS, ES module builds of the SDK,
 * AWS SDK bundled, minified) into a temp directory, then load the bundle with a given
 * environment. Each load is a fresh module instance (its module-scope clients read the
 * environment given here), so one test file can run several configurations.
 */
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildSync, type BuildOptions } from 'esbuild';
import { LAMBDA_ESBUILD_OPTIONS } from '../../lib/common/fleet-function';

const REPO_ROOT = join(__dirname, '..', '..');
const built = new Map<string, string>();
const dirs: string[] = [];
let loads = 0;

/** The construct's esbuild options for `entry` (repo-relative) written to `outfile`. */
export function bundleOptions(entry: string, outfile: string): BuildOptions {
  return {
    ...LAMBDA_ESBUILD_OPTIONS,
    mainFields: [...LAMBDA_ESBUILD_OPTIONS.mainFields],
    entryPoints: [join(REPO_ROOT, entry)],
    outfile,
    logLevel: 'error',
  };
}

/** Bundle `entry` (repo-relative) once per process; returns the bundle's path (map beside it). */
export function bundleEntry(entry: string): string {
  const cached = built.get(entry);
  if (cached) return cached;
  const dir = mkdtempSync(join(tmpdir(), 'fleet-bundle-'));
  dirs.push(dir);
  const outfile = join(dir, 'index.js');
  buildSync(bundleOptions(entry, outfile));
  built.set(entry, outfile);
  return outfile;
}

/**
 * Load a fresh instance of the bundled `entry` with `env` applied to process.env while its
 * module scope runs (and left applied, since SDK clients resolve some settings lazily).
 */
export function loadBundledHandler<H = (event: unknown) => Promise<unknown>>(
  entry: string,
  env: Record<string, string>,
): H {
  const file = bundleEntry(entry);
  // A copy under a new name is a new module for every loader (node, tsx, jest's registry).
  const copy = file.replace(/\.js$/, `-${++loads}.js`);
  copyFileSync(file, copy);
  Object.assign(process.env, env);
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return (require(copy) as { handler: H }).handler;
}

/** Remove the temp directories (call from afterAll). */
export function cleanBundles(): void {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  built.clear();
}
