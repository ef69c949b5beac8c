/**
 * Command context of the `fleet` CLI: resolved resource names, SDK clients, output sink, clock.
 *
 * Resource names resolve per name, first hit wins:
 *   1. an explicit flag (`--devices-table`, ...),
 *   2. an environment variable (`FLEET_DEVICES_TABLE`, ...),
 *   3. the CloudFormation outputs of the deployed stack (`--stack`, default IotFleetStack),
 *      read with DescribeStacks only when a name the command needs is still missing.
 *
 * Contract values the stack's functions use (serial pattern, ring shares, topic prefix) resolve
 * the same way and have no local default: a command that needs one gets it from the deployed
 * stack (or an explicit flag/variable), so the CLI can never drift from the hook.
 *
 * SDK clients use the default AWS configuration chain, so region, credentials and the standard
 * `AWS_ENDPOINT_URL_*` variables (e.g. the local lab's endpoints) apply without any code here.
 *
 * The lab builds a context with {@link createContext} and calls the commands in-process.
 */
import { userInfo } from 'node:os';
import { CloudFormationClient, DescribeStacksCommand } from '@aws-sdk/client-cloudformation';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { IoTClient } from '@aws-sdk/client-iot';
import { KinesisClient } from '@aws-sdk/client-kinesis';
import { S3Client } from '@aws-sdk/client-s3';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { z } from 'zod';
import { parseRingShares, RingShares, RingSharesError } from '../core/rings';
import { ENV } from '../core/env';
import { RegistryTableNames } from '../lambda/shared/registry';
import {
  DEFAULT_STACK_NAME,
  ProvisioningTemplateOutput,
  STACK_OUTPUTS,
  TelemetryRulesOutput,
} from '../core/stack-outputs';
import { awsSetupProblem, CliError, UsageError } from './errors';
import { consoleSink, OutputSink } from './output';

/** AWS IoT topic rule names: 1-128 of A-Z a-z 0-9 _. */
export const TOPIC_RULE_NAME = /^[a-zA-Z0-9_]{1,128}$/;

/** CLI-only environment variables (the shared ones live in core/env.ts). */
export const CLI_ENV = {
  /** JSON array like the stack's ProvisioningTemplates output. */
  provisioningTemplates: 'FLEET_PROVISIONING_TEMPLATES',
  /** Name of the device IoT policy. */
  devicePolicy: 'FLEET_DEVICE_POLICY',
  /** Stack to read outputs from when a name is not given by flag or environment. */
  stackName: 'FLEET_STACK_NAME',
  /** Who the operator is, recorded on holds, releases and resets. @default OS user name */
  actor: 'FLEET_ACTOR',
  /** Topic prefix of the stack (`dt/<prefix>/<thing>/…`). */
  topicPrefix: 'FLEET_TOPIC_PREFIX',
  /** Kinesis stream the telemetry and health rules write to. */
  telemetryStream: 'FLEET_TELEMETRY_STREAM',
  /** JSON `{"telemetry":"<rule>","health":"<rule>"}` like the stack's TelemetryRules output. */
  telemetryRules: 'FLEET_TELEMETRY_RULES',
  /** S3 bucket the rules' error actions write to (the error store). */
  telemetryErrorBucket: 'FLEET_TELEMETRY_ERROR_BUCKET',
} as const;

/** Resource names a command may need. */
export interface FleetResources {
  devicesTable?: string;
  lotsTable?: string;
  eventsTable?: string;
  thingPrefix?: string;
  devicePolicy?: string;
  provisioningTemplates?: ProvisioningTemplateOutput[];
  /** Regular expression (source) serial numbers must match: the hook's own pattern. */
  serialPattern?: string;
  /** Ring shares the hook and manifest import assign rings with. */
  ringShares?: RingShares;
  /** Topic prefix of the `dt/<prefix>/<thing>/…` topics. */
  topicPrefix?: string;
  /** Kinesis stream of the telemetry and health records. */
  telemetryStream?: string;
  /** Topic rule name per record type. */
  telemetryRules?: TelemetryRulesOutput;
  /** S3 bucket of the rules' error actions (core/telemetry.ts ERROR_STORE). */
  telemetryErrorBucket?: string;
}
export type ResourceKey = keyof FleetResources;

interface ResourceSource {
  flag: string;
  env: string;
  output: string;
}

/** Where each resource name can come from (used in resolution and in error messages). */
export const RESOURCE_SOURCES: Record<ResourceKey, ResourceSource> = {
  devicesTable: { flag: '--devices-table', env: ENV.devicesTable, output: STACK_OUTPUTS.devicesTable },
  lotsTable: { flag: '--lots-table', env: ENV.lotsTable, output: STACK_OUTPUTS.lotsTable },
  eventsTable: { flag: '--events-table', env: ENV.eventsTable, output: STACK_OUTPUTS.eventsTable },
  thingPrefix: { flag: '--thing-prefix', env: ENV.thingNamePrefix, output: STACK_OUTPUTS.thingNamePrefix },
  devicePolicy: { flag: '--device-policy', env: CLI_ENV.devicePolicy, output: STACK_OUTPUTS.devicePolicy },
  provisioningTemplates: {
    flag: '--templates',
    env: CLI_ENV.provisioningTemplates,
    output: STACK_OUTPUTS.provisioningTemplates,
  },
  serialPattern: { flag: '--serial-pattern', env: ENV.serialPattern, output: STACK_OUTPUTS.serialPattern },
  ringShares: { flag: '--ring-shares', env: ENV.ringShares, output: STACK_OUTPUTS.ringShares },
  topicPrefix: { flag: '--topic-prefix', env: CLI_ENV.topicPrefix, output: STACK_OUTPUTS.topicPrefix },
  telemetryStream: {
    flag: '--stream',
    env: CLI_ENV.telemetryStream,
    output: STACK_OUTPUTS.telemetryStream,
  },
  telemetryRules: {
    flag: '--telemetry-rules',
    env: CLI_ENV.telemetryRules,
    output: STACK_OUTPUTS.telemetryRules,
  },
  telemetryErrorBucket: {
    flag: '--bucket',
    env: CLI_ENV.telemetryErrorBucket,
    output: STACK_OUTPUTS.telemetryErrorBucket,
  },
};

export interface FleetClients {
  dynamo: DynamoDBClient;
  doc: DynamoDBDocumentClient;
  iot: IoTClient;
  /**
   * S3 (the telemetry error store). Optional so contexts built before the telemetry commands
   * keep working: {@link s3Client} creates one on first use (default AWS chain) and
   * {@link destroyContext} closes it.
   */
  s3?: S3Client;
  /** Kinesis (the telemetry stream); like {@link FleetClients.s3}, see {@link kinesisClient}. */
  kinesis?: KinesisClient;
}

export interface CliContext {
  resources: FleetResources;
  clients: FleetClients;
  out: OutputSink;
  now: () => Date;
  /** Operator identity recorded on lot holds/releases and device resets. */
  actor: string;
  /** Injectable sleep for batch retry backoff (tests pass a no-op). */
  sleep?: (ms: number) => Promise<void>;
}

/** Global options shared by every command (flags as commander passes them). */
export interface GlobalFlags {
  stack?: string;
  region?: string;
  devicesTable?: string;
  lotsTable?: string;
  eventsTable?: string;
  thingPrefix?: string;
  devicePolicy?: string;
  templates?: string;
  serialPattern?: string;
  ringShares?: string;
  topicPrefix?: string;
  /** Telemetry stream (an option of `telemetry replay`). */
  stream?: string;
  /** Telemetry rule names as JSON (an option of `telemetry replay`). */
  telemetryRules?: string;
  /** Telemetry error bucket (an option of `telemetry replay`). */
  bucket?: string;
  actor?: string;
}

/** Default SDK clients (region, credentials and endpoints from the standard AWS chain). */
export function defaultClients(region?: string): FleetClients {
  const config = region ? { region } : {};
  const dynamo = new DynamoDBClient(config);
  return {
    dynamo,
    doc: DynamoDBDocumentClient.from(dynamo, { marshallOptions: { removeUndefinedValues: true } }),
    iot: new IoTClient(config),
    s3: newS3Client(region),
    kinesis: newKinesisClient(region),
  };
}

/**
 * An S3 client on the default AWS chain. Path-style addressing when AWS_ENDPOINT_URL_S3 (or
 * AWS_ENDPOINT_URL) points at an emulator, whose host name cannot take a bucket label.
 */
export function newS3Client(
  region?: string,
  env: Record<string, string | undefined> = process.env,
): S3Client {
  const custom = Boolean(env.AWS_ENDPOINT_URL_S3 || env.AWS_ENDPOINT_URL);
  return new S3Client({ ...(region ? { region } : {}), ...(custom ? { forcePathStyle: true } : {}) });
}

/**
 * A Kinesis client on the default AWS chain, over HTTP/1.1: the CLI only puts and reads records
 * (no SubscribeToShard, the one call that needs HTTP/2), and HTTP/1.1 also reaches the plain-HTTP
 * emulators an AWS_ENDPOINT_URL_KINESIS may point at.
 */
export function newKinesisClient(region?: string): KinesisClient {
  return new KinesisClient({ ...(region ? { region } : {}), requestHandler: new NodeHttpHandler() });
}

/** The context's S3 client, created on first use when the context was built without one. */
export function s3Client(ctx: CliContext): S3Client {
  ctx.clients.s3 ??= newS3Client();
  return ctx.clients.s3;
}

/** The context's Kinesis client, created on first use when the context was built without one. */
export function kinesisClient(ctx: CliContext): KinesisClient {
  ctx.clients.kinesis ??= newKinesisClient();
  return ctx.clients.kinesis;
}

/** Build a context from parts; anything omitted gets its default. For the lab and tests. */
export function createContext(parts: Partial<CliContext> & { resources: FleetResources }): CliContext {
  return {
    ...parts,
    clients: parts.clients ?? defaultClients(),
    out: parts.out ?? consoleSink(),
    now: parts.now ?? (() => new Date()),
    actor: parts.actor ?? defaultActor(process.env),
  };
}

/**
 * Close the context's SDK clients (their keep-alive sockets). The `fleet` run wrapper calls it
 * once the command is done, whatever the outcome; in-process callers (the lab) call it for the
 * contexts they build. The context must not be used afterwards.
 */
export function destroyContext(ctx: CliContext): void {
  ctx.clients.doc.destroy();
  ctx.clients.dynamo.destroy();
  ctx.clients.iot.destroy();
  ctx.clients.s3?.destroy();
  ctx.clients.kinesis?.destroy();
}

/** Reads the stack outputs; injectable so resolution is testable without AWS. */
export type StackOutputReader = (stackName: string) => Promise<Record<string, string>>;

export function cloudFormationOutputs(region?: string): StackOutputReader {
  return async (stackName) => {
    const cfn = new CloudFormationClient(region ? { region } : {});
    try {
      const out = await cfn.send(new DescribeStacksCommand({ StackName: stackName }));
      const outputs: Record<string, string> = {};
      for (const o of out.Stacks?.[0]?.Outputs ?? []) {
        if (o.OutputKey && o.OutputValue !== undefined) outputs[o.OutputKey] = o.OutputValue;
      }
      return outputs;
    } finally {
      cfn.destroy();
    }
  };
}

export interface ResolveInput {
  flags: GlobalFlags;
  env?: Record<string, string | undefined>;
  /** Names the command cannot run without. */
  needs: readonly ResourceKey[];
  /** Names the command uses when available (resolved from flags/env, and from the stack if it is read anyway). */
  wants?: readonly ResourceKey[];
  readStackOutputs?: StackOutputReader;
}

/**
 * Resolve resource names: flags > environment > stack outputs. Throws a {@link UsageError}
 * naming, for every missing name, the flag, variable and stack output that supply it.
 */
export async function resolveResources(input: ResolveInput): Promise<FleetResources> {
  const env = input.env ?? process.env;
  const flagValues: Record<ResourceKey, string | undefined> = {
    devicesTable: input.flags.devicesTable,
    lotsTable: input.flags.lotsTable,
    eventsTable: input.flags.eventsTable,
    thingPrefix: input.flags.thingPrefix,
    devicePolicy: input.flags.devicePolicy,
    provisioningTemplates: input.flags.templates,
    serialPattern: input.flags.serialPattern,
    ringShares: input.flags.ringShares,
    topicPrefix: input.flags.topicPrefix,
    telemetryStream: input.flags.stream,
    telemetryRules: input.flags.telemetryRules,
    telemetryErrorBucket: input.flags.bucket,
  };
  const keys = [...new Set([...input.needs, ...(input.wants ?? [])])];
  const raw: Partial<Record<ResourceKey, { value: string; from: string }>> = {};
  for (const key of keys) {
    const src = RESOURCE_SOURCES[key];
    const flag = flagValues[key];
    const fromEnv = env[src.env];
    if (flag) raw[key] = { value: flag, from: `flag ${src.flag}` };
    else if (fromEnv) raw[key] = { value: fromEnv, from: `environment variable ${src.env}` };
  }
  const stackName = input.flags.stack ?? env[CLI_ENV.stackName] ?? DEFAULT_STACK_NAME;
  let stackError: unknown;
  if (input.needs.some((k) => !raw[k])) {
    const reader = input.readStackOutputs ?? cloudFormationOutputs(input.flags.region);
    try {
      const outputs = await reader(stackName);
      for (const key of keys) {
        const value = outputs[RESOURCE_SOURCES[key].output];
        if (!raw[key] && value)
          raw[key] = { value, from: `output ${RESOURCE_SOURCES[key].output} of stack ${stackName}` };
      }
    } catch (err) {
      stackError = err;
    }
  }
  const missing = input.needs.filter((k) => !raw[k]);
  if (missing.length > 0) {
    const lines = missing.map((k) => {
      const s = RESOURCE_SOURCES[k];
      return `  ${k}: pass ${s.flag}, set ${s.env}, or deploy stack ${stackName} with output ${s.output}`;
    });
    const setup = stackError === undefined ? undefined : awsSetupProblem(stackError, env);
    const first = setup
      ? `${setup}; it is needed to read ${missing.join(', ')} from the outputs of stack ${stackName}, or give them directly:`
      : `missing resource name(s) ${missing.join(', ')}${
          stackError !== undefined
            ? `; reading the outputs of stack ${stackName} failed (${describeError(stackError)})`
            : ` (not found in the outputs of stack ${stackName})`
        }`;
    throw new UsageError(
      [first, ...lines, '  (use --stack NAME or FLEET_STACK_NAME when the stack has another name)'].join(
        '\n',
      ),
    );
  }
  const resources: FleetResources = {};
  for (const key of keys) {
    const hit = raw[key];
    if (hit) setResource(resources, key, hit.value, hit.from);
  }
  return resources;
}

/** Parse one resolved value into its typed form; a malformed one is a usage error naming its source. */
function setResource(resources: FleetResources, key: ResourceKey, value: string, from: string): void {
  switch (key) {
    case 'provisioningTemplates':
      resources.provisioningTemplates = parseTemplates(value, from);
      return;
    case 'ringShares':
      try {
        resources.ringShares = parseRingShares(value);
      } catch (err) {
        if (err instanceof RingSharesError) throw new UsageError(`${err.message} (from ${from})`);
        throw err;
      }
      return;
    case 'serialPattern':
      try {
        new RegExp(value);
      } catch {
        throw new UsageError(
          `serial pattern "${value}" (from ${from}) is not a valid regular expression; fix ${RESOURCE_SOURCES.serialPattern.flag} or ${RESOURCE_SOURCES.serialPattern.env}`,
        );
      }
      resources.serialPattern = value;
      return;
    case 'telemetryRules':
      resources.telemetryRules = parseTelemetryRules(value, from);
      return;
    default:
      resources[key] = value;
  }
}

const templateSchema = z.array(
  z.object({
    templateName: z.string().min(1),
    claimPolicyName: z.string().min(1),
    thingTypeName: z.string().min(1),
    claimClientIdPrefix: z.string().min(1),
  }),
);

/** Parse the ProvisioningTemplates JSON (stack output, env or flag). */
export function parseTemplates(
  text: string,
  from = 'the provisioning templates',
): ProvisioningTemplateOutput[] {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw new UsageError(
      `${from} is not valid JSON; give a JSON array like ` +
        '[{"templateName":"fleet-default","claimPolicyName":"...","thingTypeName":"...","claimClientIdPrefix":"..."}]',
    );
  }
  const parsed = templateSchema.safeParse(doc);
  if (!parsed.success) {
    throw new UsageError(
      `${from} does not list templates as expected (${parsed.error.issues.map((i) => `${i.path.join('.') || 'value'}: ${i.message}`).join('; ')}); ` +
        'each entry needs templateName, claimPolicyName, thingTypeName and claimClientIdPrefix',
    );
  }
  return parsed.data;
}

const telemetryRulesSchema = z.object({
  telemetry: z.string().regex(TOPIC_RULE_NAME),
  health: z.string().regex(TOPIC_RULE_NAME),
});

/** Parse the TelemetryRules JSON (stack output, env or flag): the topic rule name per record type. */
export function parseTelemetryRules(text: string, from = 'the telemetry rules'): TelemetryRulesOutput {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw new UsageError(
      `${from} is not valid JSON; give the rule name of each record type, like {"telemetry":"fleet_telemetry","health":"fleet_health"}`,
    );
  }
  const parsed = telemetryRulesSchema.safeParse(doc);
  if (!parsed.success) {
    throw new UsageError(
      `${from} does not name the rules as expected (${parsed.error.issues.map((i) => `${i.path.join('.') || 'value'}: ${i.message}`).join('; ')}); ` +
        'give {"telemetry":"<rule name>","health":"<rule name>"} with topic rule names (A-Z a-z 0-9 _)',
    );
  }
  return { telemetry: parsed.data.telemetry, health: parsed.data.health };
}

/** Build the full context from global flags (what bin/fleet.ts does for each command). */
export async function contextFromFlags(
  flags: GlobalFlags,
  needs: readonly ResourceKey[],
  wants: readonly ResourceKey[] = [],
  env: Record<string, string | undefined> = process.env,
): Promise<CliContext> {
  const resources = await resolveResources({ flags, env, needs, wants });
  return createContext({
    resources,
    clients: defaultClients(flags.region),
    actor: flags.actor ?? defaultActor(env),
  });
}

function defaultActor(env: Record<string, string | undefined>): string {
  if (env[CLI_ENV.actor]) return env[CLI_ENV.actor] as string;
  try {
    return userInfo().username || 'operator';
  } catch {
    return 'operator';
  }
}

/** The registry table names, or a usage error naming how to supply the missing ones. */
export function registryTables(
  ctx: CliContext,
  which: readonly ('devicesTable' | 'lotsTable' | 'eventsTable')[] = [
    'devicesTable',
    'lotsTable',
    'eventsTable',
  ],
): RegistryTableNames {
  for (const key of which) requireResource(ctx, key);
  return {
    devices: ctx.resources.devicesTable ?? '',
    lots: ctx.resources.lotsTable ?? '',
    events: ctx.resources.eventsTable ?? '',
  };
}

/** A resolved resource, or a usage error naming its flag, variable and stack output. */
export function requireResource<K extends ResourceKey>(
  ctx: CliContext,
  key: K,
): NonNullable<FleetResources[K]> {
  const value = ctx.resources[key];
  if (value === undefined || value === '') {
    const s = RESOURCE_SOURCES[key];
    throw new UsageError(
      `missing ${key}: pass ${s.flag}, set ${s.env}, or read it from the stack output ${s.output} (--stack)`,
    );
  }
  return value as NonNullable<FleetResources[K]>;
}

/** Short description of an unexpected error (name and message, no stack). */
export function describeError(err: unknown): string {
  if (err instanceof CliError) return err.message;
  if (err instanceof Error) return `${err.name}: ${err.message}`;
  return String(err);
}
