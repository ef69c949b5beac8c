import { Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as iot from 'aws-cdk-lib/aws-iot';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct, IConstruct, IDependable } from 'constructs';
import { ENV } from '../../core/env';
import { OVERRIDE_PARAMETERS, PROVISIONING_PARAMETERS, thingGroupNames } from '../../core/model';
import type { ProvisioningTemplateConfig } from '../config';
import { FleetFunction } from '../common/fleet-function';
import { acknowledgeWildcardResource } from '../common/nag';
import type { RegistryTables } from '../traceability/registry-tables';
import { ClaimPolicy } from './claim-policy';
import { iotArn } from './iot-arns';
import { SERVICES } from '../../core/metrics';
import { formatRingShares, type RingShares } from '../../core/rings';

/** Entry of the pre-provisioning hook handler, relative to the repository root. */
export const HOOK_ENTRY = 'lambda/provisioning/pre-provisioning-hook.handler.ts';
/** The only payload version AWS IoT accepts for pre-provisioning hooks. */
export const HOOK_PAYLOAD_VERSION = '2020-04-01';
/** Maximum length of a provisioning template body (CreateProvisioningTemplateVersion). */
export const MAX_TEMPLATE_BODY_LENGTH = 10240;

/**
 * `arn:<partition>:iot:<region>:<account>:provisioningtemplate/`: the ARN prefix of every
 * provisioning template of the scope's stack, from the pseudo parameters alone.
 */
export function templateArnPrefix(scope: IConstruct): string {
  return iotArn(scope, 'provisioningtemplate', '');
}

export interface TemplateBodyOptions {
  readonly thingNamePrefix: string;
  readonly topicPrefix: string;
  readonly thingTypeName: string;
  /** Name of the device policy to attach (may be a token). */
  readonly devicePolicyName: string;
}

/**
 * The fleet provisioning template body (as a JSON-able object). Parameter names are a contract
 * with the hook (parameterOverrides) and the lab: see PROVISIONING_PARAMETERS and
 * OVERRIDE_PARAMETERS in core/model.ts.
 */
export function templateBody(o: TemplateBodyOptions): Record<string, unknown> {
  const ref = (name: string) => ({ Ref: name });
  const join = (...parts: unknown[]) => ({ 'Fn::Join': ['', parts] });
  const str = { Type: 'String' };
  return {
    Parameters: {
      [PROVISIONING_PARAMETERS.serial]: str,
      [PROVISIONING_PARAMETERS.hwRev]: str,
      [PROVISIONING_PARAMETERS.firmware]: str,
      [PROVISIONING_PARAMETERS.proof]: { Type: 'String', Default: '' },
      [OVERRIDE_PARAMETERS.thingName]: str,
      [OVERRIDE_PARAMETERS.ring]: str,
      [OVERRIDE_PARAMETERS.lot]: str,
      'AWS::IoT::Certificate::Id': str,
    },
    Resources: {
      thing: {
        Type: 'AWS::IoT::Thing',
        Properties: {
          ThingName: ref(OVERRIDE_PARAMETERS.thingName),
          ThingTypeName: o.thingTypeName,
          AttributePayload: {
            serial: ref(PROVISIONING_PARAMETERS.serial),
            lot: ref(OVERRIDE_PARAMETERS.lot),
            hwRev: ref(PROVISIONING_PARAMETERS.hwRev),
            ring: ref(OVERRIDE_PARAMETERS.ring),
            firmware: ref(PROVISIONING_PARAMETERS.firmware),
          },
          ThingGroups: [
            join(`${o.thingNamePrefix}-ring-`, ref(OVERRIDE_PARAMETERS.ring)),
            join(thingGroupNames.lot(o.thingNamePrefix, ''), ref(OVERRIDE_PARAMETERS.lot)),
          ],
        },
        OverrideSettings: { AttributePayload: 'MERGE', ThingTypeName: 'REPLACE', ThingGroups: 'REPLACE' },
      },
      certificate: {
        Type: 'AWS::IoT::Certificate',
        Properties: { CertificateId: ref('AWS::IoT::Certificate::Id'), Status: 'ACTIVE' },
      },
      policy: {
        Type: 'AWS::IoT::Policy',
        Properties: { PolicyName: o.devicePolicyName },
      },
    },
    DeviceConfiguration: {
      telemetryTopic: join(`dt/${o.topicPrefix}/`, ref(OVERRIDE_PARAMETERS.thingName), '/telemetry'),
      healthTopic: join(`dt/${o.topicPrefix}/`, ref(OVERRIDE_PARAMETERS.thingName), '/health'),
    },
  };
}

export interface FleetProvisioningTemplateProps {
  /** The template's configuration (name, thing type, claim prefix, hook settings). */
  readonly template: ProvisioningTemplateConfig;
  readonly thingNamePrefix: string;
  readonly topicPrefix: string;
  /** Serial number regular expression (source) the hook enforces. */
  readonly serialPattern: string;
  /** Ring shares the hook assigns devices without a manifest ring by. */
  readonly ringShares: RingShares;
  /** Days the audit trail keeps entries of serials that are not on the manifest (DynamoDB TTL). */
  readonly unlistedSerialRetentionDays: number;
  /** Registry the hook reads and writes. */
  readonly registry: RegistryTables;
  /** Name of the device policy the template attaches. */
  readonly devicePolicyName: string;
  /** Role AWS IoT assumes for RegisterThing. */
  readonly provisioningRole: iam.IRole;
  /** Resources that must exist before the template (role, thing type, groups, device policy). */
  readonly dependsOn?: readonly IDependable[];
  /** @default logs.RetentionDays.ONE_MONTH */
  readonly logRetention?: logs.RetentionDays;
  /** @default RemovalPolicy.RETAIN */
  readonly removalPolicy?: RemovalPolicy;
}

/**
 * One fleet provisioning template with its own allowlist pre-provisioning hook and claim policy.
 */
export class FleetProvisioningTemplate extends Construct {
  public readonly templateName: string;
  public readonly thingTypeName: string;
  public readonly claimClientIdPrefix: string;
  public readonly hook: FleetFunction;
  /** The ARN AWS IoT invokes (the function, or its `live` alias with provisioned concurrency). */
  public readonly hookTargetArn: string;
  public readonly hookPermission: lambda.CfnPermission;
  public readonly claimPolicy: ClaimPolicy;
  public readonly resource: iot.CfnProvisioningTemplate;
  /** The template body as synthesized (a JSON string, possibly containing tokens). */
  public readonly templateBodyJson: string;

  constructor(scope: Construct, id: string, props: FleetProvisioningTemplateProps) {
    super(scope, id);
    const stack = Stack.of(this);
    const t = props.template;
    this.templateName = t.name;
    this.thingTypeName = t.thingTypeName;
    this.claimClientIdPrefix = t.claimClientIdPrefix;

    this.hook = new FleetFunction(this, 'Hook', {
      entry: HOOK_ENTRY,
      serviceName: SERVICES.preProvisioningHook,
      description: `Pre-provisioning hook (allowlist decision) of template ${t.name}`,
      timeout: Duration.seconds(5),
      memorySize: t.hook.memorySize,
      reservedConcurrentExecutions: t.hook.reservedConcurrency,
      logRetention: props.logRetention,
      logRemovalPolicy: props.removalPolicy,
      environment: {
        [ENV.devicesTable]: props.registry.devices.tableName,
        [ENV.lotsTable]: props.registry.lots.tableName,
        [ENV.eventsTable]: props.registry.events.tableName,
        [ENV.thingNamePrefix]: props.thingNamePrefix,
        [ENV.serialPattern]: props.serialPattern,
        [ENV.templateNames]: t.name,
        [ENV.ringShares]: formatRingShares(props.ringShares),
        [ENV.hookBudgetMs]: String(t.hook.budgetMs),
        // Built from the pseudo parameters, never from this construct's template resource: the
        // template depends on the hook, so a reference back would be a circular dependency.
        [ENV.templateArnPrefix]: templateArnPrefix(this),
        [ENV.unlistedTrailRetentionDays]: String(props.unlistedSerialRetentionDays),
      },
    });
    props.registry.grantProvisioningDecision(this.hook);
    const certs = iotArn(this, 'cert', '*');
    iam.Grant.addToPrincipal({
      grantee: this.hook,
      actions: ['iot:DescribeCertificate'],
      resourceArns: [certs],
    });
    acknowledgeWildcardResource(
      this.hook.executionRole,
      certs,
      'The hook describes the new certificate, whose id AWS IoT generates at enrollment; read-only.',
    );

    let target: lambda.IFunction = this.hook;
    if (t.hook.provisionedConcurrency > 0) {
      target = new lambda.Alias(this, 'HookLive', {
        aliasName: 'live',
        version: this.hook.currentVersion,
        provisionedConcurrentExecutions: t.hook.provisionedConcurrency,
      });
    }
    this.hookTargetArn = target.functionArn;

    // AWS IoT invokes the hook; scoped to this account (confused deputy). The SourceArn AWS IoT
    // presents for hook invocations is not documented, so no sourceArn condition is set.
    this.hookPermission = new lambda.CfnPermission(this, 'HookInvokePermission', {
      action: 'lambda:InvokeFunction',
      functionName: target.functionArn,
      principal: 'iot.amazonaws.com',
      sourceAccount: stack.account,
    });

    this.claimPolicy = new ClaimPolicy(this, 'ClaimPolicy', {
      templateName: t.name,
      claimClientIdPrefix: t.claimClientIdPrefix,
      removalPolicy: props.removalPolicy,
    });

    this.templateBodyJson = stack.toJsonString(
      templateBody({
        thingNamePrefix: props.thingNamePrefix,
        topicPrefix: props.topicPrefix,
        thingTypeName: t.thingTypeName,
        devicePolicyName: props.devicePolicyName,
      }),
    );

    this.resource = new iot.CfnProvisioningTemplate(this, 'Resource', {
      templateName: t.name,
      description: t.description,
      templateType: 'FLEET_PROVISIONING',
      enabled: true,
      provisioningRoleArn: props.provisioningRole.roleArn,
      templateBody: this.templateBodyJson,
      preProvisioningHook: { payloadVersion: HOOK_PAYLOAD_VERSION, targetArn: this.hookTargetArn },
    });
    this.resource.node.addDependency(this.hookPermission);
    if (target !== this.hook) this.resource.node.addDependency(target);
    for (const d of props.dependsOn ?? []) this.resource.node.addDependency(d);
  }
}
