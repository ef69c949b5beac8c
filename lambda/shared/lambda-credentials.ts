/**
 * The credential provider chain of the Lambda bundles.
 *
 * The bundler substitutes this module for `@aws-sdk/credential-provider-node` in the function
 * assets only (see `LAMBDA_ESBUILD_OPTIONS` in lib/common/fleet-function.ts); the CLI, the tests
 * and the lab's own code keep the SDK's full default chain.
 *
 * Why: the default chain also carries SSO, shared ini files, credential processes, web identity
 * and instance metadata, with the STS, SSO and sign-in clients they need, about 110 KB of every
 * minified bundle and parsed at every cold start. A Lambda function never uses them: the
 * runtime hands the execution role's credentials to the function in `AWS_ACCESS_KEY_ID`,
 * `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`. Execution environments that serve
 * credentials over HTTP instead (`AWS_CONTAINER_CREDENTIALS_FULL_URI` or `_RELATIVE_URI`) are
 * covered by the container provider. The lab sets the environment variables like Lambda does.
 */
import { fromEnv } from '@aws-sdk/credential-provider-env';
import { fromHttp } from '@aws-sdk/credential-provider-http';
import { doesIdentityRequireRefresh, isIdentityExpired, memoizeIdentityProvider } from '@smithy/core';
import type { AwsCredentialIdentity, AwsCredentialIdentityProvider } from '@smithy/types';

const CONTAINER_VARIABLES = ['AWS_CONTAINER_CREDENTIALS_FULL_URI', 'AWS_CONTAINER_CREDENTIALS_RELATIVE_URI'];

export class LambdaCredentialsError extends Error {
  override readonly name = 'LambdaCredentialsError';
}

/** Init options the SDK passes to the default provider (the subset used here). */
type ProviderInit = Parameters<typeof fromEnv>[0] & Parameters<typeof fromHttp>[0];

/** Environment variables first, then container credentials; memoized until they near expiry. */
export function defaultProvider(init: ProviderInit = {}): AwsCredentialIdentityProvider {
  const env = fromEnv(init);
  const resolve = async (): Promise<AwsCredentialIdentity> => {
    if (!process.env.AWS_ACCESS_KEY_ID && CONTAINER_VARIABLES.some((v) => process.env[v])) {
      return fromHttp(init)();
    }
    try {
      return await env();
    } catch {
      throw new LambdaCredentialsError(
        'no AWS credentials in the environment: Lambda sets AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and ' +
          "AWS_SESSION_TOKEN from the function's execution role; to run a bundle elsewhere, export them",
      );
    }
  };
  return memoizeIdentityProvider(
    resolve,
    isIdentityExpired,
    doesIdentityRequireRefresh,
  ) as AwsCredentialIdentityProvider;
}
