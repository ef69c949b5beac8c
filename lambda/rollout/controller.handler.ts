/**
 * The rollout controller: one pass over every active rollout (./controller.ts), invoked by the
 * one-minute schedule and by the topic rule on the account's job and job-execution events. An
 * event only says "look now": the pass reconciles against DescribeJob and
 * ListJobExecutionsForJob, since events come at least once and possibly out of order.
 * Thin entry point: environment read and checked once, clients created once per container.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { readEnv } from '../../core/env';
import type { RolloutState } from '../../core/rollout';
import { createDocumentClient, httpHandler } from '../shared/clients';
import '../shared/issue-messages';
import { runControllerPass, type PassOutcome } from './controller';
import { parseJobTemplateArns } from './controller-settings';
import { createIotJobsApi } from './iot-jobs';
import { readCandidates, readLastHealthReports, trailAppender } from './registry-adapters';
import { RolloutStore } from './rollout-store';

const logger = new Logger({ serviceName: 'rollout-controller' });

const env = readEnv([
  'rolloutsTable',
  'devicesTable',
  'lotsTable',
  'eventsTable',
  'firmwarePackage',
  'jobTemplateArns',
  'iotArnPrefix',
]);
const jobTemplateArns = parseJobTemplateArns(env.jobTemplateArns);

// A failed call leaves the rollout to the next pass (a minute later), so short budgets suffice.
const budget = { connectionTimeoutMs: 1000, requestTimeoutMs: 5000, maxAttempts: 3 };
const doc = createDocumentClient(budget);
const now = () => new Date();

const deps = {
  store: new RolloutStore(doc, env.rolloutsTable),
  jobs: createIotJobsApi({
    handler: httpHandler(budget),
    settings: doc.config,
    maxAttempts: budget.maxAttempts,
  }),
  candidates: () => readCandidates(doc, { devices: env.devicesTable, lots: env.lotsTable }),
  appendTrail: trailAppender(doc, env.eventsTable, now),
  packageName: env.firmwarePackage,
  jobTemplateArns,
  iotArnPrefix: env.iotArnPrefix,
  // Health aggregates and alarms are not observed yet: their gates hold promotion (fail closed).
  observeMore: async (state: RolloutState) => ({
    lastHealthReportAt: await readLastHealthReports(doc, env.devicesTable, Object.values(state.ledger)),
  }),
  log: (message: string, detail: Record<string, unknown>) => logger.info(message, detail),
};

/** A schedule event or a job event: either way, one pass over the active rollouts. */
export async function handler(event: {
  'detail-type'?: string;
  eventType?: string;
  jobId?: string;
}): Promise<{
  outcomes: PassOutcome[];
}> {
  logger.info('controller pass', {
    trigger: event.eventType ?? event['detail-type'] ?? 'direct',
    jobId: event.jobId,
  });
  const outcomes = await runControllerPass(deps, now);
  const failed = outcomes.filter((o) => o.error);
  if (failed.length > 0) logger.error('rollouts not stepped this pass', { failed });
  return { outcomes };
}
