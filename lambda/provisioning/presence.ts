/**
 * The presence (activation) Lambda with injected dependencies. `presence.handler.ts` wires it to
 * module-scope clients and the environment.
 *
 * Malformed events and events of other clients are logged and dropped (never thrown, so the
 * asynchronous invocation does not retry them). Registry failures are thrown: Lambda retries the
 * event and finally sends it to the dead-letter queue. A retry is idempotent and completes the
 * work: when the record shows the event was already applied (the write committed, a trail append
 * failed), the missing entries are appended, each under a sort key of its own that the event
 * determines, so none is ever written twice.
 */
import type { Logger } from '@aws-lambda-powertools/logger';
import { MetricUnit, type Metrics } from '@aws-lambda-powertools/metrics';
import { LIFECYCLE, SourceStatus } from '../../core/lifecycle';
import { METRICS } from '../../core/metrics';
import { isConditionFailure, Registry, RegistryConditionError } from '../shared/registry';
import { describeIssues } from '../shared/validation';
import * as z from 'zod/mini';
import { DeviceEventType, DeviceRecord, serialFromThingName } from '../../core/model';
import {
  entriesOfAppliedEvent,
  planPresence,
  PresenceEvent,
  presenceSkSuffix,
} from '../../core/presence-plan';

export interface PresenceDeps {
  registry: Registry;
  thingNamePrefix: string;
  logger: Logger;
  metrics: Metrics;
}

export type PresenceOutcome = 'ACTIVATED' | 'APPLIED' | 'STALE' | 'IGNORED' | 'UNKNOWN_DEVICE' | 'REJECTED';

const eventSchema = z.looseObject({
  clientId: z.string().check(z.minLength(1), z.maxLength(128)),
  timestamp: z.int().check(z.nonnegative()),
  eventType: z.enum(['connected', 'disconnected']),
  versionNumber: z.int().check(z.nonnegative()),
  sessionIdentifier: z.optional(z.string().check(z.maxLength(128))),
  principalIdentifier: z.optional(z.string().check(z.maxLength(256))),
  disconnectReason: z.optional(z.string().check(z.maxLength(64))),
  clientInitiatedDisconnect: z.optional(z.boolean()),
});

/** Attempts when a concurrent event changed the record between the read and the write. */
const MAX_ATTEMPTS = 3;

/**
 * An event's outcome is that of its first entry (the activation, when it activates): ACTIVATED or
 * APPLIED when this invocation wrote it, STALE when another one (a duplicate, or an earlier try of
 * this event) did, so each activation is counted once however often its event arrives.
 */
function outcomeOf(
  types: readonly DeviceEventType[],
  written: ReadonlySet<DeviceEventType>,
): PresenceOutcome {
  const first = types[0];
  if (first === undefined || !written.has(first)) return 'STALE';
  return first === LIFECYCLE.activate.event ? 'ACTIVATED' : 'APPLIED';
}

export function createPresenceHandler(deps: PresenceDeps): (event: unknown) => Promise<PresenceOutcome> {
  const { registry, logger, metrics } = deps;

  function count(outcome: PresenceOutcome, eventType: string): void {
    metrics.addDimensions({ Outcome: outcome, EventType: eventType });
    metrics.addMetric(METRICS.presenceEvent.name, MetricUnit.Count, 1);
    metrics.publishStoredMetrics();
  }

  /**
   * Append the event's entries, each at most once (a failure throws: Lambda retries the event, and
   * the retry finds the record already changed and completes the trail). The first entry (the
   * activation) is written last, so the invocation that writes it has completed the trail and
   * reports the outcome. Returns the entries written by this call.
   */
  async function appendEntries(
    serial: string,
    lot: string,
    e: PresenceEvent,
    at: string,
    types: readonly DeviceEventType[],
  ): Promise<Set<DeviceEventType>> {
    const detail: Record<string, string | number | boolean> = {
      clientId: e.clientId,
      versionNumber: e.versionNumber,
    };
    if (e.sessionIdentifier) detail.sessionIdentifier = e.sessionIdentifier;
    if (e.principalIdentifier) detail.certificateId = e.principalIdentifier;
    if (e.disconnectReason) detail.disconnectReason = e.disconnectReason;
    const written = new Set<DeviceEventType>();
    for (const type of [...types].reverse()) {
      const skSuffix = presenceSkSuffix(type, e.versionNumber);
      if (await registry.appendEventOnce({ serial, type, at, lot, detail, skSuffix })) written.add(type);
    }
    return written;
  }

  async function apply(serial: string, e: PresenceEvent): Promise<PresenceOutcome> {
    const at = new Date(e.timestamp).toISOString();
    for (let attempt = 1; ; attempt++) {
      const device = await registry.getDevice(serial);
      const plan = planPresence(e, device);
      if (plan.kind === 'ignore' && plan.why === 'UNKNOWN_DEVICE') return 'UNKNOWN_DEVICE';
      const dev = device as DeviceRecord;
      if (plan.kind === 'ignore') {
        // Nothing left to change; the event may still have been applied by an earlier try whose
        // trail append failed: complete its entries.
        const types = entriesOfAppliedEvent(e, dev);
        return outcomeOf(types, await appendEntries(serial, dev.lot, e, at, types));
      }
      try {
        if (plan.activate) {
          await registry.activate(serial, {
            // planPresence activates only from a status the lifecycle table allows.
            expectedStatus: dev.status as SourceStatus<'activate'>,
            expectedRevision: dev.revision ?? 0,
            certificateId: dev.certificateId!,
            presence: plan.updatePresence ? plan.presence : undefined,
            at,
          });
        } else if (!(await registry.recordPresence(serial, plan.presence))) {
          // A newer event was recorded between the read and the write: this one is stale now. When
          // the write also moved lastSeen, a health report may have moved lastSeen past it instead:
          // re-read, and the new plan leaves lastSeen alone.
          if (plan.presence.lastSeen === undefined || attempt >= MAX_ATTEMPTS) return 'STALE';
          logger.debug('presence write lost to a newer lastSeen or event; re-reading', { serial, attempt });
          continue;
        }
      } catch (err) {
        const lost = err instanceof RegistryConditionError || isConditionFailure(err);
        if (!lost || attempt >= MAX_ATTEMPTS) throw err;
        logger.debug('presence write lost a race; re-reading', { serial, attempt });
        continue;
      }
      return outcomeOf(plan.events, await appendEntries(serial, dev.lot, e, at, plan.events));
    }
  }

  return async function presence(event: unknown): Promise<PresenceOutcome> {
    const parsed = eventSchema.safeParse(event);
    if (!parsed.success) {
      logger.error('malformed presence event dropped', {
        issues: describeIssues(parsed.error.issues),
      });
      count('REJECTED', 'unknown');
      return 'REJECTED';
    }
    const e = parsed.data as PresenceEvent;
    const serial = serialFromThingName(deps.thingNamePrefix, e.clientId);
    if (serial === undefined) {
      logger.debug('presence event of a non-device client ignored', {
        clientId: e.clientId,
        eventType: e.eventType,
      });
      count('IGNORED', e.eventType);
      return 'IGNORED';
    }
    const outcome = await apply(serial, e);
    const fields = {
      serial,
      clientId: e.clientId,
      eventType: e.eventType,
      versionNumber: e.versionNumber,
      outcome,
    };
    if (outcome === 'ACTIVATED') logger.info('device activated', fields);
    else if (outcome === 'UNKNOWN_DEVICE')
      logger.warn('presence event for a serial not in the registry', fields);
    else logger.debug('presence event', fields);
    count(outcome, e.eventType);
    return outcome;
  };
}
