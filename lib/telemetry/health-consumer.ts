import { Duration, RemovalPolicy, Validations } from 'aws-cdk-lib';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { KinesisEventSource } from 'aws-cdk-lib/aws-lambda-event-sources';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { ENV } from '../../core/env';
import { SERVICES } from '../../core/metrics';
import type { RecordType } from '../../core/telemetry';
import { FleetFunction } from '../common/fleet-function';
import { FLEET_DEFAULTS, type HealthThresholdsConfig } from '../config';
import type { RegistryTables } from '../traceability/registry-tables';
import type { TelemetryErrorStore } from './error-store';
import type { TelemetryStream } from './telemetry-stream';

/** Defaults of the props: FLEET_DEFAULTS is the one place they live. */
const C = FLEET_DEFAULTS.telemetry.consumer;

/** Entry of the health consumer handler, relative to the repository root. */
export const HEALTH_CONSUMER_ENTRY = 'lambda/telemetry/health-consumer.handler.ts';
/** The record type the consumer's mapping lets through (the `type` field the health rule sets). */
export const CONSUMED_RECORD_TYPE: RecordType = 'health';

/** Event-source mapping settings of the consumer (defaults: FLEET_DEFAULTS.telemetry.consumer). */
export interface HealthConsumerMappingProps {
  /** Records per invocation. @default 100 */
  readonly batchSize?: number;
  /** Seconds the mapping waits to fill a batch. @default 5 */
  readonly maxBatchingWindowSeconds?: number;
  /**
   * Concurrent batches per shard. Lambda keeps the records of one partition key (one device: the
   * key is the thing name) in order at any factor, so raising it does not reorder a device's
   * reports. @default 1
   */
  readonly parallelizationFactor?: number;
  /**
   * Retries of a failing batch (split on each function error) before Lambda gives up on it and
   * writes it to the error store; -1: until `maxRecordAgeSeconds`. @default -1
   */
  readonly retryAttempts?: number;
  /**
   * Records older than this are given up on (written to the error store unprocessed). Must stay
   * below the stream's retention, or records leave the stream before they can be kept.
   * @default 21600
   */
  readonly maxRecordAgeSeconds?: number;
}

export interface HealthConsumerProps extends HealthConsumerMappingProps {
  readonly stream: TelemetryStream;
  readonly registry: RegistryTables;
  /** Where batches the mapping gives up on are kept, whole (under `aws/lambda/`). */
  readonly errorStore: TelemetryErrorStore;
  readonly thingNamePrefix: string;
  /** Seconds between two registry lastSeen writes of one device. */
  readonly lastSeenIntervalSeconds: number;
  readonly thresholds: HealthThresholdsConfig;
  /** Distinct firmware versions with their own metric dimension value. */
  readonly maxFirmwareDimensions: number;
  /** Lambda memory (MB). @default 512 */
  readonly memorySize?: number;
  /** Lambda timeout. @default Duration.seconds(60) */
  readonly timeout?: Duration;
  /** @default logs.RetentionDays.ONE_MONTH */
  readonly logRetention?: logs.RetentionDays;
  /** Removal policy of the dead-letter queue and the log group. @default RemovalPolicy.RETAIN */
  readonly removalPolicy?: RemovalPolicy;
}

/**
 * The health consumer: a function on the telemetry stream that turns health reports into registry
 * state (lastSeen, boot, firmware) and fleet health metrics per firmware version and ring.
 *
 * Its event-source mapping carries a filter on `data.type = health`, so telemetry records never
 * invoke it (docs/decisions.md D15), and reports partial batch failures: a failing record is
 * retried with the records after it, the batch is split on errors, and after `retryAttempts` or
 * `maxRecordAgeSeconds` Lambda writes the batch it gives up on, records included, to the error
 * store under `aws/lambda/` (an S3 on-failure destination keeps the whole invocation; an SQS one
 * would keep only shard coordinates, useless once the stream has trimmed the records;
 * docs/decisions.md D20). Records the function itself cannot use (malformed, unknown device) go
 * to the encrypted, TLS-only dead-letter queue.
 * (https://docs.aws.amazon.com/lambda/latest/dg/services-kinesis-batchfailurereporting.html,
 * https://docs.aws.amazon.com/lambda/latest/dg/kinesis-on-failure-destination.html,
 * https://docs.aws.amazon.com/lambda/latest/dg/invocation-eventfiltering.html#filtering-kinesis)
 */
export class HealthConsumer extends Construct {
  public readonly function: FleetFunction;
  /** Records the function rejects (MALFORMED, UNKNOWN_DEVICE); given-up batches go to the error store. */
  public readonly deadLetterQueue: sqs.Queue;
  public readonly eventSource: KinesisEventSource;

  constructor(scope: Construct, id: string, props: HealthConsumerProps) {
    super(scope, id);
    const removalPolicy = props.removalPolicy ?? RemovalPolicy.RETAIN;

    this.deadLetterQueue = new sqs.Queue(this, 'DeadLetterQueue', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
      removalPolicy,
    });
    Validations.of(this.deadLetterQueue).acknowledge({
      id: 'AwsSolutions-SQS3',
      reason:
        'This queue is the dead letter of the records the health consumer rejects (malformed, unknown ' +
        'device); it is the end of the line, read by operators.',
    });

    this.function = new FleetFunction(this, 'Function', {
      entry: HEALTH_CONSUMER_ENTRY,
      serviceName: SERVICES.healthConsumer,
      description:
        'Fleet self-health: registry state and health metrics from health reports on the telemetry stream',
      timeout: props.timeout ?? Duration.seconds(C.timeoutSeconds),
      memorySize: props.memorySize ?? C.memorySize,
      logRetention: props.logRetention,
      logRemovalPolicy: removalPolicy,
      environment: {
        [ENV.devicesTable]: props.registry.devices.tableName,
        [ENV.eventsTable]: props.registry.events.tableName,
        [ENV.thingNamePrefix]: props.thingNamePrefix,
        [ENV.lastSeenIntervalSeconds]: String(props.lastSeenIntervalSeconds),
        [ENV.lowHeapBytes]: String(props.thresholds.lowHeapBytes),
        [ENV.weakRssiDbm]: String(props.thresholds.weakRssiDbm),
        [ENV.maxFirmwareDimensions]: String(props.maxFirmwareDimensions),
        [ENV.healthDeadLetterQueueUrl]: this.deadLetterQueue.queueUrl,
      },
    });
    props.registry.grantHealthUpdates(this.function);
    this.deadLetterQueue.grantSendMessages(this.function);

    this.eventSource = new KinesisEventSource(props.stream.stream, {
      startingPosition: lambda.StartingPosition.TRIM_HORIZON,
      batchSize: props.batchSize ?? C.batchSize,
      maxBatchingWindow: Duration.seconds(props.maxBatchingWindowSeconds ?? C.maxBatchingWindowSeconds),
      parallelizationFactor: props.parallelizationFactor ?? C.parallelizationFactor,
      retryAttempts: props.retryAttempts ?? C.retryAttempts,
      maxRecordAge: Duration.seconds(props.maxRecordAgeSeconds ?? C.maxRecordAgeSeconds),
      bisectBatchOnError: true,
      reportBatchItemFailures: true,
      onFailure: props.errorStore.streamFailureDestination(),
      filters: [
        lambda.FilterCriteria.filter({ data: { type: lambda.FilterRule.isEqual(CONSUMED_RECORD_TYPE) } }),
      ],
    });
    this.function.addEventSource(this.eventSource);
  }
}
