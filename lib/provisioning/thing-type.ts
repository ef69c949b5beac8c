import { RemovalPolicy } from 'aws-cdk-lib';
import * as iot from 'aws-cdk-lib/aws-iot';
import { Construct } from 'constructs';
import { iotArn } from './iot-arns';

/** Thing attributes made searchable on the thing type (AWS allows three). */
export const SEARCHABLE_ATTRIBUTES = ['serial', 'lot', 'ring'];

export interface FleetThingTypeProps {
  /** Fixed thing type name (referenced by name from provisioning template bodies). */
  readonly thingTypeName: string;
  /** @default - none */
  readonly description?: string;
  /** @default RemovalPolicy.RETAIN */
  readonly removalPolicy?: RemovalPolicy;
}

/** An AWS IoT thing type for one device class. */
export class FleetThingType extends Construct {
  public readonly thingTypeName: string;
  public readonly thingTypeArn: string;
  public readonly resource: iot.CfnThingType;

  constructor(scope: Construct, id: string, props: FleetThingTypeProps) {
    super(scope, id);
    this.resource = new iot.CfnThingType(this, 'Resource', {
      thingTypeName: props.thingTypeName,
      thingTypeProperties: {
        searchableAttributes: SEARCHABLE_ATTRIBUTES,
        thingTypeDescription: props.description,
      },
    });
    this.resource.applyRemovalPolicy(props.removalPolicy ?? RemovalPolicy.RETAIN);
    this.thingTypeName = props.thingTypeName;
    this.thingTypeArn = iotArn(this, 'thingtype', props.thingTypeName);
  }
}
