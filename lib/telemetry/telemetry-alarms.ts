import { Duration } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import { Construct } from 'constructs';
import { METRICS, METRICS_NAMESPACE } from '../../core/metrics';
import type { RecordType } from '../../core/telemetry';
import type { HealthConsumer } from './health-consumer';
import type { StreamArchive } from './stream-archive';
import type { TelemetryRule } from './telemetry-rule';
import type { TelemetryStream } from './telemetry-stream';
import { FLEET_DEFAULTS } from '../config';

/** Defaults of the props: FLEET_DEFAULTS is the one place they live. */
const A = FLEET_DEFAULTS.telemetry.alarms;

/** The dimension Powertools Metrics adds to every metric (the function's service name). */
export const SERVICE_DIMENSION = 'service';

/** Metrics Insights query of the unexpected-reboot rate, per firmware version or fleet-wide. */
export function rebootRateQuery(perFirmware: boolean): string {
  const { name, dimensions } = METRICS.unexpectedRebootRate;
  const schema = [`"${METRICS_NAMESPACE}"`, ...dimensions, SERVICE_DIMENSION].join(', ');
  const firmware = dimensions[0];
  return `SELECT AVG(${name}) FROM SCHEMA(${schema})${perFirmware ? ` GROUP BY ${firmware}` : ''}`;
}

/**
 * Metrics Insights query of one AWS IoT rule-action metric (`Failure`, `ErrorActionFailure`) of one
 * rule, summed over its action types, so a new action (a time-series option) is covered without
 * knowing its ActionType value (https://docs.aws.amazon.com/iot/latest/developerguide/metrics_dimensions.html#rule-action-metrics).
 */
export function ruleActionQuery(metric: 'Failure' | 'ErrorActionFailure', ruleName: string): string {
  return `SELECT SUM(${metric}) FROM SCHEMA("AWS/IoT", ActionType, RuleName) WHERE RuleName = '${ruleName}'`;
}

export interface TelemetryAlarmsProps {
  readonly rules: Readonly<Record<RecordType, TelemetryRule>>;
  readonly stream: TelemetryStream;
  readonly consumer: HealthConsumer;
  /** @default - no archive alarms */
  readonly archive?: StreamArchive;
  /** The device contract's health interval (s): the reboot-rate period, rounded up to whole minutes. @default 300 */
  readonly healthIntervalSeconds?: number;
  /** Unexpected reboots per 100 health reports above which the reboot-rate alarms fire. @default 5 */
  readonly unexpectedRebootRatePercent?: number;
  /** Health intervals in a row the reboot rate must stay above it. @default 3 */
  readonly rebootRateEvaluationPeriods?: number;
  /** Iterator age (ms) above which the stream and consumer alarms fire. @default 300000 */
  readonly iteratorAgeMs?: number;
  /** Archive data freshness (s) above which the archive alarm fires. @default 1800 */
  readonly archiveFreshnessSeconds?: number;
}

/** Names of the telemetry alarms (archive ones only when the archive is on). */
export type TelemetryAlarmName =
  | 'unexpectedRebootRateByFirmware'
  | 'unexpectedRebootRateFleet'
  | `${RecordType}RuleActionFailures`
  | `${RecordType}RuleErrorActionFailures`
  | 'streamIteratorAge'
  | 'consumerIteratorAge'
  | 'consumerErrors'
  | 'deadLetterQueueDepth'
  | 'archiveFreshness'
  | 'archiveReadLag';

/**
 * The telemetry capability's alarms, without actions (the observability capability adds SNS):
 * - unexpected-reboot rate per firmware version (one Metrics Insights alarm over every version,
 *   including versions released later; docs/decisions.md D17) and fleet-wide;
 * - per topic rule: failed actions (Kinesis, time-series) and failed error actions (the last line);
 * - the stream's and the consumer's iterator age, the consumer's errors, the dead-letter queue depth;
 * - with the archive: Firehose data freshness and how far it reads behind the stream.
 * Missing data is not breaching: a quiet fleet is not an incident.
 */
export class TelemetryAlarms extends Construct {
  public readonly alarms: Readonly<Partial<Record<TelemetryAlarmName, cloudwatch.Alarm>>>;

  constructor(scope: Construct, id: string, props: TelemetryAlarmsProps) {
    super(scope, id);
    const alarms: Partial<Record<TelemetryAlarmName, cloudwatch.Alarm>> = {};
    const fiveMinutes = Duration.minutes(5);
    const above = (
      name: TelemetryAlarmName,
      metric: cloudwatch.IMetric,
      threshold: number,
      description: string,
      evaluationPeriods = 1,
    ) => {
      alarms[name] = new cloudwatch.Alarm(this, name.charAt(0).toUpperCase() + name.slice(1), {
        metric,
        threshold,
        evaluationPeriods,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
        alarmDescription: description,
      });
    };

    const rebootPeriod = Duration.minutes(
      Math.max(
        1,
        Math.ceil((props.healthIntervalSeconds ?? FLEET_DEFAULTS.telemetry.healthIntervalSeconds) / 60),
      ),
    );
    const rebootPercent = props.unexpectedRebootRatePercent ?? A.unexpectedRebootRatePercent;
    const rebootPeriods = props.rebootRateEvaluationPeriods ?? A.rebootRateEvaluationPeriods;
    for (const perFirmware of [true, false]) {
      above(
        perFirmware ? 'unexpectedRebootRateByFirmware' : 'unexpectedRebootRateFleet',
        new cloudwatch.MathExpression({
          expression: rebootRateQuery(perFirmware),
          period: rebootPeriod,
          label: perFirmware ? 'Unexpected reboot rate by firmware (%)' : 'Unexpected reboot rate (%)',
        }),
        rebootPercent,
        `More than ${rebootPercent} in 100 health reports started an unexpected reboot` +
          `${perFirmware ? ' on a firmware version' : ' fleet-wide'} for ${rebootPeriods} health intervals`,
        rebootPeriods,
      );
    }

    for (const [type, rule] of Object.entries(props.rules) as [RecordType, TelemetryRule][]) {
      for (const metric of ['Failure', 'ErrorActionFailure'] as const) {
        above(
          metric === 'Failure' ? `${type}RuleActionFailures` : `${type}RuleErrorActionFailures`,
          new cloudwatch.MathExpression({
            expression: ruleActionQuery(metric, rule.ruleName),
            period: fiveMinutes,
          }),
          0,
          metric === 'Failure'
            ? `Topic rule ${rule.ruleName} failed to deliver messages (they are in the error store)`
            : `Topic rule ${rule.ruleName} failed to write to the error store: messages are lost`,
        );
      }
    }

    const iteratorAgeMs = props.iteratorAgeMs ?? A.iteratorAgeMs;
    above(
      'streamIteratorAge',
      props.stream.stream.metricGetRecordsIteratorAgeMilliseconds({
        statistic: 'Maximum',
        period: fiveMinutes,
      }),
      iteratorAgeMs,
      `The oldest unread record on the telemetry stream is older than ${iteratorAgeMs} ms`,
    );
    const fn = props.consumer.function;
    above(
      'consumerIteratorAge',
      fn.metric('IteratorAge', { statistic: 'Maximum', period: fiveMinutes }),
      iteratorAgeMs,
      `The health consumer reads records older than ${iteratorAgeMs} ms`,
    );
    above(
      'consumerErrors',
      fn.metricErrors({ statistic: 'Sum', period: fiveMinutes }),
      0,
      'The health consumer failed invocations (batches are retried, then dead-lettered)',
    );
    above(
      'deadLetterQueueDepth',
      props.consumer.deadLetterQueue.metricApproximateNumberOfMessagesVisible({
        statistic: 'Maximum',
        period: fiveMinutes,
      }),
      0,
      'Health records or batches wait in the dead-letter queue for an operator',
    );

    if (props.archive) {
      const firehoseMetric = (metricName: string) =>
        new cloudwatch.Metric({
          namespace: 'AWS/Firehose',
          metricName,
          dimensionsMap: { DeliveryStreamName: props.archive!.deliveryStreamName },
          statistic: 'Maximum',
          period: fiveMinutes,
        });
      const freshness = props.archiveFreshnessSeconds ?? A.archiveFreshnessSeconds;
      above(
        'archiveFreshness',
        firehoseMetric('DeliveryToS3.DataFreshness'),
        freshness,
        `Records older than ${freshness} s have not reached the archive bucket`,
      );
      above(
        'archiveReadLag',
        firehoseMetric('KinesisMillisBehindLatest'),
        iteratorAgeMs,
        `The archive reads the telemetry stream more than ${iteratorAgeMs} ms behind`,
      );
    }
    this.alarms = alarms;
  }
}
