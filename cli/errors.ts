/**
 * Expected CLI errors. Their message names the problem and the fix; the entry point prints the
 * message alone (no stack trace) and exits with {@link CliError.exitCode}.
 */

/** A failure of the operation (AWS call refused, resource missing, nothing imported). Exit 1. */
export class CliError extends Error {
  override readonly name: string = 'CliError';
  readonly exitCode: number = 1;
}

/** A bad argument, flag or input file: the operator must change the command. Exit 2. */
export class UsageError extends CliError {
  override readonly name: string = 'UsageError';
  override readonly exitCode: number = 2;
}
