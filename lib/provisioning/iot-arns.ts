import { ArnFormat, Stack } from 'aws-cdk-lib';
import { IConstruct } from 'constructs';

/** AWS IoT policy variable holding the connected thing's name (resolved by AWS IoT, not by CloudFormation). */
export const THING_NAME_VARIABLE = '${iot:Connection.Thing.ThingName}';

/** AWS IoT resource types used in ARNs. */
export type IotResourceType =
  | 'client'
  | 'topic'
  | 'topicfilter'
  | 'thing'
  | 'thinggroup'
  | 'thingtype'
  | 'cert'
  | 'policy'
  | 'provisioningtemplate'
  | 'rule';

/**
 * `arn:<partition>:iot:<region>:<account>:<type>/<name>` in the scope's stack. The name is kept
 * verbatim, so policy variables such as {@link THING_NAME_VARIABLE} pass through unchanged.
 */
export function iotArn(scope: IConstruct, type: IotResourceType, name: string): string {
  return Stack.of(scope).formatArn({
    service: 'iot',
    resource: type,
    resourceName: name,
    arnFormat: ArnFormat.SLASH_RESOURCE_NAME,
  });
}
