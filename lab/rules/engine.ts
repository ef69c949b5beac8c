/**
 * The lab's AWS IoT rules engine: topic rules from the template (TopicRulePayload shape),
 * evaluated for every message the broker sees (including lifecycle events and Basic Ingest).
 *
 * Supported actions: Lambda, Republish, Kinesis, Sqs, DynamoDBv2 (PutItem), S3 (PutObject),
 * Timestream (one single-measure record per attribute of the SELECT output) and InfluxDB (one
 * line-protocol point per message). Anything else, and SQL outside the subset in ./sql.ts,
 * throws {@link RuleLoadError} naming the rule when the rule is added, so the lab fails at start
 * rather than silently dropping data.
 *
 * Every action is bounded ({@link RuleEngineDeps.actionTimeoutMs}): an action whose downstream
 * does not answer in time fails, and the error action runs, as AWS does when a destination is
 * unavailable. (A Lambda action in `request-response` mode waits for the function instead.)
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
import {
  outputBytes,
  parsePayload,
  runStatement,
  type MessageContext,
  type RegistryLookup,
} from './evaluate';
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
  /**
   * A server-side publish through the broker (the Republish action): its subscribers and every
   * rule whose FROM matches the topic see the message, as in AWS, where a republished message is
   * a message like any other.
   */
  publish(topic: string, payload: Buffer, qos: number): Promise<void>;
  kinesisPutRecord?(streamName: string, partitionKey: string, data: Buffer): Promise<void>;
  sqsSendMessage?(queueUrl: string, body: string, meta: { ruleName: string; topic: string }): Promise<void>;
  dynamoPutItem?(tableName: string, item: Record<string, unknown>): Promise<void>;
  /** S3 PutObject (the S3 action and S3 error actions). */
  s3PutObject?(bucket: string, key: string, body: Buffer, meta: { ruleName: string }): Promise<void>;
  /** Timestream WriteRecords: all records of one message, written together or not at all. */
  timestreamWrite?(database: string, table: string, records: TimestreamRecord[]): Promise<void>;
  /** One InfluxDB write through a topic rule destination (line protocol, one line per point). */
  influxDbWrite?(
    destinationArn: string,
    target: { database: string; table: string; organization?: string },
    lines: string[],
  ): Promise<void>;
  /** The IoT registry, for get_registry_data(). */
  registryData?: RegistryLookup;
  /** Longest an action may take before it fails (ms). @default 3000 */
  actionTimeoutMs?: number;
  /** Longest an error action may take before it fails (ms). @default 30000 */
  errorActionTimeoutMs?: number;
  log?: (e: { level: 'info' | 'warn' | 'error'; msg: string; [k: string]: unknown }) => void;
  lambdaInvocation?: 'event' | 'request-response';
}

/** A Timestream record as WriteRecords takes it (single-measure). */
export interface TimestreamRecord {
  Dimensions: { Name: string; Value: string; DimensionValueType: 'VARCHAR' }[];
  MeasureName: string;
  MeasureValue: string;
  MeasureValueType: 'BIGINT' | 'DOUBLE' | 'BOOLEAN' | 'VARCHAR';
  Time: string;
  TimeUnit: 'SECONDS' | 'MILLISECONDS' | 'MICROSECONDS' | 'NANOSECONDS';
}

export interface RuleStats {
  ruleName: string;
  matched: number;
  actionFailures: number;
  errorActions: number;
  errorActionFailures: number;
  lambdaAsyncErrors: number;
  /** Actions that failed because they did not complete within the action timeout. */
  actionTimeouts: number;
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
  /** Waits for the function (Lambda in request-response mode): not bounded by the action timeout. */
  unbounded?: boolean;
}

class ActionTimeoutError extends Error {}

const TIME_UNITS = { SECONDS: 1e-3, MILLISECONDS: 1, MICROSECONDS: 1e3, NANOSECONDS: 1e6 } as const;
type TimeUnit = keyof typeof TIME_UNITS;

/** `epochMs` in `unit`, as an integer string (no float rounding for large values). */
function timeIn(epochMs: number, unit: TimeUnit): string {
  if (unit === 'SECONDS') return String(Math.floor(epochMs / 1000));
  const ms = BigInt(Math.trunc(epochMs));
  return String(unit === 'MILLISECONDS' ? ms : unit === 'MICROSECONDS' ? ms * 1000n : ms * 1000000n);
}

/** Timestream's type for a JSON value (as the DynamoDBv2 action infers types); undefined skips it. */
function measureOf(value: unknown): Pick<TimestreamRecord, 'MeasureValue' | 'MeasureValueType'> | undefined {
  if (value === null || value === undefined) return undefined;
  if (typeof value === 'boolean') return { MeasureValue: String(value), MeasureValueType: 'BOOLEAN' };
  if (typeof value === 'number')
    return Number.isInteger(value)
      ? { MeasureValue: String(value), MeasureValueType: 'BIGINT' }
      : { MeasureValue: String(value), MeasureValueType: 'DOUBLE' };
  if (typeof value === 'string') return { MeasureValue: value, MeasureValueType: 'VARCHAR' };
  return { MeasureValue: JSON.stringify(value), MeasureValueType: 'VARCHAR' };
}

const escapeKey = (s: string): string => s.replace(/[,= \\]/g, (c) => `\\${c}`);

/** One InfluxDB line-protocol field value; undefined skips the field. */
function fieldValue(value: unknown): string | undefined {
  if (value === null || value === undefined) return undefined;
  if (typeof value === 'boolean') return String(value);
  if (typeof value === 'number') return Number.isInteger(value) ? `${value}i` : String(value);
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  return `"${text.replace(/["\\]/g, (c) => `\\${c}`)}"`;
}

/** InfluxDB write precisions (TimestampUnit) and the Timestream unit of the same value. */
const INFLUX_UNITS = { ns: 'NANOSECONDS', us: 'MICROSECONDS', ms: 'MILLISECONDS', s: 'SECONDS' } as const;

/** Maximum number of values one Timestream action writes per message (AWS IoT quota). */
export const TIMESTREAM_MAX_VALUES = 100;

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

/** The SET variables of the rule being compiled (templates may read only these). */
let compilingVariables: ReadonlySet<string> = new Set();

function template(v: string, field: string, rule: string): CompiledTemplate {
  let t: CompiledTemplate;
  try {
    t = compileTemplate(v);
  } catch (e) {
    throw new RuleLoadError(rule, `${field}: ${(e as Error).message}`);
  }
  const unknown = t.variables.find((n) => !compilingVariables.has(n));
  if (unknown) throw new RuleLoadError(rule, `${field}: variable @${unknown} is not set by the rule's SQL`);
  return t;
}

export const SUPPORTED_ACTIONS = [
  'Lambda',
  'Republish',
  'Kinesis',
  'Sqs',
  'DynamoDBv2',
  'S3',
  'Timestream',
  'InfluxDB',
] as const;

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
    compilingVariables = new Set((stmt.set ?? []).map((a) => a.name));
    let actions: CompiledAction[];
    let errorAction: CompiledAction | undefined;
    try {
      actions = (payload.Actions ?? []).map((a, i) => this.compileAction(ruleName, a, `Actions[${i}]`));
      if (actions.length === 0) throw new RuleLoadError(ruleName, 'has no actions');
      errorAction = payload.ErrorAction
        ? this.compileAction(ruleName, payload.ErrorAction, 'ErrorAction')
        : undefined;
    } finally {
      compilingVariables = new Set();
    }
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
        actionTimeouts: 0,
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
          unbounded: this.deps.lambdaInvocation === 'request-response',
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
      case 'Republish':
        return this.republishAction(rule, p, at);
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
      case 'S3':
        return this.s3Action(rule, p, at);
      case 'Timestream':
        return this.timestreamAction(rule, p, at);
      case 'InfluxDB':
        return this.influxDbAction(rule, p, at);
      default:
        throw new RuleLoadError(
          rule,
          `${at}: action ${kind} is not supported by the lab (supported: ${SUPPORTED_ACTIONS.join(', ')})`,
        );
    }
  }

  /**
   * Republish: the message (the SELECT output) to the Topic template, through the broker
   * ({@link RuleEngineDeps.publish}), so subscribers and the rules whose FROM matches it see it, as
   * in AWS. A reserved topic is written `$$…` (the action publishes `$…`); a single `$`, the
   * reserved Jobs topics and the Basic Ingest topics (`$$aws/rules/…`) are refused at load. Qos 0
   * (default) or 1. A topic that evaluates to nothing or to a wildcard fails the action.
   */
  private republishAction(rule: string, p: Record<string, unknown>, at: string): CompiledAction {
    const text = str(p.Topic, `${at}.Topic`, rule);
    if (text.startsWith('$') && !text.startsWith('$$'))
      throw new RuleLoadError(
        rule,
        `${at}.Topic ${text}: write a reserved topic as $$… (a single $ is not a topic)`,
      );
    if (/^\$\$aws\/things\/[^/]+\/jobs\//.test(text))
      throw new RuleLoadError(
        rule,
        `${at}.Topic ${text}: republishing to reserved Jobs topics is not supported`,
      );
    if (text.startsWith('$$aws/rules/'))
      throw new RuleLoadError(
        rule,
        `${at}.Topic ${text}: a Basic Ingest topic ($aws/rules/…) is not a republish target; republish to a topic the target rule's FROM selects`,
      );
    const topic = template(text, `${at}.Topic`, rule);
    const qos = p.Qos ?? 0;
    if (qos !== 0 && qos !== 1)
      throw new RuleLoadError(rule, `${at}.Qos ${String(qos)} is not valid (0 or 1)`);
    return {
      name: 'RepublishAction',
      resource: text,
      run: async ({ ctx, doc, data }) => {
        const resolved = topic(ctx, doc).replace(/^\$\$/, '$');
        if (resolved === '' || /[+#]/.test(resolved))
          throw new Error(`the republish topic '${resolved}' is empty or holds a wildcard (+, #)`);
        await this.deps.publish(resolved, data, qos);
      },
    };
  }

  /** S3: PutObject of the message (SELECT output, or the error-action message) at the Key template. */
  private s3Action(rule: string, p: Record<string, unknown>, at: string): CompiledAction {
    const bucketText = str(p.BucketName, `${at}.BucketName`, rule);
    const bucket = template(bucketText, `${at}.BucketName`, rule);
    const key = template(str(p.Key, `${at}.Key`, rule), `${at}.Key`, rule);
    const put = this.deps.s3PutObject;
    if (!put) throw new RuleLoadError(rule, `${at}: no S3 emulator`);
    // CannedAcl: accepted, not emulated (the lab's S3 has no ACLs).
    return {
      name: 'S3Action',
      resource: bucketText,
      run: async ({ ctx, doc, data }) => {
        const k = key(ctx, doc);
        if (k === '') throw new Error('InvalidRequest: the S3 action Key evaluated to an empty string');
        await put(bucket(ctx, doc), k, data, { ruleName: rule });
      },
    };
  }

  /**
   * Timestream: one single-measure record per attribute of the SELECT output (an attribute that
   * names a dimension is the dimension only), the dimensions from their templates, the time from
   * Timestamp (Value template in Unit, default MILLISECONDS) or the rules engine's receive time.
   */
  private timestreamAction(rule: string, p: Record<string, unknown>, at: string): CompiledAction {
    const database = str(p.DatabaseName, `${at}.DatabaseName`, rule);
    const table = str(p.TableName, `${at}.TableName`, rule);
    const dims = Array.isArray(p.Dimensions) ? (p.Dimensions as Record<string, unknown>[]) : [];
    if (dims.length === 0) throw new RuleLoadError(rule, `${at}.Dimensions needs at least one dimension`);
    const dimensions = dims.map((d, i) => ({
      name: str(d.Name, `${at}.Dimensions[${i}].Name`, rule),
      value: template(
        str(d.Value, `${at}.Dimensions[${i}].Value`, rule),
        `${at}.Dimensions[${i}].Value`,
        rule,
      ),
    }));
    const ts = p.Timestamp as { Value?: unknown; Unit?: unknown } | undefined;
    const unit = (ts?.Unit ?? 'MILLISECONDS') as TimeUnit;
    if (!(unit in TIME_UNITS))
      throw new RuleLoadError(rule, `${at}.Timestamp.Unit ${String(ts?.Unit)} is not valid`);
    const tsValue = ts
      ? template(str(ts.Value, `${at}.Timestamp.Value`, rule), `${at}.Timestamp.Value`, rule)
      : undefined;
    const write = this.deps.timestreamWrite;
    if (!write) throw new RuleLoadError(rule, `${at}: no Timestream store`);
    return {
      name: 'TimestreamAction',
      resource: `${database}.${table}`,
      run: async ({ ctx, doc, json }) => {
        if (!json) throw new Error('ValidationException: the Timestream action needs a JSON object message');
        const Dimensions = dimensions.map((d) => ({
          Name: d.name,
          Value: d.value(ctx, doc),
          DimensionValueType: 'VARCHAR' as const,
        }));
        const empty = Dimensions.find((d) => d.Value === '');
        if (empty) throw new Error(`ValidationException: dimension ${empty.Name} has an empty value`);
        let time: string;
        if (tsValue) {
          const v = tsValue(ctx, doc);
          if (!/^\d+$/.test(v))
            throw new Error(`ValidationException: Timestamp.Value '${v}' is not an epoch time`);
          time = v;
        } else time = timeIn(ctx.timestamp, unit);
        const names = new Set(dimensions.map((d) => d.name));
        const records: TimestreamRecord[] = [];
        for (const [name, value] of Object.entries(json)) {
          if (names.has(name)) continue;
          const m = measureOf(value);
          if (m) records.push({ Dimensions, MeasureName: name, ...m, Time: time, TimeUnit: unit });
        }
        if (records.length > TIMESTREAM_MAX_VALUES)
          throw new Error(
            `ValidationException: ${records.length} values exceed the ${TIMESTREAM_MAX_VALUES} a Timestream action writes per message`,
          );
        if (records.length === 0) return;
        await write(database, table, records);
      },
    };
  }

  /**
   * InfluxDB: one line-protocol point per message: TableName as the table (measurement), Tags
   * (templates) as tags, every other attribute of the SELECT output as a field; the time is the
   * output's `timestamp` key, in TimestampUnit (ns, us, ms, s; the lab defaults to ms), or
   * without one the rules engine's receive time in that unit.
   */
  private influxDbAction(rule: string, p: Record<string, unknown>, at: string): CompiledAction {
    const database = str(p.DatabaseName, `${at}.DatabaseName`, rule);
    const tableText = str(p.TableName, `${at}.TableName`, rule);
    const table = template(tableText, `${at}.TableName`, rule);
    const destination = str(p.DestinationArn, `${at}.DestinationArn`, rule);
    const organization = typeof p.Organization === 'string' ? p.Organization : undefined;
    const tags = Object.entries((p.Tags ?? {}) as Record<string, unknown>).map(([k, v]) => ({
      key: k,
      value: template(String(v), `${at}.Tags.${k}`, rule),
    }));
    const unit = String(p.TimestampUnit ?? 'ms');
    if (!(unit in INFLUX_UNITS))
      throw new RuleLoadError(
        rule,
        `${at}.TimestampUnit ${unit} is not valid (${Object.keys(INFLUX_UNITS).join(', ')})`,
      );
    const write = this.deps.influxDbWrite;
    if (!write) throw new RuleLoadError(rule, `${at}: no InfluxDB store`);
    return {
      name: 'InfluxDBAction',
      resource: `${database}.${tableText}`,
      run: async ({ ctx, doc, json }) => {
        if (!json) throw new Error('the InfluxDB action needs a JSON object message');
        const measurement = table(ctx, doc);
        if (measurement === '') throw new Error('the InfluxDB action TableName evaluated to an empty string');
        const tagSet = tags
          .map((t) => ({ key: t.key, value: t.value(ctx, doc) }))
          .filter((t) => t.value !== '')
          .sort((a, b) => (a.key < b.key ? -1 : 1))
          .map((t) => `,${escapeKey(t.key)}=${escapeKey(t.value)}`)
          .join('');
        const tagNames = new Set(tags.map((t) => t.key));
        // The point's time: the result's `timestamp` key (in TimestampUnit), else the receive time.
        let time: string;
        if (json.timestamp !== undefined) {
          if (typeof json.timestamp !== 'number' || !Number.isInteger(json.timestamp))
            throw new Error(
              `the InfluxDB action's timestamp ${JSON.stringify(json.timestamp)} is not an integer`,
            );
          time = String(json.timestamp);
        } else time = timeIn(ctx.timestamp, INFLUX_UNITS[unit as keyof typeof INFLUX_UNITS]);
        const fields = Object.entries(json)
          .filter(([k]) => !tagNames.has(k) && k !== 'timestamp')
          .map(([k, v]) => [k, fieldValue(v)] as const)
          .filter(([, v]) => v !== undefined)
          .map(([k, v]) => `${escapeKey(k)}=${v}`);
        if (fields.length === 0) throw new Error('the InfluxDB action found no field to write');
        const line = `${measurement.replace(/[, \\]/g, (c) => `\\${c}`)}${tagSet} ${fields.join(',')} ${time}`;
        await write(destination, { database, table: measurement, organization }, [line]);
      },
    };
  }

  /**
   * Run an action, bounded by the action timeout unless it waits for a function on purpose. The
   * error action gets a longer bound ({@link RuleEngineDeps.errorActionTimeoutMs}): the lab makes a
   * destination unavailable only through its fault injection, so an error action that is merely
   * slow (the emulator working off a burst of failures at the end of an outage) must not drop the
   * message, as the AWS service behind it would not.
   */
  private runBounded(
    action: CompiledAction,
    input: ActionInput,
    kind: 'action' | 'errorAction' = 'action',
  ): Promise<void> {
    const ms =
      kind === 'errorAction'
        ? (this.deps.errorActionTimeoutMs ?? 30_000)
        : (this.deps.actionTimeoutMs ?? 3000);
    if (action.unbounded || !(ms > 0)) return action.run(input);
    let timer: NodeJS.Timeout | undefined;
    return Promise.race([
      action.run(input),
      new Promise<void>((_, reject) => {
        timer = setTimeout(
          () =>
            reject(
              new ActionTimeoutError(
                `${action.name.replace(/Action$/, '')} action did not complete within ${ms} ms (the destination did not answer)`,
              ),
            ),
          ms,
        );
      }),
    ]).finally(() => clearTimeout(timer));
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
      registryData: this.deps.registryData,
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
    const results = await Promise.allSettled(rule.actions.map((a) => this.runBounded(a, input)));
    const failures: Failure[] = [];
    results.forEach((r, i) => {
      if (r.status === 'rejected') {
        if (r.reason instanceof ActionTimeoutError) rule.stats.actionTimeouts++;
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
      await this.runBounded(
        rule.errorAction,
        { ctx, doc: message, data: Buffer.from(JSON.stringify(message)), json: message },
        'errorAction',
      );
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
