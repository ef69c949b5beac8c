/**
 * The lab's AWS IoT rules engine: topic rules from the template (TopicRulePayload shape),
 * evaluated for every message the broker sees (including lifecycle events and Basic Ingest).
 *
 * Supported actions: Lambda, Republish, Kinesis, Sqs, DynamoDBv2 (PutItem). Anything else, and
 * SQL outside the subset in ./sql.ts, throws {@link RuleLoadError} naming the rule when the
 * rule is added, so the lab fails at start rather than silently dropping data.
 *
 * As in AWS (rule-error-handling): the actions of a rule run in parallel; if any fails, the
 * rule's errorAction runs once with `{ ruleName, topic, cloudwatchTraceId, clientId,
 * base64OriginalPayload, failures: [{ failedAction, failedResource, errorMessage }] }`.
 * The Lambda action is an asynchronous (Event) invocation, as in AWS: it fails when the call
 * cannot be made (unknown function, no resource-based permission for iot.amazonaws.com); an
 * error thrown by the handler is counted and logged, not routed to the errorAction. Set
 * `lambdaInvocation: 'request-response'` to treat handler errors as action failures.
 */
import { randomUUID } from 'node:crypto';
import { marshall } from '@aws-sdk/util-dynamodb';
import { outputBytes, parsePayload, runStatement, type MessageContext } from './evaluate';
import { parseSql, SqlError, type SqlStatement } from './sql';
import { compileTemplate, type CompiledTemplate } from './templates';
import { parseBasicIngest, topicMatches, validateTopicFilter } from './topic-filter';

export class RuleLoadError extends Error {
  constructor(
    readonly ruleName: string,
    message: string,
  ) {
    super(`topic rule ${ruleName}: ${message}`);
    this.name = 'RuleLoadError';
  }
}

/** The CloudFormation `TopicRulePayload` (intrinsics already resolved). */
export interface TopicRulePayload {
  Sql: string;
  AwsIotSqlVersion?: string;
  RuleDisabled?: boolean;
  Description?: string;
  Actions?: Record<string, unknown>[];
  ErrorAction?: Record<string, unknown>;
}

/** What the engine needs from the rest of the lab. */
export interface RuleEngineDeps {
  accountId: string;
  region: string;
  invokeLambda(functionArn: string, event: unknown): Promise<unknown>;
  /**
   * Undefined when the rule may invoke the function, else why not (function not found, no
   * resource-based permission for iot.amazonaws.com): the action then fails.
   */
  checkLambdaInvoke?(functionArn: string, ruleArn: string): string | undefined;
  publish(topic: string, payload: Buffer, qos: number): Promise<void>;
  kinesisPutRecord?(streamName: string, partitionKey: string, data: Buffer): Promise<void>;
  sqsSendMessage?(queueUrl: string, body: string, meta: { ruleName: string; topic: string }): Promise<void>;
  dynamoPutItem?(tableName: string, item: Record<string, unknown>): Promise<void>;
  log?: (e: { level: 'info' | 'warn' | 'error'; msg: string; [k: string]: unknown }) => void;
  lambdaInvocation?: 'event' | 'request-response';
}

export interface RuleStats {
  ruleName: string;
  matched: number;
  actionFailures: number;
  errorActions: number;
  errorActionFailures: number;
  lambdaAsyncErrors: number;
}

interface Failure {
  failedAction: string;
  failedResource: string;
  errorMessage: string;
}

interface ActionInput {
  ctx: MessageContext;
  doc: unknown;
  /** Bytes the action sends (SELECT output, or the error-action message). */
  data: Buffer;
  /** Output as a JSON object, when it is one (for DynamoDBv2 and Lambda events). */
  json?: Record<string, unknown>;
}

interface CompiledAction {
  name: string;
  resource: string;
  run(input: ActionInput): Promise<void>;
}

interface CompiledRule {
  name: string;
  arn: string;
  stmt: SqlStatement;
  disabled: boolean;
  actions: CompiledAction[];
  errorAction?: CompiledAction;
  stats: RuleStats;
}

function str(v: unknown, field: string, rule: string): string {
  if (typeof v !== 'string' || v === '') throw new RuleLoadError(rule, `${field} must be a non-empty string`);
  return v;
}

function template(v: string, field: string, rule: string): CompiledTemplate {
  try {
    return compileTemplate(v);
  } catch (e) {
    throw new RuleLoadError(rule, `${field}: ${(e as Error).message}`);
  }
}

export const SUPPORTED_ACTIONS = ['Lambda', 'Republish', 'Kinesis', 'Sqs', 'DynamoDBv2'] as const;

export class RulesEngine {
  private readonly rules = new Map<string, CompiledRule>();
  private readonly inFlight = new Set<Promise<unknown>>();

  constructor(private readonly deps: RuleEngineDeps) {}

  ruleArn(name: string): string {
    return `arn:aws:iot:${this.deps.region}:${this.deps.accountId}:rule/${name}`;
  }

  /** Add a rule; throws RuleLoadError for SQL or actions the lab does not support. */
  addRule(ruleName: string, payload: TopicRulePayload): void {
    let stmt: SqlStatement;
    try {
      stmt = parseSql(str(payload.Sql, 'Sql', ruleName));
      if (stmt.from !== undefined) validateTopicFilter(stmt.from);
    } catch (e) {
      if (e instanceof RuleLoadError) throw e;
      throw new RuleLoadError(
        ruleName,
        `${e instanceof SqlError ? 'SQL' : 'FROM'} not supported: ${(e as Error).message} in "${payload.Sql}"`,
      );
    }
    const version = payload.AwsIotSqlVersion ?? '2015-10-08';
    if (!['2015-10-08', '2016-03-23', 'beta'].includes(version))
      throw new RuleLoadError(ruleName, `unknown AwsIotSqlVersion ${version}`);
    const actions = (payload.Actions ?? []).map((a, i) => this.compileAction(ruleName, a, `Actions[${i}]`));
    if (actions.length === 0) throw new RuleLoadError(ruleName, 'has no actions');
    const errorAction = payload.ErrorAction
      ? this.compileAction(ruleName, payload.ErrorAction, 'ErrorAction')
      : undefined;
    this.rules.set(ruleName, {
      name: ruleName,
      arn: this.ruleArn(ruleName),
      stmt,
      disabled: payload.RuleDisabled === true,
      actions,
      errorAction,
      stats: {
        ruleName,
        matched: 0,
        actionFailures: 0,
        errorActions: 0,
        errorActionFailures: 0,
        lambdaAsyncErrors: 0,
      },
    });
  }

  private compileAction(rule: string, action: Record<string, unknown>, field: string): CompiledAction {
    const keys = Object.keys(action);
    if (keys.length !== 1)
      throw new RuleLoadError(
        rule,
        `${field} must hold exactly one action, found ${keys.join(', ') || 'none'}`,
      );
    const kind = keys[0];
    const p = (action[kind] ?? {}) as Record<string, unknown>;
    const at = `${field}.${kind}`;
    switch (kind) {
      case 'Lambda': {
        const arn = str(p.FunctionArn, `${at}.FunctionArn`, rule);
        const ruleArn = this.ruleArn(rule);
        return {
          name: 'LambdaAction',
          resource: arn,
          run: async ({ json, data }) => {
            const refused = this.deps.checkLambdaInvoke?.(arn, ruleArn);
            if (refused) throw new Error(refused);
            const event = json ?? { data: data.toString('base64') };
            const call = this.deps.invokeLambda(arn, event);
            if (this.deps.lambdaInvocation === 'request-response') {
              await call;
              return;
            }
            // Event invocation: accepted once the function exists and may be called; the
            // handler's own errors are asynchronous and never reach the errorAction.
            const stats = this.rules.get(rule)?.stats;
            void this.track(
              call.catch((e: Error) => {
                if (stats) stats.lambdaAsyncErrors++;
                this.deps.log?.({
                  level: 'warn',
                  msg: 'asynchronous Lambda invocation from a rule failed',
                  rule,
                  functionArn: arn,
                  error: e.message,
                });
              }),
            );
          },
        };
      }
      case 'Republish': {
        const topic = template(str(p.Topic, `${at}.Topic`, rule), `${at}.Topic`, rule);
        const qos = typeof p.Qos === 'number' ? p.Qos : 0;
        return {
          name: 'RepublishAction',
          resource: String(p.Topic),
          run: async ({ ctx, doc, data }) => this.deps.publish(topic(ctx, doc), data, qos),
        };
      }
      case 'Kinesis': {
        const stream = str(p.StreamName, `${at}.StreamName`, rule);
        const put = this.deps.kinesisPutRecord;
        if (!put) throw new RuleLoadError(rule, `${at}: no Kinesis emulator`);
        const pk =
          typeof p.PartitionKey === 'string' && p.PartitionKey !== ''
            ? template(p.PartitionKey, `${at}.PartitionKey`, rule)
            : undefined;
        return {
          name: 'KinesisAction',
          resource: stream,
          run: async ({ ctx, doc, data }) =>
            put(stream, pk ? pk(ctx, doc) || randomUUID() : randomUUID(), data),
        };
      }
      case 'Sqs': {
        const url = str(p.QueueUrl, `${at}.QueueUrl`, rule);
        const send = this.deps.sqsSendMessage;
        if (!send) throw new RuleLoadError(rule, `${at}: no SQS store`);
        const base64 = p.UseBase64 === true;
        return {
          name: 'SqsAction',
          resource: url,
          run: async ({ ctx, data }) =>
            send(url, base64 ? data.toString('base64') : data.toString('utf8'), {
              ruleName: rule,
              topic: ctx.topic,
            }),
        };
      }
      case 'DynamoDBv2': {
        const put = (p.PutItem ?? {}) as Record<string, unknown>;
        const table = str(put.TableName, `${at}.PutItem.TableName`, rule);
        const write = this.deps.dynamoPutItem;
        if (!write) throw new RuleLoadError(rule, `${at}: no DynamoDB emulator`);
        return {
          name: 'DynamoDBv2Action',
          resource: table,
          run: async ({ json }) => {
            if (!json) throw new Error('DynamoDBv2 action needs a JSON object payload');
            await write(table, marshall(json, { removeUndefinedValues: true }));
          },
        };
      }
      default:
        throw new RuleLoadError(
          rule,
          `${at}: action ${kind} is not supported by the lab (supported: ${SUPPORTED_ACTIONS.join(', ')})`,
        );
    }
  }

  ruleNames(): string[] {
    return [...this.rules.keys()];
  }

  /** The FROM filter of each rule (for the summary). */
  describe(): { name: string; from?: string; disabled: boolean; actions: string[]; errorAction?: string }[] {
    return [...this.rules.values()].map((r) => ({
      name: r.name,
      from: r.stmt.from,
      disabled: r.disabled,
      actions: r.actions.map((a) => `${a.name}→${a.resource}`),
      errorAction: r.errorAction ? `${r.errorAction.name}→${r.errorAction.resource}` : undefined,
    }));
  }

  stats(): RuleStats[] {
    return [...this.rules.values()].map((r) => ({ ...r.stats }));
  }

  private track<T>(p: Promise<T>): Promise<T> {
    this.inFlight.add(p);
    void p.finally(() => this.inFlight.delete(p)).catch(() => undefined);
    return p;
  }

  /** Resolves once every rule execution started so far (and what it triggered) has finished. */
  async idle(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight]);
  }

  /** Feed one message (what the broker received). Returns when its rules have finished. */
  handleMessage(m: {
    topic: string;
    payload: Buffer | string;
    clientId?: string;
    principal?: string;
  }): Promise<void> {
    return this.track(this.process(m));
  }

  private async process(m: {
    topic: string;
    payload: Buffer | string;
    clientId?: string;
    principal?: string;
  }): Promise<void> {
    const payload = typeof m.payload === 'string' ? Buffer.from(m.payload) : m.payload;
    const ingest = parseBasicIngest(m.topic);
    let targets: CompiledRule[];
    let topic = m.topic;
    if (ingest) {
      topic = ingest.topic;
      const rule = this.rules.get(ingest.ruleName);
      if (!rule || rule.disabled) {
        this.deps.log?.({
          level: 'warn',
          msg: 'Basic Ingest message for an unknown or disabled rule (RuleNotFound)',
          rule: ingest.ruleName,
          topic: m.topic,
        });
        return;
      }
      targets = [rule];
    } else {
      targets = [...this.rules.values()].filter(
        (r) => !r.disabled && r.stmt.from !== undefined && topicMatches(r.stmt.from, m.topic),
      );
    }
    if (targets.length === 0) return;
    const doc = parsePayload(payload);
    const base: Omit<MessageContext, 'traceId'> = {
      topic,
      payload,
      clientId: m.clientId,
      principal: m.principal,
      accountId: this.deps.accountId,
      timestamp: Date.now(),
    };
    await Promise.all(targets.map((r) => this.runRule(r, { ...base, traceId: randomUUID() }, doc)));
  }

  private async runRule(rule: CompiledRule, ctx: MessageContext, doc: unknown): Promise<void> {
    let out;
    try {
      out = runStatement(rule.stmt, ctx, doc);
    } catch (e) {
      this.deps.log?.({
        level: 'error',
        msg: 'rule SQL evaluation failed',
        rule: rule.name,
        error: (e as Error).message,
      });
      return;
    }
    if (!out.matched) return;
    rule.stats.matched++;
    const input: ActionInput = { ctx, doc, data: outputBytes(out), json: out.json };
    const results = await Promise.allSettled(rule.actions.map((a) => a.run(input)));
    const failures: Failure[] = [];
    results.forEach((r, i) => {
      if (r.status === 'rejected') {
        const a = rule.actions[i];
        failures.push({
          failedAction: a.name,
          failedResource: a.resource,
          errorMessage: errorText(r.reason, a, ctx.topic),
        });
      }
    });
    if (failures.length === 0) return;
    rule.stats.actionFailures += failures.length;
    this.deps.log?.({ level: 'warn', msg: 'rule action failed', rule: rule.name, failures });
    if (!rule.errorAction) return;
    const message = {
      ruleName: rule.name,
      topic: ctx.topic,
      cloudwatchTraceId: ctx.traceId,
      clientId: ctx.clientId ?? 'n/a',
      base64OriginalPayload: ctx.payload.toString('base64'),
      failures,
    };
    rule.stats.errorActions++;
    try {
      await rule.errorAction.run({
        ctx,
        doc: message,
        data: Buffer.from(JSON.stringify(message)),
        json: message,
      });
    } catch (e) {
      rule.stats.errorActionFailures++;
      this.deps.log?.({
        level: 'error',
        msg: 'rule error action failed',
        rule: rule.name,
        error: (e as Error).message,
      });
    }
  }
}

function errorText(reason: unknown, action: CompiledAction, topic: string): string {
  const msg = reason instanceof Error ? reason.message : String(reason);
  return `${msg}. Message arrived on: ${topic}, Action: ${action.name.replace(/Action$/, '').toLowerCase()}, Resource: ${action.resource}`;
}
