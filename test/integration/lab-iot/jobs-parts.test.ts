/**
 * The pure parts of the lab's Jobs emulation, table-driven: S3 locations of presigned URL
 * placeholders, package substitution parameters, `AWS::IoT::JobTemplate` properties to the API
 * shape, and the configuration range checks (each error names its field).
 */
import { s3Location } from '../../../lab/iot/jobs/device-api';
import {
  substitutePackageParameters,
  type PackageVersionLookup,
} from '../../../lab/iot/jobs/package-substitution';
import { jobTemplateFromCloudFormation } from '../../../lab/iot/jobs/templates';
import type { JobConfigs } from '../../../lab/iot/jobs/types';
import { validateJobConfigs, validateScheduling } from '../../../lab/iot/jobs/validate';

test.each([
  ['https://s3.amazonaws.com/bucket/a/b.bin', { bucket: 'bucket', key: 'a/b.bin' }],
  ['https://s3.eu-west-1.amazonaws.com/bucket/k', { bucket: 'bucket', key: 'k' }],
  ['https://bucket.s3.amazonaws.com/a/b.bin', { bucket: 'bucket', key: 'a/b.bin' }],
  ['https://bucket.s3.us-east-1.amazonaws.com/k%20x', { bucket: 'bucket', key: 'k x' }],
  ['https://example.com/bucket/k', undefined],
  ['https://s3.amazonaws.com/bucket-only', undefined],
  ['not a url', undefined],
])('s3Location(%s)', (url, expected) => {
  expect(s3Location(url)).toEqual(expected);
});

const catalog: Record<string, { status: string; attributes: Record<string, string> }> = {
  'fw/1.0.0': { status: 'PUBLISHED', attributes: { s3Key: 'fw/1.0.0.bin', quote: 'a"b\\c' } },
  'fw/0.9.0': { status: 'DEPRECATED', attributes: { s3Key: 'fw/0.9.0.bin' } },
  'fw/2.0.0': { status: 'DRAFT', attributes: {} },
};
const lookup: PackageVersionLookup = (p, v) => Promise.resolve(catalog[`${p}/${v}`]);
const ARN = (v: string): string => `arn:aws:iot:us-east-1:123456789012:package/fw/version/${v}`;

test.each([
  ['named', '{"k":"${aws:iot:package:fw:version:0.9.0:attributes:s3Key}"}', [], '{"k":"fw/0.9.0.bin"}'],
  [
    'from the destination',
    '{"k":"${aws:iot:package::version::attributes:s3Key}"}',
    [ARN('1.0.0')],
    '{"k":"fw/1.0.0.bin"}',
  ],
  [
    'escaped for JSON',
    '{"k":"${aws:iot:package::version::attributes:quote}"}',
    [ARN('1.0.0')],
    '{"k":"a\\"b\\\\c"}',
  ],
  [
    'every attribute',
    '{"k":"${aws:iot:package:fw:version:0.9.0:attributes}"}',
    [],
    JSON.stringify({ k: JSON.stringify({ s3Key: 'fw/0.9.0.bin' }) }),
  ],
  ['no parameter', '{"k":1}', [ARN('1.0.0')], '{"k":1}'],
])('substitution: %s', async (_name, doc, destinations, expected) => {
  const out = await substitutePackageParameters(doc, destinations, lookup);
  expect(out).toBe(expected);
  expect(() => JSON.parse(out) as unknown).not.toThrow();
});

test.each([
  ['a draft destination', '{}', [ARN('2.0.0')], /DRAFT: publish it/],
  ['an unknown destination', '{}', [ARN('3.0.0')], /does not exist/],
  [
    'a destination that is not a version ARN',
    '{}',
    ['arn:aws:iot:us-east-1:1:thing/x'],
    /not a package version ARN/,
  ],
  ['empty names without a destination', '"${aws:iot:package::version::attributes:s3Key}"', [], /exactly one/],
  [
    'a missing attribute',
    '"${aws:iot:package::version::attributes:nope}"',
    [ARN('1.0.0')],
    /no attribute nope/,
  ],
])('substitution refuses %s', async (_name, doc, destinations, message) => {
  await expect(substitutePackageParameters(doc, destinations, lookup)).rejects.toThrow(message);
});

test('AWS::IoT::JobTemplate properties become CreateJobTemplate input', () => {
  expect(
    jobTemplateFromCloudFormation({
      JobTemplateId: 'tpl',
      Description: 'd',
      Document: { a: 1 },
      PresignedUrlConfig: { RoleArn: 'arn:aws:iam::1:role/r', ExpiresInSec: 600 },
      JobExecutionsRolloutConfig: {
        MaximumPerMinute: 50,
        ExponentialRolloutRate: {
          BaseRatePerMinute: 5,
          IncrementFactor: 1.5,
          RateIncreaseCriteria: { NumberOfNotifiedThings: 10 },
        },
      },
      AbortConfig: {
        CriteriaList: [
          { Action: 'CANCEL', FailureType: 'ALL', ThresholdPercentage: 5, MinNumberOfExecutedThings: 50 },
        ],
      },
      TimeoutConfig: { InProgressTimeoutInMinutes: 240 },
      JobExecutionsRetryConfig: { RetryCriteriaList: [{ FailureType: 'FAILED', NumberOfRetries: 2 }] },
      Tags: [{ Key: 'k', Value: 'v' }],
    }),
  ).toEqual({
    jobTemplateId: 'tpl',
    input: {
      description: 'd',
      document: '{"a":1}',
      presignedUrlConfig: { roleArn: 'arn:aws:iam::1:role/r', expiresInSec: 600 },
      jobExecutionsRolloutConfig: {
        maximumPerMinute: 50,
        exponentialRate: {
          baseRatePerMinute: 5,
          incrementFactor: 1.5,
          rateIncreaseCriteria: { numberOfNotifiedThings: 10 },
        },
      },
      abortConfig: {
        criteriaList: [
          { action: 'CANCEL', failureType: 'ALL', thresholdPercentage: 5, minNumberOfExecutedThings: 50 },
        ],
      },
      timeoutConfig: { inProgressTimeoutInMinutes: 240 },
      jobExecutionsRetryConfig: { criteriaList: [{ failureType: 'FAILED', numberOfRetries: 2 }] },
    },
  });
});

const rate = (r: object): JobConfigs => ({
  jobExecutionsRolloutConfig: r as JobConfigs['jobExecutionsRolloutConfig'],
});
test.each<[string, JobConfigs, RegExp]>([
  ['maximumPerMinute 0', rate({ maximumPerMinute: 0 }), /maximumPerMinute/],
  [
    'incrementFactor 6',
    rate({
      exponentialRate: {
        baseRatePerMinute: 1,
        incrementFactor: 6,
        rateIncreaseCriteria: { numberOfNotifiedThings: 1 },
      },
    }),
    /incrementFactor/,
  ],
  [
    'both rate criteria',
    rate({
      exponentialRate: {
        baseRatePerMinute: 1,
        incrementFactor: 2,
        rateIncreaseCriteria: { numberOfNotifiedThings: 1, numberOfSucceededThings: 1 },
      },
    }),
    /rateIncreaseCriteria/,
  ],
  [
    'threshold over 100',
    {
      abortConfig: {
        criteriaList: [
          { failureType: 'ALL', action: 'CANCEL', thresholdPercentage: 101, minNumberOfExecutedThings: 1 },
        ],
      },
    },
    /thresholdPercentage/,
  ],
  [
    'abort on REMOVED',
    {
      abortConfig: {
        criteriaList: [
          {
            failureType: 'REMOVED' as 'ALL',
            action: 'CANCEL',
            thresholdPercentage: 1,
            minNumberOfExecutedThings: 1,
          },
        ],
      },
    },
    /failureType/,
  ],
  [
    'timeout of 0 minutes',
    { timeoutConfig: { inProgressTimeoutInMinutes: 0 } },
    /inProgressTimeoutInMinutes/,
  ],
  [
    '11 retries',
    { jobExecutionsRetryConfig: { criteriaList: [{ failureType: 'FAILED', numberOfRetries: 11 }] } },
    /numberOfRetries/,
  ],
  [
    'retry on REJECTED',
    {
      jobExecutionsRetryConfig: { criteriaList: [{ failureType: 'REJECTED' as 'ALL', numberOfRetries: 1 }] },
    },
    /failureType/,
  ],
  ['a 30-second presigned URL', { presignedUrlConfig: { expiresInSec: 30 } }, /expiresInSec/],
  ['26 package versions', { destinationPackageVersions: Array<string>(26).fill('x') }, /25/],
])('validateJobConfigs refuses %s', (_name, configs, message) => {
  expect(() => validateJobConfigs(configs)).toThrow(message);
});

test('validateScheduling names the bad field', () => {
  expect(() => validateScheduling({ startTime: 'tomorrow' })).toThrow(/startTime/);
  expect(() => validateScheduling({ endBehavior: 'PAUSE' as 'CANCEL' })).toThrow(/endBehavior/);
  expect(() =>
    validateScheduling({ startTime: '2027-01-01T10:00', endTime: '2027-01-01T11:00' }),
  ).not.toThrow();
});
