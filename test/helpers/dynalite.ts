/**
 * Test helper: a dynalite (DynamoDB-API emulator) server on a random loopback port, plus the
 * registry tables created with the key schema and indexes of core/model.ts.
 * The server stops itself when the test calls `stop()` (always do so in afterAll).
 */
import { AddressInfo } from 'node:net';
import { CreateTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, QueryCommand } from '@aws-sdk/lib-dynamodb';
import { DeviceEvent, TABLES } from '../../core/model';

// dynalite ships no type declarations.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const dynalite = require('dynalite') as (opts: Record<string, unknown>) => import('node:http').Server;

export interface LocalDynamo {
  endpoint: string;
  client: DynamoDBClient;
  doc: DynamoDBDocumentClient;
  stop(): Promise<void>;
}

export async function startDynalite(): Promise<LocalDynamo> {
  const server = dynalite({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const endpoint = `http://127.0.0.1:${port}`;
  const client = new DynamoDBClient({
    endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
  });
  const doc = DynamoDBDocumentClient.from(client, { marshallOptions: { removeUndefinedValues: true } });
  return {
    endpoint,
    client,
    doc,
    stop: async () => {
      client.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

export interface RegistryTableNames {
  devices: string;
  lots: string;
  events: string;
}

/** Create the three registry tables (names suffixed to keep tests independent). */
export async function createRegistryTables(client: DynamoDBClient, suffix = ''): Promise<RegistryTableNames> {
  const names = { devices: `Devices${suffix}`, lots: `Lots${suffix}`, events: `Events${suffix}` };
  const d = TABLES.devices;
  const e = TABLES.events;
  const keysOnly = { ProjectionType: 'ALL' as const };
  await client.send(
    new CreateTableCommand({
      TableName: names.devices,
      BillingMode: 'PAY_PER_REQUEST',
      AttributeDefinitions: [
        { AttributeName: d.partitionKey, AttributeType: 'S' },
        { AttributeName: d.byLotKey, AttributeType: 'S' },
        { AttributeName: d.byThingKey, AttributeType: 'S' },
        { AttributeName: d.byCertificateKey, AttributeType: 'S' },
      ],
      KeySchema: [{ AttributeName: d.partitionKey, KeyType: 'HASH' }],
      GlobalSecondaryIndexes: [
        {
          IndexName: d.byLotIndex,
          KeySchema: [
            { AttributeName: d.byLotKey, KeyType: 'HASH' },
            { AttributeName: d.partitionKey, KeyType: 'RANGE' },
          ],
          Projection: keysOnly,
        },
        {
          IndexName: d.byThingIndex,
          KeySchema: [{ AttributeName: d.byThingKey, KeyType: 'HASH' }],
          Projection: keysOnly,
        },
        {
          IndexName: d.byCertificateIndex,
          KeySchema: [{ AttributeName: d.byCertificateKey, KeyType: 'HASH' }],
          Projection: keysOnly,
        },
      ],
    }),
  );
  await client.send(
    new CreateTableCommand({
      TableName: names.lots,
      BillingMode: 'PAY_PER_REQUEST',
      AttributeDefinitions: [{ AttributeName: TABLES.lots.partitionKey, AttributeType: 'S' }],
      KeySchema: [{ AttributeName: TABLES.lots.partitionKey, KeyType: 'HASH' }],
    }),
  );
  await client.send(
    new CreateTableCommand({
      TableName: names.events,
      BillingMode: 'PAY_PER_REQUEST',
      AttributeDefinitions: [
        { AttributeName: e.partitionKey, AttributeType: 'S' },
        { AttributeName: e.sortKey, AttributeType: 'S' },
        { AttributeName: e.enrollmentPartitionKey, AttributeType: 'S' },
        { AttributeName: e.enrollmentSortKey, AttributeType: 'S' },
      ],
      KeySchema: [
        { AttributeName: e.partitionKey, KeyType: 'HASH' },
        { AttributeName: e.sortKey, KeyType: 'RANGE' },
      ],
      GlobalSecondaryIndexes: [
        {
          IndexName: e.enrollmentIndex,
          KeySchema: [
            { AttributeName: e.enrollmentPartitionKey, KeyType: 'HASH' },
            { AttributeName: e.enrollmentSortKey, KeyType: 'RANGE' },
          ],
          Projection: { ProjectionType: 'ALL' },
        },
      ],
    }),
  );
  return names;
}

/** Every trail entry of one serial, oldest first (a direct query, for assertions). */
export async function readTrail(
  doc: DynamoDBDocumentClient,
  eventsTable: string,
  serial: string,
): Promise<DeviceEvent[]> {
  const out = await doc.send(
    new QueryCommand({
      TableName: eventsTable,
      KeyConditionExpression: 'serial = :s',
      ExpressionAttributeValues: { ':s': serial },
    }),
  );
  return (out.Items ?? []) as DeviceEvent[];
}
