/**
 * Where a device publishes its telemetry and health: the Basic Ingest topic of the kind's rule
 * (`$aws/rules/<rule>/dt/<prefix>/<thing>/<kind>`, the default: no messaging charge) or the
 * direct topic (`dt/<prefix>/<thing>/<kind>`, which subscribers can watch). The Last Will always
 * uses the direct health topic: the broker publishes it, and Basic Ingest bypasses the broker.
 */
import type { RecordType } from '../core/telemetry';
import type { TelemetryRulesOutput } from '../core/stack-outputs';
import { topics } from '../core/topics';

export type Delivery = 'basicIngest' | 'direct';

export interface DataRoute {
  /** @default 'basicIngest' */
  delivery?: Delivery;
  /** Topic rule of each record type (the stack's `TelemetryRules` output). Required for Basic Ingest. */
  rules?: TelemetryRulesOutput;
  /** Topic prefix of `dt/<prefix>/<thing>/…`. */
  topicPrefix: string;
}

/** Resolved topics of one thing. */
export type DataTopics = Record<RecordType, string>;

/** Throws when Basic Ingest is asked for without rule names (the fix is named). */
export function checkRoute(route: DataRoute): void {
  if ((route.delivery ?? 'basicIngest') !== 'basicIngest') return;
  for (const kind of ['telemetry', 'health'] as const) {
    if (!route.rules?.[kind])
      throw new Error(
        `Basic Ingest needs the ${kind} rule name (the stack's TelemetryRules output); give the rule names or publish to the direct topics`,
      );
  }
}

export function dataTopics(route: DataRoute, thing: string): DataTopics {
  checkRoute(route);
  const direct: DataTopics = {
    telemetry: topics.telemetry(route.topicPrefix, thing),
    health: topics.health(route.topicPrefix, thing),
  };
  if ((route.delivery ?? 'basicIngest') === 'direct') return direct;
  const rules = route.rules as TelemetryRulesOutput;
  return {
    telemetry: topics.basicIngest(rules.telemetry, direct.telemetry),
    health: topics.basicIngest(rules.health, direct.health),
  };
}
