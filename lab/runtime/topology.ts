/**
 * Builds the lab from the cloud assembly: every resource of every stack goes through the
 * handler registered for its CloudFormation type (see ./handlers). Adding a type is one small
 * handler module plus one line in {@link DEFAULT_HANDLERS}. Types without a handler are listed
 * as UNSUPPORTED in the summary, never silently ignored.
 */
import { createHash } from 'node:crypto';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { RulesEngine } from '../rules/engine';
import type { CfnResource, CloudAssembly, StackArtifact } from './cdk-out';
import { acknowledgedHandlers } from './handlers/acknowledged';
import { dynamodbTableHandler } from './handlers/dynamodb';
import { eventSourceMappingHandler } from './handlers/event-source-mapping';
import { eventsRuleHandler } from './handlers/events';
import { firehoseDeliveryStreamHandler } from './handlers/firehose';
import {
  iotPolicyHandler,
  iotProvisioningTemplateHandler,
  iotThingGroupHandler,
  iotThingTypeHandler,
  iotTopicRuleDestinationHandler,
  iotTopicRuleHandler,
} from './handlers/iot';
import {
  lambdaAliasHandler,
  lambdaFunctionHandler,
  lambdaPermissionHandler,
  lambdaVersionHandler,
} from './handlers/lambda';
import {
  iotJobEventConfigurationHandler,
  iotJobTemplateHandler,
  iotSoftwarePackageHandler,
} from './handlers/iot-ota';
import { kinesisStreamHandler } from './handlers/kinesis';
import { s3BucketHandler } from './handlers/s3';
import { sqsQueueHandler } from './handlers/sqs';
import { timestreamDatabaseHandler, timestreamTableHandler } from './handlers/timestream';
import type {
  CreateResult,
  HandlerContext,
  HandlerOptions,
  LambdaPermission,
  NamingContext,
  ResourceHandler,
} from './handlers/types';
import {
  evaluateCondition,
  IntrinsicError,
  parameterValues,
  resolve,
  type IntrinsicContext,
} from './intrinsics';
import type { IotCoreLike } from './iot-core';
import type { LabKinesis } from './kinesis-client';
import type { LambdaRunner } from './lambda-runner';
import type { FirehoseStats } from './firehose';
import type { KinesisMappingStats } from './kinesis-mapping';
import type { QueueInfo, QueueStore } from './queues';
import type { LabS3 } from './s3-client';
import type { TimeSeriesStore } from './time-series';

export const DEFAULT_HANDLERS: ResourceHandler[] = [
  dynamodbTableHandler,
  kinesisStreamHandler,
  sqsQueueHandler,
  s3BucketHandler,
  timestreamDatabaseHandler,
  timestreamTableHandler,
  iotPolicyHandler,
  iotThingTypeHandler,
  iotThingGroupHandler,
  iotProvisioningTemplateHandler,
  iotTopicRuleHandler,
  iotTopicRuleDestinationHandler,
  iotJobTemplateHandler,
  iotSoftwarePackageHandler,
  iotJobEventConfigurationHandler,
  lambdaFunctionHandler,
  lambdaVersionHandler,
  lambdaAliasHandler,
  lambdaPermissionHandler,
  eventsRuleHandler,
  eventSourceMappingHandler,
  firehoseDeliveryStreamHandler,
  ...acknowledgedHandlers,
];

/** Map CloudFormation type → handler. Later entries override earlier ones. */
export function handlerRegistry(
  handlers: ResourceHandler[] = DEFAULT_HANDLERS,
): Map<string, ResourceHandler> {
  const m = new Map<string, ResourceHandler>();
  for (const h of handlers) for (const t of h.types) m.set(t, h);
  return m;
}

/** The handler of a type: its own, else its service's `AWS::Service::*` handler. */
export function handlerFor(
  registry: Map<string, ResourceHandler>,
  type: string,
): ResourceHandler | undefined {
  const own = registry.get(type);
  if (own) return own;
  const service = type.split('::').slice(0, 2).join('::');
  return registry.get(`${service}::*`);
}

export type ResourceStatus = CreateResult['status'] | 'skipped';

export interface TopologyResource {
  stackName: string;
  logicalId: string;
  type: string;
  physicalName: string;
  status: ResourceStatus;
  detail?: string;
}

export interface ScheduleRecord {
  logicalId: string;
  name: string;
  expression: string;
  enabled: boolean;
  /** Interval for rate() schedules; undefined for cron(). */
  everyMs?: number;
  fire(): Promise<unknown[]>;
}

export interface EventSourceMappingRecord {
  logicalId: string;
  source: string;
  functionArn: string;
  /** Kinesis mappings: counters and checkpoints (see ./kinesis-mapping.ts). */
  stats?(): KinesisMappingStats;
  /** Kinesis mappings: stop the pollers and start again after the checkpoints. */
  restart?(): Promise<void>;
  /** Kinesis mappings: resolves true once every shard was read to its end and processed. */
  caughtUp?(timeoutMs?: number): Promise<boolean>;
}

export interface DeliveryStreamRecord {
  logicalId: string;
  name: string;
  source: string;
  bucket: string;
  stats(): FirehoseStats;
  /** Read the source to its end and deliver what is buffered now. */
  flush(): Promise<void>;
  /** Stop reading, drop what is not delivered, start again after the delivered records. */
  restart(): Promise<void>;
}

export interface Topology {
  stacks: string[];
  resources: TopologyResource[];
  /** Physical name (or id) the lab assigned, by logical id. */
  physicalNames: Record<string, string>;
  /** Table names by logical id. */
  tables: Record<string, string>;
  streams: Record<string, string>;
  /** Bucket names by logical id. */
  buckets: Record<string, string>;
  functions: Record<string, { name: string; arn: string }>;
  /** Versions and aliases by logical id: their qualified ARN and the function they invoke. */
  functionQualifiers: Record<string, { arn: string; functionArn: string }>;
  queues: Record<string, QueueInfo>;
  /** Topic rule names by logical id. */
  rules: Record<string, string>;
  policies: Record<string, string>;
  thingGroups: Record<string, string>;
  thingTypes: Record<string, string>;
  provisioningTemplates: Record<string, string>;
  schedules: ScheduleRecord[];
  eventSourceMappings: EventSourceMappingRecord[];
  deliveryStreams: DeliveryStreamRecord[];
  permissions: LambdaPermission[];
  /** Each stack's outputs, resolved against the lab: stack name → output name → value. */
  outputsByStack: Record<string, Record<string, unknown>>;
  unsupported: TopologyResource[];
  summary: string[];
}

export interface TopologyDeps {
  assembly: CloudAssembly;
  region: string;
  accountId: string;
  labDir: string;
  dynamodb: DynamoDBClient;
  kinesis: LabKinesis;
  iot: IotCoreLike;
  runner: LambdaRunner;
  rules: RulesEngine;
  queues: QueueStore;
  s3: LabS3;
  timeSeries: TimeSeriesStore;
  options?: HandlerOptions;
  handlers?: Map<string, ResourceHandler>;
  /** Parameter values by name (override template defaults). */
  parameters?: Record<string, unknown>;
  /** Only these stacks (by stack name or artifact id); default all. */
  stacks?: string[];
  log?: (e: { level: 'info' | 'warn' | 'error'; msg: string; [k: string]: unknown }) => void;
}

const SUFFIX_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';

/** CloudFormation-style generated name: `<stack>-<logicalId>-<13 chars>`, deterministic. */
export function generatedName(stackName: string, logicalId: string, maxLength = 128): string {
  const digest = createHash('sha256').update(`${stackName}/${logicalId}`).digest();
  let suffix = '';
  for (let i = 0; i < 13; i++) suffix += SUFFIX_ALPHABET[digest[i] % SUFFIX_ALPHABET.length];
  const head = `${stackName}-${logicalId}`.slice(0, Math.max(1, maxLength - suffix.length - 1));
  return `${head}-${suffix}`;
}

function genericArn(type: string, c: NamingContext, name: string): string {
  const [, service, kind] = type.split('::');
  return `arn:aws:${(service ?? 'unknown').toLowerCase()}:${c.region}:${c.accountId}:${(kind ?? 'resource').toLowerCase()}/${name}`;
}

interface StackState {
  stack: StackArtifact;
  naming: (logicalId: string) => NamingContext;
  ictx: IntrinsicContext;
  nameOf(logicalId: string): string;
}

function stackState(
  stack: StackArtifact,
  deps: TopologyDeps,
  registry: Map<string, ResourceHandler>,
  warn: (m: string) => void,
): StackState {
  const resources = stack.template.Resources ?? {};
  const names = new Map<string, string>();
  const inProgress = new Set<string>();
  const naming = (logicalId: string): NamingContext => ({
    region: deps.region,
    accountId: deps.accountId,
    stackName: stack.stackName,
    logicalId,
    type: resources[logicalId]?.Type,
  });
  const state = {} as StackState;
  const nameOf = (logicalId: string): string => {
    const cached = names.get(logicalId);
    if (cached) return cached;
    const res = resources[logicalId];
    const handler = handlerFor(registry, res.Type);
    if (inProgress.has(logicalId))
      throw new IntrinsicError(`circular name reference through ${logicalId}`, logicalId);
    inProgress.add(logicalId);
    let name: string;
    const explicit = handler?.nameProperty ? res.Properties?.[handler.nameProperty] : undefined;
    if (explicit !== undefined)
      name = String(resolve(explicit, state.ictx, `${logicalId}.Properties.${handler?.nameProperty}`));
    else {
      name = generatedName(stack.stackName, logicalId, handler?.maxNameLength ?? 128);
      if (handler?.sanitizeName) name = handler.sanitizeName(name, res.Properties ?? {});
    }
    inProgress.delete(logicalId);
    names.set(logicalId, name);
    return name;
  };
  state.stack = stack;
  state.naming = naming;
  state.nameOf = nameOf;
  // One property of a resource, resolved (for Ref/GetAtt values that depend on another resource).
  const resolvedProperty = (logicalId: string) => (key: string) =>
    resolve(resources[logicalId].Properties?.[key], state.ictx, `${logicalId}.Properties.${key}`);
  state.ictx = {
    region: deps.region,
    accountId: deps.accountId,
    stackName: stack.stackName,
    parameters: parameterValues(stack.template.Parameters, deps.parameters),
    conditions: stack.template.Conditions,
    ref(logicalId) {
      const res = resources[logicalId];
      if (!res) return undefined;
      const h = handlerFor(registry, res.Type);
      const name = nameOf(logicalId);
      return h?.ref
        ? h.ref(name, naming(logicalId), res.Properties ?? {}, resolvedProperty(logicalId))
        : name;
    },
    getAtt(logicalId, attribute) {
      const res = resources[logicalId];
      if (!res) return undefined;
      const h = handlerFor(registry, res.Type);
      const name = nameOf(logicalId);
      const attrs =
        h?.attributes?.(name, naming(logicalId), res.Properties ?? {}, resolvedProperty(logicalId)) ?? {};
      if (attrs[attribute] !== undefined) return attrs[attribute];
      if (!h && attribute === 'Arn') return genericArn(res.Type, naming(logicalId), name);
      warn(`Fn::GetAtt ${logicalId}.${attribute} (${res.Type}) has no lab value; using a placeholder`);
      return `lab-placeholder:${logicalId}.${attribute}`;
    },
  };
  return state;
}

type Stopper = () => Promise<void> | void;

/** What every handler context shares: the permission list and where background work registers. */
type HandlerSinks = Pick<HandlerContext, 'permissions' | 'addStopper' | 'record'>;

/** Where a created resource is listed in the topology, by logical id. */
type TopologyIndexEntry =
  | {
      key:
        | 'tables'
        | 'streams'
        | 'buckets'
        | 'rules'
        | 'policies'
        | 'thingGroups'
        | 'thingTypes'
        | 'provisioningTemplates';
      value: string;
    }
  | { key: 'functions'; value: { name: string; arn: string } }
  | { key: 'functionQualifiers'; value: { arn: string; functionArn: string } }
  | { key: 'queues'; value: QueueInfo };

/** Types listed by their physical name. */
const NAME_INDEX: Record<
  string,
  | 'tables'
  | 'streams'
  | 'buckets'
  | 'rules'
  | 'policies'
  | 'thingGroups'
  | 'thingTypes'
  | 'provisioningTemplates'
> = {
  'AWS::DynamoDB::Table': 'tables',
  'AWS::DynamoDB::GlobalTable': 'tables',
  'AWS::Kinesis::Stream': 'streams',
  'AWS::S3::Bucket': 'buckets',
  'AWS::IoT::TopicRule': 'rules',
  'AWS::IoT::Policy': 'policies',
  'AWS::IoT::ThingGroup': 'thingGroups',
  'AWS::IoT::ThingType': 'thingTypes',
  'AWS::IoT::ProvisioningTemplate': 'provisioningTemplates',
};

const QUALIFIER_TYPES = new Set(['AWS::Lambda::Version', 'AWS::Lambda::Alias']);

function emptyTopology(): Topology {
  return {
    stacks: [],
    resources: [],
    physicalNames: {},
    tables: {},
    streams: {},
    buckets: {},
    functions: {},
    functionQualifiers: {},
    queues: {},
    rules: {},
    policies: {},
    thingGroups: {},
    thingTypes: {},
    provisioningTemplates: {},
    schedules: [],
    eventSourceMappings: [],
    deliveryStreams: [],
    permissions: [],
    outputsByStack: {},
    unsupported: [],
    summary: [],
  };
}

/** The stacks to load (all, or those named by stack name or artifact id). */
function stacksToLoad(deps: TopologyDeps): StackArtifact[] {
  const stacks = deps.assembly.stacks.filter(
    (s) => !deps.stacks || deps.stacks.includes(s.stackName) || deps.stacks.includes(s.id),
  );
  if (stacks.length === 0)
    throw new Error(
      deps.stacks
        ? `no stack ${deps.stacks.join(', ')} in ${deps.assembly.dir}; its stacks are ${deps.assembly.stacks.map((s) => s.stackName).join(', ') || 'none'}`
        : `no stacks to load from ${deps.assembly.dir}`,
    );
  return stacks;
}

/** The stack's resources in creation order: by handler phase, then template order. */
function creationOrder(
  stack: StackArtifact,
  registry: Map<string, ResourceHandler>,
): { id: string; res: CfnResource }[] {
  const entries = Object.entries(stack.template.Resources ?? {}) as [string, CfnResource][];
  return entries
    .map(([id, res], i) => ({ id, res, i, phase: handlerFor(registry, res.Type)?.phase ?? 100 }))
    .sort((a, b) => a.phase - b.phase || a.i - b.i)
    .map(({ id, res }) => ({ id, res }));
}

/**
 * One resource: skipped by its condition, unsupported without a handler, or created by its
 * handler. Versions and aliases get their qualified ARN as physical id (what Ref returns).
 */
async function createResource(
  id: string,
  res: CfnResource,
  st: StackState,
  deps: TopologyDeps,
  handler: ResourceHandler | undefined,
  sinks: HandlerSinks,
): Promise<TopologyResource> {
  const entry: TopologyResource = {
    stackName: st.stack.stackName,
    logicalId: id,
    type: res.Type,
    physicalName: '',
    status: 'unsupported',
  };
  if (res.Condition && !evaluateCondition(st.ictx, res.Condition))
    return { ...entry, status: 'skipped', detail: `condition ${res.Condition} is false` };
  const physicalName = st.nameOf(id);
  if (!handler) return { ...entry, physicalName, detail: 'no lab handler for this type' };
  let properties: Record<string, unknown>;
  try {
    properties = resolve(res.Properties ?? {}, st.ictx, `${id}.Properties`) as Record<string, unknown>;
  } catch (e) {
    throw new Error(`resource ${id} (${res.Type}): ${(e as Error).message}`);
  }
  const ctx: HandlerContext = {
    ...st.naming(id),
    physicalName,
    properties,
    assembly: deps.assembly,
    stack: st.stack,
    labDir: deps.labDir,
    dynamodb: deps.dynamodb,
    kinesis: deps.kinesis,
    iot: deps.iot,
    runner: deps.runner,
    rules: deps.rules,
    queues: deps.queues,
    s3: deps.s3,
    timeSeries: deps.timeSeries,
    options: deps.options ?? {},
    ...sinks,
    log: deps.log ?? (() => undefined),
    invoke: (fn, event) => deps.runner.invoke(fn, event),
  };
  let result: CreateResult;
  try {
    result = await handler.create(ctx);
  } catch (e) {
    const err = e as Error;
    throw new Error(`lab start failed at ${id} (${res.Type}): ${err.message}`, { cause: err });
  }
  const qualified = result.status !== 'unsupported' && QUALIFIER_TYPES.has(res.Type);
  return {
    ...entry,
    physicalName: qualified ? String(st.ictx.ref(id)) : physicalName,
    status: result.status,
    detail: result.detail,
  };
}

/** Where a created resource is listed (tables, functions, queues, …), or undefined. */
function indexEntry(
  entry: TopologyResource,
  st: StackState,
  deps: TopologyDeps,
): TopologyIndexEntry | undefined {
  const name = entry.physicalName;
  const byName = NAME_INDEX[entry.type];
  if (byName) return { key: byName, value: name };
  if (entry.type === 'AWS::Lambda::Function')
    return { key: 'functions', value: { name, arn: String(st.ictx.getAtt(entry.logicalId, 'Arn')) } };
  if (QUALIFIER_TYPES.has(entry.type))
    return {
      key: 'functionQualifiers',
      value: { arn: name, functionArn: deps.runner.resolve(name) as string },
    };
  if (entry.type === 'AWS::SQS::Queue') return { key: 'queues', value: deps.queues.find(name) as QueueInfo };
  return undefined;
}

/** The stack's outputs whose condition holds, resolved against the lab (output name → value). */
function stackOutputs(
  stack: StackArtifact,
  st: StackState,
  warn: (m: string) => void,
): Record<string, unknown> {
  const outputs: Record<string, unknown> = {};
  for (const [name, out] of Object.entries(stack.template.Outputs ?? {})) {
    if (out.Condition && !evaluateCondition(st.ictx, out.Condition)) continue;
    try {
      outputs[name] = resolve(out.Value, st.ictx, `Outputs.${name}`);
    } catch (e) {
      warn(`output ${name}: ${(e as Error).message}`);
    }
  }
  return outputs;
}

/** Create everything the assembly declares; returns the topology and the stoppers of background tasks. */
export async function buildTopology(
  deps: TopologyDeps,
): Promise<{ topology: Topology; stoppers: Stopper[] }> {
  const registry = deps.handlers ?? handlerRegistry();
  const stoppers: Stopper[] = [];
  const warnings = new Set<string>();
  const warn = (m: string): void => void warnings.add(m);
  const topology = emptyTopology();
  const sinks: HandlerSinks = {
    permissions: topology.permissions,
    addStopper: (stop) => void stoppers.push(stop),
    record: (kind, r) => {
      if (kind === 'schedule') topology.schedules.push(r as unknown as ScheduleRecord);
      else if (kind === 'deliveryStream') topology.deliveryStreams.push(r as unknown as DeliveryStreamRecord);
      else topology.eventSourceMappings.push(r as unknown as EventSourceMappingRecord);
    },
  };
  for (const stack of stacksToLoad(deps)) {
    topology.stacks.push(stack.stackName);
    const st = stackState(stack, deps, registry, warn);
    for (const { id, res } of creationOrder(stack, registry)) {
      const entry = await createResource(id, res, st, deps, handlerFor(registry, res.Type), sinks);
      topology.resources.push(entry);
      if (entry.status !== 'skipped') topology.physicalNames[id] = entry.physicalName;
      if (entry.status === 'skipped' || entry.status === 'unsupported') continue;
      const listed = indexEntry(entry, st, deps);
      if (listed) (topology[listed.key] as Record<string, TopologyIndexEntry['value']>)[id] = listed.value;
    }
    topology.outputsByStack[stack.stackName] = stackOutputs(stack, st, warn);
  }
  topology.unsupported = topology.resources.filter((r) => r.status === 'unsupported');
  topology.summary = summarize(topology, [...warnings]);
  return { topology, stoppers };
}

const LABELS: Record<string, string> = {
  'AWS::DynamoDB::Table': 'table',
  'AWS::DynamoDB::GlobalTable': 'table',
  'AWS::Kinesis::Stream': 'stream',
  'AWS::SQS::Queue': 'queue',
  'AWS::Lambda::Function': 'function',
  'AWS::Lambda::Version': 'version',
  'AWS::Lambda::Alias': 'alias',
  'AWS::IoT::TopicRule': 'rule',
  'AWS::IoT::Policy': 'iot policy',
  'AWS::IoT::ThingType': 'thing type',
  'AWS::IoT::ThingGroup': 'thing group',
  'AWS::IoT::ProvisioningTemplate': 'prov. template',
  'AWS::Events::Rule': 'schedule',
  'AWS::Lambda::EventSourceMapping': 'event source',
  'AWS::S3::Bucket': 'bucket',
  'AWS::KinesisFirehose::DeliveryStream': 'firehose',
  'AWS::Timestream::Database': 'ts database',
  'AWS::Timestream::Table': 'ts table',
  'AWS::IoT::TopicRuleDestination': 'rule dest.',
  'AWS::IoT::JobTemplate': 'job template',
  'AWS::IoT::SoftwarePackage': 'sw package',
  'Custom::IotJobEventConfiguration': 'job events',
};

function summarize(t: Topology, warnings: string[]): string[] {
  const count = (s: ResourceStatus): number => t.resources.filter((r) => r.status === s).length;
  const lines = [
    `stack ${t.stacks.join(', ')}: ${count('created')} created, ${count('acknowledged')} acknowledged (no local effect), ` +
      `${count('unsupported')} UNSUPPORTED, ${count('skipped')} skipped by condition`,
  ];
  for (const r of t.resources.filter((x) => x.status === 'created')) {
    lines.push(
      `  ${(LABELS[r.type] ?? r.type).padEnd(15)} ${r.logicalId} → ${r.physicalName}${r.detail ? ` (${r.detail})` : ''}`,
    );
  }
  const acked = new Map<string, number>();
  for (const r of t.resources.filter((x) => x.status === 'acknowledged'))
    acked.set(r.type, (acked.get(r.type) ?? 0) + 1);
  if (acked.size) lines.push(`  acknowledged: ${[...acked].map(([type, n]) => `${type} ×${n}`).join(', ')}`);
  for (const r of t.unsupported)
    lines.push(`  UNSUPPORTED ${r.type} ${r.logicalId}${r.detail ? `: ${r.detail}` : ''}`);
  for (const r of t.resources.filter((x) => x.status === 'skipped'))
    lines.push(`  skipped ${r.type} ${r.logicalId}: ${r.detail}`);
  for (const w of warnings) lines.push(`  warning: ${w}`);
  return lines;
}
