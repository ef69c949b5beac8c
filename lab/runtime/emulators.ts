/**
 * DynamoDB-API (dynalite) and Kinesis-API (kinesalite) emulators on 127.0.0.1, random ports.
 * Both are in-memory and stop with the lab.
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';

// Neither emulator ships type declarations.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const dynalite = require('dynalite') as (opts: Record<string, unknown>) => Server;
// eslint-disable-next-line @typescript-eslint/no-require-imports
const kinesalite = require('kinesalite') as (opts: Record<string, unknown>) => Server;

export interface Emulators {
  dynamodb: string;
  kinesis: string;
  stop(): Promise<void>;
}

async function listen(server: Server, host: string, port = 0): Promise<string> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address() as AddressInfo;
  return `http://${host}:${addr.port}`;
}

function close(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.closeAllConnections?.();
    server.close(() => resolve());
  });
}

export async function startEmulators(
  opts: { host?: string; dynamodbPort?: number; kinesisPort?: number } = {},
): Promise<Emulators> {
  const host = opts.host ?? '127.0.0.1';
  const ddb = dynalite({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 });
  const kin = kinesalite({ createStreamMs: 0, deleteStreamMs: 0, updateStreamMs: 0, shardLimit: 1000 });
  const [dynamodb, kinesis] = await Promise.all([
    listen(ddb, host, opts.dynamodbPort),
    listen(kin, host, opts.kinesisPort),
  ]);
  return {
    dynamodb,
    kinesis,
    stop: async () => {
      await Promise.all([close(ddb), close(kin)]);
    },
  };
}
