/**
 * AWS IoT Jobs records and the configuration shapes of CreateJob / CreateJobTemplate, as the
 * control-plane API names them (camelCase). Sources: AWS IoT API Reference (CreateJob,
 * CreateJobTemplate, Job, JobExecution, AbortCriteria, RetryCriteria, ExponentialRolloutRate,
 * SchedulingConfig) and the Developer Guide ("Job configurations", "Jobs and job execution states").
 */

export type JobStatus = 'SCHEDULED' | 'IN_PROGRESS' | 'COMPLETED' | 'CANCELED' | 'DELETION_IN_PROGRESS';

export type ExecutionStatus =
  'QUEUED' | 'IN_PROGRESS' | 'SUCCEEDED' | 'FAILED' | 'TIMED_OUT' | 'REJECTED' | 'REMOVED' | 'CANCELED';

export const TERMINAL: ReadonlySet<ExecutionStatus> = new Set([
  'SUCCEEDED',
  'FAILED',
  'TIMED_OUT',
  'REJECTED',
  'REMOVED',
  'CANCELED',
]);

/** What a device may set through UpdateJobExecution. */
export const DEVICE_STATUSES: ReadonlySet<string> = new Set([
  'IN_PROGRESS',
  'SUCCEEDED',
  'FAILED',
  'REJECTED',
]);

export interface RolloutConfig {
  maximumPerMinute?: number;
  exponentialRate?: {
    baseRatePerMinute: number;
    incrementFactor: number;
    rateIncreaseCriteria: { numberOfNotifiedThings?: number; numberOfSucceededThings?: number };
  };
}

export interface AbortCriteria {
  failureType: 'FAILED' | 'REJECTED' | 'TIMED_OUT' | 'ALL';
  action: 'CANCEL';
  thresholdPercentage: number;
  minNumberOfExecutedThings: number;
}

export interface RetryCriteria {
  failureType: 'FAILED' | 'TIMED_OUT' | 'ALL';
  numberOfRetries: number;
}

export interface SchedulingConfig {
  startTime?: string;
  endTime?: string;
  endBehavior?: 'STOP_ROLLOUT' | 'CANCEL' | 'FORCE_CANCEL';
  maintenanceWindows?: Array<{ startTime: string; durationInMinutes: number }>;
}

/** The configuration a job and a job template share. */
export interface JobConfigs {
  description?: string;
  document?: string;
  documentSource?: string;
  presignedUrlConfig?: { roleArn?: string; expiresInSec?: number };
  jobExecutionsRolloutConfig?: RolloutConfig;
  abortConfig?: { criteriaList: AbortCriteria[] };
  timeoutConfig?: { inProgressTimeoutInMinutes?: number };
  jobExecutionsRetryConfig?: { criteriaList: RetryCriteria[] };
  destinationPackageVersions?: string[];
}

export interface JobTemplateRecord extends JobConfigs {
  jobTemplateId: string;
  jobTemplateArn: string;
  jobArn?: string;
  maintenanceWindows?: SchedulingConfig['maintenanceWindows'];
  createdAt: number;
}

export interface JobExecutionRecord {
  jobId: string;
  thingName: string;
  thingArn: string;
  executionNumber: number;
  status: ExecutionStatus;
  statusDetails: Record<string, string>;
  queuedAt: number;
  startedAt?: number;
  lastUpdatedAt: number;
  versionNumber: number;
  retryAttempt: number;
  forceCanceled?: boolean;
  /** When the in-progress timer expires (ms); fixed once the execution starts. */
  inProgressDeadline?: number;
  /** When the device's step timer expires (ms); replaced by each new step timer. */
  stepDeadline?: number;
}

export interface JobRecord extends JobConfigs {
  jobId: string;
  jobArn: string;
  targets: string[];
  targetSelection: 'SNAPSHOT' | 'CONTINUOUS';
  jobTemplateArn?: string;
  /** The document as given, before package substitution parameters were replaced. */
  documentBeforeSubstitution?: string;
  schedulingConfig?: SchedulingConfig;
  status: JobStatus;
  forceCanceled?: boolean;
  reasonCode?: string;
  comment?: string;
  createdAt: number;
  lastUpdatedAt: number;
  completedAt?: number;
  /** Things resolved from the targets that the rollout has not yet notified (rate limiting). */
  waiting: string[];
  /** Every execution of the job, retries included, in creation order. */
  executions: JobExecutionRecord[];
  /** The latest execution of each thing. */
  latest: Map<string, JobExecutionRecord>;
  /** Things the rollout has notified (an execution was created for them). */
  notified: Set<string>;
  /** Retries used per thing. */
  retries: Map<string, number>;
  /**
   * Rate window of the rollout: its start (ms), how many things it notified and the rate fixed
   * when it opened (undefined until the rollout starts).
   */
  window: { start: number; count: number; rate?: number };
  /** The rollout stopped notifying things (endTime with STOP_ROLLOUT). */
  rolloutStopped?: boolean;
}
