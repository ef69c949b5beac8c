/**
 * The lab's AWS IoT Core emulation: registry, local CA, control-plane facade (REST-JSON for
 * `@aws-sdk/client-iot`), mutual-TLS MQTT broker with policy enforcement, fleet provisioning
 * MQTT API, lifecycle presence events and AWS IoT Jobs (control plane, device MQTT API, job
 * events). See the module files for the AWS behaviours followed.
 */
import { IotBroker } from './broker';
import { LabCa } from './ca';
import { ControlPlane } from './control-plane';
import {
  bindJobsService,
  JobsDeviceApi,
  JobsService,
  jobTemplateFromCloudFormation,
  type PresignUrl,
} from './jobs';
import type { JobTemplateInput } from './jobs/templates';
import { ProvisioningApi } from './provisioning';
import { IotRegistry, type ProvisioningTemplateInput } from './state';

export interface IotCoreOptions {
  region: string;
  accountId: string;
  host?: string /* default 127.0.0.1 */;
  /** Invoke a Lambda by ARN (the pre-provisioning hook); provided by the lab runtime. */
  invokeLambda(functionArn: string, event: unknown): Promise<unknown>;
  /** RegisterThing quota in TPS; unset = unlimited. Excess requests get AWS's throttling rejection. */
  registerThingTps?: number;
  log?: (entry: { level: 'info' | 'warn' | 'error'; msg: string; [k: string]: unknown }) => void;
  /**
   * The Jobs service's clock (epoch ms); default `Date.now`. Tests pass a fake clock and call
   * `jobs.tick()` after moving it, so minute-scale rollouts and timeouts run without waiting.
   */
  clock?: () => number;
  /** How often the lab applies due Jobs timers on its own (ms); default 1000, 0 = only on `jobs.tick()` and requests. */
  jobsTickMs?: number;
  /**
   * Presigns an S3 GET for the `${aws:iot:s3-presigned-url:…}` placeholders of job documents
   * (wired by the lab runtime to its S3 emulator). Without it the placeholder is left as is and
   * a warning is logged.
   */
  presignUrl?: PresignUrl;
}

/** One accepted PUBLISH as the rules engine sees it. */
export interface IotMessage {
  topic: string;
  payload: Buffer;
  clientId?: string;
  principal?: string;
}

/** DescribeThing's answer (as the control plane and get_registry_data() return it). */
export interface DescribeThingOutput {
  defaultClientId: string;
  thingName: string;
  thingId: string;
  thingArn: string;
  thingTypeName?: string;
  attributes: Record<string, string>;
  version: number;
}

/** What the cdk.out loader creates in the emulated registry, and what the rules engine reads. */
export interface IotRegistryApi {
  putPolicy(name: string, document: unknown): void;
  putThingType(name: string): void;
  putThingGroup(name: string): void;
  putProvisioningTemplate(t: ProvisioningTemplateInput): void;
  /** DescribeThing, or undefined when the thing does not exist. */
  describeThing(name: string): DescribeThingOutput | undefined;
  /** ListThingGroupsForThing (all pages), or undefined when the thing does not exist. */
  listThingGroupsForThing(
    name: string,
  ): { thingGroups: { groupName: string; groupArn: string }[] } | undefined;
}

/** AWS IoT Jobs: what the cdk.out loader creates, and the clock hook tests drive. */
export interface IotJobsApi {
  /** CreateJobTemplate from an `AWS::IoT::JobTemplate`'s resolved Properties (PascalCase). */
  putJobTemplateFromCloudFormation(properties: Record<string, unknown>): { jobTemplateArn: string };
  /** CreateJobTemplate with the API's input (camelCase). */
  putJobTemplate(jobTemplateId: string, input: JobTemplateInput): { jobTemplateArn: string };
  /** Enables or disables event types (`JOB`, `JOB_EXECUTION`, …) as UpdateEventConfigurations does. */
  setEventConfiguration(type: string, enabled: boolean): void;
  /** Applies everything due at the clock's current time (rollout, timeouts, schedules). */
  tick(): void;
}

export interface IotCore {
  /** http://127.0.0.1:<port>, used as AWS_ENDPOINT_URL_IOT. */
  controlPlaneUrl: string;
  /** mTLS broker; caPem is the lab root CA devices must trust. */
  mqtt: { host: string; port: number; caPem: string };
  registry: IotRegistryApi;
  /** Every accepted PUBLISH (device publishes AND lab-generated messages such as presence events). */
  onMessage(listener: (m: IotMessage) => void): void;
  /** Server-side publish (used by republish rule actions and internal events). */
  publish(topic: string, payload: Buffer | string): Promise<void>;
  stats(): { registerThing: { accepted: number; throttled: number; rejected: number } };
  /** AWS IoT Jobs (always present on a started core; optional so fakes of IotCore need not have it). */
  jobs?: IotJobsApi;
  /** Fault injection for scenarios and tests. */
  faults: {
    /** The next RegisterThing of this client id succeeds, but its answer is lost. */
    loseNextRegisterThingAnswer(clientId: string): void;
  };
  stop(): Promise<void>;
}

type Listener = Parameters<IotCore['onMessage']>[0];

export async function startIotCore(opts: IotCoreOptions): Promise<IotCore & { jobs: IotJobsApi }> {
  const host = opts.host ?? '127.0.0.1';
  const registry = new IotRegistry(opts.region, opts.accountId);
  const ca = await LabCa.create();
  const provisioning = new ProvisioningApi({
    registry,
    ca,
    invokeLambda: (arn, event) => opts.invokeLambda(arn, event),
    registerThingTps: opts.registerThingTps,
    log: opts.log,
  });
  const listeners: Listener[] = [];
  let publishJobs = (_topic: string, _payload: unknown): void => undefined;
  let catalogUrl = '';
  const jobs = new JobsService({
    registry,
    clock: opts.clock ?? Date.now,
    publish: (topic, payload) => publishJobs(topic, payload),
    // The Jobs service asks the Software Package Catalog through its public API (GetPackageVersion).
    packageVersion: (pkg, version) => getPackageVersion(catalogUrl, pkg, version),
    log: opts.log,
  });
  bindJobsService(registry, jobs);
  const jobsApi = new JobsDeviceApi({ service: jobs, presignUrl: opts.presignUrl, log: opts.log });
  const broker = new IotBroker({
    registry,
    ca,
    host,
    provisioning,
    jobs: jobsApi,
    log: opts.log,
    onMessage: (m) => {
      for (const l of listeners) l(m);
    },
  });
  const port = await broker.start();
  publishJobs = (topic, payload) =>
    void broker.publish(topic, JSON.stringify(payload), 1).catch(() => undefined);
  const tickMs = opts.jobsTickMs ?? 1000;
  const ticker = tickMs > 0 ? setInterval(() => jobs.tick(), tickMs) : undefined;
  ticker?.unref();
  const controlPlane = new ControlPlane({
    registry,
    ca,
    host,
    endpointAddress: () => `${host}:${port}`,
    log: opts.log,
  });
  let controlPlaneUrl: string;
  try {
    controlPlaneUrl = await controlPlane.start();
    catalogUrl = controlPlaneUrl;
  } catch (e) {
    clearInterval(ticker);
    await broker.stop();
    throw e;
  }
  opts.log?.({
    level: 'info',
    msg: 'AWS IoT Core emulation started',
    controlPlaneUrl,
    mqtt: `${host}:${port}`,
  });

  return {
    controlPlaneUrl,
    mqtt: { host, port, caPem: ca.caPem },
    registry: {
      putPolicy: (name, document) => void registry.putPolicy(name, document),
      putThingType: (name) => registry.putThingType(name),
      putThingGroup: (name) => void registry.createThingGroup(name),
      putProvisioningTemplate: (t) => void registry.putProvisioningTemplate(t),
      describeThing: (name) => {
        const t = registry.things.get(name);
        return t ? registry.describeThing(t) : undefined;
      },
      listThingGroupsForThing: (name) => {
        const t = registry.things.get(name);
        if (!t) return undefined;
        return {
          thingGroups: [...t.groups].map((g) => ({
            groupName: g,
            groupArn: registry.arn(`thinggroup/${g}`),
          })),
        };
      },
    },
    onMessage: (l) => void listeners.push(l),
    publish: (topic, payload) => broker.publish(topic, payload),
    stats: () => ({ registerThing: { ...provisioning.stats.registerThing } }),
    jobs: {
      putJobTemplateFromCloudFormation: (properties) => {
        const { jobTemplateId, input } = jobTemplateFromCloudFormation(properties);
        return { jobTemplateArn: jobs.createJobTemplate(jobTemplateId, input).jobTemplateArn };
      },
      putJobTemplate: (id, input) => ({ jobTemplateArn: jobs.createJobTemplate(id, input).jobTemplateArn }),
      setEventConfiguration: (type, enabled) => {
        jobs.eventConfigurations.set(type, enabled);
        jobs.eventConfigurationsModified = jobs.now();
      },
      tick: () => jobs.tick(),
    },
    faults: {
      loseNextRegisterThingAnswer: (clientId) => provisioning.loseNextRegisterThingAnswer(clientId),
    },
    stop: async () => {
      clearInterval(ticker);
      await Promise.all([broker.stop(), controlPlane.stop()]);
    },
  };
}

/** GetPackageVersion on the lab's control plane: the version, or undefined when it does not exist. */
async function getPackageVersion(
  url: string,
  pkg: string,
  version: string,
): Promise<{ status?: string; attributes?: Record<string, string> } | undefined> {
  const res = await fetch(
    `${url}/packages/${encodeURIComponent(pkg)}/versions/${encodeURIComponent(version)}`,
  );
  if (res.status === 404) return undefined;
  if (!res.ok) throw new Error(`GetPackageVersion ${pkg}/${version} answered HTTP ${res.status}`);
  return (await res.json()) as { status?: string; attributes?: Record<string, string> };
}

export { IotRegistry } from './state';
export { evaluatePolicies } from './policy-evaluator';
export { evaluateTemplate, TemplateError } from './template-evaluator';
