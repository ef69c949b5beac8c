/**
 * Input files and output paths of the `fleet` commands (and the lab). A missing or unreadable
 * file, or an output path that cannot be written, is a usage error that names the path, what it
 * is for and the fix; commands check them before resolving any resource, so a typo in a path
 * never hides behind an AWS error, and never shows up only after the work is done.
 */
import { accessSync, constants, statSync } from 'node:fs';
import { access, readFile, stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { UsageError } from './errors';

/** A file a command reads: its path, what it is ("manifest", "claim key") and the flag naming it. */
export interface InputFile {
  path: string;
  what: string;
  /** The flag or argument that gives the path (shown in the fix). */
  flag?: string;
}

function problem(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return 'no such file';
  if (code === 'EACCES' || code === 'EPERM') return 'permission denied';
  if (code === 'EISDIR') return 'it is a directory';
  return (err as Error).message;
}

function unreadable(file: InputFile, err: unknown): UsageError {
  const fix = file.flag ? `check the path given to ${file.flag}` : 'check the path';
  return new UsageError(`cannot read ${file.what} ${file.path}: ${problem(err)}; ${fix}`);
}

/** Throw a {@link UsageError} naming the first file that cannot be read. */
export async function assertReadable(files: readonly InputFile[]): Promise<void> {
  for (const file of files) {
    try {
      if ((await stat(file.path)).isDirectory())
        throw Object.assign(new Error('directory'), { code: 'EISDIR' });
      await access(file.path, constants.R_OK);
    } catch (err) {
      throw unreadable(file, err);
    }
  }
}

/** Read a text file, or throw a {@link UsageError} naming it and the fix. */
export async function readInputFile(file: InputFile): Promise<string> {
  try {
    return await readFile(file.path, 'utf8');
  } catch (err) {
    throw unreadable(file, err);
  }
}

/** A path a command writes to: the path, the flag that gives it and an example of a good value. */
export interface OutputPath {
  path: string;
  /** The flag that gives the path, e.g. `--out`. */
  flag: string;
  /** A usable value for the fix, e.g. `./claims/L2026-07`. */
  example: string;
}

function isWritable(path: string): boolean {
  try {
    accessSync(path, constants.W_OK | constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Why a directory cannot be created at `path` (or used, if it exists): a part of the path is a
 * file, or the nearest existing directory is not writable; undefined when it can.
 */
function directoryProblem(path: string, nameSelf = false): string | undefined {
  const it = (p: string): string => (p === path && !nameSelf ? 'it' : p);
  let existing = path;
  for (;;) {
    try {
      const info = statSync(existing);
      if (!info.isDirectory()) return `${it(existing)} is a file, not a directory`;
      break;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ENOTDIR') return problem(err);
      const parent = dirname(existing);
      if (parent === existing) return problem(err);
      existing = parent;
    }
  }
  if (isWritable(existing)) return undefined;
  return existing === path
    ? `${it(existing)} is not writable`
    : `${existing} is not writable, so it cannot be created`;
}

/**
 * Throw a {@link UsageError} unless `out.path` is a directory the command can create or write
 * into, naming the path and the fix. Creates nothing: a command checks its output before any AWS
 * call, so a refusal leaves nothing behind.
 */
export function assertWritableDirectory(out: OutputPath): void {
  const why = directoryProblem(resolve(out.path));
  if (why)
    throw new UsageError(
      `${out.flag} ${out.path} cannot be used as a directory: ${why}; pass a directory that can be created or written, e.g. ${out.flag} ${out.example}`,
    );
}

/**
 * Throw a {@link UsageError} unless `out.path` is a file the command can write (an existing
 * writable file, or a new one in a directory that can be created or written).
 */
export function assertWritableFile(out: OutputPath): void {
  const path = resolve(out.path);
  let why: string | undefined;
  try {
    const info = statSync(path);
    if (info.isDirectory()) why = 'it is a directory';
    else {
      try {
        accessSync(path, constants.W_OK);
      } catch {
        why = 'it is not writable';
      }
    }
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    why = code === 'ENOENT' || code === 'ENOTDIR' ? directoryProblem(dirname(path), true) : problem(err);
  }
  if (why)
    throw new UsageError(
      `${out.flag} ${out.path} cannot be written: ${why}; pass a file path in a writable directory, e.g. ${out.flag} ${out.example}`,
    );
}
