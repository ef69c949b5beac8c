/**
 * Expected CLI errors and the exit-code convention of `fleet`. An error's message names the
 * problem and the fix; the entry point prints the message alone (no stack trace) and exits with
 * {@link CliError.exitCode}.
 */
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

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

/** The profile names of an AWS shared config (`[profile x]`, `[default]`) or credentials (`[x]`) file. */
export function sharedIniProfiles(text: string, kind: 'config' | 'credentials'): string[] {
  const names: string[] = [];
  for (const line of text.split(/\r?\n/)) {
    const section = /^\s*\[\s*([^\]]+?)\s*\]\s*(?:[#;].*)?$/.exec(line)?.[1];
    if (!section) continue;
    if (kind === 'credentials') names.push(section);
    else if (section === 'default') names.push(section);
    else {
      const profile = /^profile\s+(.+)$/.exec(section)?.[1];
      if (profile) names.push(profile.trim());
    }
  }
  return names;
}

function readOrEmpty(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

/**
 * When AWS_PROFILE names a profile that neither the shared config file nor the credentials file
 * holds, the fix as a sentence; undefined otherwise. The SDK reports that case only as "no
 * region" or "no credentials", without naming the profile. The files are where the SDK reads
 * them: AWS_CONFIG_FILE and AWS_SHARED_CREDENTIALS_FILE, else ~/.aws/config and ~/.aws/credentials.
 */
export function missingAwsProfile(env: Record<string, string | undefined>): string | undefined {
  const profile = env.AWS_PROFILE?.trim();
  if (!profile) return undefined;
  const home = env.HOME || homedir();
  const configFile = env.AWS_CONFIG_FILE || join(home, '.aws', 'config');
  const credentialsFile = env.AWS_SHARED_CREDENTIALS_FILE || join(home, '.aws', 'credentials');
  const known = [
    ...sharedIniProfiles(readOrEmpty(configFile), 'config'),
    ...sharedIniProfiles(readOrEmpty(credentialsFile), 'credentials'),
  ];
  if (known.includes(profile)) return undefined;
  const shown = (path: string, fallback: string): string =>
    path === join(home, '.aws', fallback) ? `~/.aws/${fallback}` : path;
  const others = [...new Set(known)];
  return (
    `AWS profile ${profile} is not in ${shown(configFile, 'config')} or ${shown(credentialsFile, 'credentials')}; ` +
    `${others.length > 0 ? `set AWS_PROFILE to one that is (${others.join(', ')}), ` : ''}` +
    `create it ("aws configure --profile ${profile}" or "aws configure sso --profile ${profile}"), or unset AWS_PROFILE`
  );
}

/**
 * The fix for an AWS SDK error caused by the machine's setup (no region, no or expired
 * credentials, an AWS_PROFILE that does not exist), as a sentence that starts with it; undefined
 * for any other error. `env` is where AWS_PROFILE and the shared file locations are read.
 */
export function awsSetupProblem(
  err: unknown,
  env: Record<string, string | undefined> = process.env,
): string | undefined {
  if (!(err instanceof Error)) return undefined;
  const setup = sdkSetupProblem(err);
  if (setup === undefined || setup.startsWith('the AWS credentials have expired')) return setup;
  // No region or no credentials: a profile that does not exist is the real cause.
  return missingAwsProfile(env) ?? setup;
}

function sdkSetupProblem(err: Error): string | undefined {
  const { name, message } = err;
  // An empty AWS_REGION reaches the SDK as the region "".
  if (/Region is missing|Region not accepted: region="" /i.test(message) || name === 'RegionMissingError') {
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
