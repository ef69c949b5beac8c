import { RemovalPolicy } from 'aws-cdk-lib';
import * as iot from 'aws-cdk-lib/aws-iot';
import { Construct } from 'constructs';
import { topics } from '../../core/topics';
import { FleetConfigError } from '../config';
import { iotArn, THING_NAME_VARIABLE } from './iot-arns';
import { iotPolicyLength, MAX_IOT_POLICY_LENGTH, worstCasePseudoParameters } from './policy-size';

/** MQTT connect attributes a device may use (`iot:ConnectAttributes`). */
export const DEVICE_CONNECT_ATTRIBUTES = ['PersistentConnect', 'LastWill', 'MQTTv5'] as const;

export interface DevicePolicyProps {
  /** MQTT topic prefix (`dt/<prefix>/<thing>/…`). */
  readonly topicPrefix: string;
  /**
   * Topic rules the device may reach through Basic Ingest (`$aws/rules/<rule>/dt/<prefix>/<thing>/…`).
   * @default - none
   */
  readonly basicIngestRuleNames?: readonly string[];
  /** @default RemovalPolicy.RETAIN */
  readonly removalPolicy?: RemovalPolicy;
}

/**
 * The per-device AWS IoT policy, attached by the provisioning template to every enrolled
 * certificate. Built only on the `${iot:Connection.Thing.ThingName}` policy variable, so one
 * policy serves the whole fleet and a device can reach nothing but its own topics:
 * - connect only with client id = its thing name, and only when the certificate is attached to
 *   that thing; clean, persistent, Last Will and MQTT 5 connects are allowed;
 * - publish on its own `dt/` and `cmd/` topics, its Jobs and shadow topics, and the Basic Ingest
 *   form of its `dt/` topics for each configured rule;
 * - subscribe to and receive its own `cmd/`, Jobs and shadow topics.
 */
export class DevicePolicy extends Construct {
  /** The CloudFormation-generated policy name. */
  public readonly policyName: string;
  public readonly policyArn: string;
  public readonly resource: iot.CfnPolicy;
  /**
   * Length of the document as AWS IoT counts it (whitespace excluded) with the longest partition,
   * region and account id substituted: what CreatePolicy would see in the worst environment.
   */
  public readonly resolvedLength: number;
  /** The policy document (plain JSON; account/region are tokens). */
  public readonly document: { Version: string; Statement: Record<string, unknown>[] };

  constructor(scope: Construct, id: string, props: DevicePolicyProps) {
    super(scope, id);
    const thing = THING_NAME_VARIABLE;
    const p = props.topicPrefix;
    const topic = (name: string) => iotArn(this, 'topic', name);
    const filter = (name: string) => iotArn(this, 'topicfilter', name);

    const ownDt = topics.ownData(p, thing);
    const ownCmd = topics.ownCommands(p, thing);
    const ownJobs = topics.ownJobs(thing);
    const ownShadow = topics.ownShadow(thing);
    const basicIngest = (props.basicIngestRuleNames ?? []).map((rule) => topics.basicIngest(rule, ownDt));

    this.document = {
      Version: '2012-10-17',
      Statement: [
        {
          Sid: 'ConnectAsOwnThing',
          Effect: 'Allow',
          Action: 'iot:Connect',
          Resource: iotArn(this, 'client', thing),
          Condition: {
            Bool: { 'iot:Connection.Thing.IsAttached': 'true' },
            'ForAllValues:StringEquals': { 'iot:ConnectAttributes': [...DEVICE_CONNECT_ATTRIBUTES] },
          },
        },
        {
          Sid: 'PublishOwnTopics',
          Effect: 'Allow',
          Action: 'iot:Publish',
          Resource: [ownDt, ownCmd, ownJobs, ownShadow, ...basicIngest].map(topic),
        },
        {
          Sid: 'SubscribeOwnTopics',
          Effect: 'Allow',
          Action: 'iot:Subscribe',
          Resource: [ownCmd, ownJobs, ownShadow].map(filter),
        },
        {
          Sid: 'ReceiveOwnTopics',
          Effect: 'Allow',
          Action: 'iot:Receive',
          Resource: [ownCmd, ownJobs, ownShadow].map(topic),
        },
      ],
    };

    this.resolvedLength = iotPolicyLength(this, this.document);
    if (this.resolvedLength > MAX_IOT_POLICY_LENGTH) {
      const worst = worstCasePseudoParameters(this);
      throw new FleetConfigError([
        `the device policy would be ${this.resolvedLength} characters (whitespace excluded; partition ${worst['AWS::Partition']}, region ${worst['AWS::Region']}), ` +
          `over AWS IoT's ${MAX_IOT_POLICY_LENGTH}-character policy limit, so CreatePolicy would fail at deploy; ` +
          `shorten topicPrefix (now ${p.length} characters, it appears in ${4 + basicIngest.length} resources) ` +
          `or shorten telemetry.ruleNames (now ${basicIngest.length} Basic Ingest rules), or set telemetry.basicIngest to false`,
      ]);
    }
    this.resource = new iot.CfnPolicy(this, 'Resource', { policyDocument: this.document });
    this.resource.applyRemovalPolicy(props.removalPolicy ?? RemovalPolicy.RETAIN);
    this.policyName = this.resource.ref;
    this.policyArn = this.resource.attrArn;
  }
}
