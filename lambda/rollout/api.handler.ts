/**
 * The rollout API Lambda (./api.ts): invoked from the Lambda console with a test event or by CI
 * (`aws lambda invoke`). Thin entry point: environment read once, clients created once per
 * container; domain errors come back as `{ ok: false, error: { code, message } }`.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { readEnv } from '../../core/env';
import { createDocumentClient, httpHandler } from '../shared/clients';
import '../shared/issue-messages';
import { handleRolloutApi, type RolloutApiResponse } from './api';
import { createIotJobsApi } from './iot-jobs';
import { RolloutStore } from './rollout-store';

const logger = new Logger({ serviceName: 'rollout-api' });
const env = readEnv(['rolloutsTable', 'firmwarePackage']);

const budget = { connectionTimeoutMs: 1000, requestTimeoutMs: 5000, maxAttempts: 3 };
const doc = createDocumentClient(budget);
const deps = {
  store: new RolloutStore(doc, env.rolloutsTable),
  jobs: createIotJobsApi({
    handler: httpHandler(budget),
    settings: doc.config,
    maxAttempts: budget.maxAttempts,
  }),
  packageName: env.firmwarePackage,
};

export async function handler(event: unknown): Promise<RolloutApiResponse> {
  const response = await handleRolloutApi(event, deps, new Date());
  if (response.ok) logger.info('rollout api', { action: response.action });
  else logger.warn('rollout api refused', { error: response.error });
  return response;
}
