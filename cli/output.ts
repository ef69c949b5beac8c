/**
 * Output sink of the `fleet` commands. Commands never write to the console directly: they call
 * the sink on their context, so the lab can run them in-process and capture what they print.
 */
import { SingleBar } from 'cli-progress';

export interface Progress {
  /** Set the number of units done. */
  update(done: number): void;
  stop(): void;
}

export interface OutputSink {
  /** A result line (stdout). */
  info(line: string): void;
  /** A warning or diagnostic line (stderr). */
  warn(line: string): void;
  /** Machine-readable result (stdout), for `--json`. */
  json(value: unknown): void;
  /** A progress indicator for `total` units; a no-op unless the sink is interactive. */
  progress(label: string, total: number): Progress;
}

const NO_PROGRESS: Progress = { update: () => undefined, stop: () => undefined };

export interface ConsoleSinkOptions {
  stdout?: NodeJS.WriteStream;
  stderr?: NodeJS.WriteStream;
  /** Show progress bars only at or above this many units. @default 500 */
  progressThreshold?: number;
}

/** Console sink: progress bars on stderr, and only when stderr is a TTY. */
export function consoleSink(options: ConsoleSinkOptions = {}): OutputSink {
  const stdout = options.stdout ?? process.stdout;
  const stderr = options.stderr ?? process.stderr;
  const threshold = options.progressThreshold ?? 500;
  return {
    info: (line) => void stdout.write(`${line}\n`),
    warn: (line) => void stderr.write(`${line}\n`),
    json: (value) => void stdout.write(`${JSON.stringify(value, null, 2)}\n`),
    progress(label, total) {
      if (!stderr.isTTY || total < threshold) return NO_PROGRESS;
      const bar = new SingleBar({
        stream: stderr,
        format: `${label} [{bar}] {percentage}% | {value}/{total}`,
        hideCursor: true,
        clearOnComplete: true,
      });
      bar.start(total, 0);
      return { update: (done) => bar.update(done), stop: () => bar.stop() };
    },
  };
}

/** In-memory sink for tests and the in-process lab. */
export interface MemorySink extends OutputSink {
  lines: string[];
  warnings: string[];
  values: unknown[];
}

export function memorySink(): MemorySink {
  const sink: MemorySink = {
    lines: [],
    warnings: [],
    values: [],
    info: (line) => void sink.lines.push(line),
    warn: (line) => void sink.warnings.push(line),
    json: (value) => void sink.values.push(value),
    progress: () => NO_PROGRESS,
  };
  return sink;
}

/** Render rows as an aligned text table. */
export function formatTable(headers: readonly string[], rows: readonly (readonly string[])[]): string[] {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const fmt = (cells: readonly string[]): string =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i])))
      .join('  ')
      .trimEnd();
  return [fmt(headers), fmt(widths.map((w) => '-'.repeat(w))), ...rows.map(fmt)];
}
