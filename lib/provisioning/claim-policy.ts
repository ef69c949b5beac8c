import { RemovalPolicy } from 'aws-cdk-lib';
import * as iot from 'aws-cdk-lib/aws-iot';
import { Construct } from 'constructs';
import { iotArn } from './iot-arns';

export interface ClaimPolicyProps {
  /** The provisioning template this claim may call RegisterThing on. */
  readonly templateName: string;
  /** MQTT client id prefix claim connections must use (e.g. `prov-`). */
  readonly claimClientIdPrefix: string;
  /** @default RemovalPolicy.RETAIN */
  readonly removalPolicy?: RemovalPolicy;
}

/** Fleet provisioning MQTT API topics (any payload format) a claim may use for one template. */
export function provisioningTopics(templateName: string): string[] {
  return [
    '$aws/certificates/create/*',
    '$aws/certificates/create-from-csr/*',
    `$aws/provisioning-templates/${templateName}/provision/*`,
  ];
}

/**
 * The AWS IoT policy for the claim certificates of one provisioning template. A claim can do
 * nothing but run the fleet provisioning MQTT API of that template: connect with a client id
 * starting with the claim prefix, publish/receive on the certificate and RegisterThing topics,
 * and subscribe to their responses.
 */
export class ClaimPolicy extends Construct {
  public readonly policyName: string;
  public readonly policyArn: string;
  public readonly resource: iot.CfnPolicy;
  public readonly document: { Version: string; Statement: Record<string, unknown>[] };

  constructor(scope: Construct, id: string, props: ClaimPolicyProps) {
    super(scope, id);
    const names = provisioningTopics(props.templateName);
    this.document = {
      Version: '2012-10-17',
      Statement: [
        {
          Sid: 'ConnectWithClaimClientId',
          Effect: 'Allow',
          Action: 'iot:Connect',
          Resource: iotArn(this, 'client', `${props.claimClientIdPrefix}*`),
        },
        {
          Sid: 'ProvisioningRequestsAndResponses',
          Effect: 'Allow',
          Action: ['iot:Publish', 'iot:Receive'],
          Resource: names.map((n) => iotArn(this, 'topic', n)),
        },
        {
          Sid: 'ProvisioningResponseSubscriptions',
          Effect: 'Allow',
          Action: 'iot:Subscribe',
          Resource: names.map((n) => iotArn(this, 'topicfilter', n)),
        },
      ],
    };
    this.resource = new iot.CfnPolicy(this, 'Resource', { policyDocument: this.document });
    this.resource.applyRemovalPolicy(props.removalPolicy ?? RemovalPolicy.RETAIN);
    this.policyName = this.resource.ref;
    this.policyArn = this.resource.attrArn;
  }
}
