/** AWS::SQS::Queue → an in-memory queue (dead-letter store); Ref is the queue URL. */
import { arn, type ResourceHandler } from './types';

const url = (name: string, region: string, account: string): string =>
  `https://sqs.${region}.amazonaws.com/${account}/${name}`;

export const sqsQueueHandler: ResourceHandler = {
  types: ['AWS::SQS::Queue'],
  phase: 10,
  nameProperty: 'QueueName',
  maxNameLength: 80,
  sanitizeName: (n, p) => (p.FifoQueue === true ? `${n.slice(0, 75)}.fifo` : n),
  ref: (name, c) => url(name, c.region, c.accountId),
  attributes: (name, c) => ({
    Arn: arn('sqs', c, name),
    QueueName: name,
    QueueUrl: url(name, c.region, c.accountId),
  }),
  create(ctx) {
    ctx.queues.add({
      logicalId: ctx.logicalId,
      name: ctx.physicalName,
      url: url(ctx.physicalName, ctx.region, ctx.accountId),
      arn: arn('sqs', ctx, ctx.physicalName),
    });
    return { status: 'created', detail: 'in-memory queue' };
  },
};
