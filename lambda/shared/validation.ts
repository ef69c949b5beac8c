/**
 * Input validation setup shared by the handlers. They validate with zod's tree-shakable
 * `zod/mini` API (the same validation engine as classic `zod`, about 25 KB bundled instead of
 * about 440 KB); importing this module gives its issues the English messages, and
 * {@link describeIssues} turns issues into the one-line form the handlers log.
 */
import { config, type core } from 'zod/mini';
import { en } from 'zod/locales';
import { describeIssues as describeAll } from '../../core/issues';

config(en());

/** `path: message; path: message`, the form the handlers log for a rejected input. */
export function describeIssues(issues: readonly core.$ZodIssue[]): string {
  return describeAll(issues, '(event)');
}
