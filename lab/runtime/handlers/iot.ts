/**
 * AWS IoT registry resources → the lab's IoT Core (lab/iot) registry, topic rules → the rules
 * engine, topic rule destinations → the rules' InfluxDB store.
 */
import { createHash } from 'node:crypto';
import type { TopicRulePayload } from '../../rules/engine';
import { arn, type ResourceHandler } from './types';

export const iotPolicyHandler: ResourceHandler = {
  types: ['AWS::IoT::Policy'],
  phase: 20,
  nameProperty: 'PolicyName',
  maxNameLength: 128,
  attributes: (name, c) => ({ Arn: arn('iot', c, `policy/${name}`), Id: name }),
  create(ctx) {
    const doc = ctx.properties.PolicyDocument;
    ctx.iot.registry.putPolicy(ctx.physicalName, typeof doc === 'string' ? JSON.parse(doc) : doc);
    return { status: 'created' };
  },
};

export const iotThingTypeHandler: ResourceHandler = {
  types: ['AWS::IoT::ThingType'],
  phase: 20,
  nameProperty: 'ThingTypeName',
  maxNameLength: 128,
  attributes: (name, c) => ({ Arn: arn('iot', c, `thingtype/${name}`), Id: name }),
  create(ctx) {
    ctx.iot.registry.putThingType(ctx.physicalName);
    return { status: 'created' };
  },
};

export const iotThingGroupHandler: ResourceHandler = {
  types: ['AWS::IoT::ThingGroup'],
  phase: 20,
  nameProperty: 'ThingGroupName',
  maxNameLength: 128,
  attributes: (name, c) => ({ Arn: arn('iot', c, `thinggroup/${name}`), Id: name }),
  create(ctx) {
    ctx.iot.registry.putThingGroup(ctx.physicalName);
    return { status: 'created' };
  },
};

export const iotProvisioningTemplateHandler: ResourceHandler = {
  types: ['AWS::IoT::ProvisioningTemplate'],
  phase: 35, // after functions, so the hook exists
  nameProperty: 'TemplateName',
  maxNameLength: 36,
  attributes: (name, c) => ({ TemplateArn: arn('iot', c, `provisioningtemplate/${name}`) }),
  create(ctx) {
    const p = ctx.properties;
    const hook = p.PreProvisioningHook as { TargetArn?: string } | undefined;
    const body = typeof p.TemplateBody === 'string' ? p.TemplateBody : JSON.stringify(p.TemplateBody);
    if (p.TemplateType === 'JITP')
      return { status: 'unsupported', detail: 'JITP templates are not emulated' };
    if (hook?.TargetArn && !ctx.runner.has(hook.TargetArn)) {
      throw new Error(
        `provisioning template ${ctx.physicalName}: pre-provisioning hook ${hook.TargetArn} is not a function, version or alias of the stack`,
      );
    }
    ctx.iot.registry.putProvisioningTemplate({
      name: ctx.physicalName,
      body,
      enabled: p.Enabled === true,
      hookArn: hook?.TargetArn,
      roleArn: typeof p.ProvisioningRoleArn === 'string' ? p.ProvisioningRoleArn : undefined,
    });
    return {
      status: 'created',
      detail: `${p.Enabled === true ? 'enabled' : 'DISABLED'}${hook?.TargetArn ? ', with hook' : ''}`,
    };
  },
};

export const iotTopicRuleHandler: ResourceHandler = {
  types: ['AWS::IoT::TopicRule'],
  phase: 50,
  nameProperty: 'RuleName',
  maxNameLength: 128,
  // Rule names allow only [a-zA-Z0-9_]: generated names use '_' instead of '-'.
  sanitizeName: (n) => n.replace(/[^A-Za-z0-9_]/g, '_'),
  attributes: (name, c) => ({ Arn: arn('iot', c, `rule/${name}`) }),
  create(ctx) {
    ctx.rules.addRule(ctx.physicalName, ctx.properties.TopicRulePayload as TopicRulePayload);
    const d = ctx.rules.describe().find((r) => r.name === ctx.physicalName);
    return {
      status: 'created',
      detail: `FROM ${d?.from ?? '(Basic Ingest only)'} → ${d?.actions.join(', ')}${d?.errorAction ? `; error → ${d.errorAction}` : '; NO errorAction'}${d?.disabled ? ' (disabled)' : ''}`,
    };
  },
};

/** A deterministic UUID-shaped id for a generated name. */
function destinationId(name: string): string {
  const hex = createHash('sha256').update(name).digest('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-4${hex.slice(13, 16)}-8${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}

function destinationKind(p: Record<string, unknown>): string {
  if (p.InfluxDBProperties) return 'influxdb';
  if (p.HttpUrlProperties) return 'http';
  return 'vpc';
}

/**
 * AWS::IoT::TopicRuleDestination. An InfluxDB destination (InfluxDBProperties) is where the
 * rules' InfluxDB actions write: the lab's local line-protocol store (../time-series.ts); its
 * endpoint, secret and VPC properties are recorded, not used. HTTP and VPC-only destinations are
 * acknowledged (no HTTP or Kafka action runs in the lab).
 */
export const iotTopicRuleDestinationHandler: ResourceHandler = {
  types: ['AWS::IoT::TopicRuleDestination'],
  phase: 45, // before the rules that name it
  ref: (name, c, p) => arn('iot', c, `ruledestination/${destinationKind(p)}/${destinationId(name)}`),
  attributes: (name, c, p) => ({
    Arn: arn('iot', c, `ruledestination/${destinationKind(p)}/${destinationId(name)}`),
    StatusReason: '',
  }),
  create(ctx) {
    const p = ctx.properties;
    const destArn = arn(
      'iot',
      ctx,
      `ruledestination/${destinationKind(p)}/${destinationId(ctx.physicalName)}`,
    );
    const status = typeof p.Status === 'string' ? p.Status : 'ENABLED';
    const influx = p.InfluxDBProperties as Record<string, unknown> | undefined;
    const vpc = p.VpcProperties ? '; VPC properties not emulated' : '';
    if (!influx) return { status: 'acknowledged', detail: `${destArn} (${status})${vpc}` };
    ctx.timeSeries.addInfluxDestination({
      arn: destArn,
      endpoint: String(influx.Endpoint ?? ''),
      version: String(influx.InfluxDBVersion ?? ''),
      enabled: status === 'ENABLED',
    });
    return {
      status: 'created',
      detail: `InfluxDB ${String(influx.InfluxDBVersion ?? '')} ${String(influx.Endpoint ?? '')} → local line-protocol store (${status}); secret not read${vpc}`,
    };
  },
};
