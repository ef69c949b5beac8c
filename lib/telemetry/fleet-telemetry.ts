import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { RECORD_TYPES, type RecordType } from '../../core/telemetry';
import type { TelemetryRulesOutput } from '../../core/stack-outputs';
import type { TelemetryConfig } from '../config';
import type { RegistryTables } from '../traceability/registry-tables';
import { TelemetryErrorStore } from './error-store';
import { HealthConsumer } from './health-consumer';
import type { InfluxDbSink } from './influxdb-sink';
import type { RegistryEnrichment } from './registry-enrichment';
import { StreamArchive } from './stream-archive';
import { TelemetryAlarms } from './telemetry-alarms';
import { TelemetryRule } from './telemetry-rule';
import { TelemetryStream } from './telemetry-stream';
import { TimeSeriesRule, type TimeSeriesRuleProps } from './time-series-rule';
import type { TimestreamSink } from './timestream-sink';

export interface FleetTelemetryProps {
  /** Telemetry settings (see `TelemetryConfig`; every default lives in FLEET_DEFAULTS.telemetry). */
  readonly settings: TelemetryConfig;
  /** Registry the health consumer updates. */
  readonly registry: RegistryTables;
  /** Thing names are `<prefix>-<serial>` (the consumer and the registry enrichment rely on it). */
  readonly thingNamePrefix: string;
  /** MQTT topic prefix of `dt/<prefix>/<thing>/<type>`. */
  readonly topicPrefix: string;
  /** @default logs.RetentionDays.ONE_MONTH */
  readonly logRetention?: logs.RetentionDays;
  /** Removal policy of the stream, buckets, queue and log groups. @default RemovalPolicy.RETAIN */
  readonly removalPolicy?: RemovalPolicy;
}

/**
 * Telemetry and self-health capability: one topic rule per record type onto one Kinesis stream,
 * every rule's failures into the S3 error store, the Firehose archive of the stream (default on),
 * the health consumer with its dead-letter queue, the optional time-series rule fed by the health
 * rule's republish (Timestream, InfluxDB; off by default), and the capability's alarms.
 */
export class FleetTelemetry extends Construct {
  public readonly stream: TelemetryStream;
  public readonly errorStore: TelemetryErrorStore;
  public readonly rules: Readonly<Record<RecordType, TelemetryRule>>;
  public readonly consumer: HealthConsumer;
  /** Absent when `archive.enabled` is false. */
  public readonly archive?: StreamArchive;
  /** Present when a time-series option is on (docs/decisions.md D19). */
  public readonly timeSeries?: TimeSeriesRule;
  public readonly enrichment?: RegistryEnrichment;
  public readonly timestream?: TimestreamSink;
  public readonly influxdb?: InfluxDbSink;
  public readonly alarms: TelemetryAlarms;

  constructor(scope: Construct, id: string, props: FleetTelemetryProps) {
    super(scope, id);
    const s = props.settings;
    const removalPolicy = props.removalPolicy ?? RemovalPolicy.RETAIN;
    const logRetention = props.logRetention ?? logs.RetentionDays.ONE_MONTH;

    this.stream = new TelemetryStream(this, 'Stream', {
      mode: s.stream.mode,
      shardCount: s.stream.shardCount,
      retentionHours: s.stream.retentionHours,
      removalPolicy,
    });
    this.errorStore = new TelemetryErrorStore(this, 'ErrorStore', {
      retentionDays: s.errorStore.retentionDays,
      removalPolicy,
    });

    this.timeSeries = this.timeSeriesRule(s, props.thingNamePrefix, props.topicPrefix);
    this.enrichment = this.timeSeries?.enrichment;
    this.timestream = this.timeSeries?.timestream;
    this.influxdb = this.timeSeries?.influxdb;
    // The health rule's SQL never changes; a time-series option only adds its republish.
    const republish = this.timeSeries && {
      actions: [this.timeSeries.republishAction],
      actionRoles: [this.timeSeries.republishRole],
    };
    const rules = {} as Record<RecordType, TelemetryRule>;
    for (const type of RECORD_TYPES) {
      rules[type] = new TelemetryRule(this, `${type.charAt(0).toUpperCase()}${type.slice(1)}Rule`, {
        ruleName: s.ruleNames[type],
        recordType: type,
        topicPrefix: props.topicPrefix,
        stream: this.stream,
        errorStore: this.errorStore,
        ...(type === 'health' ? republish : {}),
      });
    }
    this.rules = rules;

    if (s.archive.enabled) {
      this.archive = new StreamArchive(this, 'Archive', {
        source: this.stream,
        bufferingIntervalSeconds: s.archive.bufferingIntervalSeconds,
        bufferingSizeMiB: s.archive.bufferingSizeMiB,
        transitionToInfrequentAccessDays: s.archive.transitionToInfrequentAccessDays,
        logRetention,
        removalPolicy,
      });
    }

    this.consumer = new HealthConsumer(this, 'HealthConsumer', {
      stream: this.stream,
      registry: props.registry,
      errorStore: this.errorStore,
      thingNamePrefix: props.thingNamePrefix,
      lastSeenIntervalSeconds: s.lastSeenIntervalSeconds,
      thresholds: s.thresholds,
      maxFirmwareDimensions: s.maxFirmwareDimensions,
      batchSize: s.consumer.batchSize,
      maxBatchingWindowSeconds: s.consumer.maxBatchingWindowSeconds,
      parallelizationFactor: s.consumer.parallelizationFactor,
      retryAttempts: s.consumer.retryAttempts,
      maxRecordAgeSeconds: s.consumer.maxRecordAgeSeconds,
      memorySize: s.consumer.memorySize,
      timeout: Duration.seconds(s.consumer.timeoutSeconds),
      logRetention,
      removalPolicy,
    });

    this.alarms = new TelemetryAlarms(this, 'Alarms', {
      rules: this.rules,
      stream: this.stream,
      consumer: this.consumer,
      archive: this.archive,
      healthIntervalSeconds: s.healthIntervalSeconds,
      ...s.alarms,
    });
  }

  /** The `TelemetryRules` stack output. */
  public rulesOutput(): TelemetryRulesOutput {
    return { telemetry: this.rules.telemetry.ruleName, health: this.rules.health.ruleName };
  }

  /**
   * The time-series options: a rule of their own, fed by a republish action of the health rule
   * (Basic Ingest delivers a message to the health rule only; docs/decisions.md D19).
   */
  private timeSeriesRule(
    s: TelemetryConfig,
    thingNamePrefix: string,
    topicPrefix: string,
  ): TimeSeriesRule | undefined {
    if (!s.timestream.enabled && !s.influxdb.enabled) return undefined;
    let influxdb: TimeSeriesRuleProps['influxdb'];
    if (s.influxdb.enabled) {
      const { enabled: _enabled, ...influx } = s.influxdb;
      influxdb = influx;
    }
    return new TimeSeriesRule(this, 'TimeSeries', {
      healthRuleName: s.ruleNames.health,
      topicPrefix,
      thingNamePrefix,
      errorStore: this.errorStore,
      timestream: s.timestream.enabled
        ? { databaseName: s.timestream.databaseName, tableName: s.timestream.tableName }
        : undefined,
      influxdb,
    });
  }
}
