/**
 * The pre-provisioning hook with injected dependencies: validate, read the registry, run the
 * pure decision core, commit the transition with one conditional write, audit, answer.
 * `pre-provisioning-hook.handler.ts` wires it to module-scope clients and the environment.
 *
 * Fail closed: any error, and running out of the time budget, denies with INTERNAL_ERROR.
 */
import type { Logger } from '@aws-lambda-powertools/logger';
import { MetricUnit, type Metrics } from '@aws-lambda-powertools/metrics';
import type { IoTPreProvisioningHookResult } from 'aws-lambda';
import * as z from 'zod/mini';
import {
  DecisionReason,
  DeviceRecord,
  FIRMWARE_PATTERN,
  HW_REV_PATTERN,
  LotRecord,
  PROVISIONING_PARAMETERS,
} from '../../core/model';
import { isConditionFailure, Registry, RegistryConditionError } from '../shared/registry';
import { describeIssues } from '../shared/validation';
import { ENV, EnvError } from '../../core/env';
import { METRICS, OTHER_TEMPLATE_DIMENSION } from '../../core/metrics';
import { fastPublicKeyFingerprint } from './spki';
import {
  decide,
  DecisionConfig,
  DecisionOutcome,
  isPriorCertificateQuery,
  PriorCertificateFact,
} from '../../core/provisioning-decision';

/** Looks up the status of an earlier certificate in AWS IoT. */
export type PriorCertificateLookup = (
  certificateId: string,
  abortSignal: AbortSignal,
) => Promise<PriorCertificateFact>;

export interface HookConfig extends DecisionConfig {
  serialPattern: RegExp;
  templateNames: readonly string[];
  /**
   * `arn:<partition>:iot:<region>:<account>:provisioningtemplate/`: only templates under this
   * prefix (this stack's account, partition and region) are served.
   */
  templateArnPrefix: string;
  /** Days the trail keeps entries of serials that have no device record (DynamoDB TTL). */
  unlistedRetentionDays: number;
  /** Milliseconds for reads, the decision and the transition before failing closed. */
  budgetMs: number;
  /** Milliseconds within which the hook answers, audit entry included. @default 4000 */
  hardLimitMs?: number;
}

export interface HookDeps {
  registry: Registry;
  lookupPriorCertificate: PriorCertificateLookup;
  config: HookConfig;
  logger: Logger;
  metrics: Metrics;
}

export type HookResult = IoTPreProvisioningHookResult;

const TEMPLATE_ARN = /^arn:aws[a-z-]*:iot:[a-z0-9-]*:\d*:provisioningtemplate\/([A-Za-z0-9_=,@.-]{1,36})$/;
const ID = /^[A-Za-z0-9_.:-]{1,128}$/;
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;
/** Printable, bounded: the only serials worth an audit entry when validation failed. */
const AUDITABLE_SERIAL = /^[\x21-\x7e]{1,64}$/;
/** Bound on the claim-certificate-to-lot memo (one entry per claim certificate). */
const MAX_CLAIM_MEMO = 10_000;
/** Longest serial number and firmware version accepted (whatever the configured patterns allow). */
const MAX_SERIAL_LENGTH = 64;
const MAX_FIRMWARE_LENGTH = 64;
const TEMPLATE_ARN_PREFIX = /^arn:aws[a-z-]*:iot:[a-z]{2}(?:-[a-z]+)+-\d+:\d{12}:provisioningtemplate\/$/;
/** The longest retention accepted for unlisted serials' trail entries (100 years). */
const MAX_RETENTION_DAYS = 36_500;

/** The parameter names a device may send: exactly the template's (core/model.ts). */
const PARAMETER_NAMES: ReadonlySet<string> = new Set(Object.values(PROVISIONING_PARAMETERS));
/** At most this many unexpected names are quoted in the log line. */
const MAX_QUOTED_NAMES = 5;

const eventSchema = z.object({
  claimCertificateId: z.string().check(z.regex(ID)),
  certificateId: z.string().check(z.regex(ID)),
  certificatePem: z.string().check(z.minLength(1), z.maxLength(16_384)),
  templateArn: z.string().check(z.regex(TEMPLATE_ARN)),
  clientId: z.string().check(z.minLength(1), z.maxLength(128)),
  parameters: z.record(z.string(), z.string()),
});

/** Validate FLEET_TEMPLATE_ARN_PREFIX; throws an {@link EnvError} naming the variable and the fix. */
export function parseTemplateArnPrefix(text: string): string {
  if (!TEMPLATE_ARN_PREFIX.test(text)) {
    throw new EnvError(
      `${ENV.templateArnPrefix} "${text}" is not a provisioning template ARN prefix; ` +
        'set it to arn:<partition>:iot:<region>:<account>:provisioningtemplate/ ' +
        '(the stack sets it: redeploy, or export it for a local run)',
    );
  }
  return text;
}

/** Validate FLEET_UNLISTED_TRAIL_RETENTION_DAYS (a positive whole number of days). */
export function parseRetentionDays(text: string): number {
  const days = /^\d{1,6}$/.test(text.trim()) ? Number(text.trim()) : NaN;
  if (!(days >= 1 && days <= MAX_RETENTION_DAYS)) {
    throw new EnvError(
      `${ENV.unlistedTrailRetentionDays} "${text}" is not a positive whole number of days; ` +
        `set it to 1-${MAX_RETENTION_DAYS} (the stack sets it: redeploy, or export it for a local run)`,
    );
  }
  return days;
}

/** Own keys of the device's parameters that the template does not declare (never `in`: own keys only). */
function unexpectedParameterNames(parameters: object): string[] {
  return Object.keys(parameters).filter((name) => !PARAMETER_NAMES.has(name));
}

function hasOwn(o: object, key: string): boolean {
  return Object.prototype.hasOwnProperty.call(o, key);
}

class DeadlineError extends Error {
  override readonly name = 'DeadlineError';
}

interface Outcome {
  reason: DecisionReason;
  overrides?: Record<string, string>;
  device?: DeviceRecord;
  ring?: string;
  error?: unknown;
}

export function createHook(deps: HookDeps): (event: unknown) => Promise<HookResult> {
  const { registry, config, logger, metrics } = deps;
  const hardLimitMs = config.hardLimitMs ?? 4000;
  const templates = new Set(config.templateNames);
  const P = PROVISIONING_PARAMETERS;
  // Exactly the template's parameters, each a bounded string; any other key is refused (checked
  // on the raw object's own keys first, since `__proto__` never reaches a parsed object).
  const parametersSchema = z.strictObject({
    [P.serial]: z.string().check(z.maxLength(MAX_SERIAL_LENGTH), z.regex(config.serialPattern)),
    [P.hwRev]: z.string().check(z.regex(HW_REV_PATTERN)),
    [P.firmware]: z.string().check(z.maxLength(MAX_FIRMWARE_LENGTH), z.regex(FIRMWARE_PATTERN)),
    [P.proof]: z.optional(z.string().check(z.maxLength(256), z.regex(BASE64))),
  });
  // Claim certificate -> lot, learnt from lot records. A claim certificate belongs to one lot
  // for life, so the memo only lets the lot read start in parallel with the device read; the
  // lot record itself (status, claim ids) is always read fresh.
  const lotOfClaim = new Map<string, string>();

  function learnLot(lot: LotRecord): void {
    for (const id of lot.claimCertificateIds) {
      if (lotOfClaim.size >= MAX_CLAIM_MEMO && !lotOfClaim.has(id)) lotOfClaim.clear();
      lotOfClaim.set(id, lot.lot);
    }
  }

  async function readDeviceAndLot(
    serial: string,
    claimCertificateId: string,
    abortSignal: AbortSignal,
  ): Promise<{ device?: DeviceRecord; lot?: LotRecord }> {
    const guess = lotOfClaim.get(claimCertificateId);
    const [device, guessed] = await Promise.all([
      registry.getDevice(serial, { abortSignal }),
      guess === undefined ? Promise.resolve(undefined) : registry.getLot(guess, { abortSignal }),
    ]);
    if (!device) return {};
    const lot =
      guessed && guessed.lot === device.lot ? guessed : await registry.getLot(device.lot, { abortSignal });
    if (lot) learnLot(lot);
    return { device, lot };
  }

  async function evaluate(
    req: Parameters<typeof decide>[0]['request'],
    abortSignal: AbortSignal,
    out: Outcome,
  ): Promise<void> {
    const { device, lot } = await readDeviceAndLot(req.serial, req.claimCertificateId, abortSignal);
    out.device = device;
    const input = { request: req, device, lot, config };
    let decision: DecisionOutcome = decide(input);
    if (isPriorCertificateQuery(decision)) {
      const fact = await deps.lookupPriorCertificate(decision.needsPriorCertificate, abortSignal);
      decision = decide({ ...input, priorCertificate: fact });
    }
    if (isPriorCertificateQuery(decision))
      throw new Error('decision core asked twice for the prior certificate');
    if (!decision.allow) {
      out.reason = decision.reason;
      return;
    }
    try {
      await registry.beginProvisioning(req.serial, decision.transition, { abortSignal });
    } catch (err) {
      if (err instanceof RegistryConditionError || isConditionFailure(err)) {
        out.reason = 'CONCURRENT_ATTEMPT';
        return;
      }
      throw err;
    }
    out.reason = decision.reason;
    out.overrides = decision.overrides;
    out.ring = decision.transition.ring;
  }

  return async function hook(event: unknown): Promise<HookResult> {
    const started = Date.now();
    const out: Outcome = { reason: 'INTERNAL_ERROR' };
    let serial: string | undefined;
    let template = OTHER_TEMPLATE_DIMENSION;
    let templateName: string | undefined;
    const raw = (typeof event === 'object' && event !== null ? event : {}) as Record<string, unknown>;
    const ids = {
      claimCertificateId:
        typeof raw.claimCertificateId === 'string' ? raw.claimCertificateId.slice(0, 128) : '',
      certificateId: typeof raw.certificateId === 'string' ? raw.certificateId.slice(0, 128) : '',
      clientId: typeof raw.clientId === 'string' ? raw.clientId.slice(0, 128) : '',
    };
    const params =
      typeof raw.parameters === 'object' && raw.parameters !== null
        ? (raw.parameters as Record<string, unknown>)
        : undefined;
    const claimedSerial = params && hasOwn(params, P.serial) ? params[P.serial] : undefined;
    if (typeof claimedSerial === 'string' && AUDITABLE_SERIAL.test(claimedSerial)) serial = claimedSerial;
    if (typeof raw.templateArn === 'string') {
      templateName = TEMPLATE_ARN.exec(raw.templateArn)?.[1];
      // This stack's template in this account, partition and region: a template of the same
      // name elsewhere is another template.
      if (
        templateName &&
        templates.has(templateName) &&
        raw.templateArn === config.templateArnPrefix + templateName
      ) {
        template = templateName;
      }
    }

    try {
      const parsedEvent = eventSchema.safeParse(event);
      const unexpected = parsedEvent.success && params ? unexpectedParameterNames(params) : [];
      const parsedParams =
        parsedEvent.success && unexpected.length === 0 ? parametersSchema.safeParse(params) : undefined;
      if (unexpected.length > 0) {
        out.reason = 'INVALID_PARAMETERS';
        const quoted = unexpected.slice(0, MAX_QUOTED_NAMES).map((n) => JSON.stringify(n.slice(0, 64)));
        out.error =
          `parameters: unexpected ${quoted.join(', ')}${unexpected.length > MAX_QUOTED_NAMES ? ', …' : ''}; ` +
          `the template takes only ${[...PARAMETER_NAMES].join(', ')}`;
      } else if (!parsedEvent.success || !parsedParams?.success) {
        out.reason = 'INVALID_PARAMETERS';
        const issues = (parsedEvent.success ? parsedParams?.error : parsedEvent.error)?.issues ?? [];
        out.error = describeIssues(issues);
      } else if (template === OTHER_TEMPLATE_DIMENSION) {
        out.reason = 'TEMPLATE_MISMATCH';
      } else {
        const e = parsedEvent.data;
        const p = parsedParams.data;
        let publicKeyFingerprint: string | undefined;
        try {
          publicKeyFingerprint = fastPublicKeyFingerprint(e.certificatePem);
        } catch {
          out.reason = 'INVALID_PARAMETERS';
          out.error = 'certificatePem: not a parseable X.509 certificate';
        }
        if (publicKeyFingerprint !== undefined) {
          const request = {
            serial: p[P.serial],
            hwRev: p[P.hwRev],
            firmware: p[P.firmware],
            proof: p[P.proof],
            claimCertificateId: e.claimCertificateId,
            certificateId: e.certificateId,
            publicKeyFingerprint,
            templateName: template,
          };
          // Results land in `out` only when they arrive within the budget.
          const local: Outcome = { reason: 'INTERNAL_ERROR' };
          try {
            await withDeadline(config.budgetMs, (signal) => evaluate(request, signal, local));
          } finally {
            out.device = local.device;
          }
          Object.assign(out, local);
        }
      }
    } catch (err) {
      out.reason = 'INTERNAL_ERROR';
      out.overrides = undefined;
      out.error = err;
    }

    const allow = out.overrides !== undefined && out.reason.startsWith('ALLOWED');
    await finish(allow);
    return {
      allowProvisioning: allow,
      parameterOverrides: allow ? (out.overrides as Record<string, string>) : {},
    };

    async function finish(allowed: boolean): Promise<void> {
      const lot = out.device?.lot;
      const logFields = {
        decision: allowed ? 'ALLOW' : 'DENY',
        reason: out.reason,
        serial,
        lot,
        template: templateName,
        ...ids,
        ring: out.ring,
        elapsedMs: Date.now() - started,
      };
      if (out.reason === 'INTERNAL_ERROR') {
        logger.error('provisioning decision failed closed', { ...logFields, error: out.error as Error });
      } else if (out.reason === 'INVALID_PARAMETERS') {
        logger.warn('provisioning decision', { ...logFields, issues: String(out.error ?? '') });
      } else {
        logger.info('provisioning decision', logFields);
      }
      // One synchronous block on the shared instance, so concurrent invocations (tests, bench)
      // never mix dimensions; cheaper than a singleMetric() instance per call.
      metrics.addDimensions({ Reason: out.reason, Template: template });
      metrics.addMetric(METRICS.provisioningDecision.name, MetricUnit.Count, 1);
      metrics.publishStoredMetrics();

      if (serial === undefined) return;
      const remaining = hardLimitMs - (Date.now() - started);
      if (remaining <= 50) {
        logger.error('audit entry skipped: no time left before the hook limit', logFields);
        metrics.singleMetric().addMetric(METRICS.auditWriteFailed.name, MetricUnit.Count, 1);
        return;
      }
      const detail: Record<string, string> = { ...ids, template: templateName ?? '' };
      if (out.ring) detail.ring = out.ring;
      try {
        await registry.appendEvent(
          {
            serial,
            type: allowed ? 'ENROLLMENT_ALLOWED' : 'ENROLLMENT_DENIED',
            reason: out.reason,
            ...(lot ? { lot } : {}),
            detail,
            // No device record found (not on the manifest, or denied before the registry was
            // read): the entry expires, so a claim holder cannot grow the trail without bound.
            ...(out.device ? {} : { retentionDays: config.unlistedRetentionDays }),
          },
          { abortSignal: AbortSignal.timeout(remaining - 25) },
        );
      } catch (err) {
        // The decision stands: an allowed transition is already committed (and recorded in the
        // device's certificate lineage); denying now would strand a genuine device.
        logger.error('audit entry could not be written', { ...logFields, error: err as Error });
        metrics.singleMetric().addMetric(METRICS.auditWriteFailed.name, MetricUnit.Count, 1);
      }
    }
  };
}

/** Run `work` with an abort signal that fires after `ms`; reject at the deadline regardless. */
async function withDeadline(ms: number, work: (signal: AbortSignal) => Promise<void>): Promise<void> {
  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const err = new DeadlineError(`hook budget of ${ms} ms exhausted`);
      controller.abort(err);
      reject(err);
    }, ms);
  });
  try {
    await Promise.race([work(controller.signal), deadline]);
  } finally {
    clearTimeout(timer);
  }
}
