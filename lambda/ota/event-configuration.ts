/**
 * The job event configuration custom resource, as a pure core: what to send to
 * `UpdateEventConfigurations` and what to answer CloudFormation, for a request and the
 * account's current settings. No SDK imports; the handler gathers inputs and acts.
 *
 * AWS IoT keeps one event configuration per account and region, and CloudFormation has no
 * resource for it. On Create the resource reads the current `JOB` and `JOB_EXECUTION` settings,
 * keeps them in its physical resource id (`iot-job-events:JOB=<0|1>,JOB_EXECUTION=<0|1>`), and
 * enables both. Update keeps the id it has (so CloudFormation never sends a Delete that would
 * restore the settings while the resource still exists) and enables both again. Delete restores
 * the values kept in the id. Every step is idempotent: enabling what is enabled, or restoring a
 * value that is already set, changes nothing.
 */

/** The event types this resource manages. */
export const JOB_EVENT_TYPES = ['JOB', 'JOB_EXECUTION'] as const;
export type JobEventType = (typeof JOB_EVENT_TYPES)[number];

/** Enabled flag per managed event type. */
export type JobEventSettings = Record<JobEventType, boolean>;

const ID_PREFIX = 'iot-job-events:';
/** Physical id answered when a Create failed: a Delete with it restores nothing. */
export const FAILED_PHYSICAL_ID = `${ID_PREFIX}not-created`;

/** The physical resource id that keeps the settings found before the resource enabled them. */
export function physicalIdOf(previous: JobEventSettings): string {
  return `${ID_PREFIX}${JOB_EVENT_TYPES.map((t) => `${t}=${previous[t] ? 1 : 0}`).join(',')}`;
}

/** The settings kept in a physical resource id, or undefined when it holds none. */
export function previousOf(physicalId: string | undefined): JobEventSettings | undefined {
  if (!physicalId?.startsWith(ID_PREFIX)) return undefined;
  const pairs = new Map(
    physicalId
      .slice(ID_PREFIX.length)
      .split(',')
      .map((p) => p.split('=') as [string, string | undefined]),
  );
  const out = {} as JobEventSettings;
  for (const t of JOB_EVENT_TYPES) {
    const v = pairs.get(t);
    if (v !== '0' && v !== '1') return undefined;
    out[t] = v === '1';
  }
  return out;
}

/** What the core needs from the CloudFormation request. */
export interface EventConfigRequest {
  RequestType: 'Create' | 'Update' | 'Delete';
  PhysicalResourceId?: string;
}

/** The plan of one request. */
export interface EventConfigPlan {
  /** Whether the handler must read the current settings first (Create only). */
  needsCurrent: boolean;
  /** Settings to write, or undefined when nothing is written. */
  update?: JobEventSettings;
  /** Physical resource id to answer. */
  physicalResourceId: string;
  /** Response data: the kept settings, as `"true"`/`"false"` per event type. */
  data: Record<string, string>;
}

const ENABLED: JobEventSettings = { JOB: true, JOB_EXECUTION: true };

const dataOf = (previous: JobEventSettings | undefined): Record<string, string> =>
  previous
    ? Object.fromEntries(
        JOB_EVENT_TYPES.map((t) => [`Previous${t === 'JOB' ? 'Job' : 'JobExecution'}`, String(previous[t])]),
      )
    : {};

/**
 * Decide a request. `current` is the account's settings, read by the handler when
 * {@link EventConfigPlan.needsCurrent} said so on a first call (Create); pass undefined otherwise.
 */
export function planEventConfig(req: EventConfigRequest, current?: JobEventSettings): EventConfigPlan {
  if (req.RequestType === 'Delete') {
    const previous = previousOf(req.PhysicalResourceId);
    return {
      needsCurrent: false,
      update: previous,
      physicalResourceId: req.PhysicalResourceId ?? FAILED_PHYSICAL_ID,
      data: dataOf(previous),
    };
  }
  if (req.RequestType === 'Update') {
    const previous = previousOf(req.PhysicalResourceId);
    if (previous) {
      return {
        needsCurrent: false,
        update: ENABLED,
        physicalResourceId: physicalIdOf(previous),
        data: dataOf(previous),
      };
    }
    // An id that keeps nothing (a resource of an older handler): treat it as a Create.
  }
  if (!current) return { needsCurrent: true, physicalResourceId: FAILED_PHYSICAL_ID, data: {} };
  const previous: JobEventSettings = { JOB: current.JOB, JOB_EXECUTION: current.JOB_EXECUTION };
  return {
    needsCurrent: false,
    update: ENABLED,
    physicalResourceId: physicalIdOf(previous),
    data: dataOf(previous),
  };
}

/** The managed settings of a `DescribeEventConfigurations` answer (absent means disabled). */
export function settingsOf(
  eventConfigurations: Record<string, { Enabled?: boolean } | undefined> | undefined,
): JobEventSettings {
  return {
    JOB: eventConfigurations?.JOB?.Enabled === true,
    JOB_EXECUTION: eventConfigurations?.JOB_EXECUTION?.Enabled === true,
  };
}

/** The `eventConfigurations` argument of `UpdateEventConfigurations` for `settings`. */
export function updateInputOf(settings: JobEventSettings): Record<JobEventType, { Enabled: boolean }> {
  return { JOB: { Enabled: settings.JOB }, JOB_EXECUTION: { Enabled: settings.JOB_EXECUTION } };
}

/** The two IoT calls the handler makes (an adapter implements them; tests pass fakes). */
export interface EventConfigApi {
  read(): Promise<JobEventSettings>;
  write(settings: JobEventSettings): Promise<void>;
}

/** Decide, read when the plan asks for it, then write. Returns the final plan. */
export async function applyEventConfig(
  req: EventConfigRequest,
  api: EventConfigApi,
): Promise<EventConfigPlan> {
  let plan = planEventConfig(req);
  if (plan.needsCurrent) plan = planEventConfig(req, await api.read());
  if (plan.update) await api.write(plan.update);
  return plan;
}
