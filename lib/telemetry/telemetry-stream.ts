import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kinesis from 'aws-cdk-lib/aws-kinesis';
import { Construct } from 'constructs';
import { FLEET_DEFAULTS } from '../config';

/** Defaults of the props: FLEET_DEFAULTS is the one place they live. */
const S = FLEET_DEFAULTS.telemetry.stream;

/** Stable CloudFormation logical id of the stream (a test pins it: a new id would replace the stream). */
export const TELEMETRY_STREAM_LOGICAL_ID = 'TelemetryStream';

export interface TelemetryStreamProps {
  /**
   * Capacity mode. On-demand has a fixed hourly charge and scales by itself; provisioned is
   * billed per shard.
   * @default 'ON_DEMAND'
   */
  readonly mode?: 'ON_DEMAND' | 'PROVISIONED';
  /** Shards of a provisioned stream; refused for on-demand. @default 1 (provisioned only) */
  readonly shardCount?: number;
  /** Hours a record stays readable (24 to 8760). @default 24 */
  readonly retentionHours?: number;
  /** @default RemovalPolicy.RETAIN */
  readonly removalPolicy?: RemovalPolicy;
}

/**
 * The telemetry stream: one Kinesis data stream for both record types (telemetry and health,
 * told apart by the `type` field the rules set; docs/decisions.md D15), partitioned by thing name
 * so one device's records stay in order. Encrypted at rest with the AWS managed key
 * `alias/aws/kinesis`, which needs no key grant for producers and consumers of this account
 * (https://docs.aws.amazon.com/streams/latest/dev/what-is-sse.html).
 */
export class TelemetryStream extends Construct {
  public readonly stream: kinesis.Stream;

  constructor(scope: Construct, id: string, props: TelemetryStreamProps = {}) {
    super(scope, id);
    const mode = props.mode ?? S.mode;
    if (mode === 'ON_DEMAND' && props.shardCount !== undefined) {
      throw new Error(
        'TelemetryStream: an ON_DEMAND stream takes no shardCount; remove it or use mode PROVISIONED',
      );
    }
    this.stream = new kinesis.Stream(this, 'Resource', {
      streamMode: mode === 'ON_DEMAND' ? kinesis.StreamMode.ON_DEMAND : kinesis.StreamMode.PROVISIONED,
      shardCount: mode === 'PROVISIONED' ? (props.shardCount ?? S.provisionedShardCount) : undefined,
      retentionPeriod: Duration.hours(props.retentionHours ?? S.retentionHours),
      encryption: kinesis.StreamEncryption.MANAGED,
      removalPolicy: props.removalPolicy ?? RemovalPolicy.RETAIN,
    });
    (this.stream.node.defaultChild as kinesis.CfnStream).overrideLogicalId(TELEMETRY_STREAM_LOGICAL_ID);
  }

  /**
   * What a topic rule's Kinesis action needs: `kinesis:PutRecord` on this stream only
   * (https://docs.aws.amazon.com/iot/latest/developerguide/kinesis-rule-action.html).
   */
  public grantRulePut(grantee: iam.IGrantable): iam.Grant {
    return iam.Grant.addToPrincipal({
      grantee,
      actions: ['kinesis:PutRecord'],
      resourceArns: [this.stream.streamArn],
    });
  }

  /**
   * What a reader of the whole stream needs (Firehose's Kinesis source): describe the stream,
   * list its shards and read them
   * (https://docs.aws.amazon.com/firehose/latest/dev/controlling-access.html#using-iam-kinesis-streams).
   */
  public grantArchiveRead(grantee: iam.IGrantable): iam.Grant {
    return iam.Grant.addToPrincipal({
      grantee,
      actions: [
        'kinesis:DescribeStream',
        'kinesis:GetShardIterator',
        'kinesis:GetRecords',
        'kinesis:ListShards',
      ],
      resourceArns: [this.stream.streamArn],
    });
  }
}
