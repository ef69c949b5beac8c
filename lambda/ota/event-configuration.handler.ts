/**
 * Custom resource handler: enable the account's AWS IoT `JOB` and `JOB_EXECUTION` event
 * messages, and restore the previous settings on Delete (see ./event-configuration.ts).
 *
 * Invoked by CloudFormation directly (the resource's ServiceToken is this function), so it
 * answers on the request's presigned `ResponseURL` itself, SUCCESS or FAILED, and never throws:
 * a handler that does not answer leaves the stack waiting for an hour.
 */
import { request } from 'node:https';
import { Logger } from '@aws-lambda-powertools/logger';
import { httpHandler } from '../shared/clients';
import {
  applyEventConfig,
  FAILED_PHYSICAL_ID,
  type EventConfigApi,
  type EventConfigRequest,
} from './event-configuration';
import { createEventConfigurationsApi } from './iot-event-configurations';
import { defaultSdkSettings } from './lambda-settings';

const logger = new Logger({ serviceName: 'fleet-ota-job-events' });
const api = createEventConfigurationsApi({
  handler: httpHandler({ connectionTimeoutMs: 2000, requestTimeoutMs: 5000, maxAttempts: 3 }),
  settings: defaultSdkSettings(),
  maxAttempts: 3,
});

/** The CloudFormation custom resource request fields this handler uses. */
export interface CustomResourceEvent extends EventConfigRequest {
  ResponseURL: string;
  StackId: string;
  RequestId: string;
  LogicalResourceId: string;
}

/** PUT the response document to CloudFormation's presigned URL. */
function respond(url: string, body: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: 'PUT',
        headers: { 'content-type': '', 'content-length': Buffer.byteLength(body) },
        timeout: 10_000,
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve());
      },
    );
    req.on('timeout', () => req.destroy(new Error('timed out sending the response to CloudFormation')));
    req.on('error', reject);
    req.end(body);
  });
}

/** Apply the request and answer CloudFormation; `send` is injectable for tests. */
export async function handle(
  event: CustomResourceEvent,
  iot: EventConfigApi,
  send: (url: string, body: string) => Promise<void> = respond,
): Promise<Record<string, unknown>> {
  const base = {
    StackId: event.StackId,
    RequestId: event.RequestId,
    LogicalResourceId: event.LogicalResourceId,
  };
  let answer: Record<string, unknown>;
  try {
    const plan = await applyEventConfig(event, iot);
    logger.info('job event configuration applied', {
      requestType: event.RequestType,
      physicalResourceId: plan.physicalResourceId,
      written: plan.update,
    });
    answer = { ...base, Status: 'SUCCESS', PhysicalResourceId: plan.physicalResourceId, Data: plan.data };
  } catch (err) {
    logger.error('job event configuration failed', { requestType: event.RequestType, error: err as Error });
    const e = err instanceof Error ? err : new Error(String(err));
    answer = {
      ...base,
      Status: 'FAILED',
      Reason: `${e.name}: ${e.message}`.slice(0, 900),
      PhysicalResourceId: event.PhysicalResourceId ?? FAILED_PHYSICAL_ID,
    };
  }
  await send(event.ResponseURL, JSON.stringify(answer));
  return answer;
}

export const handler = async (event: CustomResourceEvent): Promise<void> => {
  await handle(event, api);
};
