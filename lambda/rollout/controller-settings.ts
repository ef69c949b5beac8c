/** The controller's settings from its environment, checked at init; errors name the variable. */
import { ENV, EnvError } from '../../core/env';

/** The job template ARN per stage class, from FLEET_JOB_TEMPLATE_ARNS (a JSON object). */
export function parseJobTemplateArns(raw: string): Record<string, string> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    parsed = undefined;
  }
  const ok =
    typeof parsed === 'object' &&
    parsed !== null &&
    !Array.isArray(parsed) &&
    Object.values(parsed).every(
      (v) => typeof v === 'string' && /^arn:[^:]+:iot:[^:]*:\d*:jobtemplate\//.test(v),
    );
  if (!ok || Object.keys(parsed as object).length === 0) {
    throw new EnvError(
      `${ENV.jobTemplateArns} must be a JSON object of stage class to job template ARN, e.g. ` +
        '{"canary":"arn:aws:iot:eu-west-1:123456789012:jobtemplate/fleet-canary"}; the stack sets it: redeploy',
    );
  }
  return parsed as Record<string, string>;
}
