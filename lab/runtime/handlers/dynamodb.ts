/** AWS::DynamoDB::Table and AWS::DynamoDB::GlobalTable → a table in the DynamoDB emulator. */
import { CreateTableCommand, type CreateTableCommandInput } from '@aws-sdk/client-dynamodb';
import { arn, type ResourceHandler } from './types';

type Props = Record<string, unknown>;

function gsi(g: Props, onDemand: boolean): Props {
  return {
    IndexName: g.IndexName,
    KeySchema: g.KeySchema,
    Projection: g.Projection ?? { ProjectionType: 'ALL' },
    ...(onDemand
      ? {}
      : {
          ProvisionedThroughput: g.ProvisionedThroughput ?? { ReadCapacityUnits: 5, WriteCapacityUnits: 5 },
        }),
  };
}

export const dynamodbTableHandler: ResourceHandler = {
  types: ['AWS::DynamoDB::Table', 'AWS::DynamoDB::GlobalTable'],
  phase: 10,
  nameProperty: 'TableName',
  maxNameLength: 255,
  attributes: (name, c) => ({
    Arn: arn('dynamodb', c, `table/${name}`),
    StreamArn: arn('dynamodb', c, `table/${name}/stream/1970-01-01T00:00:00.000`),
    TableId: `00000000-0000-4000-8000-${Buffer.from(name).toString('hex').slice(0, 12).padEnd(12, '0')}`,
  }),
  async create(ctx) {
    const p = ctx.properties;
    const onDemand =
      p.BillingMode === 'PAY_PER_REQUEST' ||
      (p.BillingMode === undefined &&
        p.ProvisionedThroughput === undefined &&
        p.WriteProvisionedThroughputSettings === undefined);
    const input: CreateTableCommandInput = {
      TableName: ctx.physicalName,
      AttributeDefinitions: p.AttributeDefinitions as CreateTableCommandInput['AttributeDefinitions'],
      KeySchema: p.KeySchema as CreateTableCommandInput['KeySchema'],
      ...(onDemand
        ? { BillingMode: 'PAY_PER_REQUEST' }
        : {
            ProvisionedThroughput:
              (p.ProvisionedThroughput as CreateTableCommandInput['ProvisionedThroughput']) ?? {
                ReadCapacityUnits: 5,
                WriteCapacityUnits: 5,
              },
          }),
    };
    const gsis = (p.GlobalSecondaryIndexes as Props[] | undefined) ?? [];
    if (gsis.length)
      input.GlobalSecondaryIndexes = gsis.map((g) =>
        gsi(g, onDemand),
      ) as unknown as CreateTableCommandInput['GlobalSecondaryIndexes'];
    const lsis = (p.LocalSecondaryIndexes as Props[] | undefined) ?? [];
    if (lsis.length) {
      input.LocalSecondaryIndexes = lsis.map((l) => ({
        IndexName: l.IndexName,
        KeySchema: l.KeySchema,
        Projection: l.Projection ?? { ProjectionType: 'ALL' },
      })) as CreateTableCommandInput['LocalSecondaryIndexes'];
    }
    await ctx.dynamodb.send(new CreateTableCommand(input));
    const notes = [`${gsis.length} GSI`];
    if (p.TimeToLiveSpecification) notes.push('TTL not enforced by the emulator');
    if (p.StreamSpecification) notes.push('streams not emulated');
    return { status: 'created', detail: notes.join(', ') };
  },
};
