/**
 * `fleet telemetry replay`: re-ingest the messages the telemetry and health rules could not put
 * on the stream.
 *
 * The rules' error actions write one S3 object per failed message to the error bucket, under
 * `<ruleName>/<yyyy>/<MM>/<dd>/<HH>/<receivedAtMs>-<uuid>.json` (core/telemetry.ts ERROR_STORE),
 * holding the AWS IoT error-action message. Replay lists the entries of a time window per rule,
 * rebuilds the record the rule would have put (`toStreamRecord`, marked `replayed: true`, with the
 * thing from the topic, the receive time from the key and the rule's trace id), and puts it on
 * the stream with PutRecords (partition key: the thing).
 *
 * Claim, then put: each entry to re-ingest is first moved to `replaying/<key>` (claimed), then
 * put, then moved to `replayed/<key>`; an entry the stream refused goes back to `<key>`. A run
 * that finds `replaying/` entries of its rules (an earlier run stopped between a claim and the
 * move to `replayed/`) finishes them first, whatever their receive time: it puts them again and
 * moves them. So a second replay never ingests an entry again, and an interrupted one can ingest
 * twice only the entries it had in flight (at most one chunk). Run one replay at a time.
 *
 * Only entries where the Kinesis action failed are re-ingested. An entry whose only failures are
 * other actions (the republish of the time-series options) is skipped: the stream has the record.
 * An entry that cannot be rebuilt (payload not JSON, topic not `dt/<prefix>/<thing>/<type>`) is
 * unreplayable. Both are left in place and reported with their key. The time-series rule's own
 * entries (its prefix, core/time-series.ts) are failed Timestream/InfluxDB writes of records the
 * stream has: replay counts them apart and never re-drives them.
 */
import { Command } from 'commander';
import { describeIssues } from '../../core/issues';
import {
  errorActionMessageSchema,
  errorStoreKeyTime,
  RECORD_TYPES,
  RecordType,
  StreamRecord,
  thingOfDataTopic,
  toStreamRecord,
} from '../../core/telemetry';
import { timeSeriesRuleName } from '../../core/time-series';
import type { TelemetryRulesOutput } from '../../core/stack-outputs';
import {
  CLI_ENV,
  CliContext,
  kinesisClient,
  parseTelemetryRules,
  requireResource,
  ResourceKey,
  s3Client,
  TOPIC_RULE_NAME,
} from '../context';
import { CliError, EXIT_CODES, UsageError } from '../errors';
import { formatTable } from '../output';
import { examples, RunCommand } from '../registration';
import { ErrorStore, ErrorStoreObject, putStreamRecords } from '../telemetry-store';
import { parseTimeArg } from '../time';

export interface TelemetryReplayOptions {
  /** Oldest receive time to replay: ISO time, date, or duration before now (`6h`). @default everything */
  since?: string;
  /** Receive time to stop at (exclusive), same forms. @default 'now' */
  until?: string;
  /** Only this rule: its name, or its record type (`telemetry`, `health`). @default both rules */
  rule?: string;
  /** Classify and count only: put nothing on the stream, move nothing. @default false */
  dryRun?: boolean;
  /** Print JSON instead of a table. @default false */
  json?: boolean;
  /** PutRecords attempts per batch before a refused record counts as failed. @default 5 */
  maxAttempts?: number;
  /** Entries read, put and moved per step (bounds memory). @default 500 */
  chunkSize?: number;
  /** S3 calls in flight at once. @default 16 */
  concurrency?: number;
}

/** The window and rule filter of `telemetry replay`, checked; needs no AWS. */
export interface TelemetryReplayQuery {
  since?: Date;
  until: Date;
  /** A rule name or record type, when given. */
  rule?: string;
}

export interface ReplayCounts {
  /** Entries to replay: those received in the window, and those an interrupted run left claimed. */
  found: number;
  /** Of `found`: entries an interrupted run had claimed (under `replaying/`), finished by this run. */
  resumed: number;
  /** Entries put on the stream and moved to `replayed/` (with --dry-run: that would be). */
  replayed: number;
  /** Entries whose Kinesis action did not fail (left in place). */
  skipped: number;
  /** Entries that cannot be rebuilt into a record (left in place). */
  unreplayable: number;
  /** Entries that could not be read, claimed, put or moved (left in place or under `replaying/`). */
  failed: number;
}

export interface ReplayRuleCounts extends ReplayCounts {
  rule: string;
  type: RecordType;
}

export interface ReplayEntry {
  key: string;
  rule: string;
}

/** The time-series rule's entries in the window: counted, never re-driven. */
export interface TimeSeriesEntries {
  rule: string;
  found: number;
  reason: string;
}

/** Why replay does not re-drive the time-series rule's entries. */
export const TIME_SERIES_REASON =
  'failed Timestream/InfluxDB writes of health records the stream already has; replay re-drives the stream only, ' +
  'and they expire with the error store';

export interface ReplayResult {
  dryRun: boolean;
  bucket: string;
  /** The stream records went to (with --dry-run: would go to, when known). */
  stream?: string;
  window: { since?: string; until: string };
  counts: ReplayCounts;
  byRule: ReplayRuleCounts[];
  entries: {
    /** Re-ingested entries (with --dry-run: those that would be) and where each was moved. */
    replayed: (ReplayEntry & { thing: string; movedTo?: string; resumed?: boolean })[];
    skipped: (ReplayEntry & { reason: string })[];
    unreplayable: (ReplayEntry & { problem: string })[];
    failed: (ReplayEntry & { problem: string })[];
  };
  /** With the health rule selected: the time-series rule's entries of the window (not in `counts`). */
  timeSeries?: TimeSeriesEntries;
  /** 0, or 1 when any entry failed. */
  exitCode: number;
}

/** What one error-store entry becomes. */
export type ReplayDecision =
  | { kind: 'replay'; thing: string; record: StreamRecord }
  | { kind: 'skip'; reason: string }
  | { kind: 'unreplayable'; problem: string };

/** The name AWS IoT gives a failed Kinesis action in the error-action message. */
export const KINESIS_ACTION = 'KinesisAction';

const RULE_FORM = 'a topic rule name (A-Z a-z 0-9 _) or a record type (telemetry, health)';

/**
 * Check the options of `telemetry replay` against `now` (and the rule names, when known), or
 * throw a {@link UsageError} naming the flag and the fix.
 */
export function checkTelemetryReplayOptions(
  opts: TelemetryReplayOptions,
  now: Date,
  rules?: TelemetryRulesOutput,
): TelemetryReplayQuery {
  const since = opts.since === undefined ? undefined : parseTimeArg(opts.since, now, '--since');
  const until = parseTimeArg(opts.until ?? 'now', now, '--until');
  if (since && since.getTime() >= until.getTime()) {
    throw new UsageError(
      `--since (${since.toISOString()}) must be before --until (${until.toISOString()}); widen the window`,
    );
  }
  const rule = opts.rule?.trim();
  if (rule !== undefined) {
    const isType = (RECORD_TYPES as readonly string[]).includes(rule);
    if (!isType && !TOPIC_RULE_NAME.test(rule))
      throw new UsageError(`--rule "${opts.rule}" is not ${RULE_FORM}`);
    if (!isType && rules && rule !== rules.telemetry && rule !== rules.health) {
      throw new UsageError(
        `--rule "${opts.rule}" is not one of the telemetry rules (${rules.telemetry}, ${rules.health}); ` +
          'give one of them, a record type (telemetry, health), or no --rule for both',
      );
    }
  }
  for (const [flag, value] of [
    ['maxAttempts', opts.maxAttempts],
    ['chunkSize', opts.chunkSize],
    ['concurrency', opts.concurrency],
  ] as const) {
    if (value !== undefined && (!Number.isInteger(value) || value < 1))
      throw new UsageError(`${flag} must be a positive whole number, not ${value}`);
  }
  return { ...(since ? { since } : {}), until, ...(rule !== undefined ? { rule } : {}) };
}

/** The rules to replay, with their record type: both, or the one `rule` names. */
export function replayRules(
  rules: TelemetryRulesOutput,
  rule?: string,
): { rule: string; type: RecordType }[] {
  const all = RECORD_TYPES.map((type) => ({ rule: rules[type], type }));
  if (rule === undefined) return all;
  const picked = all.filter((r) => r.type === rule || r.rule === rule);
  if (picked.length === 0) {
    throw new UsageError(
      `--rule "${rule}" is not one of the telemetry rules (${rules.telemetry}, ${rules.health}); ` +
        'give one of them, a record type (telemetry, health), or no --rule for both',
    );
  }
  return picked;
}

/**
 * What an entry of `type`'s rule becomes: the record to re-ingest, a skip (the Kinesis action
 * did not fail) or the problem that keeps it from being rebuilt. Pure; `key` gives the receive time.
 */
export function decideReplay(key: string, text: string, type: RecordType): ReplayDecision {
  const receivedAt = errorStoreKeyTime(key);
  if (receivedAt === undefined)
    return {
      kind: 'unreplayable',
      problem: 'the key is not in the error-store layout <rule>/yyyy/MM/dd/HH/<receivedAtMs>-<uuid>.json',
    };
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return { kind: 'unreplayable', problem: 'the object is not JSON (not an AWS IoT error-action message)' };
  }
  const parsed = errorActionMessageSchema.safeParse(doc);
  if (!parsed.success)
    return {
      kind: 'unreplayable',
      problem: `not an AWS IoT error-action message (${describeIssues(parsed.error.issues, '(message)')})`,
    };
  const message = parsed.data;
  if (!message.failures.some((f) => f.failedAction === KINESIS_ACTION)) {
    const others = [...new Set(message.failures.map((f) => f.failedAction))];
    return {
      kind: 'skip',
      reason:
        others.length === 0
          ? 'no failed action listed'
          : `only ${others.join(', ')} failed; the stream has the record`,
    };
  }
  const topic = thingOfDataTopic(message.topic);
  if (!topic)
    return {
      kind: 'unreplayable',
      problem: `topic "${message.topic}" is not a dt/<prefix>/<thing>/<type> topic`,
    };
  if (topic.type !== type)
    return {
      kind: 'unreplayable',
      problem: `topic "${message.topic}" is a ${topic.type} topic, not ${type} like its rule`,
    };
  let payload: unknown;
  try {
    payload = JSON.parse(Buffer.from(message.base64OriginalPayload, 'base64').toString('utf8'));
  } catch {
    return { kind: 'unreplayable', problem: 'the payload is not JSON' };
  }
  if (payload === null || typeof payload !== 'object' || Array.isArray(payload))
    return { kind: 'unreplayable', problem: 'the payload is JSON but not an object' };
  return {
    kind: 'replay',
    thing: topic.thing,
    record: toStreamRecord(type, payload, {
      thing: topic.thing,
      clientId: message.clientId,
      receivedAt,
      traceId: message.cloudwatchTraceId,
      replayed: true,
    }),
  };
}

/** Map `fn` over `items` with at most `limit` calls in flight; results in order. */
async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next;
      next += 1;
      results[i] = await fn(items[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

const errorText = (err: unknown): string =>
  err instanceof Error ? `${err.name}: ${err.message}` : String(err);

/** An S3 or Kinesis error that is the operator's setup, as a CliError naming the fix; else the error. */
function setupError(err: unknown, bucket: string, stream: string | undefined): unknown {
  if (!(err instanceof Error)) return err;
  if (err.name === 'NoSuchBucket')
    return new CliError(
      `error bucket ${bucket} does not exist; check --bucket, ${CLI_ENV.telemetryErrorBucket} or --stack, and the region (${err.message})`,
    );
  if (err.name === 'ResourceNotFoundException' && stream)
    return new CliError(
      `stream ${stream} was not found; check --stream, ${CLI_ENV.telemetryStream} or --stack, and the region (${err.message})`,
    );
  if (err.name === 'AccessDenied' || err.name === 'AccessDeniedException')
    return new CliError(
      `the AWS credentials were refused (${err.name}: ${err.message}); replay needs s3:ListBucket on ${bucket}, ` +
        `s3:GetObject, s3:PutObject and s3:DeleteObject on its objects, and kinesis:PutRecords on ${stream ?? 'the stream'}`,
    );
  return err;
}

const COUNT_KEYS = ['found', 'resumed', 'replayed', 'skipped', 'unreplayable', 'failed'] as const;
const emptyCounts = (): ReplayCounts => ({
  found: 0,
  resumed: 0,
  replayed: 0,
  skipped: 0,
  unreplayable: 0,
  failed: 0,
});

/** One entry a run works on: received in the window, or claimed by an interrupted run (`resumed`). */
interface Candidate {
  entry: ErrorStoreObject;
  resumed: boolean;
}

/** An entry to put on the stream. */
interface ToPut {
  key: string;
  resumed: boolean;
  thing: string;
  record: StreamRecord;
}

/**
 * Replay the error store onto the telemetry stream (see the module comment). Returns the counts
 * and the entries by outcome; `exitCode` is 1 when any entry failed. With `dryRun`, nothing is put
 * or moved and `replayed` counts what would be.
 */
export async function telemetryReplay(opts: TelemetryReplayOptions, ctx: CliContext): Promise<ReplayResult> {
  // The options first (a usage error before a missing resource), against the rule names when known.
  const query = checkTelemetryReplayOptions(opts, ctx.now(), ctx.resources.telemetryRules);
  const rules = requireResource(ctx, 'telemetryRules');
  const selected = replayRules(rules, query.rule);
  const bucket = requireResource(ctx, 'telemetryErrorBucket');
  const dryRun = opts.dryRun === true;
  const stream = dryRun ? ctx.resources.telemetryStream : requireResource(ctx, 'telemetryStream');
  const store = new ErrorStore(s3Client(ctx), bucket);
  const chunkSize = opts.chunkSize ?? 500;
  const concurrency = opts.concurrency ?? 16;
  const window = { since: query.since, until: query.until };

  const result: ReplayResult = {
    dryRun,
    bucket,
    ...(stream ? { stream } : {}),
    window: {
      ...(query.since ? { since: query.since.toISOString() } : {}),
      until: query.until.toISOString(),
    },
    counts: emptyCounts(),
    byRule: [],
    entries: { replayed: [], skipped: [], unreplayable: [], failed: [] },
    exitCode: EXIT_CODES.ok,
  };

  try {
    for (const { rule, type } of selected) {
      const counts: ReplayRuleCounts = { rule, type, ...emptyCounts() };
      result.byRule.push(counts);
      const fail = (key: string, problem: string): void => {
        counts.failed += 1;
        result.entries.failed.push({ key, rule, problem });
      };

      /** Read, decide, claim, put and move one chunk of entries. */
      const step = async (chunk: readonly Candidate[]): Promise<void> => {
        counts.found += chunk.length;
        counts.resumed += chunk.filter((c) => c.resumed).length;
        const decided = await mapLimit(chunk, concurrency, async (c: Candidate) => {
          const { key, receivedAt } = c.entry;
          if (receivedAt === undefined) return { c, decision: decideReplay(key, '', type) };
          try {
            const text = await store.read(c.resumed ? store.claimedKey(key) : key);
            return { c, decision: decideReplay(key, text, type) };
          } catch (err) {
            if (err instanceof Error && err.name === 'NoSuchBucket') throw err;
            return { c, error: `reading it failed (${errorText(err)})` };
          }
        });

        const toPut: ToPut[] = [];
        const leftInPlace: { c: Candidate; decision: Exclude<ReplayDecision, { kind: 'replay' }> }[] = [];
        for (const d of decided) {
          if ('error' in d) fail(d.c.entry.key, d.error ?? 'unknown error');
          else if (d.decision.kind === 'replay')
            toPut.push({
              key: d.c.entry.key,
              resumed: d.c.resumed,
              thing: d.decision.thing,
              record: d.decision.record,
            });
          else leftInPlace.push({ c: d.c, decision: d.decision });
        }
        // A claimed entry that is not to be put (it cannot be, unless the rules changed) goes back to its key.
        const settled = await mapLimit(leftInPlace, concurrency, async (l) => {
          let error: string | undefined;
          if (l.c.resumed && !dryRun)
            await store.release(l.c.entry.key).catch((err) => (error = errorText(err)));
          return { ...l, error };
        });
        for (const l of settled) {
          const key = l.c.entry.key;
          if (l.error !== undefined)
            fail(key, `moving it back from replaying/ failed (${l.error}); it stays under replaying/`);
          else if (l.decision.kind === 'skip') {
            counts.skipped += 1;
            result.entries.skipped.push({ key, rule, reason: l.decision.reason });
          } else {
            counts.unreplayable += 1;
            result.entries.unreplayable.push({ key, rule, problem: l.decision.problem });
          }
        }

        if (dryRun) {
          counts.replayed += toPut.length;
          for (const p of toPut)
            result.entries.replayed.push({
              key: p.key,
              rule,
              thing: p.thing,
              ...(p.resumed ? { resumed: true } : {}),
            });
          return;
        }

        // Claim: an entry is under replaying/ before it can reach the stream.
        const claims = await mapLimit(
          toPut.filter((p) => !p.resumed),
          concurrency,
          async (p) => {
            try {
              await store.claim(p.key);
              return { p };
            } catch (err) {
              return { p, error: errorText(err) };
            }
          },
        );
        for (const c of claims)
          if (c.error !== undefined)
            fail(
              c.p.key,
              `claiming it (moving it to replaying/) failed (${c.error}); left in place, not put`,
            );
        const claimed = [
          ...toPut.filter((p) => p.resumed),
          ...claims.filter((c) => c.error === undefined).map((c) => c.p),
        ];

        const outcome = await putStreamRecords(
          kinesisClient(ctx),
          stream as string,
          claimed.map((p) => ({
            ref: p,
            partitionKey: p.thing,
            data: Buffer.from(JSON.stringify(p.record), 'utf8'),
          })),
          { sleep: ctx.sleep, maxAttempts: opts.maxAttempts },
        );
        // Not on the stream: back to its key (or, failing that, left claimed for the next run).
        const released = await mapLimit(outcome.failed, concurrency, async (f) => {
          try {
            await store.release(f.ref.key);
            return { f };
          } catch (err) {
            return { f, error: errorText(err) };
          }
        });
        for (const r of released)
          fail(
            r.f.ref.key,
            `putting it on the stream failed: ${r.f.error}` +
              (r.error === undefined
                ? ''
                : `; moving it back from replaying/ failed too (${r.error}), the next replay puts it`),
          );
        const moved = await mapLimit(outcome.ok, concurrency, async (p) => {
          try {
            return { p, movedTo: await store.markReplayed(p.key) };
          } catch (err) {
            return { p, error: errorText(err) };
          }
        });
        for (const m of moved) {
          if (m.movedTo === undefined)
            fail(
              m.p.key,
              `re-ingested, but moving it from replaying/ to replayed/ failed (${m.error}); ` +
                'the next replay puts it again (this entry may then be on the stream twice)',
            );
          else {
            counts.replayed += 1;
            result.entries.replayed.push({
              key: m.p.key,
              rule,
              thing: m.p.thing,
              movedTo: m.movedTo,
              ...(m.p.resumed ? { resumed: true } : {}),
            });
          }
        }
      };

      const chunks = async (
        pages: AsyncIterable<ErrorStoreObject[]>,
        resumed: boolean,
        skip?: Set<string>,
      ) => {
        for await (const page of pages) {
          const entries = skip ? page.filter((e) => !skip.has(e.key)) : page;
          for (let start = 0; start < entries.length; start += chunkSize)
            await step(entries.slice(start, start + chunkSize).map((entry) => ({ entry, resumed })));
        }
      };
      // An interrupted run's claimed entries first, then the window (without them: one go each).
      const resumedKeys = new Set<string>();
      await chunks(
        (async function* () {
          for await (const page of store.listClaimed(rule)) {
            for (const e of page) resumedKeys.add(e.key);
            yield page;
          }
        })(),
        true,
      );
      await chunks(store.list(rule, window), false, resumedKeys);
      for (const k of COUNT_KEYS) result.counts[k] += counts[k];
    }

    // The time-series rule's entries: failed time-series writes the health rule's records fed.
    if (selected.some((r) => r.type === 'health')) {
      const rule = timeSeriesRuleName(rules.health);
      result.timeSeries = { rule, found: await store.count(rule, window), reason: TIME_SERIES_REASON };
    }
  } catch (err) {
    throw setupError(err, bucket, stream);
  }

  result.exitCode = result.counts.failed > 0 ? EXIT_CODES.failed : EXIT_CODES.ok;
  if (opts.json) ctx.out.json(result);
  else printReplay(result, ctx);
  return result;
}

/** Listed entries per kind in the table output (all of them are in --json). */
const MAX_LISTED = 50;

function printReplay(result: ReplayResult, ctx: CliContext): void {
  const { counts, dryRun } = result;
  const window = result.window.since
    ? `${result.window.since} .. ${result.window.until}`
    : `before ${result.window.until}`;
  ctx.out.info(
    `${dryRun ? 'dry run: ' : ''}telemetry replay from s3://${result.bucket} to stream ${result.stream ?? '(not resolved)'}, received ${window}`,
  );
  const row = (name: string, type: string, c: ReplayCounts): string[] => [
    name,
    type,
    String(c.found),
    String(c.replayed),
    String(c.skipped),
    String(c.unreplayable),
    String(c.failed),
  ];
  for (const line of formatTable(
    ['RULE', 'TYPE', 'FOUND', dryRun ? 'WOULD REPLAY' : 'REPLAYED', 'SKIPPED', 'UNREPLAYABLE', 'FAILED'],
    [
      ...result.byRule.map((r) => row(r.rule, r.type, r)),
      ...(result.byRule.length > 1 ? [row('total', '', counts)] : []),
    ],
  ))
    ctx.out.info(line);

  if (result.entries.skipped.length > 0) {
    const reasons = new Map<string, number>();
    for (const s of result.entries.skipped) reasons.set(s.reason, (reasons.get(s.reason) ?? 0) + 1);
    ctx.out.info('skipped (left in place):');
    for (const [reason, n] of reasons) ctx.out.info(`  ${n} x ${reason}`);
  }
  const listing = (title: string, items: { key: string; problem: string }[]): void => {
    if (items.length === 0) return;
    ctx.out.info(title);
    for (const line of formatTable(
      ['KEY', 'PROBLEM'],
      items.slice(0, MAX_LISTED).map((i) => [i.key, i.problem]),
    ))
      ctx.out.info(`  ${line}`);
    if (items.length > MAX_LISTED)
      ctx.out.info(`  (${MAX_LISTED} of ${items.length} shown; --json lists all of them)`);
  };
  listing('unreplayable (left in place; fix or delete them by hand):', result.entries.unreplayable);
  listing('failed:', result.entries.failed);
  const entries = (n: number): string => `${n} entr${n === 1 ? 'y' : 'ies'}`;
  if (counts.resumed > 0)
    ctx.out.info(
      `${entries(counts.resumed)} of an interrupted replay (under replaying/) ${dryRun ? 'would be' : counts.resumed === 1 ? 'was' : 'were'} finished first: ` +
        'put again, so those it had already put are on the stream twice',
    );
  const ts = result.timeSeries;
  if (ts && ts.found > 0)
    ctx.out.info(`time-series entries (${ts.rule}/, not replayed): ${entries(ts.found)}: ${ts.reason}`);

  if (dryRun)
    ctx.out.info(
      `dry run: ${counts.replayed} of ${counts.found} entr${counts.found === 1 ? 'y' : 'ies'} would be replayed; nothing was put or moved`,
    );
  else if (counts.failed > 0)
    ctx.out.info(
      `${counts.failed} entr${counts.failed === 1 ? 'y' : 'ies'} failed; run the replay again to retry them (replayed entries are not ingested twice)`,
    );
  else
    ctx.out.info(
      `${counts.replayed} entr${counts.replayed === 1 ? 'y' : 'ies'} replayed; moved under replayed/`,
    );
}

/** Resources `telemetry replay` resolves: the stream only when it puts records. */
export function telemetryReplayNeeds(dryRun: boolean): { needs: ResourceKey[]; wants: ResourceKey[] } {
  return dryRun
    ? { needs: ['telemetryErrorBucket', 'telemetryRules'], wants: ['telemetryStream'] }
    : { needs: ['telemetryErrorBucket', 'telemetryRules', 'telemetryStream'], wants: [] };
}

/** The rule names given by flag or environment (no AWS), for checking --rule before resolution. */
function rulesWithoutAws(
  flag: string | undefined,
  env: Record<string, string | undefined>,
): TelemetryRulesOutput | undefined {
  if (flag) return parseTelemetryRules(flag, 'flag --telemetry-rules');
  const fromEnv = env[CLI_ENV.telemetryRules];
  return fromEnv ? parseTelemetryRules(fromEnv, `environment variable ${CLI_ENV.telemetryRules}`) : undefined;
}

/** `fleet telemetry replay`. */
export function registerTelemetry(program: Command, run: RunCommand): void {
  const telemetry = program.command('telemetry').description('telemetry and health records');
  telemetry
    .command('replay')
    .description('re-ingest the messages the telemetry and health rules could not put on the stream')
    .option('--since <time>', 'oldest receive time: ISO time, date, or 30m/6h/7d before now (default: all)')
    .option('--until <time>', 'receive time to stop at (exclusive), same forms', 'now')
    .option('--rule <name>', 'only this rule: its name, or a record type (telemetry, health)')
    .option('--dry-run', 'count and classify only: put nothing, move nothing')
    .option('--json', 'print JSON')
    .option(
      '--stream <name>',
      `telemetry stream (env ${CLI_ENV.telemetryStream}, output TelemetryStreamName)`,
    )
    .option(
      '--bucket <name>',
      `error bucket of the rules (env ${CLI_ENV.telemetryErrorBucket}, output TelemetryErrorBucketName)`,
    )
    .option(
      '--telemetry-rules <json>',
      `rule name per record type, {"telemetry":"…","health":"…"} (env ${CLI_ENV.telemetryRules}, output TelemetryRules)`,
    )
    .addHelpText(
      'after',
      `
The rules' error actions keep each message they could not deliver in the error bucket, under
<rule>/yyyy/MM/dd/HH/<receivedAtMs>-<uuid>.json. Replay lists the entries received in the window,
rebuilds the record the rule would have put (thing from the topic, receive time from the key,
the rule's trace id, replayed: true), puts it on the stream (partition key: the thing, retrying
refused records) and moves the object to replayed/<key>: a second replay does not ingest it again.
Each entry is claimed (moved to replaying/<key>) before it is put: a run that finds entries an
interrupted run left there finishes them first, so only the entries in flight when a run stopped
can reach the stream twice. Run one replay at a time.
Only entries whose Kinesis action failed are re-ingested; entries where only another action
failed (the republish of the time-series options) are skipped, and entries that cannot be rebuilt
(payload not JSON, topic not dt/<prefix>/<thing>/<type>) are reported as unreplayable. Both stay
where they are. The time-series rule's entries (<health rule>_timeseries/: failed Timestream or
InfluxDB writes of records the stream has) are counted apart and never re-driven.
Exit code 1 when any entry failed to be read, claimed, put or moved.
Needs s3:ListBucket, s3:GetObject, s3:PutObject, s3:DeleteObject and kinesis:PutRecords.
${examples([
  'fleet telemetry replay --since 6h --dry-run',
  'fleet telemetry replay --since 2026-07-01T08:00:00Z --until 2026-07-01T12:00:00Z',
  'fleet telemetry replay --rule health --json',
])}`,
    )
    .action(async (o, cmd: Command) => {
      const opts: TelemetryReplayOptions = {
        since: o.since,
        until: o.until,
        rule: o.rule,
        dryRun: o.dryRun,
        json: o.json,
      };
      return run(
        cmd,
        {
          ...telemetryReplayNeeds(opts.dryRun === true),
          validate: () =>
            void checkTelemetryReplayOptions(
              opts,
              new Date(),
              rulesWithoutAws(o.telemetryRules, process.env),
            ),
        },
        (ctx) => telemetryReplay(opts, ctx),
      );
    });
}
