/**
 * Input files of the `fleet` commands. A missing or unreadable file is a usage error that names
 * the file, what it is for and the fix; commands check their files before resolving any
 * resource, so a typo in a path never hides behind an AWS error.
 */
import { constants } from 'node:fs';
import { access, readFile, stat } from 'node:fs/promises';
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
