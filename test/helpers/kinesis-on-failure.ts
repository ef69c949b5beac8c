/**
 * Test helper: the record a Lambda event-source mapping sends its on-failure destination for
 * Kinesis records it gave up on after function errors (Lambda's Kinesis invocation record:
 * requestContext, responseContext, KinesisBatchInfo), as a test expects it. What a test cannot
 * know (the request id, when it was sent, when the records arrived) is matched by its form.
 */
export interface GivenUpBatch {
  shardId: unknown;
  startSequenceNumber: unknown;
  endSequenceNumber: unknown;
  batchSize: number;
  streamArn: unknown;
}

export function retriesExhaustedAfterFunctionError(
  functionArn: unknown,
  approximateInvokeCount: number,
  batch: GivenUpBatch,
): Record<string, unknown> {
  return {
    requestContext: {
      requestId: expect.stringMatching(/^[0-9a-f-]{36}$/),
      functionArn,
      condition: 'RetryAttemptsExhausted',
      approximateInvokeCount,
    },
    responseContext: { statusCode: 200, executedVersion: '$LATEST', functionError: 'Unhandled' },
    version: '1.0',
    timestamp: expect.any(String),
    KinesisBatchInfo: {
      shardId: batch.shardId,
      startSequenceNumber: batch.startSequenceNumber,
      endSequenceNumber: batch.endSequenceNumber,
      approximateArrivalOfFirstRecord: expect.any(String),
      approximateArrivalOfLastRecord: expect.any(String),
      batchSize: batch.batchSize,
      streamArn: batch.streamArn,
    },
  };
}

/**
 * A mapping's counts after one batch of four whose third record always fails the function, with
 * BisectBatchOnFunctionError and MaximumRetryAttempts 1: [1-4] fails and is split; [1, 2]
 * succeeds; [3, 4] fails and is split; [3] fails, is retried once and given up on; [4] succeeds.
 */
export const BISECTED_POISON_COUNTS = {
  batches: 6,
  functionErrors: 4,
  bisections: 2,
  retries: 1,
  sentToOnFailure: 1,
  onFailureMessages: 1,
};
