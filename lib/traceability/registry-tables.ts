import { RemovalPolicy } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';
import { TABLES } from '../../core/model';

export interface RegistryTablesProps {
  /**
   * Removal policy of the three tables.
   * @default RemovalPolicy.RETAIN
   */
  readonly removalPolicy?: RemovalPolicy;
  /**
   * DynamoDB deletion protection.
   * @default true
   */
  readonly deletionProtection?: boolean;
}

/**
 * Stable CloudFormation logical ids of the registry tables. Changing one would make
 * CloudFormation replace (and, outside dev, orphan) a table: a test pins them.
 */
export const REGISTRY_LOGICAL_IDS = {
  devices: 'RegistryDevicesTable',
  lots: 'RegistryLotsTable',
  events: 'RegistryEventsTable',
} as const;

/** Attributes the `byLot` index carries besides its keys (fleet views per lot, rollout targeting). */
export const BY_LOT_PROJECTION = ['status', 'hwRev', 'ring', 'thingName', 'currentFirmware', 'certificateId'];

/**
 * The traceability registry: Devices (one item per serial), Lots, and the append-only device
 * event trail. Attribute and index names come from `TABLES` in core/model.ts.
 *
 * Index projections are chosen so that frequent device updates (presence, firmware) do not
 * write to every index: `byThing` and `byCertificate` are KEYS_ONLY (they resolve a thing name
 * or certificate id back to the serial; read the item with GetItem), `byLot` includes the
 * fields lot views need, and the trail's sparse `byEnrollmentDay` index projects everything.
 *
 * `byEnrollmentDay` holds only enrollment decisions. Its partition key `enrollDay` is the UTC day
 * plus a shard (`YYYY-MM-DD#k`, k in 0..7, written by core/trail.ts), so an enrollment burst
 * spreads over eight partitions; readers query every shard of a day and merge by `at`.
 *
 * The trail is append-only for writers (PutItem only); DynamoDB TTL on `expiresAt` removes the
 * entries of serials that are not on the manifest after the configured retention, so a claim
 * holder cannot grow the trail without bound. Entries without `expiresAt` are kept for ever.
 */
export class RegistryTables extends Construct {
  /** Devices, keyed by `serial`. */
  public readonly devices: dynamodb.Table;
  /** Lots, keyed by `lot`. */
  public readonly lots: dynamodb.Table;
  /** Device event trail: `serial` + time-ordered `sk`. Append-only. */
  public readonly events: dynamodb.Table;

  constructor(scope: Construct, id: string, props: RegistryTablesProps = {}) {
    super(scope, id);
    const common = {
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      encryption: dynamodb.TableEncryption.AWS_MANAGED,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      deletionProtection: props.deletionProtection ?? true,
      removalPolicy: props.removalPolicy ?? RemovalPolicy.RETAIN,
    } satisfies Partial<dynamodb.TableProps>;
    const S = dynamodb.AttributeType.STRING;

    this.devices = new dynamodb.Table(this, 'Devices', {
      ...common,
      partitionKey: { name: TABLES.devices.partitionKey, type: S },
    });
    this.devices.addGlobalSecondaryIndex({
      indexName: TABLES.devices.byLotIndex,
      partitionKey: { name: TABLES.devices.byLotKey, type: S },
      sortKey: { name: TABLES.devices.partitionKey, type: S },
      projectionType: dynamodb.ProjectionType.INCLUDE,
      nonKeyAttributes: BY_LOT_PROJECTION,
    });
    this.devices.addGlobalSecondaryIndex({
      indexName: TABLES.devices.byThingIndex,
      partitionKey: { name: TABLES.devices.byThingKey, type: S },
      projectionType: dynamodb.ProjectionType.KEYS_ONLY,
    });
    this.devices.addGlobalSecondaryIndex({
      indexName: TABLES.devices.byCertificateIndex,
      partitionKey: { name: TABLES.devices.byCertificateKey, type: S },
      projectionType: dynamodb.ProjectionType.KEYS_ONLY,
    });

    this.lots = new dynamodb.Table(this, 'Lots', {
      ...common,
      partitionKey: { name: TABLES.lots.partitionKey, type: S },
    });

    this.events = new dynamodb.Table(this, 'Events', {
      ...common,
      partitionKey: { name: TABLES.events.partitionKey, type: S },
      sortKey: { name: TABLES.events.sortKey, type: S },
      // Entries that carry `expiresAt` (epoch seconds) are deleted by DynamoDB after that time:
      // the hook sets it only on entries of serials that are not on the manifest.
      timeToLiveAttribute: TABLES.events.expiresAt,
    });
    this.events.addGlobalSecondaryIndex({
      indexName: TABLES.events.enrollmentIndex,
      partitionKey: { name: TABLES.events.enrollmentPartitionKey, type: S },
      sortKey: { name: TABLES.events.enrollmentSortKey, type: S },
      projectionType: dynamodb.ProjectionType.ALL,
    });

    (this.devices.node.defaultChild as dynamodb.CfnTable).overrideLogicalId(REGISTRY_LOGICAL_IDS.devices);
    (this.lots.node.defaultChild as dynamodb.CfnTable).overrideLogicalId(REGISTRY_LOGICAL_IDS.lots);
    (this.events.node.defaultChild as dynamodb.CfnTable).overrideLogicalId(REGISTRY_LOGICAL_IDS.events);
  }

  /**
   * What the pre-provisioning hook needs: read a device and its lot, transition the device with
   * one conditional update, and append the decision to the trail.
   */
  public grantProvisioningDecision(grantee: iam.IGrantable): iam.Grant {
    return combine(
      grantTable(grantee, this.devices, 'dynamodb:GetItem', 'dynamodb:UpdateItem'),
      grantTable(grantee, this.lots, 'dynamodb:GetItem'),
      this.grantAppendEvents(grantee),
    );
  }

  /** What the presence (activation gate) function needs: read and update a device, append events. */
  public grantPresenceUpdates(grantee: iam.IGrantable): iam.Grant {
    return combine(
      grantTable(grantee, this.devices, 'dynamodb:GetItem', 'dynamodb:UpdateItem'),
      this.grantAppendEvents(grantee),
    );
  }

  /**
   * What the health consumer needs: read devices one by one and in batches (its per-container
   * cache is filled from the registry), update a device (lastSeen, boot, firmware), and append
   * events (a firmware change).
   */
  public grantHealthUpdates(grantee: iam.IGrantable): iam.Grant {
    return combine(
      grantTable(grantee, this.devices, 'dynamodb:GetItem', 'dynamodb:BatchGetItem', 'dynamodb:UpdateItem'),
      this.grantAppendEvents(grantee),
    );
  }

  /** Append to the event trail. PutItem only: writers never update or delete entries (only TTL expires them). */
  public grantAppendEvents(grantee: iam.IGrantable): iam.Grant {
    return grantTable(grantee, this.events, 'dynamodb:PutItem');
  }
}

/** Grant actions on the table itself (not its indexes). */
function grantTable(grantee: iam.IGrantable, table: dynamodb.ITable, ...actions: string[]): iam.Grant {
  return iam.Grant.addToPrincipal({ grantee, actions, resourceArns: [table.tableArn] });
}

function combine(...grants: iam.Grant[]): iam.Grant {
  return grants.reduce((a, b) => a.combine(b));
}
