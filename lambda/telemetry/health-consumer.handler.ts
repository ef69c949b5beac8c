/**
 * Health records from the telemetry stream (Kinesis, filtered to `type = health`) -> registry
 * health state, FIRMWARE_CHANGED trail, fleet health metrics, dead-letter queue.
 * Thin entry point: environment read and checked once, clients and the device cache created
 * once per container.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import type { Context, KinesisStreamBatchResponse, KinesisStreamEvent } from 'aws-lambda';
import { readEnv } from '../../core/env';
import { FirmwareDimensions } from '../../core/health';
import { METRICS_NAMESPACE, SERVICES } from '../../core/metrics';
import { createDocumentClient, createSqsSender } from '../shared/clients';
import { HealthRegistry } from '../shared/registry';
import '../shared/issue-messages';
import { DeviceCache } from './device-cache';
import { EmfWriter } from './health-metrics';
import { createHealthConsumer, parseHealthSettings } from './health-consumer';
import type { KnownDevice } from './health-plan';

const SERVICE = SERVICES.healthConsumer;
const logger = new Logger({ serviceName: SERVICE });
const metrics = new EmfWriter(METRICS_NAMESPACE, SERVICE);

const env = readEnv([
  'devicesTable',
  'eventsTable',
  'thingNamePrefix',
  'lastSeenIntervalSeconds',
  'lowHeapBytes',
  'weakRssiDbm',
  'maxFirmwareDimensions',
  'healthDeadLetterQueueUrl',
]);
// Malformed values fail here, at init, naming the variable.
const settings = parseHealthSettings(env);

// A failed call leaves the device's records to the stream's retry, so short budgets are enough.
const budget = { connectionTimeoutMs: 1000, requestTimeoutMs: 2000, maxAttempts: 3 };
const doc = createDocumentClient(budget);
const registry = new HealthRegistry(doc, { devices: env.devicesTable, events: env.eventsTable });

const consume = createHealthConsumer({
  registry,
  sendDeadLetters: createSqsSender(budget, doc),
  deadLetterQueueUrl: env.healthDeadLetterQueueUrl,
  cache: new DeviceCache<KnownDevice>({ maxEntries: 20_000 }),
  thingNamePrefix: env.thingNamePrefix,
  thresholds: settings.thresholds,
  lastSeenIntervalMs: settings.lastSeenIntervalMs,
  firmwareDimensions: new FirmwareDimensions(settings.maxFirmwareDimensions),
  logger,
  metrics,
});

export const handler = (event: KinesisStreamEvent, context: Context): Promise<KinesisStreamBatchResponse> =>
  consume(event, context);
