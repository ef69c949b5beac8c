/**
 * Expected CLI errors and the exit-code convention of `fleet`. An error's message names the
 * problem and the fix; the entry point prints the message alone (no stack trace) and exits with
 * {@link CliError.exitCode}.
 */

/**
 * The exit codes of `fleet` (and of the lab), one convention for every command:
 * - `ok` (0): the command did what was asked;
 * - `failed` (1): a check failed (invalid manifest rows, conflicts), a unit was denied or gave
 *   up, or an AWS call failed;
 * - `usage` (2): bad usage: an unknown option, a missing or invalid argument, an unreadable
 *   input file, a resource name that cannot be resolved, no AWS region or credentials.
 */
export const EXIT_CODES = { ok: 0, failed: 1, usage: 2 } as const;
export type ExitCode = (typeof EXIT_CODES)[keyof typeof EXIT_CODES];

/** The convention as operator text (for `fleet --help`). */
export function describeExitCodes(): string {
  return [
    'Exit codes:',
    `  ${EXIT_CODES.ok}  success`,
    `  ${EXIT_CODES.failed}  a check failed (invalid rows, conflicts), a unit was denied or gave up, or an AWS call failed`,
    `  ${EXIT_CODES.usage}  bad usage: unknown option, missing or invalid argument, unreadable input file,`,
    '     unresolved resource name, no AWS region or credentials',
  ].join('\n');
}

/** A failure of the operation (AWS call refused, resource missing, nothing imported). Exit 1. */
export class CliError extends Error {
  override readonly name: string = 'CliError';
  readonly exitCode: number = EXIT_CODES.failed;
}

/** A bad argument, flag, input file or setup: the operator must change the command. Exit 2. */
export class UsageError extends CliError {
  override readonly name: string = 'UsageError';
  override readonly exitCode: number = EXIT_CODES.usage;
}

/**
 * The fix for an AWS SDK error caused by the machine's setup (no region, no or expired
 * credentials), as a sentence that starts with it; undefined for any other error.
 */
export function awsSetupProblem(err: unknown): string | undefined {
  if (!(err instanceof Error)) return undefined;
  const { name, message } = err;
  if (/Region is missing/i.test(message) || name === 'RegionMissingError') {
    return 'no AWS region: set AWS_REGION or AWS_PROFILE (a profile with a region), or pass --region';
  }
  if (name === 'CredentialsProviderError' || /Could not load credentials/i.test(message)) {
    return (
      'no AWS credentials: set a profile with AWS_PROFILE (after "aws configure" or "aws sso login"), ' +
      'or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY'
    );
  }
  if (name === 'ExpiredTokenException' || name === 'ExpiredToken' || /token.*expired/i.test(message)) {
    return 'the AWS credentials have expired: refresh them ("aws sso login", or new session keys)';
  }
  return undefined;
}
