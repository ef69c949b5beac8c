/**
 * AWS IoT fleet provisioning pre-provisioning hook (payloadVersion 2020-04-01).
 *
 * Thin entry point: reads the environment once, creates the clients once per container with
 * explicit time and retry budgets, and delegates to {@link createHook}. AWS IoT fails the
 * provisioning request when the hook takes longer than 5 s; the budgets below keep every answer,
 * the audit entry included, within FLEET_HOOK_BUDGET_MS (at most 4.5 s).
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { METRICS_NAMESPACE, SERVICES } from '../../core/metrics';
import { createCertificateReader, createDocumentClient } from '../shared/clients';
import { readEnv } from '../../core/env';
import { Registry } from '../shared/registry';
import {
  createHook,
  HookResult,
  parseBudgetMs,
  parseRetentionDays,
  parseTemplateArnPrefix,
  PriorCertificateLookup,
} from './pre-provisioning-hook';
import { parseRingShares } from '../../core/rings';

const SERVICE = SERVICES.preProvisioningHook;
const logger = new Logger({ serviceName: SERVICE });
const metrics = new Metrics({ namespace: METRICS_NAMESPACE, serviceName: SERVICE });

const env = readEnv([
  'devicesTable',
  'lotsTable',
  'eventsTable',
  'thingNamePrefix',
  'serialPattern',
  'templateNames',
  'ringShares',
  'hookBudgetMs',
  'templateArnPrefix',
  'unlistedTrailRetentionDays',
]);
// Malformed values fail here, at init, naming the variable (the function never answers).
const templateArnPrefix = parseTemplateArnPrefix(env.templateArnPrefix);
const unlistedRetentionDays = parseRetentionDays(env.unlistedTrailRetentionDays);

/**
 * FLEET_HOOK_BUDGET_MS is the hard limit of the whole answer, audit entry included: from the
 * invocation to the answer, in milliseconds (100-4500, the fleet config's `hook.budgetMs`; AWS IoT
 * waits at most 5 s). Reads, the optional IoT lookup and the transition get this limit minus a
 * reserve for the audit write; past that deadline the hook fails closed. A malformed or
 * out-of-range value fails here, at init.
 */
const hardLimitMs = parseBudgetMs(env.hookBudgetMs);
const auditReserveMs = Math.min(500, Math.floor(hardLimitMs / 4));
const budgetMs = hardLimitMs - auditReserveMs;

// Per request: connect and answer timeouts scaled to the budget, and a retry budget; the
// overall deadline cuts any retry that would not fit.
const budget = {
  connectionTimeoutMs: Math.min(1000, Math.floor(budgetMs / 3)),
  requestTimeoutMs: Math.min(1500, Math.floor(budgetMs / 2)),
  maxAttempts: 3,
};
const doc = createDocumentClient(budget);
const describeCertificate = createCertificateReader(budget, doc);

const registry = new Registry(doc, {
  devices: env.devicesTable,
  lots: env.lotsTable,
  events: env.eventsTable,
});

const lookupPriorCertificate: PriorCertificateLookup = async (certificateId, abortSignal) => {
  const status = await describeCertificate(certificateId, abortSignal);
  if (status === undefined) return 'NOT_FOUND';
  return status === 'REVOKED' ? 'REVOKED' : 'USABLE';
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
    templateArnPrefix,
    unlistedRetentionDays,
    budgetMs,
    hardLimitMs,
  },
});

export const handler = (event: unknown): Promise<HookResult> => hook(event);
