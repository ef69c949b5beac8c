import { RemovalPolicy } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as iot from 'aws-cdk-lib/aws-iot';
import { Construct } from 'constructs';
import { RINGS, thingGroupNames, type Ring } from '../../core/model';
import { iotArn } from './iot-arns';

export interface FleetThingGroupsProps {
  /** Prefix of the group names (`<prefix>-ring-<ring>`, `<prefix>-quarantine`, `<prefix>-lot-<lot>`). */
  readonly thingNamePrefix: string;
  /** @default RemovalPolicy.RETAIN */
  readonly removalPolicy?: RemovalPolicy;
}

/**
 * The static thing groups of the fleet: one per rollout ring, and the RMA quarantine group.
 * Lot groups (`<prefix>-lot-<lot>`) are created per lot by the operator tooling, before the
 * lot's units enroll; this construct only grants membership changes on them.
 */
export class FleetThingGroups extends Construct {
  /** Ring group names by ring. */
  public readonly ringGroupNames: Readonly<Record<Ring, string>>;
  public readonly quarantineGroupName: string;
  public readonly resources: iot.CfnThingGroup[] = [];
  private readonly prefix: string;

  constructor(scope: Construct, id: string, props: FleetThingGroupsProps) {
    super(scope, id);
    this.prefix = props.thingNamePrefix;
    const removal = props.removalPolicy ?? RemovalPolicy.RETAIN;
    const names = {} as Record<Ring, string>;
    for (const ring of RINGS) {
      names[ring] = thingGroupNames.ring(this.prefix, ring);
      this.add(`Ring${ring[0].toUpperCase()}${ring.slice(1)}`, names[ring], `Rollout ring ${ring}`, removal);
    }
    this.ringGroupNames = names;
    this.quarantineGroupName = thingGroupNames.quarantine(this.prefix);
    this.add('Quarantine', this.quarantineGroupName, 'Devices under RMA: excluded from rollouts', removal);
  }

  private add(id: string, name: string, description: string, removal: RemovalPolicy): void {
    const group = new iot.CfnThingGroup(this, id, {
      thingGroupName: name,
      thingGroupProperties: { thingGroupDescription: description },
    });
    group.applyRemovalPolicy(removal);
    this.resources.push(group);
  }

  /** ARNs of the ring and quarantine groups plus the lot-group pattern. */
  public membershipGroupArns(): string[] {
    return [
      ...RINGS.map((r) => iotArn(this, 'thinggroup', this.ringGroupNames[r])),
      iotArn(this, 'thinggroup', this.quarantineGroupName),
      iotArn(this, 'thinggroup', thingGroupNames.lot(this.prefix, '*')),
    ];
  }

  /**
   * Add things to and remove them from the ring, quarantine and lot groups (what RegisterThing
   * does for the template's `ThingGroups` with override REPLACE).
   */
  public grantMembership(grantee: iam.IGrantable): iam.Grant {
    return iam.Grant.addToPrincipal({
      grantee,
      actions: [
        'iot:AddThingToThingGroup',
        'iot:RemoveThingFromThingGroup',
        'iot:UpdateThingGroupsForThing',
        'iot:DescribeThingGroup',
      ],
      resourceArns: this.membershipGroupArns(),
    });
  }
}
