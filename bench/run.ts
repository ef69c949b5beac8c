/**
 * Benchmark runner (`npm run bench`): runs every `bench/*.bench.ts` in sequence. Each benchmark
 * exports `run(): Promise<BenchResult>`; its markdown replaces the section between
 * `<!-- bench:<id>:start -->` and `<!-- bench:<id>:end -->` in docs/performance.md (appended
 * when missing), so every benchmark owns its own section.
 *
 * `npm run bench -- hook` runs only the benchmarks whose name contains `hook`; `--help` lists them.
 * Exit codes as for `fleet`: 0 done, 1 a benchmark failed, 2 bad usage (an unknown name or option).
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

/** The benchmark files (`*.bench.ts`) of `dir`, sorted. */
export function benchFiles(dir = BENCH_DIR): string[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.bench.ts'))
    .sort();
}

const benchName = (file: string): string => file.replace(/\.bench\.ts$/, '');

/** The usage text, listing the benchmarks. */
export function usage(files: readonly string[]): string {
  return [
    'usage: npm run bench [-- NAME]',
    "  runs every benchmark, or those whose name contains NAME, and writes each one's section of",
    '  docs/performance.md',
    `  benchmarks: ${files.map(benchName).join(', ')}`,
  ].join('\n');
}

/** What the arguments ask for: the usage text, the files to run, or a usage error (one line). */
export type BenchCommand =
  { kind: 'help'; text: string } | { kind: 'run'; files: string[] } | { kind: 'usage'; message: string };

export function parseBenchArgs(argv: readonly string[], files: readonly string[]): BenchCommand {
  const names = files.map(benchName).join(', ');
  if (argv.includes('--help') || argv.includes('-h')) return { kind: 'help', text: usage(files) };
  const option = argv.find((a) => a.startsWith('-'));
  if (option) return { kind: 'usage', message: `unknown option ${option}; see npm run bench -- --help` };
  if (argv.length > 1)
    return {
      kind: 'usage',
      message: `give at most one benchmark name (got ${argv.join(' ')}); one of ${names}`,
    };
  const filter = argv[0];
  const chosen = files.filter((f) => !filter || benchName(f).includes(filter));
  if (chosen.length === 0)
    return {
      kind: 'usage',
      message: `no benchmark matches "${filter}"; use one of ${names}, or none to run all`,
    };
  return { kind: 'run', files: chosen };
}

async function runBenches(files: readonly string[]): Promise<void> {
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
  const command = parseBenchArgs(process.argv.slice(2), benchFiles());
  if (command.kind === 'help') {
    process.stdout.write(`${command.text}\n`);
    process.exit(0);
  } else if (command.kind === 'usage') {
    process.stderr.write(`bench: ${command.message}\n`);
    process.exit(2);
  } else {
    runBenches(command.files).then(
      () => process.exit(0),
      (err: unknown) => {
        console.error(err);
        process.exit(1);
      },
    );
  }
}
