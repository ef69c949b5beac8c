/** AWS::Kinesis::Stream → a stream in the Kinesis emulator. */
import { arn, type ResourceHandler } from './types';

export const kinesisStreamHandler: ResourceHandler = {
  types: ['AWS::Kinesis::Stream'],
  phase: 10,
  nameProperty: 'Name',
  maxNameLength: 128,
  attributes: (name, c) => ({ Arn: arn('kinesis', c, `stream/${name}`) }),
  async create(ctx) {
    const mode = (ctx.properties.StreamModeDetails as { StreamMode?: string } | undefined)?.StreamMode;
    const shards =
      typeof ctx.properties.ShardCount === 'number'
        ? ctx.properties.ShardCount
        : mode === 'ON_DEMAND'
          ? 4
          : 1;
    await ctx.kinesis.createStream(ctx.physicalName, shards);
    return { status: 'created', detail: `${shards} shard(s)${mode === 'ON_DEMAND' ? ', on-demand' : ''}` };
  },
};
