/**
 * AWS IoT `DescribeEventConfigurations` (`GET /event-configurations`) and
 * `UpdateEventConfigurations` (`PATCH /event-configurations`), REST-JSON signed with SigV4
 * (service `iot`) by the AWS SDK's own signer and HTTP handler.
 *
 * Why not `@aws-sdk/client-iot`: its schema module declares every IoT shape and esbuild cannot
 * drop them; the client puts this custom resource's bundle at about 370 KB, over the 300 KB
 * budget (see lambda/shared/iot-certificates.ts, which does the same for DescribeCertificate).
 * The endpoint follows the SDK's rules, `AWS_ENDPOINT_URL_IOT` / `AWS_ENDPOINT_URL` included.
 */
import { HttpRequest } from '@smithy/core/protocols';
import { NodeHttpHandler, streamCollector } from '@smithy/node-http-handler';
import { SignatureV4 } from '@smithy/signature-v4';
import {
  iotEndpoint,
  IotRequestError,
  isRetryable,
  type SdkClientSettings,
} from '../shared/iot-certificates';
import { backoffMs, Sha256, sleep } from '../shared/sigv4';
import { settingsOf, updateInputOf, type JobEventSettings } from './event-configuration';
import type { EventConfigApi } from './event-configuration';

export interface IotEventConfigurationsOptions {
  handler: NodeHttpHandler;
  settings: SdkClientSettings;
  /** Total attempts including the first (throttling, server and network errors only). */
  maxAttempts: number;
  env?: Record<string, string | undefined>;
}

export function createEventConfigurationsApi(opts: IotEventConfigurationsOptions): EventConfigApi {
  const signer = new SignatureV4({
    service: 'iot',
    region: opts.settings.region,
    credentials: opts.settings.credentials,
    sha256: Sha256,
  });

  async function once(method: 'GET' | 'PATCH', body?: unknown): Promise<unknown> {
    const url = await iotEndpoint(opts.settings, opts.env);
    const text = body === undefined ? undefined : JSON.stringify(body);
    const request = new HttpRequest({
      method,
      protocol: url.protocol,
      hostname: url.hostname,
      port: url.port ? Number(url.port) : undefined,
      path: `${url.pathname.replace(/\/$/, '')}/event-configurations`,
      headers: {
        host: url.host,
        accept: 'application/json',
        ...(text === undefined ? {} : { 'content-type': 'application/json' }),
      },
      body: text,
    });
    const signed = await signer.sign(request);
    const { response } = await opts.handler.handle(signed as HttpRequest);
    const raw = Buffer.from(await streamCollector(response.body)).toString('utf8');
    if (response.statusCode === 200) return raw ? JSON.parse(raw) : {};
    const errorType = String(response.headers['x-amzn-errortype'] ?? '').split(':')[0] || 'UnknownError';
    let message = raw.slice(0, 200);
    try {
      message = String((JSON.parse(raw) as { message?: unknown }).message ?? message);
    } catch {
      // not JSON: keep the raw text
    }
    throw new IotRequestError(
      response.statusCode,
      errorType,
      `AWS IoT ${method === 'GET' ? 'DescribeEventConfigurations' : 'UpdateEventConfigurations'} answered ${response.statusCode} ${errorType}: ${message}`,
    );
  }

  async function call(method: 'GET' | 'PATCH', body?: unknown): Promise<unknown> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await once(method, body);
      } catch (err) {
        if (!isRetryable(err) || attempt >= opts.maxAttempts) throw err;
        await sleep(backoffMs(attempt));
      }
    }
  }

  return {
    read: async () =>
      settingsOf(
        ((await call('GET')) as { eventConfigurations?: Record<string, { Enabled?: boolean }> })
          .eventConfigurations,
      ),
    write: async (settings: JobEventSettings) => {
      await call('PATCH', { eventConfigurations: updateInputOf(settings) });
    },
  };
}
