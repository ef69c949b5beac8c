/**
 * The consumer's partial batch response is Powertools' own: for the same records and failures,
 * `kinesisBatchResponse` answers what `BatchProcessor` + `processPartialResponse` answer, and
 * throws where they throw.
 */
import { BatchProcessor, EventType, processPartialResponse } from '@aws-lambda-powertools/batch';
import type { KinesisStreamRecord } from 'aws-lambda';
import { kinesisBatchResponse } from '../../../lambda/shared/partial-batch';
import { kinesisEvent, kinesisRecord } from './support';

async function powertools(records: KinesisStreamRecord[], failing: Set<number>): Promise<unknown> {
  const processor = new BatchProcessor(EventType.KinesisDataStreams);
  const handler = async (r: KinesisStreamRecord): Promise<void> => {
    if (failing.has(records.indexOf(r))) throw new Error(`record ${records.indexOf(r)} failed`);
  };
  return processPartialResponse(kinesisEvent(...records), handler, processor);
}

async function ours(records: KinesisStreamRecord[], failing: Set<number>): Promise<unknown> {
  const failures = new Map(
    records.flatMap((r, i) => (failing.has(i) ? [[r, `record ${i} failed`] as const] : [])),
  );
  return kinesisBatchResponse(records, failures);
}

const settle = (p: Promise<unknown>): Promise<unknown> =>
  p.then(
    (value) => ({ value }),
    (err: Error) => ({ error: err.name, message: err.message }),
  );

test.each<[string, number, number[]]>([
  ['an empty batch', 0, []],
  ['no failure', 4, []],
  ['the first record', 4, [0]],
  ['records in the middle and at the end', 5, [1, 2, 4]],
  ['all but one', 3, [0, 2]],
  ['every record', 3, [0, 1, 2]],
  ['a single record that failed', 1, [0]],
])('%s: the same answer as Powertools', async (_name, size, failing) => {
  const records = Array.from({ length: size }, (_, i) => kinesisRecord({ i }, `pk-${i % 2}`));
  const expected = await settle(powertools(records, new Set(failing)));
  expect(await settle(ours(records, new Set(failing)))).toEqual(expected);
});
