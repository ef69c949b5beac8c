/**
 * The lab runtime: what `cdk.out` declares, running on loopback.
 *
 *   const lab = await startLabRuntime();             // synthesizes first if cdk.out is stale
 *   lab.summary().forEach((l) => console.log(l));
 *   process.env = { ...process.env, ...lab.env };    // the AWS SDK against the lab
 *   lab.outputs;                                      // stack outputs, resolved, as strings
 *   await lab.invoke('ProvisioningTemplate0Hook…', event);
 *   await lab.idle();                                 // rules and what they triggered are done
 *   lab.deadLetters();                                // what rule error actions delivered
 *   await lab.stop();
 *
 * Start order: emulators (dynalite, kinesalite) → Lambda runner → IoT Core (lab/iot, given the
 * runner as its Lambda invoker) → topology (tables, streams, queues, IoT registry, functions,
 * permissions, topic rules, schedules, event-source mappings) → rules engine subscribed to
 * every message the broker accepts (device publishes, presence events, server publishes).
 */
import { join, resolve as resolvePath } from 'node:path';
import { DynamoDBClient, PutItemCommand } from '@aws-sdk/client-dynamodb';
import { RulesEngine, type RuleStats } from '../rules/engine';
import { ensureCloudAssembly, type CloudAssembly } from './cdk-out';
import { startEmulators } from './emulators';
import { checkInvokePermission } from './handlers/lambda';
import type { ResourceHandler } from './handlers/types';
import type { IotCoreLike, StartIotCoreOptions } from './iot-core';
import { LabKinesis } from './kinesis-client';
import { LambdaRunner, LambdaServiceError, type FunctionStats } from './lambda-runner';
import { QueueStore, type QueueMessage } from './queues';
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
}

export interface LabEndpoints {
  dynamodb: string;
  kinesis: string;
  /** IoT control plane (AWS_ENDPOINT_URL_IOT). */
  iot: string;
  mqtt: { host: string; port: number; caPem: string };
}

export interface LabStats {
  functions: FunctionStats[];
  rules: RuleStats[];
  queues: { name: string; depth: number }[];
  iot: unknown;
}

export interface LabRuntime {
  endpoints: LabEndpoints;
  /** Variables to export so the AWS SDK uses the lab (region, dummy credentials, endpoints). */
  env: Record<string, string>;
  /**
   * The stack outputs resolved against the lab, as CloudFormation's DescribeStacks returns them
   * (strings; other values as JSON), by output name; with several stacks, later ones win.
   */
  outputs: Record<string, string>;
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
  /** Synchronous (RequestResponse) invoke by ARN, name or logical id. */
  invoke(functionRef: string, event: unknown): Promise<unknown>;
  /** Messages in the stack's queues (the rules' error actions deliver there); optionally one queue by name, URL, ARN or logical id. */
  deadLetters(queue?: string): QueueMessage[];
  /** Run a schedule's targets now (by logical id or rule name). */
  fireSchedule(ref: string): Promise<unknown[]>;
  /** Resolves when every rule execution started so far, and what it triggered, has finished. */
  idle(): Promise<void>;
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

export async function startLabRuntime(opts: LabRuntimeOptions = {}): Promise<LabRuntime> {
  const started = Date.now();
  const projectDir = resolvePath(opts.projectDir ?? process.cwd());
  const region = opts.region ?? 'us-east-1';
  const accountId = opts.accountId ?? '123456789012';
  const labDir = resolvePath(projectDir, opts.labDir ?? '.lab');
  const log: LabLog = opts.log ?? (() => undefined);
  const stoppers: (() => Promise<void> | void)[] = [];
  const stopAll = async (): Promise<void> => {
    for (const s of stoppers.splice(0).reverse()) {
      try {
        await s();
      } catch (e) {
        log({ level: 'warn', msg: 'error while stopping the lab', error: (e as Error).message });
      }
    }
  };

  try {
    let synthMs = 0;
    let synthReason: string | undefined;
    let assembly = opts.assembly;
    if (!assembly) {
      const loaded = await ensureCloudAssembly({
        projectDir,
        cdkOut: opts.cdkOut,
        synth: opts.synth,
        mode: opts.synthMode,
        context: opts.synthContext,
        inputFiles: opts.synthInputFiles,
        log: (msg) => log({ level: 'info', msg }),
      });
      assembly = loaded.assembly;
      synthMs = loaded.synthMs;
      synthReason = loaded.reason;
    }
    const emulators = await startEmulators();
    stoppers.push(() => emulators.stop());
    const dynamodb = new DynamoDBClient({
      endpoint: emulators.dynamodb,
      region,
      credentials: { accessKeyId: 'lab', secretAccessKey: 'lab' },
    });
    stoppers.push(() => dynamodb.destroy());
    const kinesis = new LabKinesis(emulators.kinesis, region);
    const queues = new QueueStore();

    // The IoT control plane URL is known only once IoT Core is up; functions start lazily,
    // so the runner reads the endpoint map at first invocation.
    const endpointMap: Record<string, string> = {
      DYNAMODB: emulators.dynamodb,
      KINESIS: emulators.kinesis,
      ...(opts.extraEndpoints ?? {}),
    };
    const runner = new LambdaRunner({
      region,
      accountId,
      endpoints: endpointMap,
      logDir: opts.logDir === false ? undefined : resolvePath(labDir, opts.logDir ?? 'logs'),
      onLog: opts.onFunctionLog,
    });
    stoppers.push(() => runner.stop());

    let permissions: Topology['permissions'] = [];
    const iotOpts: StartIotCoreOptions = {
      region,
      accountId,
      // IoT invokes the pre-provisioning hook as iot.amazonaws.com: it needs a permission on the
      // function, version or alias it names, as on AWS.
      invokeLambda: (target, event) => {
        const fn = runner.resolveQualified(target);
        const templateArn = (event as { templateArn?: unknown } | null)?.templateArn;
        const denied =
          fn &&
          checkInvokePermission(
            permissions,
            fn.qualifiedArn,
            'iot.amazonaws.com',
            typeof templateArn === 'string' ? templateArn : '',
            accountId,
          );
        if (denied) {
          log({ level: 'warn', msg: 'IoT may not invoke the function', target, reason: denied });
          return Promise.reject(new LambdaServiceError('AccessDeniedException', denied));
        }
        return runner.invoke(target, event);
      },
      registerThingTps: opts.registerThingTps,
      log,
    };
    const iot =
      typeof opts.iotCore === 'function'
        ? await opts.iotCore(iotOpts)
        : (opts.iotCore ?? (await defaultIotCore(iotOpts)));
    stoppers.push(() => iot.stop());
    endpointMap.IOT = iot.controlPlaneUrl;

    const rules = new RulesEngine({
      accountId,
      region,
      invokeLambda: (arn, event) => runner.invoke(arn, event),
      checkLambdaInvoke: (arn, ruleArn) => {
        const fn = runner.resolveQualified(arn);
        if (!fn) return `ResourceNotFoundException: Function not found: ${arn}`;
        return checkInvokePermission(permissions, fn.qualifiedArn, 'iot.amazonaws.com', ruleArn, accountId);
      },
      publish: (topic, payload) => iot.publish(topic, payload),
      kinesisPutRecord: async (stream, pk, data) => {
        await kinesis.putRecord(stream, pk, data);
      },
      sqsSendMessage: async (url, body, meta) => {
        queues.send(url, body, `rule:${meta.ruleName}`);
      },
      dynamoPutItem: async (table, item) => {
        await dynamodb.send(new PutItemCommand({ TableName: table, Item: item as never }));
      },
      log,
      lambdaInvocation: opts.lambdaInvocation,
    });

    const { topology, stoppers: bg } = await buildTopology({
      assembly,
      region,
      accountId,
      labDir,
      dynamodb,
      kinesis,
      iot,
      runner,
      rules,
      queues,
      handlers: handlerRegistry([...DEFAULT_HANDLERS, ...(opts.handlers ?? [])]),
      parameters: opts.parameters,
      stacks: opts.stacks,
      log,
    });
    stoppers.push(...bg);
    permissions = topology.permissions;

    // Timers for rate() schedules.
    if ((opts.schedules ?? 'timers') === 'timers') {
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
    }

    let accepting = true;
    // Stoppers run in reverse: first stop feeding the rules, then let what they already started
    // finish (bounded), so no function is still writing to an emulator when the emulators close.
    stoppers.push(async () => {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        rules.idle(),
        new Promise<void>((done) => {
          timer = setTimeout(done, STOP_DRAIN_MS);
        }),
      ]);
      clearTimeout(timer);
    });
    stoppers.push(() => {
      accepting = false;
    });
    iot.onMessage((m) => {
      if (!accepting) return;
      rules
        .handleMessage(m)
        .catch((e: Error) =>
          log({ level: 'error', msg: 'rules engine failed on a message', topic: m.topic, error: e.message }),
        );
    });

    const endpoints: LabEndpoints = {
      dynamodb: emulators.dynamodb,
      kinesis: emulators.kinesis,
      iot: iot.controlPlaneUrl,
      mqtt: iot.mqtt,
    };
    const env: Record<string, string> = {
      AWS_REGION: region,
      AWS_DEFAULT_REGION: region,
      AWS_ACCESS_KEY_ID: 'lab',
      AWS_SECRET_ACCESS_KEY: 'lab',
      AWS_EC2_METADATA_DISABLED: 'true',
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
      AWS_ENDPOINT_URL_DYNAMODB: endpoints.dynamodb,
      AWS_ENDPOINT_URL_KINESIS: endpoints.kinesis,
      AWS_ENDPOINT_URL_IOT: endpoints.iot,
    };
    const outputs = Object.fromEntries(
      Object.entries(topology.outputs).map(([k, v]) => [k, typeof v === 'string' ? v : JSON.stringify(v)]),
    );

    const startMs = Date.now() - started;
    const summary = (): string[] => [
      `lab up in ${startMs} ms${synthMs ? ` (synth ${synthMs} ms)` : ''}: DynamoDB ${endpoints.dynamodb}, Kinesis ${endpoints.kinesis}, IoT ${endpoints.iot}, MQTT mtls://${endpoints.mqtt.host}:${endpoints.mqtt.port}`,
      ...topology.summary,
      ...(opts.logDir === false
        ? []
        : [`function logs: ${join(labDir, typeof opts.logDir === 'string' ? opts.logDir : 'logs')}`]),
    ];
    log({
      level: 'info',
      msg: 'lab runtime started',
      startMs,
      synthMs,
      unsupported: topology.unsupported.length,
    });

    const loadedAssembly = assembly;
    return {
      endpoints,
      env,
      outputs,
      assembly: {
        dir: loadedAssembly.dir,
        stacks: loadedAssembly.stacks
          .filter((st) => topology.stacks.includes(st.stackName))
          .map((st) => ({ stackName: st.stackName, tags: st.tags })),
        synthReason,
      },
      topology,
      iot,
      runner,
      rules,
      queues,
      invoke: (fn, event) => runner.invoke(fn, event),
      deadLetters: (queue) => {
        if (!queue) return queues.messages();
        const q = topology.queues[queue] ?? queues.find(queue);
        return q ? queues.messages(q.name) : [];
      },
      fireSchedule: (ref) => {
        const s = topology.schedules.find((x) => x.logicalId === ref || x.name === ref);
        if (!s) return Promise.reject(new Error(`no schedule ${ref}`));
        return s.fire();
      },
      idle: () => rules.idle(),
      stats: () => ({
        functions: runner.stats(),
        rules: rules.stats(),
        queues: queues.list().map((q) => ({ name: q.name, depth: q.depth })),
        iot: iot.stats(),
      }),
      summary,
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
export type { Topology, TopologyResource } from './topology';
export type { ResourceHandler } from './handlers/types';
