/** The controller's job template setting: a JSON object of ARNs, or an error naming the variable. */
import { EnvError } from '../../../core/env';
import { parseJobTemplateArns } from '../../../lambda/rollout/controller-settings';

const CANARY = 'arn:aws:iot:eu-west-1:123456789012:jobtemplate/fleet-canary';

test('a JSON object of job template ARNs is read', () => {
  expect(parseJobTemplateArns(JSON.stringify({ canary: CANARY }))).toEqual({ canary: CANARY });
});

test.each([['not json'], ['[]'], ['{}'], ['{"canary":"arn:aws:s3:::bucket"}'], ['{"canary":1}']])(
  '%s is refused naming FLEET_JOB_TEMPLATE_ARNS',
  (raw) => {
    expect(() => parseJobTemplateArns(raw)).toThrow(EnvError);
    expect(() => parseJobTemplateArns(raw)).toThrow(/FLEET_JOB_TEMPLATE_ARNS/);
  },
);
