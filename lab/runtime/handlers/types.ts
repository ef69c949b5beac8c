/**
 * The resource-type handler contract. One small module per CloudFormation type (or family);
 * register it in ../topology.ts. A handler says how the lab names the resource (Ref and
 * Fn::GetAtt values) and what it creates (in the emulators, the IoT registry, the Lambda
 * runner or the rules engine). Types without a handler are listed as UNSUPPORTED.
 */
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { RulesEngine } from '../../rules/engine';
import type { CloudAssembly, StackArtifact } from '../cdk-out';
import type { IotCoreLike } from '../iot-core';
import type { LabKinesis } from '../kinesis-client';
import type { LambdaRunner } from '../lambda-runner';
import type { QueueStore } from '../queues';
import type { LabS3 } from '../s3-client';
import type { TimeSeriesStore } from '../time-series';

export interface NamingContext {
  region: string;
  accountId: string;
  stackName: string;
  logicalId: string;
  /** The resource's CloudFormation type (for handlers that serve several, e.g. `AWS::EC2::*`). */
  type?: string;
}

/** What a handler returns from create(): what the summary says about the resource. */
export interface CreateResult {
  /** `created`: the lab runs it; `acknowledged`: no local effect needed (IAM, logs, KMS…). */
  status: 'created' | 'acknowledged' | 'unsupported';
  detail?: string;
}

export interface LambdaPermission {
  logicalId: string;
  functionArn: string;
  action: string;
  principal: string;
  sourceArn?: string;
  sourceAccount?: string;
}

/** Lab settings that shorten AWS timings (runtime options). */
export interface HandlerOptions {
  /** Wait between polls of an idle Kinesis shard (event-source mappings, Firehose), ms. */
  pollIntervalMs?: number;
  /** Upper bound on an event-source mapping's MaximumBatchingWindowInSeconds, ms. */
  maxBatchingWindowMs?: number;
  /** Upper bound on a Firehose stream's BufferingHints.IntervalInSeconds, ms. */
  firehoseMaxBufferIntervalMs?: number;
}

export interface HandlerContext extends NamingContext {
  /** Physical name the lab assigned to this resource. */
  physicalName: string;
  /** The resource's properties with every intrinsic resolved. */
  properties: Record<string, unknown>;
  assembly: CloudAssembly;
  stack: StackArtifact;
  /** Working directory of the lab (`.lab/`), for generated files. */
  labDir: string;
  dynamodb: DynamoDBClient;
  kinesis: LabKinesis;
  iot: IotCoreLike;
  runner: LambdaRunner;
  rules: RulesEngine;
  queues: QueueStore;
  /** The S3 emulator (buckets, rule S3 actions, Firehose deliveries). */
  s3: LabS3;
  /** Local Timestream and InfluxDB stores. */
  timeSeries: TimeSeriesStore;
  options: HandlerOptions;
  permissions: LambdaPermission[];
  /** Register a background task (schedules, pollers) stopped with the lab. */
  addStopper(stop: () => Promise<void> | void): void;
  log(e: { level: 'info' | 'warn' | 'error'; msg: string; [k: string]: unknown }): void;
  /** Extra runtime records a handler publishes into the Topology (schedules, mappings, delivery streams). */
  record(kind: 'schedule' | 'eventSourceMapping' | 'deliveryStream', entry: Record<string, unknown>): void;
  /** Invoke a function through the runner (what schedules and mappings use). */
  invoke(functionRef: string, event: unknown): Promise<unknown>;
}

export interface ResourceHandler {
  /** CloudFormation resource types served by this handler. */
  types: string[];
  /**
   * Creation order (lower first): 10 storage, 20 IoT registry, 30 functions, 40 permissions,
   * 45 rule destinations, 50 rules, 60 schedules, mappings and delivery streams, 90
   * acknowledged-only.
   */
  phase: number;
  /** Property holding an explicit physical name, and the limit for generated names. */
  nameProperty?: string;
  maxNameLength?: number;
  /** Adjust a generated name to the type's naming rules (e.g. `.fifo`, no dashes). */
  sanitizeName?(generated: string, properties: Record<string, unknown>): string;
  /**
   * Ref value (default: the physical name). `properties` are as written in the template;
   * `resolved(key)` resolves one of them (e.g. the function a version or alias points at).
   */
  ref?(
    name: string,
    c: NamingContext,
    properties: Record<string, unknown>,
    resolved: (key: string) => unknown,
  ): string;
  /** Fn::GetAtt values by attribute name (arguments as for {@link ResourceHandler.ref}). */
  attributes?(
    name: string,
    c: NamingContext,
    properties: Record<string, unknown>,
    resolved: (key: string) => unknown,
  ): Record<string, string>;
  create(ctx: HandlerContext): Promise<CreateResult> | CreateResult;
}

export function arn(
  service: string,
  c: NamingContext,
  resource: string,
  opts: { region?: boolean; account?: boolean } = {},
): string {
  return `arn:aws:${service}:${opts.region === false ? '' : c.region}:${opts.account === false ? '' : c.accountId}:${resource}`;
}
