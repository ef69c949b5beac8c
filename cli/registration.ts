/**
 * What a command module needs to declare itself on the `fleet` command tree: the `run` wrapper
 * type (resolve the context, then call the command function) and small option parsers shared by
 * several commands. Each module under cli/commands exports one `register…(parent, run)`;
 * cli/program.ts composes them.
 */
import { Command, InvalidArgumentError } from 'commander';
import type { CliContext, ResourceKey } from './context';
import type { InputFile } from './files';

/** What a command needs before its function runs. */
export interface RunSpec {
  /** Resource names the command cannot run without (resolution fails naming each missing one). */
  needs?: readonly ResourceKey[];
  /** Names used when available from flags or environment (or from the stack if it is read anyway). */
  wants?: readonly ResourceKey[];
  /** Files the command reads: checked before any resource is resolved. */
  files?: readonly InputFile[];
  /**
   * Checks of the command's own arguments that need no AWS (values, paths, PEM files): run after
   * the files are found readable and before any region, credentials or stack is resolved, so a
   * bad argument is reported as itself and never hides behind a setup error. Throws a UsageError.
   */
  validate?: () => void | Promise<void>;
  /** Appended to a resolution failure, e.g. how to do the same without AWS. */
  hint?: string;
}

/** Resolves the context for `spec` and runs `fn`; a result with `exitCode` sets the exit code. */
export type RunCommand = (
  cmd: Command,
  spec: RunSpec,
  fn: (ctx: CliContext) => Promise<unknown>,
) => Promise<void>;

/** The registry tables, needed by most commands. */
export const TABLES: readonly ResourceKey[] = ['devicesTable', 'lotsTable', 'eventsTable'];

/** Commander parser for a positive whole number option. */
export function positiveInt(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || !Number.isInteger(n) || n < 1) {
    throw new InvalidArgumentError('use a positive whole number, e.g. 50');
  }
  return n;
}

/** Commander parser for a repeatable, comma-separated option. */
export function collect(value: string, previous: string[] = []): string[] {
  return [
    ...previous,
    ...value
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
  ];
}

/** An "Examples:" help block. */
export const examples = (lines: string[]): string =>
  `\nExamples:\n${lines.map((l) => `  $ ${l}`).join('\n')}\n`;
