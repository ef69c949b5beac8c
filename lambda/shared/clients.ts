/**
 * AWS SDK clients with explicit time and retry budgets. Handlers create them once per
 * container (module scope) and inject them into adapters. Endpoints come from the standard
 * `AWS_ENDPOINT_URL_*` variables, which the SDK reads itself (the local lab and the tests use
 * them), so nothing here reads the environment.
 */
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import type { ChecksumConstructor, HashConstructor } from '@smithy/types';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import {
  CertificateStatusReader,
  createCertificateStatusReader,
  SdkClientSettings,
} from './iot-certificates';
import { createSqsBatchSender, SqsBatchSender } from './sqs';

export interface ClientBudget {
  /** Milliseconds to establish a connection. */
  connectionTimeoutMs: number;
  /** Milliseconds a single request may take once sent. */
  requestTimeoutMs: number;
  /** Total attempts including the first (1 = no retry). */
  maxAttempts: number;
  /** Upper bound of concurrent sockets per client. @default 50 */
  maxSockets?: number;
}

export function httpHandler(budget: ClientBudget): NodeHttpHandler {
  const agentOptions = { keepAlive: true, maxSockets: budget.maxSockets ?? 50 };
  return new NodeHttpHandler({
    connectionTimeout: budget.connectionTimeoutMs,
    requestTimeout: budget.requestTimeoutMs,
    httpAgent: new HttpAgent(agentOptions),
    httpsAgent: new HttpsAgent(agentOptions),
  });
}

/** Document client that drops undefined attributes (optional record fields). */
export function createDocumentClient(budget: ClientBudget): DynamoDBDocumentClient {
  const client = new DynamoDBClient({ requestHandler: httpHandler(budget), maxAttempts: budget.maxAttempts });
  return DynamoDBDocumentClient.from(client, { marshallOptions: { removeUndefinedValues: true } });
}

/**
 * AWS IoT DescribeCertificate with the same budget, signed with the credentials and region of
 * `sdkClient` (see iot-certificates.ts for why this is not `@aws-sdk/client-iot`).
 */
export function createCertificateReader(
  budget: ClientBudget,
  sdkClient: { config: SdkClientSettings },
): CertificateStatusReader {
  return createCertificateStatusReader({
    handler: httpHandler(budget),
    settings: sdkClient.config,
    maxAttempts: budget.maxAttempts,
  });
}

/**
 * Amazon SQS SendMessageBatch with the same budget, signed with the credentials, region and hash
 * of `sdkClient` (see sqs.ts for why this is not `@aws-sdk/client-sqs`).
 */
export function createSqsSender(
  budget: ClientBudget,
  sdkClient: { config: SdkClientSettings & { sha256: ChecksumConstructor | HashConstructor } },
): SqsBatchSender {
  return createSqsBatchSender({
    handler: httpHandler(budget),
    settings: sdkClient.config,
    maxAttempts: budget.maxAttempts,
  });
}
