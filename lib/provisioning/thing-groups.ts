import { RemovalPolicy } from 'aws-cdk-lib';
import * as iot from 'aws-cdk-lib/aws-iot';
import { Construct } from 'constructs';
import { RINGS, thingGroupNames, type Ring } from '../../core/model';

export interface FleetThingGroupsProps {
  /** Prefix of the group names (`<prefix>-ring-<ring>`, `<prefix>-quarantine`, `<prefix>-lot-<lot>`). */
  readonly thingNamePrefix: string;
  /** @default RemovalPolicy.RETAIN */
  readonly removalPolicy?: RemovalPolicy;
}

/**
 * The static thing groups of the fleet: one per rollout ring, and the RMA quarantine group.
 * Lot groups (`<prefix>-lot-<lot>`) are created per lot by the operator tooling, before the
 * lot's units enroll. Every group name starts with `<prefix>-` (see the provisioning role).
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
}
