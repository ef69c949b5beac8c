import { RemovalPolicy } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';
import { TABLES } from '../../core/model';

/** Logical id of the rollouts table, pinned: renaming it would replace the table. */
export const ROLLOUTS_TABLE_LOGICAL_ID = 'RolloutsTable';

export interface RolloutTableProps {
  /** @default RemovalPolicy.RETAIN */
  readonly removalPolicy?: RemovalPolicy;
  /** @default true */
  readonly deletionProtection?: boolean;
}

/**
 * The staged OTA rollouts: one item per rollout (controller state, revision, operator commands),
 * with a sparse index of the rollouts still active. Retained, point-in-time recovery, encrypted,
 * a stable logical id.
 */
export class RolloutTable extends Construct {
  public readonly table: dynamodb.Table;

  constructor(scope: Construct, id: string, props: RolloutTableProps = {}) {
    super(scope, id);
    const T = TABLES.rollouts;
    this.table = new dynamodb.Table(this, 'Table', {
      partitionKey: { name: T.partitionKey, type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      encryption: dynamodb.TableEncryption.AWS_MANAGED,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      removalPolicy: props.removalPolicy ?? RemovalPolicy.RETAIN,
      deletionProtection: props.deletionProtection ?? true,
    });
    this.table.addGlobalSecondaryIndex({
      indexName: T.activeIndex,
      partitionKey: { name: T.activeKey, type: dynamodb.AttributeType.STRING },
      sortKey: { name: T.activeSortKey, type: dynamodb.AttributeType.STRING },
      projectionType: dynamodb.ProjectionType.KEYS_ONLY,
    });
    (this.table.node.defaultChild as dynamodb.CfnTable).overrideLogicalId(ROLLOUTS_TABLE_LOGICAL_ID);
  }

  /** The controller: read, list the active index, record states. */
  public grantControl(grantee: iam.IGrantable): iam.Grant {
    return iam.Grant.addToPrincipal({
      grantee,
      actions: ['dynamodb:GetItem', 'dynamodb:UpdateItem', 'dynamodb:Query'],
      resourceArns: [this.table.tableArn, `${this.table.tableArn}/index/${TABLES.rollouts.activeIndex}`],
    });
  }

  /** The API: read, list, create rollouts and queue commands. */
  public grantApi(grantee: iam.IGrantable): iam.Grant {
    return iam.Grant.addToPrincipal({
      grantee,
      actions: ['dynamodb:GetItem', 'dynamodb:Scan', 'dynamodb:PutItem', 'dynamodb:UpdateItem'],
      resourceArns: [this.table.tableArn],
    });
  }
}
