/**
 * The answer of a function behind a Kinesis (or DynamoDB Streams) event-source mapping with
 * `ReportBatchItemFailures`, built the way Powertools' `BatchProcessor` with
 * `processPartialResponse` builds it, for a consumer that decides the outcome of every record at
 * once (the health consumer writes per device, not per record):
 * - `{ batchItemFailures: [{ itemIdentifier: <sequence number> }] }` with the failed records in
 *   record order (Lambda resumes the shard from the lowest one), `[]` when none failed;
 * - when every record of a non-empty batch failed, a {@link FullBatchFailureError} is thrown
 *   instead, so that Lambda retries (and, with bisect on error, splits) the whole batch.
 * Powertools' `@aws-lambda-powertools/batch` would add about 6 KiB to a bundle held to
 * MAX_BUNDLE_BYTES for these few lines; a test holds this to Powertools' answers.
 */
import type { KinesisStreamBatchResponse, KinesisStreamRecord } from 'aws-lambda';

/** Every record of the batch failed (Powertools' error of the same name and message). */
export class FullBatchFailureError extends Error {
  override readonly name = 'FullBatchFailureError';
  constructor(readonly recordErrors: readonly string[]) {
    super('All records failed processing. See individual errors below.');
  }
}

/** The partial batch response for `records`, of which `failures` (record -> why) failed. */
export function kinesisBatchResponse(
  records: readonly KinesisStreamRecord[],
  failures: ReadonlyMap<KinesisStreamRecord, string>,
): KinesisStreamBatchResponse {
  const failed = records.filter((r) => failures.has(r));
  if (failed.length > 0 && failed.length === records.length) {
    throw new FullBatchFailureError(failed.map((r) => failures.get(r)!));
  }
  return { batchItemFailures: failed.map((r) => ({ itemIdentifier: r.kinesis.sequenceNumber })) };
}
