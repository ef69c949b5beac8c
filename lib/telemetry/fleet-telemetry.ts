import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import type * as iot from 'aws-cdk-lib/aws-iot';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { RECORD_TYPES, type RecordType } from '../../core/telemetry';
import type { TelemetryRulesOutput } from '../../core/stack-outputs';
import type { TelemetryConfig } from '../config';
import type { RegistryTables } from '../traceability/registry-tables';
import { TelemetryErrorStore } from './error-store';
import { HealthConsumer } from './health-consumer';
import { INFLUXDB_TIMESTAMP_PROJECTION, InfluxDbSink } from './influxdb-sink';
import { RegistryEnrichment } from './registry-enrichment';
import { StreamArchive } from './stream-archive';
import { TelemetryAlarms } from './telemetry-alarms';
import { TelemetryRule, type RuleExtensions } from './telemetry-rule';
import { TelemetryStream } from './telemetry-stream';
import { TimestreamSink } from './timestream-sink';

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
 * the health consumer with its dead-letter queue, the optional time-series actions on the health
 * rule (Timestream, InfluxDB; off by default), and the capability's alarms.
 */
export class FleetTelemetry extends Construct {
  public readonly stream: TelemetryStream;
  public readonly errorStore: TelemetryErrorStore;
  public readonly rules: Readonly<Record<RecordType, TelemetryRule>>;
  public readonly consumer: HealthConsumer;
  /** Absent when `archive.enabled` is false. */
  public readonly archive?: StreamArchive;
  /** Present when a time-series option is on. */
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

    const timeSeries = this.timeSeriesOptions(s, props.thingNamePrefix);
    this.enrichment = timeSeries.enrichment;
    this.timestream = timeSeries.timestream;
    this.influxdb = timeSeries.influxdb;
    const extensions: Record<RecordType, RuleExtensions> = { telemetry: {}, health: timeSeries.extensions };
    const rules = {} as Record<RecordType, TelemetryRule>;
    for (const type of RECORD_TYPES) {
      rules[type] = new TelemetryRule(this, `${type.charAt(0).toUpperCase()}${type.slice(1)}Rule`, {
        ruleName: s.ruleNames[type],
        recordType: type,
        topicPrefix: props.topicPrefix,
        stream: this.stream,
        errorStore: this.errorStore,
        ...extensions[type],
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
   * The time-series options are actions of the health rule (Basic Ingest delivers a message to one
   * rule only; docs/decisions.md D19), sharing its error action. Both need the registry enrichment.
   */
  private timeSeriesOptions(s: TelemetryConfig, thingNamePrefix: string): TimeSeriesOptions {
    if (!s.timestream.enabled && !s.influxdb.enabled) return { extensions: {} };
    const ruleName = s.ruleNames.health;
    const enrichment = new RegistryEnrichment(this, 'RegistryEnrichment', { thingNamePrefix });
    const timestream = s.timestream.enabled
      ? new TimestreamSink(this, 'Timestream', {
          databaseName: s.timestream.databaseName,
          tableName: s.timestream.tableName,
          ruleName,
          enrichment,
        })
      : undefined;
    let influxdb: InfluxDbSink | undefined;
    if (s.influxdb.enabled) {
      const { enabled: _enabled, ...influx } = s.influxdb;
      influxdb = new InfluxDbSink(this, 'InfluxDb', { ...influx, ruleName, enrichment });
    }
    const actions: iot.CfnTopicRule.ActionProperty[] = [timestream?.action, influxdb?.action].filter(
      (a): a is iot.CfnTopicRule.ActionProperty => a !== undefined,
    );
    return {
      enrichment,
      timestream,
      influxdb,
      extensions: {
        setClause: enrichment.setClause,
        projections: influxdb ? [INFLUXDB_TIMESTAMP_PROJECTION] : [],
        actions,
      },
    };
  }
}

interface TimeSeriesOptions {
  readonly enrichment?: RegistryEnrichment;
  readonly timestream?: TimestreamSink;
  readonly influxdb?: InfluxDbSink;
  readonly extensions: RuleExtensions;
}
