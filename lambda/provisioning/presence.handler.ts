/**
 * AWS IoT lifecycle (presence) events -> activation gate and connectivity state.
 * Thin entry point: environment read once, clients created once per container.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { METRICS_NAMESPACE, SERVICES } from '../../core/metrics';
import { createDocumentClient } from '../shared/clients';
import { readEnv } from '../../core/env';
import { Registry } from '../shared/registry';
import { createPresenceHandler, PresenceOutcome } from './presence';

const SERVICE = SERVICES.presence;
const logger = new Logger({ serviceName: SERVICE });
const metrics = new Metrics({ namespace: METRICS_NAMESPACE, serviceName: SERVICE });

const env = readEnv(['devicesTable', 'eventsTable', 'thingNamePrefix']);

const doc = createDocumentClient({ connectionTimeoutMs: 1000, requestTimeoutMs: 2000, maxAttempts: 3 });
// The presence function never reads lots.
const registry = new Registry(doc, { devices: env.devicesTable, lots: '', events: env.eventsTable });

const presence = createPresenceHandler({ registry, thingNamePrefix: env.thingNamePrefix, logger, metrics });

export const handler = (event: unknown): Promise<PresenceOutcome> => presence(event);
