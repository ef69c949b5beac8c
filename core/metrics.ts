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
} as const;

/** One metric: its name, unit and the dimensions it is published with. */
export interface MetricSpec {
  readonly name: string;
  readonly unit: 'Count' | 'Milliseconds';
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
} as const satisfies Record<string, MetricSpec>;

/** The template dimension of an unknown template collapses to this, keeping the set bounded. */
export const OTHER_TEMPLATE_DIMENSION = 'other';
