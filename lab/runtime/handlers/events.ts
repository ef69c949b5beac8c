/**
 * AWS::Events::Rule with a ScheduleExpression → a timer that invokes its Lambda targets with
 * EventBridge's "Scheduled Event" payload. `rate(...)` runs on a timer (unless the lab runs
 * schedules manually); `cron(...)` runs only when fired by hand (`runtime.fireSchedule`).
 * Event-pattern rules are listed as unsupported.
 */
import { randomUUID } from 'node:crypto';
import { arn, type ResourceHandler } from './types';

const UNIT_MS: Record<string, number> = {
  minute: 60_000,
  minutes: 60_000,
  hour: 3_600_000,
  hours: 3_600_000,
  day: 86_400_000,
  days: 86_400_000,
};

/** Interval in ms of a `rate(...)` expression, undefined for `cron(...)`; throws when malformed. */
export function rateMs(expression: string): number | undefined {
  const rate = /^rate\((\d+)\s+(minutes?|hours?|days?)\)$/.exec(expression.trim());
  if (rate) return Number(rate[1]) * UNIT_MS[rate[2]];
  if (/^cron\(.+\)$/.test(expression.trim())) return undefined;
  throw new Error(`unsupported schedule expression ${expression}`);
}

export const eventsRuleHandler: ResourceHandler = {
  types: ['AWS::Events::Rule'],
  phase: 60,
  nameProperty: 'Name',
  maxNameLength: 64,
  attributes: (name, c) => ({ Arn: arn('events', c, `rule/${name}`) }),
  create(ctx) {
    const p = ctx.properties;
    if (typeof p.ScheduleExpression !== 'string') {
      return { status: 'unsupported', detail: 'event-pattern rules are not delivered by the lab' };
    }
    const expression = p.ScheduleExpression;
    const every = rateMs(expression);
    const targets = ((p.Targets as Record<string, unknown>[] | undefined) ?? []).map((t) => ({
      arn: String(t.Arn),
      input: typeof t.Input === 'string' ? (JSON.parse(t.Input) as unknown) : undefined,
    }));
    const nonLambda = targets.filter((t) => !ctx.runner.has(t.arn));
    if (nonLambda.length)
      return {
        status: 'unsupported',
        detail: `targets other than stack functions: ${nonLambda.map((t) => t.arn).join(', ')}`,
      };
    const ruleArn = arn('events', ctx, `rule/${ctx.physicalName}`);
    const fire = async (): Promise<unknown[]> => {
      const event = {
        version: '0',
        id: randomUUID(),
        'detail-type': 'Scheduled Event',
        source: 'aws.events',
        account: ctx.accountId,
        time: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
        region: ctx.region,
        resources: [ruleArn],
        detail: {},
      };
      return Promise.all(targets.map((t) => ctx.invoke(t.arn, t.input ?? event)));
    };
    const enabled = p.State === undefined || p.State === 'ENABLED';
    ctx.record('schedule', {
      logicalId: ctx.logicalId,
      name: ctx.physicalName,
      expression,
      enabled,
      everyMs: every,
      fire,
    });
    return {
      status: 'created',
      detail: `${expression} → ${targets.length} target(s)${enabled ? '' : ' (disabled)'}`,
    };
  },
};
