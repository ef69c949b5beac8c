/**
 * Benchmark runner (`npm run bench`): runs every `bench/*.bench.ts` in sequence. Each benchmark
 * exports `run(): Promise<BenchResult>`; its markdown replaces the section between
 * `<!-- bench:<id>:start -->` and `<!-- bench:<id>:end -->` in docs/performance.md (appended
 * when missing), so every benchmark owns its own section.
 *
 * `npm run bench -- hook` runs only the benchmarks whose file name contains `hook`.
 */
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface BenchResult {
  /** Section id in docs/performance.md. */
  id: string;
  /** Markdown body of the section (without the markers). */
  markdown: string;
}

const BENCH_DIR = __dirname;
const DOC = join(BENCH_DIR, '..', 'docs', 'performance.md');

const HEADER = `# Performance

Figures written by \`npm run bench\`. Each benchmark owns the section between its markers and
rewrites it on every run; the text around the sections is kept. Ratios compare measurements
taken in the same run on the same machine, so they travel better than absolute figures.
`;

export function writeSection(doc: string, id: string, markdown: string): string {
  const start = `<!-- bench:${id}:start -->`;
  const end = `<!-- bench:${id}:end -->`;
  const block = `${start}\n${markdown.trim()}\n${end}`;
  const i = doc.indexOf(start);
  const j = doc.indexOf(end);
  if (i >= 0 && j > i) return doc.slice(0, i) + block + doc.slice(j + end.length);
  return `${doc.trimEnd()}\n\n${block}\n`;
}

async function main(): Promise<void> {
  const filter = process.argv[2];
  const files = readdirSync(BENCH_DIR)
    .filter((f) => f.endsWith('.bench.ts'))
    .filter((f) => !filter || f.includes(filter))
    .sort();
  if (files.length === 0) throw new Error(`no bench/*.bench.ts matches "${filter ?? ''}"`);
  for (const file of files) {
    console.log(`\n=== ${file} ===`);
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const mod = require(join(BENCH_DIR, file)) as { run(): Promise<BenchResult> };
    const result = await mod.run();
    const doc = existsSync(DOC) ? readFileSync(DOC, 'utf8') : HEADER;
    writeFileSync(DOC, writeSection(doc, result.id, result.markdown));
    console.log(`\nwrote section "${result.id}" of docs/performance.md`);
  }
}

if (require.main === module) {
  main().then(
    () => process.exit(0),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}
