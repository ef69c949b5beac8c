/**
 * AWS IoT `DescribeCertificate` (REST-JSON `GET /certificates/{certificateId}`, SigV4 service
 * `iot`), the only IoT control-plane call a Lambda makes, issued with the AWS SDK's own signer
 * and HTTP handler.
 *
 * Why not `@aws-sdk/client-iot`: its schema module declares all ~1000 IoT shapes with computed
 * keys, which esbuild cannot drop, so the client adds about 140 KB to a minified bundle for this
 * one read (the hook's asset went over its 300 KB budget with it). Credentials, region and the
 * FIPS / dual-stack settings come from an SDK client's resolved configuration (the DynamoDB
 * client's), so both calls use one credential chain; the endpoint follows the IoT endpoint rules
 * (`iot.<region>.<dnsSuffix>`, `iot-fips…`) and the SDK's service-specific endpoint variables
 * `AWS_ENDPOINT_URL_IOT` and `AWS_ENDPOINT_URL`, which the local lab and the tests set.
 */
import { partition } from '@aws-sdk/core/client';
import { HttpRequest } from '@smithy/core/protocols';
import { NodeHttpHandler, streamCollector } from '@smithy/node-http-handler';
import { SignatureV4 } from '@smithy/signature-v4';
import type { AwsCredentialIdentityProvider } from '@smithy/types';
import { backoffMs, isTransientNetworkError, Sha256, sleep } from './sigv4';

/** The resolved settings an SDK v3 client exposes as `client.config` (the subset used here). */
export interface SdkClientSettings {
  credentials: AwsCredentialIdentityProvider;
  region: () => Promise<string>;
  useFipsEndpoint: () => Promise<boolean>;
  useDualstackEndpoint: () => Promise<boolean>;
}

export interface IotCertificatesOptions {
  /** HTTP handler with the caller's connect and request timeouts. */
  handler: NodeHttpHandler;
  /** Credentials, region and endpoint flags, e.g. the DynamoDB client's `config`. */
  settings: SdkClientSettings;
  /**
   * Total attempts including the first. Only what can succeed on a second try is retried: network
   * errors (connection reset or refused, timeouts, broken pipe) and AWS IoT's throttling and server
   * errors ({@link isRetryable}).
   */
  maxAttempts: number;
  /** Environment holding the endpoint override variables. @default process.env */
  env?: Record<string, string | undefined>;
}

/**
 * An IoT answer other than success or not-found, including any 404 that is not AWS IoT's own
 * `ResourceNotFoundException` (a proxy, a VPC endpoint or a wrong endpoint path answering a bare
 * 404 proves nothing about the certificate).
 */
export class IotRequestError extends Error {
  override readonly name = 'IotRequestError';
  constructor(
    readonly statusCode: number,
    readonly errorType: string,
    message: string,
  ) {
    super(message);
  }
}

/** Status of a certificate, or undefined when AWS IoT does not know it. */
export type CertificateStatusReader = (
  certificateId: string,
  abortSignal: AbortSignal,
) => Promise<string | undefined>;

/** The IoT control-plane endpoint the SDK would use for these settings. */
export async function iotEndpoint(
  settings: SdkClientSettings,
  env: Record<string, string | undefined> = process.env,
): Promise<URL> {
  const custom = env.AWS_ENDPOINT_URL_IOT || env.AWS_ENDPOINT_URL;
  if (custom) return new URL(custom);
  const region = await settings.region();
  const [fips, dualStack] = await Promise.all([settings.useFipsEndpoint(), settings.useDualstackEndpoint()]);
  const p = partition(region);
  if ((fips && !p.supportsFIPS) || (dualStack && !p.supportsDualStack)) {
    throw new Error(
      `AWS IoT has no ${fips ? 'FIPS' : 'dual-stack'} endpoint in ${region}: unset ` +
        `${fips ? 'AWS_USE_FIPS_ENDPOINT' : 'AWS_USE_DUALSTACK_ENDPOINT'} or set AWS_ENDPOINT_URL_IOT`,
    );
  }
  return new URL(
    `https://iot${fips ? '-fips' : ''}.${region}.${dualStack ? p.dualStackDnsSuffix : p.dnsSuffix}`,
  );
}

const RETRYABLE_STATUS = new Set([429, 500, 502, 503, 504]);
const RETRYABLE_TYPES = new Set([
  'ThrottlingException',
  'ServiceUnavailableException',
  'InternalFailureException',
]);
/**
 * The error type AWS IoT sends (header `x-amzn-ErrorType`) for a certificate it does not know. AWS
 * IoT always names the type, so a 404 without it did not come from AWS IoT.
 */
const NOT_FOUND_TYPE = 'ResourceNotFoundException';

/**
 * Whether another attempt can succeed: AWS IoT throttling and server errors, and network errors
 * (connection reset or refused, socket hang-up, broken pipe, the HTTP handler's `TimeoutError`).
 * Anything else (endpoint settings, credentials, signing, a 4xx answer, an unreadable body) fails
 * the same way again, so it is thrown at once and leaves the hook's budget to its audit entry.
 */
export function isRetryable(err: unknown): boolean {
  if (err instanceof IotRequestError) {
    return RETRYABLE_STATUS.has(err.statusCode) || RETRYABLE_TYPES.has(err.errorType);
  }
  return isTransientNetworkError(err);
}

export function createCertificateStatusReader(opts: IotCertificatesOptions): CertificateStatusReader {
  const { handler, settings } = opts;
  const signer = new SignatureV4({
    service: 'iot',
    region: settings.region,
    credentials: settings.credentials,
    sha256: Sha256,
  });
  let endpoint: Promise<URL> | undefined;

  async function once(certificateId: string, abortSignal: AbortSignal): Promise<string | undefined> {
    endpoint ??= iotEndpoint(settings, opts.env);
    const url = await endpoint.catch((err: unknown) => {
      endpoint = undefined;
      throw err;
    });
    const base = url.pathname.replace(/\/$/, '');
    const request = new HttpRequest({
      method: 'GET',
      protocol: url.protocol,
      hostname: url.hostname,
      port: url.port ? Number(url.port) : undefined,
      path: `${base}/certificates/${encodeURIComponent(certificateId)}`,
      headers: { host: url.host, accept: 'application/json' },
    });
    const signed = await signer.sign(request);
    const { response } = await handler.handle(signed as HttpRequest, { abortSignal });
    const body = Buffer.from(await streamCollector(response.body)).toString('utf8');
    const errorType = String(response.headers['x-amzn-errortype'] ?? '').split(':')[0];
    if (response.statusCode === 200) {
      const parsed = JSON.parse(body) as { certificateDescription?: { status?: string } };
      return parsed.certificateDescription?.status ?? 'UNKNOWN';
    }
    if (response.statusCode === 404 && errorType === NOT_FOUND_TYPE) return undefined;
    let message = body.slice(0, 200);
    try {
      message = String((JSON.parse(body) as { message?: unknown }).message ?? message);
    } catch {
      // not JSON: keep the raw text
    }
    throw new IotRequestError(
      response.statusCode,
      errorType || 'UnknownError',
      `AWS IoT DescribeCertificate answered ${response.statusCode} ${errorType || ''}: ${message}`.trim(),
    );
  }

  return async (certificateId, abortSignal) => {
    for (let attempt = 1; ; attempt++) {
      try {
        return await once(certificateId, abortSignal);
      } catch (err) {
        if (abortSignal.aborted || !isRetryable(err) || attempt >= opts.maxAttempts) throw err;
        // Full jitter; the caller's deadline (abortSignal) cuts any wait that would not fit.
        await sleep(backoffMs(attempt), abortSignal);
      }
    }
  };
}
