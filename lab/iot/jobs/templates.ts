/**
 * `AWS::IoT::JobTemplate` (CloudFormation, PascalCase) to CreateJobTemplate's input (camelCase),
 * so the lab runtime can create the stack's job templates from cdk.out. CloudFormation names two
 * members differently from the API: `ExponentialRolloutRate` (API `exponentialRate`) and
 * `RetryCriteriaList` (API `criteriaList`).
 */
import type { JobConfigs, SchedulingConfig } from './types';

const RENAMES: Record<string, string> = {
  ExponentialRolloutRate: 'exponentialRate',
  RetryCriteriaList: 'criteriaList',
};

function camel(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(camel);
  if (!v || typeof v !== 'object') return v;
  return Object.fromEntries(
    Object.entries(v).map(([k, x]) => [RENAMES[k] ?? k.charAt(0).toLowerCase() + k.slice(1), camel(x)]),
  );
}

export type JobTemplateInput = JobConfigs & {
  jobArn?: string;
  maintenanceWindows?: SchedulingConfig['maintenanceWindows'];
};

/** CreateJobTemplate input from an `AWS::IoT::JobTemplate`'s resolved Properties. */
export function jobTemplateFromCloudFormation(properties: Record<string, unknown>): {
  jobTemplateId: string;
  input: JobTemplateInput;
} {
  const { JobTemplateId, Document, Tags, ...rest } = properties;
  void Tags;
  const input = camel(rest) as JobTemplateInput;
  if (Document !== undefined)
    input.document = typeof Document === 'string' ? Document : JSON.stringify(Document);
  return { jobTemplateId: String(JobTemplateId), input };
}
