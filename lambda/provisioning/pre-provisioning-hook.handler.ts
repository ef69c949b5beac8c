/**
 * AWS IoT fleet provisioning pre-provisioning hook (payloadVersion 2020-04-01).
 *
 * Thin entry point: reads the environment once, creates the clients once per container with
 * explicit time and retry budgets, and delegates to {@link createHook}. AWS IoT fails the
 * provisioning request when the hook takes longer than 5 s; the budgets below keep every answer,
 * the audit entry included, under 4 s.
 */
import { DescribeCertificateCommand } from '@aws-sdk/client-iot';
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { createDocumentClient, createIotClient } from '../shared/clients';
import { readEnv } from '../shared/env';
import { Registry } from '../shared/registry';
import { createHook, HookResult, PriorCertificateLookup } from './hook';
import { parseRingShares } from './rings';

const SERVICE = 'pre-provisioning-hook';
const logger = new Logger({ serviceName: SERVICE });
const metrics = new Metrics({ namespace: 'IotFleet', serviceName: SERVICE });

const env = readEnv([
  'devicesTable',
  'lotsTable',
  'eventsTable',
  'thingNamePrefix',
  'serialPattern',
  'templateNames',
  'ringShares',
  'hookBudgetMs',
]);

/** Reads, the optional IoT lookup and the transition must finish within this budget. */
const budgetMs = Math.min(3000, Math.max(100, Number.parseInt(env.hookBudgetMs, 10) || 2500));

// Per request: 300 ms to connect, 800 ms to answer, 2 attempts. The overall deadline above cuts
// any remaining retry; the audit write gets what is left of the 4 s.
const budget = { connectionTimeoutMs: 300, requestTimeoutMs: 800, maxAttempts: 2 };
const doc = createDocumentClient(budget);
const iot = createIotClient(budget);

const registry = new Registry(doc, {
  devices: env.devicesTable,
  lots: env.lotsTable,
  events: env.eventsTable,
});

const lookupPriorCertificate: PriorCertificateLookup = async (certificateId, abortSignal) => {
  try {
    const out = await iot.send(new DescribeCertificateCommand({ certificateId }), { abortSignal });
    return out.certificateDescription?.status === 'REVOKED' ? 'REVOKED' : 'USABLE';
  } catch (err) {
    if ((err as { name?: string }).name === 'ResourceNotFoundException') return 'NOT_FOUND';
    throw err;
  }
};

const hook = createHook({
  registry,
  lookupPriorCertificate,
  logger,
  metrics,
  config: {
    thingNamePrefix: env.thingNamePrefix,
    ringShares: parseRingShares(env.ringShares),
    serialPattern: new RegExp(env.serialPattern),
    templateNames: env.templateNames
      .split(',')
      .map((t) => t.trim())
      .filter(Boolean),
    budgetMs,
  },
});

export const handler = (event: unknown): Promise<HookResult> => hook(event);
