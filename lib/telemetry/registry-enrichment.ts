import * as iam from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';
import { acknowledgeWildcardResource } from '../common/nag';
import { iotArn } from '../provisioning/iot-arns';
import { iotRulePrincipal, PARTITION_KEY } from './telemetry-rule';

/** The rule variable holding the thing's registry entry. */
export const REGISTRY_VARIABLE = '@registry';

export interface RegistryEnrichmentProps {
  /** Things of this fleet are `<prefix>-<serial>`: the role may describe those only. */
  readonly thingNamePrefix: string;
  /** The rule that calls `get_registry_data` (the role trusts that rule only). */
  readonly ruleName: string;
}

/**
 * The registry enrichment of the time-series rule (never of the health rule): the thing's `lot`
 * and `ring` attributes (set by the provisioning template) as dimensions/tags, from ONE
 * `get_registry_data('DescribeThing', topic(3), <role>)` call per message, held in a SET variable.
 *
 * Why not on the health rule: a SQL function that fails (a throttled DescribeThing) drops the
 * message before any action runs, and the error action covers actions only
 * (https://docs.aws.amazon.com/iot/latest/developerguide/rule-error-handling.html); on the rule
 * that feeds the stream, that would lose health records silently (docs/decisions.md D19).
 *
 * Why a SET variable and not SELECT projections: an action's substitution templates are evaluated
 * apart from the SELECT and cannot see its `AS` aliases
 * (https://docs.aws.amazon.com/iot/latest/developerguide/iot-substitution-templates.html), while
 * SET variables are visible to them (https://docs.aws.amazon.com/iot/latest/developerguide/iot-sql-set.html);
 * and a projection would become one more Timestream measure. The role trusts the time-series
 * rule only and may describe this fleet's things only.
 */
export class RegistryEnrichment extends Construct {
  public readonly role: iam.Role;
  /** `SET @registry = get_registry_data(…)`, to put before the rule's SELECT. */
  public readonly setClause: string;
  /** Substitution templates of the thing's lot and ring. */
  public readonly templates: { readonly lot: string; readonly ring: string };

  constructor(scope: Construct, id: string, props: RegistryEnrichmentProps) {
    super(scope, id);
    this.role = new iam.Role(this, 'Role', {
      assumedBy: iotRulePrincipal(this, props.ruleName),
      description: `Lets topic rule ${props.ruleName} read a fleet thing's registry attributes (get_registry_data)`,
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

/**
 * The dimension/tag values: the thing from the topic (`topic(3)` of the internal topic, as of the
 * device's), the firmware from the report, lot and ring from the registry. The time-series rule's
 * WHERE leaves out messages without `fw` (Last Wills), so the firmware template is never empty.
 */
export function timeSeriesTags(enrichment: RegistryEnrichment): Record<string, string> {
  return {
    [TIME_SERIES_KEYS.thing]: PARTITION_KEY,
    [TIME_SERIES_KEYS.firmware]: '${fw}',
    [TIME_SERIES_KEYS.lot]: enrichment.templates.lot,
    [TIME_SERIES_KEYS.ring]: enrichment.templates.ring,
  };
}
