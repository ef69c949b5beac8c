/**
 * The metrics contract: the CloudWatch namespace, every metric name the functions emit and the
 * dimensions each one carries. Handlers emit through these names; the dashboard and alarms read
 * the same names. Dimensions are bounded sets (reason codes, template names, outcomes): never a
 * serial, thing name or certificate id.
 */

/** CloudWatch namespace of every fleet metric. */
export const METRICS_NAMESPACE = 'IotFleet';

/** Powertools service names (the `service` dimension Powertools adds). */
export const SERVICES = {
  preProvisioningHook: 'pre-provisioning-hook',
  presence: 'presence',
  healthConsumer: 'health-consumer',
} as const;

/** One metric: its name, unit and the dimensions it is published with. */
export interface MetricSpec {
  readonly name: string;
  readonly unit: 'Count' | 'Milliseconds' | 'Percent';
  readonly dimensions: readonly string[];
  readonly description: string;
}

export const METRICS = {
  /** One per pre-provisioning decision. */
  provisioningDecision: {
    name: 'ProvisioningDecision',
    unit: 'Count',
    dimensions: ['Reason', 'Template'],
    description: 'Pre-provisioning hook decisions by reason code and template',
  },
  /** The hook could not write its audit entry (the decision stood). */
  auditWriteFailed: {
    name: 'AuditWriteFailed',
    unit: 'Count',
    dimensions: [],
    description: 'Audit trail entries the hook could not write',
  },
  /** One per lifecycle (presence) event handled. */
  presenceEvent: {
    name: 'PresenceEvent',
    unit: 'Count',
    dimensions: ['Outcome', 'EventType'],
    description: 'Lifecycle events by outcome (ACTIVATED, APPLIED, STALE, …) and event type',
  },
  /** Health reports per cohort (not stale). */
  healthReports: {
    name: 'HealthReports',
    unit: 'Count',
    dimensions: ['FirmwareVersion', 'Ring'],
    description: 'Health reports by firmware version and ring',
  },
  /** Unexpected reboots per cohort (counted once per boot: see core/health.ts). */
  unexpectedReboots: {
    name: 'UnexpectedReboots',
    unit: 'Count',
    dimensions: ['FirmwareVersion', 'Ring'],
    description: 'Boots with a reset reason other than POWER_ON or REQUESTED, or uptime going backwards',
  },
  /**
   * One sample per health report: 100 when the report started an unexpected reboot, else 0. Its
   * average over a period is the percentage of reports that started one, weighted per report, so
   * one Metrics Insights query grouped by firmware version gives the rate per version.
   */
  unexpectedRebootRate: {
    name: 'UnexpectedRebootRate',
    unit: 'Percent',
    dimensions: ['FirmwareVersion', 'Ring'],
    description: 'Per report: 100 if it started an unexpected reboot, else 0 (average = rate)',
  },
  /** Unexpected reboots by WATCHDOG or PANIC. */
  crashResets: {
    name: 'CrashResets',
    unit: 'Count',
    dimensions: ['FirmwareVersion', 'Ring'],
    description: 'Unexpected reboots whose reset reason is WATCHDOG or PANIC',
  },
  lowHeapReports: {
    name: 'LowHeapReports',
    unit: 'Count',
    dimensions: ['FirmwareVersion', 'Ring'],
    description: 'Health reports with free heap under the low-heap threshold',
  },
  weakRssiReports: {
    name: 'WeakRssiReports',
    unit: 'Count',
    dimensions: ['FirmwareVersion', 'Ring'],
    description: 'Health reports with RSSI under the weak-link threshold',
  },
  /** Devices whose running firmware changed (registry updated, FIRMWARE_CHANGED appended). */
  firmwareChanges: {
    name: 'FirmwareChanges',
    unit: 'Count',
    dimensions: ['FirmwareVersion', 'Ring'],
    description: 'Devices that reported a firmware version other than the registry held',
  },
  /** Last Will messages (a session dropped without DISCONNECT). */
  connectionLost: {
    name: 'ConnectionLost',
    unit: 'Count',
    dimensions: [],
    description: 'Last Will messages received on health topics',
  },
  /** Records the consumer could not use; each went to the dead-letter queue. */
  rejectedHealthRecords: {
    name: 'RejectedHealthRecords',
    unit: 'Count',
    dimensions: ['Reason'],
    description: 'Stream records sent to the dead-letter queue, by reason (MALFORMED, UNKNOWN_DEVICE)',
  },
  /** Registry writes of lastSeen (throttled per device). */
  lastSeenWrites: {
    name: 'LastSeenWrites',
    unit: 'Count',
    dimensions: [],
    description: 'Registry lastSeen writes (at most one per device per lastSeen interval)',
  },
} as const satisfies Record<string, MetricSpec>;

/** The template dimension of an unknown template collapses to this, keeping the set bounded. */
export const OTHER_TEMPLATE_DIMENSION = 'other';
