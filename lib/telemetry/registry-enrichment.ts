import { Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';
import { acknowledgeWildcardResource } from '../common/nag';
import { iotArn } from '../provisioning/iot-arns';
import { PARTITION_KEY } from './telemetry-rule';

/** The rule variable holding the thing's registry entry. */
export const REGISTRY_VARIABLE = '@registry';

export interface RegistryEnrichmentProps {
  /** Things of this fleet are `<prefix>-<serial>`: the role may describe those only. */
  readonly thingNamePrefix: string;
}

/**
 * The registry enrichment of the time-series options: the thing's `lot` and `ring` attributes
 * (set by the provisioning template) as dimensions/tags, from ONE `get_registry_data('DescribeThing',
 * topic(3), <role>)` call per message, held in a SET variable.
 *
 * Why a SET variable and not SELECT projections: an action's substitution templates are evaluated
 * apart from the SELECT and cannot see its `AS` aliases
 * (https://docs.aws.amazon.com/iot/latest/developerguide/iot-substitution-templates.html), while
 * SET variables are visible to them (https://docs.aws.amazon.com/iot/latest/developerguide/iot-sql-set.html);
 * and the SELECT stays as core/telemetry.ts writes it, so the stream record does not change.
 * The role may describe this fleet's things only.
 */
export class RegistryEnrichment extends Construct {
  public readonly role: iam.Role;
  /** `SET @registry = get_registry_data(…)`, to put before the rule's SELECT. */
  public readonly setClause: string;
  /** Substitution templates of the thing's lot and ring. */
  public readonly templates: { readonly lot: string; readonly ring: string };

  constructor(scope: Construct, id: string, props: RegistryEnrichmentProps) {
    super(scope, id);
    const stack = Stack.of(this);
    this.role = new iam.Role(this, 'Role', {
      assumedBy: new iam.ServicePrincipal('iot.amazonaws.com', {
        conditions: {
          StringEquals: { 'aws:SourceAccount': stack.account },
          ArnLike: { 'aws:SourceArn': iotArn(this, 'rule', '*') },
        },
      }),
      description: "Lets the health rule read a fleet thing's registry attributes (get_registry_data)",
    });
    const things = iotArn(this, 'thing', `${props.thingNamePrefix}-*`);
    this.role.addToPolicy(new iam.PolicyStatement({ actions: ['iot:DescribeThing'], resources: [things] }));
    acknowledgeWildcardResource(
      this.role,
      things,
      'The thing is the publisher of each message (topic(3)); read-only, scoped to the fleet thing-name prefix.',
    );
    this.setClause = `SET ${REGISTRY_VARIABLE} = get_registry_data('DescribeThing', topic(3), '${this.role.roleArn}')`;
    this.templates = {
      lot: `\${${REGISTRY_VARIABLE}.attributes.lot}`,
      ring: `\${${REGISTRY_VARIABLE}.attributes.ring}`,
    };
  }
}

/**
 * Dimension (Timestream) and tag (InfluxDB) names of the health time series. `thingName` rather
 * than `thing`: the record already has a `thing` field, and InfluxDB V3 refuses a tag named like a
 * field.
 */
export const TIME_SERIES_KEYS = {
  thing: 'thingName',
  firmware: 'firmware',
  lot: 'lot',
  ring: 'ring',
} as const;

/** The dimension/tag values: the thing from the topic, the firmware from the report, lot and ring from the registry. */
export function timeSeriesTags(enrichment: RegistryEnrichment): Record<string, string> {
  return {
    [TIME_SERIES_KEYS.thing]: PARTITION_KEY,
    // A Last Will (`{"connection":"lost"}` on the health topic) carries no firmware.
    [TIME_SERIES_KEYS.firmware]: "${get_or_default(fw, 'unknown')}",
    [TIME_SERIES_KEYS.lot]: enrichment.templates.lot,
    [TIME_SERIES_KEYS.ring]: enrichment.templates.ring,
  };
}
