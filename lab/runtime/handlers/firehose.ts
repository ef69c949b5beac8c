/**
 * AWS::KinesisFirehose::DeliveryStream with a Kinesis data stream as source
 * (KinesisStreamAsSource) and an S3 destination (ExtendedS3DestinationConfiguration or
 * S3DestinationConfiguration) → a delivery stream that reads the stream and writes objects to
 * the S3 emulator (../firehose.ts). Supported: Prefix and ErrorOutputPrefix expressions
 * (`!{timestamp:…}`, `!{firehose:…}`), BufferingHints, CompressionFormat UNCOMPRESSED or GZIP,
 * the AppendDelimiterToRecord and Lambda processors, FileExtension, CustomTimeZone. Direct PUT
 * streams, other destinations, other processors (de-aggregation, …), other compressions, format
 * conversion and dynamic partitioning are UNSUPPORTED; encryption, CloudWatch logging and S3
 * backup are accepted and not emulated.
 */
import {
  DEFAULT_ERROR_PREFIX,
  DEFAULT_PREFIX,
  FirehoseDelivery,
  prefixProblems,
  type FirehoseConfig,
} from '../firehose';
import { arn, type HandlerContext, type ResourceHandler } from './types';

type Props = Record<string, unknown>;

interface Processor {
  Type?: string;
  Parameters?: { ParameterName?: string; ParameterValue?: string }[];
}

/** `\n`, `\t`, `\r` written as escapes in a parameter value. */
const unescape = (s: string): string =>
  s.replace(/\\([ntr\\])/g, (_m, c: string) => ({ n: '\n', t: '\t', r: '\r', '\\': '\\' })[c] ?? c);

/** The delivery configuration, or why the lab cannot run this stream. */
function deliveryConfig(ctx: HandlerContext): {
  config?: FirehoseConfig;
  unsupported?: string;
  notes: string[];
} {
  const p = ctx.properties;
  const notes: string[] = [];
  if (p.DeliveryStreamType !== 'KinesisStreamAsSource')
    return {
      unsupported: `${String(p.DeliveryStreamType ?? 'DirectPut')} streams are not emulated (no Firehose API in the lab)`,
      notes,
    };
  const source = String((p.KinesisStreamSourceConfiguration as Props | undefined)?.KinesisStreamARN ?? '');
  if (!source.startsWith(arn('kinesis', ctx, 'stream/')))
    return { unsupported: `source ${source || '(none)'} is not a stream of the lab`, notes };
  const dest = (p.ExtendedS3DestinationConfiguration ?? p.S3DestinationConfiguration) as Props | undefined;
  if (!dest) {
    const other = Object.keys(p).filter((k) => k.endsWith('DestinationConfiguration'));
    return { unsupported: `destination ${other.join(', ') || '(none)'} is not emulated (S3 only)`, notes };
  }
  const compression = String(dest.CompressionFormat ?? 'UNCOMPRESSED');
  if (compression !== 'UNCOMPRESSED' && compression !== 'GZIP')
    return { unsupported: `CompressionFormat ${compression} is not emulated (UNCOMPRESSED, GZIP)`, notes };
  if ((dest.DataFormatConversionConfiguration as Props | undefined)?.Enabled === true)
    return { unsupported: 'record format conversion is not emulated', notes };
  if ((dest.DynamicPartitioningConfiguration as Props | undefined)?.Enabled === true)
    return { unsupported: 'dynamic partitioning is not emulated', notes };
  let delimiter: string | undefined;
  let lambda: FirehoseConfig['lambda'];
  const processing = dest.ProcessingConfiguration as
    { Enabled?: boolean; Processors?: Processor[] } | undefined;
  if (processing?.Enabled === true) {
    for (const proc of processing.Processors ?? []) {
      const param = (name: string) => proc.Parameters?.find((x) => x.ParameterName === name)?.ParameterValue;
      if (proc.Type === 'AppendDelimiterToRecord') {
        const d = param('Delimiter');
        delimiter = d === undefined ? '\n' : unescape(d);
      } else if (proc.Type === 'Lambda') {
        const fn = ctx.runner.resolve(String(param('LambdaArn') ?? ''));
        if (!fn)
          return {
            unsupported: `Lambda processor ${String(param('LambdaArn'))} is not a function of the stack`,
            notes,
          };
        lambda = { arn: fn, retries: Number(param('NumberOfRetries') ?? 3) };
      } else
        return {
          unsupported: `processor ${String(proc.Type)} is not emulated (AppendDelimiterToRecord, Lambda)`,
          notes,
        };
    }
  }
  const prefix = typeof dest.Prefix === 'string' && dest.Prefix !== '' ? dest.Prefix : DEFAULT_PREFIX;
  const errorPrefix =
    typeof dest.ErrorOutputPrefix === 'string' && dest.ErrorOutputPrefix !== ''
      ? dest.ErrorOutputPrefix
      : DEFAULT_ERROR_PREFIX;
  if (/!\{/.test(String(dest.Prefix ?? '')) && !dest.ErrorOutputPrefix)
    throw new Error(
      `delivery stream ${ctx.logicalId}: a Prefix with expressions needs an ErrorOutputPrefix (Firehose refuses the configuration)`,
    );
  const problems = [...prefixProblems(prefix, 'prefix'), ...prefixProblems(errorPrefix, 'error')];
  if (problems.length) return { unsupported: problems.join('; '), notes };
  const hints = (dest.BufferingHints ?? {}) as { IntervalInSeconds?: number; SizeInMBs?: number };
  const intervalMs = (typeof hints.IntervalInSeconds === 'number' ? hints.IntervalInSeconds : 300) * 1000;
  const cap = ctx.options.firehoseMaxBufferIntervalMs;
  const bucketArn = String(dest.BucketARN ?? '');
  const bucket = bucketArn.replace(/^arn:[^:]+:s3:::/, '');
  if (p.DeliveryStreamEncryptionConfigurationInput || dest.EncryptionConfiguration)
    notes.push('encryption not emulated');
  if (dest.S3BackupMode === 'Enabled') notes.push('S3 backup not emulated');
  const config: FirehoseConfig = {
    logicalId: ctx.logicalId,
    name: ctx.physicalName,
    arn: arn('firehose', ctx, `deliverystream/${ctx.physicalName}`),
    region: ctx.region,
    lambda,
    sourceArn: source,
    streamName: source.slice(source.indexOf('stream/') + 'stream/'.length),
    bucket,
    prefix,
    errorPrefix,
    intervalMs: cap !== undefined ? Math.min(intervalMs, cap) : intervalMs,
    sizeBytes: (typeof hints.SizeInMBs === 'number' ? hints.SizeInMBs : 5) * 1024 * 1024,
    gzip: compression === 'GZIP',
    delimiter,
    extension:
      typeof dest.FileExtension === 'string' ? dest.FileExtension : compression === 'GZIP' ? '.gz' : '',
    timeZone: typeof dest.CustomTimeZone === 'string' ? dest.CustomTimeZone : 'UTC',
  };
  return { config, notes };
}

export const firehoseDeliveryStreamHandler: ResourceHandler = {
  types: ['AWS::KinesisFirehose::DeliveryStream'],
  phase: 60,
  nameProperty: 'DeliveryStreamName',
  maxNameLength: 64,
  attributes: (name, c) => ({ Arn: arn('firehose', c, `deliverystream/${name}`) }),
  async create(ctx) {
    const { config, unsupported, notes } = deliveryConfig(ctx);
    if (!config) return { status: 'unsupported', detail: unsupported };
    if (!ctx.s3.bucketNames().includes(config.bucket))
      throw new Error(
        `delivery stream ${ctx.logicalId}: bucket ${config.bucket} is not a bucket of the stack`,
      );
    const delivery = new FirehoseDelivery(config, {
      kinesis: ctx.kinesis,
      s3: ctx.s3,
      invoke: (fn, event) => ctx.invoke(fn, event),
      log: (e) => ctx.log(e),
      pollIntervalMs: ctx.options.pollIntervalMs ?? 200,
    });
    await delivery.start();
    ctx.addStopper(() => delivery.stop());
    ctx.record('deliveryStream', {
      logicalId: ctx.logicalId,
      name: config.name,
      source: config.sourceArn,
      bucket: config.bucket,
      stats: () => delivery.stats(),
      flush: () => delivery.flush(),
      restart: () => delivery.restart(),
    });
    return {
      status: 'created',
      detail: [
        `${config.streamName} → s3://${config.bucket}/${config.prefix}`,
        `buffer ${config.sizeBytes / 1024 / 1024} MB / ${config.intervalMs / 1000}s`,
        config.gzip ? 'GZIP' : 'uncompressed',
        ...(config.lambda ? [`Lambda processor ${config.lambda.arn}`] : []),
        ...(config.delimiter !== undefined ? ['newline-delimited'] : []),
        ...notes,
      ].join(', '),
    };
  },
};
