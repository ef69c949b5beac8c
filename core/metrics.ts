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
}

/**
 * Every metric of the contract. What each one counts is in {@link METRIC_DESCRIPTIONS}, kept apart
 * so that a function bundle, which imports this object, does not carry the text.
 */
export const METRICS = {
  /** One per pre-provisioning decision. */
  provisioningDecision: { name: 'ProvisioningDecision', unit: 'Count', dimensions: ['Reason', 'Template'] },
  /** The hook could not write its audit entry (the decision stood). */
  auditWriteFailed: { name: 'AuditWriteFailed', unit: 'Count', dimensions: [] },
  /** One per lifecycle (presence) event handled. */
  presenceEvent: { name: 'PresenceEvent', unit: 'Count', dimensions: ['Outcome', 'EventType'] },
  /** Health reports per cohort (not stale). */
  healthReports: { name: 'HealthReports', unit: 'Count', dimensions: ['FirmwareVersion', 'Ring'] },
  /**
   * Distinct devices of a cohort with a counted report in one batch (core/health.ts,
   * `countFreshReport`). A per-batch figure: see its description before summing it.
   */
  activeDevices: { name: 'ActiveDevices', unit: 'Count', dimensions: ['FirmwareVersion', 'Ring'] },
  /** Unexpected reboots per cohort (counted once per boot: see core/health.ts). */
  unexpectedReboots: { name: 'UnexpectedReboots', unit: 'Count', dimensions: ['FirmwareVersion', 'Ring'] },
  /**
   * One sample per health report: 100 when the report started an unexpected reboot, else 0. Its
   * average over a period is the percentage of reports that started one, weighted per report, so
   * one Metrics Insights query grouped by firmware version gives the rate per version.
   */
  unexpectedRebootRate: {
    name: 'UnexpectedRebootRate',
    unit: 'Percent',
    dimensions: ['FirmwareVersion', 'Ring'],
  },
  /** Unexpected reboots by WATCHDOG or PANIC. */
  crashResets: { name: 'CrashResets', unit: 'Count', dimensions: ['FirmwareVersion', 'Ring'] },
  lowHeapReports: { name: 'LowHeapReports', unit: 'Count', dimensions: ['FirmwareVersion', 'Ring'] },
  weakRssiReports: { name: 'WeakRssiReports', unit: 'Count', dimensions: ['FirmwareVersion', 'Ring'] },
  /** Devices whose running firmware changed (registry updated, FIRMWARE_CHANGED appended). */
  firmwareChanges: { name: 'FirmwareChanges', unit: 'Count', dimensions: ['FirmwareVersion', 'Ring'] },
  /** Last Will messages (a session dropped without DISCONNECT). */
  connectionLost: { name: 'ConnectionLost', unit: 'Count', dimensions: [] },
  /** Records the consumer could not use; each went to the dead-letter queue. */
  rejectedHealthRecords: { name: 'RejectedHealthRecords', unit: 'Count', dimensions: ['Reason'] },
  /** Registry writes of lastSeen (throttled per device). */
  lastSeenWrites: { name: 'LastSeenWrites', unit: 'Count', dimensions: [] },
} as const satisfies Record<string, MetricSpec>;

/** What each metric counts (for dashboards, alarms and the docs; no function reads it). */
export const METRIC_DESCRIPTIONS: Record<keyof typeof METRICS, string> = {
  provisioningDecision: 'Pre-provisioning hook decisions by reason code and template',
  auditWriteFailed: 'Audit trail entries the hook could not write',
  presenceEvent: 'Lifecycle events by outcome (ACTIVATED, APPLIED, STALE, …) and event type',
  healthReports: 'Health reports by firmware version and ring',
  activeDevices:
    'Distinct devices that reported in one batch, by firmware version and ring. A device reports in ' +
    'many batches, so the Sum over a period counts it once per batch, not once: on dashboards use the ' +
    'Maximum per period, or the health-interval math (Sum × health interval ÷ period, since a device ' +
    'reporting once per interval is in about period ÷ interval batches)',
  unexpectedReboots: 'Boots with a reset reason other than POWER_ON or REQUESTED, or uptime going backwards',
  unexpectedRebootRate: 'Per report: 100 if it started an unexpected reboot, else 0 (average = rate)',
  crashResets: 'Unexpected reboots whose reset reason is WATCHDOG or PANIC',
  lowHeapReports: 'Health reports with free heap under the low-heap threshold',
  weakRssiReports: 'Health reports with RSSI under the weak-link threshold',
  firmwareChanges: 'Devices that reported a firmware version other than the registry held',
  connectionLost: 'Last Will messages received on health topics',
  rejectedHealthRecords:
    'Stream records sent to the dead-letter queue, by reason (MALFORMED, UNKNOWN_DEVICE)',
  lastSeenWrites: 'Registry lastSeen writes (at most one per device per lastSeen interval)',
};

/** The template dimension of an unknown template collapses to this, keeping the set bounded. */
export const OTHER_TEMPLATE_DIMENSION = 'other';
