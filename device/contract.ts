/**
 * The simulator's check of what a device sends against the device contract (core/telemetry.ts):
 * a message that breaks it is a simulator bug, thrown naming every problem, instead of reaching
 * the cloud.
 */
import { describeIssues, type PathIssue } from '../core/issues';

/** A schema of the contract (its `safeParse`). */
export interface ContractSchema<T> {
  safeParse(
    value: unknown,
  ): { success: true; data: T } | { success: false; error: { issues: readonly PathIssue[] } };
}

/** `value` as `schema` parses it; throws `simulator bug: <what> breaks the contract: <issues>`. */
export function conforming<T>(schema: ContractSchema<T>, value: T, what: string): T {
  const parsed = schema.safeParse(value);
  if (!parsed.success)
    throw new Error(
      `simulator bug: ${what} breaks the contract: ${describeIssues(parsed.error.issues, '(payload)')}`,
    );
  return parsed.data;
}
