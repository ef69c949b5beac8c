/**
 * Range checks of CreateJob / CreateJobTemplate configurations (AWS IoT API Reference:
 * JobExecutionsRolloutConfig, ExponentialRolloutRate, AbortCriteria, TimeoutConfig,
 * JobExecutionsRetryConfig, PresignedUrlConfig, SchedulingConfig). Each error names the field.
 */
import { invalidRequest } from '../errors';
import type { JobConfigs, SchedulingConfig } from './types';

function range(name: string, v: unknown, min: number, max: number, integer = true): void {
  if (v === undefined) return;
  if (typeof v !== 'number' || Number.isNaN(v) || v < min || v > max || (integer && !Number.isInteger(v)))
    throw invalidRequest(`${name} must be ${integer ? 'an integer ' : ''}from ${min} to ${max}`);
}

export function validateJobConfigs(c: JobConfigs): void {
  if (c.description !== undefined && c.description.length > 2028)
    throw invalidRequest('description must be at most 2028 characters');
  const r = c.jobExecutionsRolloutConfig;
  if (r) {
    range('jobExecutionsRolloutConfig.maximumPerMinute', r.maximumPerMinute, 1, 1000);
    const e = r.exponentialRate;
    if (e) {
      range('exponentialRate.baseRatePerMinute', e.baseRatePerMinute, 1, 1000);
      range('exponentialRate.incrementFactor', e.incrementFactor, 1, 5, false);
      const crit = e.rateIncreaseCriteria ?? {};
      const set = [crit.numberOfNotifiedThings, crit.numberOfSucceededThings].filter((x) => x !== undefined);
      if (set.length !== 1)
        throw invalidRequest(
          'exponentialRate.rateIncreaseCriteria must set one of numberOfNotifiedThings or numberOfSucceededThings',
        );
      range(
        'rateIncreaseCriteria.numberOfNotifiedThings',
        crit.numberOfNotifiedThings,
        1,
        Number.MAX_SAFE_INTEGER,
      );
      range(
        'rateIncreaseCriteria.numberOfSucceededThings',
        crit.numberOfSucceededThings,
        1,
        Number.MAX_SAFE_INTEGER,
      );
    }
  }
  for (const [i, a] of (c.abortConfig?.criteriaList ?? []).entries()) {
    if (!['FAILED', 'REJECTED', 'TIMED_OUT', 'ALL'].includes(a.failureType))
      throw invalidRequest(
        `abortConfig.criteriaList[${i}].failureType must be FAILED, REJECTED, TIMED_OUT or ALL`,
      );
    if (a.action !== 'CANCEL') throw invalidRequest(`abortConfig.criteriaList[${i}].action must be CANCEL`);
    range(`abortConfig.criteriaList[${i}].thresholdPercentage`, a.thresholdPercentage, 0, 100, false);
    range(
      `abortConfig.criteriaList[${i}].minNumberOfExecutedThings`,
      a.minNumberOfExecutedThings,
      1,
      Number.MAX_SAFE_INTEGER,
    );
  }
  range('timeoutConfig.inProgressTimeoutInMinutes', c.timeoutConfig?.inProgressTimeoutInMinutes, 1, 10080);
  const retry = c.jobExecutionsRetryConfig?.criteriaList;
  if (retry) {
    if (retry.length < 1 || retry.length > 2)
      throw invalidRequest('jobExecutionsRetryConfig.criteriaList must have 1 or 2 items');
    for (const [i, x] of retry.entries()) {
      if (!['FAILED', 'TIMED_OUT', 'ALL'].includes(x.failureType))
        throw invalidRequest(
          `jobExecutionsRetryConfig.criteriaList[${i}].failureType must be FAILED, TIMED_OUT or ALL`,
        );
      range(`jobExecutionsRetryConfig.criteriaList[${i}].numberOfRetries`, x.numberOfRetries, 0, 10);
    }
  }
  range('presignedUrlConfig.expiresInSec', c.presignedUrlConfig?.expiresInSec, 60, 3600);
  if ((c.destinationPackageVersions?.length ?? 0) > 25)
    throw invalidRequest('destinationPackageVersions takes at most 25 package version ARNs');
}

export function validateScheduling(s: SchedulingConfig): void {
  for (const k of ['startTime', 'endTime'] as const) {
    const v = s[k];
    if (v !== undefined && Number.isNaN(Date.parse(/^\d{4}-\d\d-\d\dT\d\d:\d\d$/.test(v) ? `${v}:00Z` : v)))
      throw invalidRequest(`schedulingConfig.${k} must be YYYY-MM-DDTHH:MM`);
  }
  if (s.endBehavior !== undefined && !['STOP_ROLLOUT', 'CANCEL', 'FORCE_CANCEL'].includes(s.endBehavior))
    throw invalidRequest('schedulingConfig.endBehavior must be STOP_ROLLOUT, CANCEL or FORCE_CANCEL');
}
