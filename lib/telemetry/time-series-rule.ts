import { Duration } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as iot from 'aws-cdk-lib/aws-iot';
import { Construct } from 'constructs';
import { ERROR_STORE, PAYLOAD_FIELDS } from '../../core/telemetry';
import { TIME_SERIES, timeSeriesRuleName } from '../../core/time-series';
import { acknowledgeWildcardResource } from '../common/nag';
import { iotArn } from '../provisioning/iot-arns';
import type { TelemetryErrorStore } from './error-store';
import { INFLUXDB_TIMESTAMP_PROJECTION, InfluxDbSink, type InfluxDbSinkProps } from './influxdb-sink';
import { RegistryEnrichment } from './registry-enrichment';
import { ruleActionQuery } from './telemetry-alarms';
import { iotRulePrincipal, PARTITION_KEY, RULE_SQL_VERSION } from './telemetry-rule';
import { TimestreamSink } from './timestream-sink';

/**
 * The health report's measures the time series keep: each becomes one Timestream record (billed
 * per record) or one InfluxDB field. The envelope (principal, traceId, clientId, type, receivedAt…)
 * and the report's identifiers stay on the stream and in the archive.
 */
export const TIME_SERIES_MEASURES = [
  'uptimeS',
  'heapFreeB',
  'heapMinB',
  'rssiDbm',
] as const satisfies readonly (typeof PAYLOAD_FIELDS.health)[number][];

/**
 * QoS of the republish to the internal topic: 1, the QoS the device contract uses for health
 * reports. QoS governs the broker's delivery to MQTT subscribers and persistent sessions; the
 * internal topic has none (no device may subscribe to it), the rules engine reads the message
 * either way, and a QoS 1 republish costs the same as QoS 0
 * (https://docs.aws.amazon.com/iot/latest/developerguide/republish-rule-action.html: 0 or 1).
 */
export const REPUBLISH_QOS = 1;

export interface TimeSeriesRuleProps {
  /** The health rule: it republishes to the internal topic (the republish role trusts it only). */
  readonly healthRuleName: string;
  readonly topicPrefix: string;
  /** Things of this fleet are `<prefix>-<serial>` (the registry enrichment may describe those only). */
  readonly thingNamePrefix: string;
  readonly errorStore: TelemetryErrorStore;
  /** An existing Timestream for LiveAnalytics table. @default - no Timestream action */
  readonly timestream?: { readonly databaseName: string; readonly tableName: string };
  /** An existing InfluxDB. @default - no InfluxDB action */
  readonly influxdb?: Omit<InfluxDbSinkProps, 'ruleName' | 'enrichment'>;
}

/**
 * The time-series options (docs/decisions.md D19) as a rule of their own, so that nothing they
 * need can cost the stream a message:
 *
 * - the health rule keeps its SQL (`ruleSql('health', …)`) and gets one more action,
 *   {@link republishAction}: its record, to the internal topic
 *   `fleet-internal/<topicPrefix>/${topic(3)}/health` ({@link TIME_SERIES}), which the device
 *   policy grants no device (`$aws/rules/…` cannot be a republish target, and the device policy
 *   grants `dt/`, `cmd/`, Jobs and shadow topics only). Its role may publish there only and
 *   trusts the health rule only;
 * - this rule, `<health rule>_timeseries` ({@link timeSeriesRuleName}), reads that topic:
 *   `SET @registry = get_registry_data('DescribeThing', topic(3), …)` for lot and ring, a SELECT
 *   of the measures only ({@link TIME_SERIES_MEASURES}, plus `ts AS timestamp` when InfluxDB is
 *   on: the InfluxDB action takes the point time from that key), a WHERE that leaves Last Wills
 *   out (they carry no `fw`), the Timestream and/or InfluxDB actions, and its own error action to
 *   the error store under its own prefix, with its own alarms.
 *
 * A failing `get_registry_data` (throttled) drops the message from the time series only: the
 * stream got it from the health rule. A failed time-series write lands under this rule's prefix;
 * `fleet telemetry replay` counts those entries and leaves them (the stream has the record).
 */
export class TimeSeriesRule extends Construct {
  public readonly ruleName: string;
  public readonly rule: iot.CfnTopicRule;
  /** Role of the error action (writes under this rule's error-store prefix only). */
  public readonly role: iam.Role;
  public readonly sql: string;
  /** The internal topic template the health rule republishes to. */
  public readonly topic: string;
  /** Role of the republish action: `iot:Publish` on the internal topics, trusted by the health rule. */
  public readonly republishRole: iam.Role;
  /** The action to add to the health rule. */
  public readonly republishAction: iot.CfnTopicRule.ActionProperty;
  public readonly enrichment: RegistryEnrichment;
  public readonly timestream?: TimestreamSink;
  public readonly influxdb?: InfluxDbSink;
  /** Failed actions (time-series writes in the error store) and failed error actions (lost writes). */
  public readonly alarms: {
    readonly actionFailures: cloudwatch.Alarm;
    readonly errorActionFailures: cloudwatch.Alarm;
  };

  constructor(scope: Construct, id: string, props: TimeSeriesRuleProps) {
    super(scope, id);
    if (!props.timestream && !props.influxdb)
      throw new Error('TimeSeriesRule needs a Timestream or an InfluxDB target');
    const ruleName = timeSeriesRuleName(props.healthRuleName);
    this.ruleName = ruleName;

    // The health rule's republish: its record, to this thing's internal topic.
    this.topic = TIME_SERIES.topic(props.topicPrefix, PARTITION_KEY);
    const internalTopics = iotArn(this, 'topic', TIME_SERIES.topic(props.topicPrefix, '*'));
    this.republishRole = new iam.Role(this, 'RepublishRole', {
      assumedBy: iotRulePrincipal(this, props.healthRuleName),
      description: `Lets topic rule ${props.healthRuleName} republish health records to the internal topic of the time series`,
    });
    this.republishRole.addToPolicy(
      new iam.PolicyStatement({ actions: ['iot:Publish'], resources: [internalTopics] }),
    );
    acknowledgeWildcardResource(
      this.republishRole,
      internalTopics,
      'The thing is a level of the internal topic (one topic per publishing thing); publish only, under ' +
        `${TIME_SERIES.topicFilter(props.topicPrefix)}, which no device policy grants.`,
    );
    this.republishAction = {
      republish: { topic: this.topic, qos: REPUBLISH_QOS, roleArn: this.republishRole.roleArn },
    };

    this.enrichment = new RegistryEnrichment(this, 'RegistryEnrichment', {
      thingNamePrefix: props.thingNamePrefix,
      ruleName,
    });
    if (props.timestream)
      this.timestream = new TimestreamSink(this, 'Timestream', {
        ...props.timestream,
        ruleName,
        enrichment: this.enrichment,
      });
    if (props.influxdb)
      this.influxdb = new InfluxDbSink(this, 'InfluxDb', {
        ...props.influxdb,
        ruleName,
        enrichment: this.enrichment,
      });

    this.role = new iam.Role(this, 'Role', {
      assumedBy: iotRulePrincipal(this, ruleName),
      description: `Lets topic rule ${ruleName} write its error store prefix`,
    });
    props.errorStore.grantRuleErrors(this.role, ruleName);
    props.errorStore.acknowledgePrefixGrant(this.role, ruleName);

    const projections = [...TIME_SERIES_MEASURES, ...(this.influxdb ? [INFLUXDB_TIMESTAMP_PROJECTION] : [])];
    this.sql =
      `${this.enrichment.setClause} SELECT ${projections.join(', ')} ` +
      `FROM '${TIME_SERIES.topicFilter(props.topicPrefix)}' WHERE NOT isUndefined(fw)`;

    const actions = [this.timestream?.action, this.influxdb?.action].filter(
      (a): a is iot.CfnTopicRule.ActionProperty => a !== undefined,
    );
    this.rule = new iot.CfnTopicRule(this, 'Resource', {
      ruleName,
      topicRulePayload: {
        description:
          'Health reports republished by the health rule, enriched with lot and ring, to the time series',
        sql: this.sql,
        awsIotSqlVersion: RULE_SQL_VERSION,
        ruleDisabled: false,
        actions,
        errorAction: {
          s3: {
            bucketName: props.errorStore.bucket.bucketName,
            key: ERROR_STORE.keyTemplate(ruleName),
            roleArn: this.role.roleArn,
          },
        },
      },
    });
    // AWS IoT checks that it can assume the roles when the rule is created.
    this.rule.node.addDependency(
      this.role,
      this.enrichment.role,
      ...[this.timestream?.role, this.influxdb?.role].filter((r): r is iam.Role => r !== undefined),
    );

    const alarm = (id: string, metric: 'Failure' | 'ErrorActionFailure', description: string) =>
      new cloudwatch.Alarm(this, id, {
        metric: new cloudwatch.MathExpression({
          expression: ruleActionQuery(metric, ruleName),
          period: Duration.minutes(5),
        }),
        threshold: 0,
        evaluationPeriods: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
        alarmDescription: description,
      });
    this.alarms = {
      actionFailures: alarm(
        'ActionFailures',
        'Failure',
        `Topic rule ${ruleName} failed to write health reports to the time series (they are in the error store under ${ruleName}/; the stream has them)`,
      ),
      errorActionFailures: alarm(
        'ErrorActionFailures',
        'ErrorActionFailure',
        `Topic rule ${ruleName} failed to write to the error store: time-series writes are lost (the stream has the reports)`,
      ),
    };
  }
}
