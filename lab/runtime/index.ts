/**
 * The lab runtime: what `cdk.out` declares, running on loopback.
 *
 *   const lab = await startLabRuntime();             // synthesizes first if cdk.out is stale
 *   lab.summary().forEach((l) => console.log(l));
 *   process.env = { ...process.env, ...lab.env };    // the AWS SDK against the lab
 *   lab.outputsByStack[stackName];                    // a stack's outputs, resolved, as strings
 *   await lab.invoke('ProvisioningTemplate0Hook…', event);
 *   await lab.idle();                                 // rules and what they triggered are done
 *   await lab.streamsIdle();                          // stream consumers caught up
 *   await lab.flushFirehose();                        // Firehose buffers delivered to S3
 *   await lab.faults.pauseKinesis();                  // Kinesis stops answering (…resumeKinesis())
 *   lab.deadLetters();                                // what rule error actions delivered
 *   await lab.stop();
 *
 * Start order: emulators (dynalite, kinesalite, s3rver) → Lambda runner → IoT Core (lab/iot,
 * given the runner as its Lambda invoker) → topology (tables, streams, queues, buckets,
 * Timestream tables, IoT registry, functions, permissions, rule destinations, topic rules,
 * schedules, event-source mappings, Firehose streams) → rules engine subscribed to every message
 * the broker accepts (device publishes, presence events, server publishes).
 */
import { join, resolve as resolvePath } from 'node:path';
import { DynamoDBClient, PutItemCommand } from '@aws-sdk/client-dynamodb';
import { RulesEngine, type RuleStats } from '../rules/engine';
import type { FirehoseStats } from './firehose';
import { ensureCloudAssembly, type CloudAssembly } from './cdk-out';
import { startEmulators } from './emulators';
import { checkInvokePermission } from './handlers/lambda';
import type { ResourceHandler } from './handlers/types';
import type { IotCoreLike, StartIotCoreOptions } from './iot-core';
import { LabKinesis } from './kinesis-client';
import type { KinesisMappingStats } from './kinesis-mapping';
import { LambdaRunner, LambdaServiceError, type FunctionStats } from './lambda-runner';
import { QueueStore, type QueueMessage } from './queues';
import { PresignedUrlServer } from './presigned-urls';
import { LabS3 } from './s3-client';
import { SqsApi } from './sqs-api';
import { TimeSeriesStore, type TimeSeriesStats } from './time-series';
import { buildTopology, DEFAULT_HANDLERS, handlerRegistry, type Topology } from './topology';

export type LabLog = (e: { level: 'info' | 'warn' | 'error'; msg: string; [k: string]: unknown }) => void;

export interface LabRuntimeOptions {
  /** Project root (holds cdk.json). @default process.cwd() */
  projectDir?: string;
  /** Cloud assembly directory, relative to projectDir. @default 'cdk.out' */
  cdkOut?: string;
  /** Synthesize when cdk.out is stale. @default true */
  synth?: boolean;
  /**
   * Context values for the synth (what `cdk synth -c key=value` passes). They are recorded
   * beside manifest.json, and a change re-synthesizes. @default {}
   */
  synthContext?: Record<string, unknown>;
  /** Files the app reads outside the project sources (e.g. a config file): a content change re-synthesizes. @default [] */
  synthInputFiles?: string[];
  /** How to synthesize: run the app directly (fast) or through the CDK CLI. @default 'direct' */
  synthMode?: 'direct' | 'cli';
  /** An already loaded assembly (skips locating and synthesizing). */
  assembly?: CloudAssembly;
  /** Only these stacks. @default all stacks of the assembly */
  stacks?: string[];
  /** Template parameter values (override defaults). */
  parameters?: Record<string, unknown>;
  /** @default 'us-east-1' */
  region?: string;
  /** @default '123456789012' */
  accountId?: string;
  /**
   * The clock of IoT Jobs (rollouts, timeouts, scheduling) and of presigned-URL expiry (epoch ms).
   * Tests pass a fake clock, move it and call `iot.jobs.tick()`. @default Date.now
   */
  clock?: () => number;
  /** How often Jobs timers are applied on their own (ms); 0 = only on `iot.jobs.tick()` and requests. @default 1000 */
  jobsTickMs?: number;
  /** Enforce the RegisterThing quota (transactions per second). @default off */
  registerThingTps?: number;
  log?: LabLog;
  /**
   * The IoT Core emulation: an instance (tests), a factory, or default: lab/iot's
   * startIotCore. The runtime stops it in stop() either way.
   */
  iotCore?: IotCoreLike | ((opts: StartIotCoreOptions) => Promise<IotCoreLike>);
  /** Working directory for logs and generated files. @default '<projectDir>/.lab' */
  labDir?: string;
  /** Per-function log files directory; `false` disables files. @default '<labDir>/logs' */
  logDir?: string | false;
  /** Every line a function logs (START/END/REPORT included). */
  onFunctionLog?: (functionName: string, line: string) => void;
  /** `timers`: rate() schedules run on their interval; `manual`: only via fireSchedule(). @default 'timers' */
  schedules?: 'timers' | 'manual';
  /** Lambda rule action invocation type (see rules/engine.ts). @default 'event' */
  lambdaInvocation?: 'event' | 'request-response';
  /** Extra or replacement resource handlers. */
  handlers?: ResourceHandler[];
  /** Extra AWS_ENDPOINT_URL_* for functions, keyed by service (e.g. { IOT_DATA_PLANE: url }). */
  extraEndpoints?: Record<string, string>;
  /**
   * Longest a topic rule action may take (ms); one that takes longer fails and the rule's error
   * action runs, as on AWS when a destination does not answer. @default 3000
   */
  ruleActionTimeoutMs?: number;
  /** Longest the lab's own Kinesis calls (rule actions, pollers) wait for an answer, ms. @default 3000 */
  kinesisTimeoutMs?: number;
  /** Wait between polls of an idle Kinesis shard (event-source mappings, Firehose), ms. @default 200 */
  pollIntervalMs?: number;
  /** Upper bound on event-source mappings' MaximumBatchingWindowInSeconds, ms. @default the template's */
  maxBatchingWindowMs?: number;
  /** Upper bound on Firehose BufferingHints.IntervalInSeconds, ms. @default the template's */
  firehoseMaxBufferIntervalMs?: number;
}

export interface LabEndpoints {
  dynamodb: string;
  kinesis: string;
  /** S3 API (AWS_ENDPOINT_URL_S3); path-style addressing. */
  s3: string;
  /** SQS API of the stack's queues (AWS_ENDPOINT_URL_SQS), AWS JSON 1.0 protocol. */
  sqs: string;
  /** IoT control plane (AWS_ENDPOINT_URL_IOT). */
  iot: string;
  /** The file server behind the presigned URLs of job documents (see presigned-urls.ts). */
  presignedUrls: string;
  mqtt: { host: string; port: number; caPem: string };
}

export interface LabStats {
  functions: FunctionStats[];
  rules: RuleStats[];
  queues: { name: string; depth: number }[];
  /** Kinesis event-source mappings: reads, batches, filtered, retries, bisections, on-failure, checkpoints. */
  eventSourceMappings: KinesisMappingStats[];
  /** Firehose streams: records read, objects written, records archived. */
  deliveryStreams: FirehoseStats[];
  /** Timestream records and InfluxDB points the rules wrote. */
  timeSeries: TimeSeriesStats;
  /** Downloads through presigned URLs: served, and refused (expired, altered, missing object). */
  presignedUrls: { served: number; refused: number };
  iot: unknown;
}

export interface LabFaults {
  /**
   * Kinesis stops answering: every call to it (rule actions, pollers, functions, CLI) waits and
   * times out; nothing sent meanwhile is applied unless its caller still waits at resume.
   */
  pauseKinesis(): Promise<void>;
  /** Kinesis answers again, with the data it had. */
  resumeKinesis(): Promise<void>;
  /** Restart every stream poller (event-source mappings, Firehose) from its checkpoints. */
  restartPollers(): Promise<void>;
}

export interface LabRuntime {
  endpoints: LabEndpoints;
  /** Variables to export so the AWS SDK uses the lab (region, dummy credentials, endpoints). */
  env: Record<string, string>;
  /**
   * Each stack's outputs resolved against the lab, as CloudFormation's DescribeStacks returns
   * them (strings; other values as JSON): stack name → output name → value.
   */
  outputsByStack: Record<string, Record<string, string>>;
  /** The loaded assembly: its directory, the stacks (name, tags), and why it was synthesized. */
  assembly: {
    dir: string;
    stacks: { stackName: string; tags: Record<string, string> }[];
    synthReason?: string;
  };
  topology: Topology;
  iot: IotCoreLike;
  runner: LambdaRunner;
  rules: RulesEngine;
  queues: QueueStore;
  /** The S3 emulator through the SDK (buckets under `<labDir>/s3/`). */
  s3: LabS3;
  /**
   * A GET URL for an object of the S3 emulator, valid `expiresInSec` by the lab's clock: what a
   * job document's `${aws:iot:s3-presigned-url:…}` becomes when a device receives it.
   */
  presignUrl(bucket: string, key: string, expiresInSec: number): string;
  /** The local Timestream and InfluxDB stores (counts in stats().timeSeries). */
  timeSeries: TimeSeriesStore;
  faults: LabFaults;
  /** Synchronous (RequestResponse) invoke by ARN, name or logical id. */
  invoke(functionRef: string, event: unknown): Promise<unknown>;
  /** Messages in the stack's queues (the rules' error actions deliver there); optionally one queue by name, URL, ARN or logical id. */
  deadLetters(queue?: string): QueueMessage[];
  /** Run a schedule's targets now (by logical id or rule name). */
  fireSchedule(ref: string): Promise<unknown[]>;
  /** Resolves when every rule execution started so far, and what it triggered, has finished. */
  idle(): Promise<void>;
  /**
   * Resolves true once every Kinesis event-source mapping has read its shards to the end and
   * processed what it read (false after `timeoutMs`). Call after idle() to wait for the stream
   * consumers of what the rules wrote.
   */
  streamsIdle(timeoutMs?: number): Promise<boolean>;
  /** Make every Firehose stream read its source to the end and deliver its buffer now. */
  flushFirehose(): Promise<void>;
  stats(): LabStats;
  summary(): string[];
  timings: { synthMs: number; startMs: number };
  stop(): Promise<void>;
}

async function defaultIotCore(opts: StartIotCoreOptions): Promise<IotCoreLike> {
  const mod = (await import('../iot')) as { startIotCore(o: StartIotCoreOptions): Promise<IotCoreLike> };
  return mod.startIotCore(opts);
}

/** How long stop() waits for rule executions already under way before closing the emulators. */
const STOP_DRAIN_MS = 5_000;

type Stopper = () => Promise<void> | void;
type Permissions = Topology['permissions'];

/** What every start step needs to know. */
interface LabSettings {
  projectDir: string;
  region: string;
  accountId: string;
  labDir: string;
  log: LabLog;
}

function labSettings(opts: LabRuntimeOptions): LabSettings {
  const projectDir = resolvePath(opts.projectDir ?? process.cwd());
  return {
    projectDir,
    region: opts.region ?? 'us-east-1',
    accountId: opts.accountId ?? '123456789012',
    labDir: resolvePath(projectDir, opts.labDir ?? '.lab'),
    log: opts.log ?? (() => undefined),
  };
}

/** The given assembly, or cdk.out (synthesized first when stale). */
async function loadAssembly(
  opts: LabRuntimeOptions,
  s: LabSettings,
): Promise<{ assembly: CloudAssembly; synthMs: number; synthReason?: string }> {
  if (opts.assembly) return { assembly: opts.assembly, synthMs: 0 };
  const loaded = await ensureCloudAssembly({
    projectDir: s.projectDir,
    cdkOut: opts.cdkOut,
    synth: opts.synth,
    mode: opts.synthMode,
    context: opts.synthContext,
    inputFiles: opts.synthInputFiles,
    log: (msg) => s.log({ level: 'info', msg }),
  });
  return { assembly: loaded.assembly, synthMs: loaded.synthMs, synthReason: loaded.reason };
}

interface Backends {
  emulators: Awaited<ReturnType<typeof startEmulators>>;
  /** The SQS API endpoint of the queue store. */
  sqs: string;
  dynamodb: DynamoDBClient;
  kinesis: LabKinesis;
  /**
   * The rules' Kinesis client: bounded by the rule action timeout as well, so a Kinesis action
   * that times out was not applied (its record is in the error store only, never in both).
   */
  ruleKinesis: LabKinesis;
  s3: LabS3;
  presignedUrls: PresignedUrlServer;
  presignedUrlsBase: string;
  timeSeries: TimeSeriesStore;
  queues: QueueStore;
  runner: LambdaRunner;
  /** AWS_ENDPOINT_URL_* of the functions by service; IOT is added once IoT Core is up. */
  endpointMap: Record<string, string>;
  stoppers: Stopper[];
}

/**
 * The emulators (dynalite, kinesalite, s3rver), their clients, the queue and time-series stores
 * and the Lambda runner.
 */
async function startBackends(opts: LabRuntimeOptions, s: LabSettings): Promise<Backends> {
  const emulators = await startEmulators({ s3Directory: join(s.labDir, 's3') });
  const queues = new QueueStore();
  const sqsApi = new SqsApi(queues);
  let sqs: string;
  try {
    sqs = await sqsApi.start();
  } catch (e) {
    await emulators.stop();
    throw e;
  }
  const dynamodb = new DynamoDBClient({
    endpoint: emulators.dynamodb,
    region: s.region,
    credentials: { accessKeyId: 'lab', secretAccessKey: 'lab' },
  });
  // The IoT control plane URL is known only once IoT Core is up; functions start lazily,
  // so the runner reads the endpoint map at first invocation.
  const endpointMap: Record<string, string> = {
    DYNAMODB: emulators.dynamodb,
    KINESIS: emulators.kinesis,
    S3: emulators.s3,
    SQS: sqs,
    ...(opts.extraEndpoints ?? {}),
  };
  const runner = new LambdaRunner({
    region: s.region,
    accountId: s.accountId,
    endpoints: endpointMap,
    logDir: opts.logDir === false ? undefined : resolvePath(s.labDir, opts.logDir ?? 'logs'),
    onLog: opts.onFunctionLog,
  });
  const s3 = new LabS3(emulators.s3, s.region);
  const presignedUrls = new PresignedUrlServer({
    getObject: (bucket, key) => s3.getObject(bucket, key),
    clock: opts.clock,
  });
  let presignedUrlsBase: string;
  try {
    presignedUrlsBase = await presignedUrls.start();
  } catch (e) {
    s3.destroy();
    await runner.stop();
    await sqsApi.stop();
    await emulators.stop();
    throw e;
  }
  return {
    emulators,
    sqs,
    dynamodb,
    kinesis: new LabKinesis(emulators.kinesis, s.region, { timeoutMs: opts.kinesisTimeoutMs }),
    ruleKinesis: new LabKinesis(emulators.kinesis, s.region, {
      timeoutMs: Math.min(
        opts.kinesisTimeoutMs ?? 3000,
        (opts.ruleActionTimeoutMs ?? 3000) > 0 ? (opts.ruleActionTimeoutMs ?? 3000) : Infinity,
      ),
    }),
    s3,
    presignedUrls,
    presignedUrlsBase,
    timeSeries: new TimeSeriesStore(s.labDir),
    queues,
    runner,
    endpointMap,
    stoppers: [
      () => emulators.stop(),
      () => sqsApi.stop(),
      () => dynamodb.destroy(),
      () => s3.destroy(),
      () => runner.stop(),
      () => presignedUrls.stop(),
    ],
  };
}

/**
 * How IoT invokes a pre-provisioning hook: as iot.amazonaws.com, which needs a permission on the
 * function, version or alias it names, as on AWS. `permissions` is read at each invocation (the
 * topology declares them after IoT Core is up).
 */
function iotLambdaInvoker(
  runner: LambdaRunner,
  s: LabSettings,
  permissions: () => Permissions,
): StartIotCoreOptions['invokeLambda'] {
  return (target, event) => {
    const fn = runner.resolveQualified(target);
    const templateArn = (event as { templateArn?: unknown } | null)?.templateArn;
    const denied =
      fn &&
      checkInvokePermission(
        permissions(),
        fn.qualifiedArn,
        'iot.amazonaws.com',
        typeof templateArn === 'string' ? templateArn : '',
        s.accountId,
      );
    if (denied) {
      s.log({ level: 'warn', msg: 'IoT may not invoke the function', target, reason: denied });
      return Promise.reject(new LambdaServiceError('AccessDeniedException', denied));
    }
    return runner.invoke(target, event);
  };
}

/** IoT Core: the given instance or factory, or lab/iot's. */
async function startIot(
  opts: LabRuntimeOptions,
  s: LabSettings,
  runner: LambdaRunner,
  permissions: () => Permissions,
  presignUrl: StartIotCoreOptions['presignUrl'],
): Promise<IotCoreLike> {
  const iotOpts: StartIotCoreOptions = {
    region: s.region,
    accountId: s.accountId,
    invokeLambda: iotLambdaInvoker(runner, s, permissions),
    registerThingTps: opts.registerThingTps,
    clock: opts.clock,
    jobsTickMs: opts.jobsTickMs,
    presignUrl,
    log: s.log,
  };
  if (typeof opts.iotCore === 'function') return opts.iotCore(iotOpts);
  return opts.iotCore ?? defaultIotCore(iotOpts);
}

/** The rules engine, acting on the lab's functions, broker, stream, queues and tables. */
function createRulesEngine(
  opts: LabRuntimeOptions,
  s: LabSettings,
  b: Backends,
  iot: IotCoreLike,
  permissions: () => Permissions,
): RulesEngine {
  return new RulesEngine({
    accountId: s.accountId,
    region: s.region,
    invokeLambda: (arn, event) => b.runner.invoke(arn, event),
    checkLambdaInvoke: (arn, ruleArn) => {
      const fn = b.runner.resolveQualified(arn);
      if (!fn) return `ResourceNotFoundException: Function not found: ${arn}`;
      return checkInvokePermission(permissions(), fn.qualifiedArn, 'iot.amazonaws.com', ruleArn, s.accountId);
    },
    publish: (topic, payload) => iot.publish(topic, payload),
    kinesisPutRecord: async (stream, pk, data) => {
      await b.ruleKinesis.putRecord(stream, pk, data);
    },
    sqsSendMessage: async (url, body, meta) => {
      b.queues.send(url, body, `rule:${meta.ruleName}`);
    },
    dynamoPutItem: async (table, item) => {
      await b.dynamodb.send(new PutItemCommand({ TableName: table, Item: item as never }));
    },
    s3PutObject: (bucket, key, body) => b.s3.putObject(bucket, key, body),
    timestreamWrite: (database, table, records) => b.timeSeries.writeTimestream(database, table, records),
    influxDbWrite: (destination, target, lines) => b.timeSeries.writeInflux(destination, target, lines),
    registryData: (api, thing) =>
      api === 'DescribeThing'
        ? iot.registry.describeThing?.(thing)
        : api === 'ListThingGroupsForThing'
          ? iot.registry.listThingGroupsForThing?.(thing)
          : undefined,
    actionTimeoutMs: opts.ruleActionTimeoutMs,
    log: s.log,
    lambdaInvocation: opts.lambdaInvocation,
  });
}

/** Timers for the enabled rate() schedules; returns their stoppers. */
function startScheduleTimers(topology: Topology, log: LabLog): Stopper[] {
  const stoppers: Stopper[] = [];
  for (const s of topology.schedules) {
    if (!s.enabled || !s.everyMs) continue;
    const t = setInterval(() => {
      s.fire().catch((e: Error) =>
        log({ level: 'warn', msg: 'scheduled invocation failed', schedule: s.name, error: e.message }),
      );
    }, s.everyMs);
    t.unref();
    stoppers.push(() => clearInterval(t));
  }
  return stoppers;
}

/**
 * Feed every message the broker accepts to the rules engine. Returns the stoppers, in start
 * order: stoppers run in reverse, so the rules stop being fed first, then what they already
 * started finishes (bounded), so no function is still writing to an emulator when the
 * emulators close.
 */
function feedRules(iot: IotCoreLike, rules: RulesEngine, log: LabLog): Stopper[] {
  let accepting = true;
  iot.onMessage((m) => {
    if (!accepting) return;
    rules
      .handleMessage(m)
      .catch((e: Error) =>
        log({ level: 'error', msg: 'rules engine failed on a message', topic: m.topic, error: e.message }),
      );
  });
  const drain = async (): Promise<void> => {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      rules.idle(),
      new Promise<void>((done) => {
        timer = setTimeout(done, STOP_DRAIN_MS);
      }),
    ]);
    clearTimeout(timer);
  };
  return [
    drain,
    () => {
      accepting = false;
    },
  ];
}

/** Variables to export so the AWS SDK uses the lab. */
function sdkEnvironment(region: string, endpoints: LabEndpoints): Record<string, string> {
  return {
    AWS_REGION: region,
    AWS_DEFAULT_REGION: region,
    AWS_ACCESS_KEY_ID: 'lab',
    AWS_SECRET_ACCESS_KEY: 'lab',
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    AWS_ENDPOINT_URL_DYNAMODB: endpoints.dynamodb,
    AWS_ENDPOINT_URL_KINESIS: endpoints.kinesis,
    AWS_ENDPOINT_URL_S3: endpoints.s3,
    AWS_ENDPOINT_URL_SQS: endpoints.sqs,
    AWS_ENDPOINT_URL_IOT: endpoints.iot,
  };
}

/** Outputs as DescribeStacks returns them: strings, other values as JSON. */
function outputStrings(topology: Topology): Record<string, Record<string, string>> {
  return Object.fromEntries(
    Object.entries(topology.outputsByStack).map(([stack, outputs]) => [
      stack,
      Object.fromEntries(
        Object.entries(outputs).map(([k, v]) => [k, typeof v === 'string' ? v : JSON.stringify(v)]),
      ),
    ]),
  );
}

/** Runs the stoppers in reverse start order; a failing one is logged and the rest still run. */
function stopperRunner(stoppers: Stopper[], log: LabLog): () => Promise<void> {
  return async () => {
    for (const s of stoppers.splice(0).reverse()) {
      try {
        await s();
      } catch (e) {
        log({ level: 'warn', msg: 'error while stopping the lab', error: (e as Error).message });
      }
    }
  };
}

export async function startLabRuntime(opts: LabRuntimeOptions = {}): Promise<LabRuntime> {
  const started = Date.now();
  const s = labSettings(opts);
  const stoppers: Stopper[] = [];
  const stopAll = stopperRunner(stoppers, s.log);
  try {
    const { assembly, synthMs, synthReason } = await loadAssembly(opts, s);
    const b = await startBackends(opts, s);
    stoppers.push(...b.stoppers);
    let permissions: Permissions = [];
    const presignUrl = (bucket: string, key: string, expiresInSec: number): string =>
      b.presignedUrls.presign(bucket, key, expiresInSec);
    const iot = await startIot(opts, s, b.runner, () => permissions, presignUrl);
    stoppers.push(() => iot.stop());
    b.endpointMap.IOT = iot.controlPlaneUrl;
    const rules = createRulesEngine(opts, s, b, iot, () => permissions);

    const { topology, stoppers: background } = await buildTopology({
      assembly,
      region: s.region,
      accountId: s.accountId,
      labDir: s.labDir,
      dynamodb: b.dynamodb,
      kinesis: b.kinesis,
      iot,
      runner: b.runner,
      rules,
      queues: b.queues,
      s3: b.s3,
      timeSeries: b.timeSeries,
      options: {
        pollIntervalMs: opts.pollIntervalMs,
        maxBatchingWindowMs: opts.maxBatchingWindowMs,
        firehoseMaxBufferIntervalMs: opts.firehoseMaxBufferIntervalMs,
      },
      handlers: handlerRegistry([...DEFAULT_HANDLERS, ...(opts.handlers ?? [])]),
      parameters: opts.parameters,
      stacks: opts.stacks,
      log: s.log,
    });
    stoppers.push(...background);
    permissions = topology.permissions;
    if ((opts.schedules ?? 'timers') === 'timers') stoppers.push(...startScheduleTimers(topology, s.log));
    stoppers.push(...feedRules(iot, rules, s.log));

    const endpoints: LabEndpoints = {
      dynamodb: b.emulators.dynamodb,
      kinesis: b.emulators.kinesis,
      s3: b.emulators.s3,
      sqs: b.sqs,
      iot: iot.controlPlaneUrl,
      presignedUrls: b.presignedUrlsBase,
      mqtt: iot.mqtt,
    };
    const startMs = Date.now() - started;
    s.log({
      level: 'info',
      msg: 'lab runtime started',
      startMs,
      synthMs,
      unsupported: topology.unsupported.length,
    });
    return {
      endpoints,
      env: sdkEnvironment(s.region, endpoints),
      outputsByStack: outputStrings(topology),
      assembly: {
        dir: assembly.dir,
        stacks: assembly.stacks
          .filter((st) => topology.stacks.includes(st.stackName))
          .map((st) => ({ stackName: st.stackName, tags: st.tags })),
        synthReason,
      },
      topology,
      iot,
      runner: b.runner,
      rules,
      queues: b.queues,
      s3: b.s3,
      presignUrl,
      timeSeries: b.timeSeries,
      faults: {
        pauseKinesis: () => b.emulators.faults.pauseKinesis(),
        resumeKinesis: () => b.emulators.faults.resumeKinesis(),
        restartPollers: async () => {
          await Promise.all([
            ...topology.eventSourceMappings.map((m) => m.restart?.()),
            ...topology.deliveryStreams.map((d) => d.restart()),
          ]);
        },
      },
      invoke: (fn, event) => b.runner.invoke(fn, event),
      deadLetters: (queue) => {
        if (!queue) return b.queues.messages();
        const q = topology.queues[queue] ?? b.queues.find(queue);
        return q ? b.queues.messages(q.name) : [];
      },
      fireSchedule: (ref) => {
        const schedule = topology.schedules.find((x) => x.logicalId === ref || x.name === ref);
        if (!schedule) return Promise.reject(new Error(`no schedule ${ref}`));
        return schedule.fire();
      },
      idle: () => rules.idle(),
      streamsIdle: async (timeoutMs) => {
        const done = await Promise.all(
          topology.eventSourceMappings.map((m) => m.caughtUp?.(timeoutMs) ?? Promise.resolve(true)),
        );
        return done.every(Boolean);
      },
      flushFirehose: async () => {
        await Promise.all(topology.deliveryStreams.map((d) => d.flush()));
      },
      stats: () => ({
        functions: b.runner.stats(),
        rules: rules.stats(),
        queues: b.queues.list().map((q) => ({ name: q.name, depth: q.depth })),
        eventSourceMappings: topology.eventSourceMappings.flatMap((m) => (m.stats ? [m.stats()] : [])),
        deliveryStreams: topology.deliveryStreams.map((d) => d.stats()),
        timeSeries: b.timeSeries.stats(),
        presignedUrls: b.presignedUrls.stats(),
        iot: iot.stats(),
      }),
      summary: () => [
        `lab up in ${startMs} ms${synthMs ? ` (synth ${synthMs} ms)` : ''}: DynamoDB ${endpoints.dynamodb}, Kinesis ${endpoints.kinesis}, S3 ${endpoints.s3} (${b.emulators.s3Directory}), SQS ${endpoints.sqs}, IoT ${endpoints.iot}, MQTT mtls://${endpoints.mqtt.host}:${endpoints.mqtt.port}`,
        ...topology.summary,
        ...(opts.logDir === false
          ? []
          : [`function logs: ${join(s.labDir, typeof opts.logDir === 'string' ? opts.logDir : 'logs')}`]),
      ],
      timings: { synthMs, startMs },
      stop: stopAll,
    };
  } catch (e) {
    await stopAll();
    throw e;
  }
}

export type { CloudAssembly } from './cdk-out';
export {
  ensureCloudAssembly,
  isStale,
  loadCloudAssembly,
  readSynthRecord,
  SynthError,
  SYNTH_RECORD_FILE,
  synthesize,
} from './cdk-out';
export type { IotCoreLike, IotMessage } from './iot-core';
export { LambdaFunctionError, LambdaServiceError } from './lambda-runner';
export type { QueueMessage } from './queues';
export type { FirehoseStats } from './firehose';
export type { KinesisMappingStats } from './kinesis-mapping';
export type { TimeSeriesStats } from './time-series';
export type { DeliveryStreamRecord, EventSourceMappingRecord, Topology, TopologyResource } from './topology';
export type { ResourceHandler } from './handlers/types';
