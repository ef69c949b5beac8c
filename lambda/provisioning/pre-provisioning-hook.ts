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
  DenyReason,
  DeviceRecord,
  FIRMWARE_PATTERN,
  HW_REV_PATTERN,
  LotRecord,
  MAX_SERIAL_LENGTH,
  PROVISIONING_PARAMETERS,
  unsafeSerialProblem,
} from '../../core/model';
import { isConditionFailure, Registry, RegistryConditionError } from '../shared/registry';
import { describeIssues } from '../shared/validation';
import { ENV, EnvError, HOOK_BUDGET_MS } from '../../core/env';
import { METRICS, OTHER_TEMPLATE_DIMENSION } from '../../core/metrics';
import { fastPublicKeyFingerprint } from './spki';
import {
  decide,
  DecisionConfig,
  DecisionOutcome,
  isPriorCertificateQuery,
  PriorCertificateFact,
  ProvisioningRequest,
} from '../../core/provisioning-decision';
import { UNLISTED_RETENTION_DAYS } from '../../core/trail';

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
  /** Milliseconds within which the hook answers, audit entry included (FLEET_HOOK_BUDGET_MS). */
  hardLimitMs: number;
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
const AUDITABLE_SERIAL = new RegExp(`^[\\x21-\\x7e]{1,${MAX_SERIAL_LENGTH}}$`);
/** Bound on the claim-certificate-to-lot memo (one entry per claim certificate). */
const MAX_CLAIM_MEMO = 10_000;
/** Longest firmware version accepted (whatever the pattern allows). */
const MAX_FIRMWARE_LENGTH = 64;
const TEMPLATE_ARN_PREFIX = /^arn:aws[a-z-]*:iot:[a-z]{2}(?:-[a-z]+)+-\d+:\d{12}:provisioningtemplate\/$/;

/** The parameter names a device may send: exactly the template's (core/model.ts). */
const PARAMETER_NAMES: ReadonlySet<string> = new Set(Object.values(PROVISIONING_PARAMETERS));
/** At most this many unexpected names are quoted in the log line. */
const MAX_QUOTED_NAMES = 5;
const P = PROVISIONING_PARAMETERS;

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

/** Validate FLEET_UNLISTED_TRAIL_RETENTION_DAYS (a whole number of days in core/trail.ts's range). */
export function parseRetentionDays(text: string): number {
  const { min, max } = UNLISTED_RETENTION_DAYS;
  const days = /^\d{1,6}$/.test(text.trim()) ? Number(text.trim()) : NaN;
  if (!(days >= min && days <= max)) {
    throw new EnvError(
      `${ENV.unlistedTrailRetentionDays} "${text}" is not a positive whole number of days; ` +
        `set it to ${min}-${max} (the stack sets it: redeploy, or export it for a local run)`,
    );
  }
  return days;
}

/**
 * Validate FLEET_HOOK_BUDGET_MS: the hard limit of the whole answer in milliseconds, audit entry
 * included, a whole number in {@link HOOK_BUDGET_MS}. Throws an {@link EnvError} naming the
 * variable and the fix.
 */
export function parseBudgetMs(text: string): number {
  const { min, max } = HOOK_BUDGET_MS;
  const ms = /^\d{1,5}$/.test(text.trim()) ? Number(text.trim()) : NaN;
  if (!(ms >= min && ms <= max)) {
    throw new EnvError(
      `${ENV.hookBudgetMs} "${text}" is not a whole number of milliseconds between ${min} and ${max}; ` +
        `set provisioning.templates[].hook.budgetMs in the fleet config to ${min}-${max} ` +
        '(AWS IoT waits at most 5 s for the hook) ' +
        'and redeploy, or export it for a local run',
    );
  }
  return ms;
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

/**
 * What the raw event tells before any validation: enough to log, count and audit whatever the
 * answer, bounded so that a hostile event cannot bloat a log line or an audit entry.
 */
interface EventFacts {
  ids: { claimCertificateId: string; certificateId: string; clientId: string };
  /** The claimed serial when it is printable and bounded (worth an audit entry). */
  serial?: string;
  /** The template name in the ARN, whoever's template it is (for the log). */
  templateName?: string;
  /** This stack's template name, or {@link OTHER_TEMPLATE_DIMENSION} (the metric dimension). */
  template: string;
  /** The raw parameters object, unvalidated. */
  params?: Record<string, unknown>;
}

/** A validated request, or why the event is refused without reading the registry. */
type Classified = { request: ProvisioningRequest } | { reason: DenyReason; issues?: string };

/** What the decision came to; results of work past the budget never land here. */
interface Outcome {
  reason: DecisionReason;
  overrides?: Record<string, string>;
  device?: DeviceRecord;
  ring?: string;
  error?: unknown;
}

function stringField(raw: Record<string, unknown>, key: string): string {
  const v = raw[key];
  return typeof v === 'string' ? v.slice(0, 128) : '';
}

/** Facts of the raw event (never throws, whatever the event). */
function factsOf(event: unknown, config: HookConfig, templates: ReadonlySet<string>): EventFacts {
  const raw = (typeof event === 'object' && event !== null ? event : {}) as Record<string, unknown>;
  const params =
    typeof raw.parameters === 'object' && raw.parameters !== null
      ? (raw.parameters as Record<string, unknown>)
      : undefined;
  const claimedSerial = params && hasOwn(params, P.serial) ? params[P.serial] : undefined;
  const facts: EventFacts = {
    ids: {
      claimCertificateId: stringField(raw, 'claimCertificateId'),
      certificateId: stringField(raw, 'certificateId'),
      clientId: stringField(raw, 'clientId'),
    },
    serial:
      typeof claimedSerial === 'string' && AUDITABLE_SERIAL.test(claimedSerial) ? claimedSerial : undefined,
    template: OTHER_TEMPLATE_DIMENSION,
    params,
  };
  if (typeof raw.templateArn === 'string') {
    facts.templateName = TEMPLATE_ARN.exec(raw.templateArn)?.[1];
    // This stack's template in this account, partition and region: a template of the same name
    // elsewhere is another template.
    if (
      facts.templateName &&
      templates.has(facts.templateName) &&
      raw.templateArn === config.templateArnPrefix + facts.templateName
    ) {
      facts.template = facts.templateName;
    }
  }
  return facts;
}

/**
 * Exactly the template's parameters, each a bounded string; the serial must also match the
 * configured pattern. Built once per container (the pattern is configuration).
 */
function parametersSchemaFor(serialPattern: RegExp) {
  return z.strictObject({
    [P.serial]: z.string().check(z.maxLength(MAX_SERIAL_LENGTH), z.regex(serialPattern)),
    [P.hwRev]: z.string().check(z.regex(HW_REV_PATTERN)),
    [P.firmware]: z.string().check(z.maxLength(MAX_FIRMWARE_LENGTH), z.regex(FIRMWARE_PATTERN)),
    [P.proof]: z.optional(z.string().check(z.maxLength(256), z.regex(BASE64))),
  });
}

/**
 * Validate the event into a request, or name the deny reason. Unexpected parameter names are
 * checked on the raw object's own keys first (`__proto__` never reaches a parsed object); a
 * serial that can never be a thing name is refused before the configured pattern runs on it.
 */
function classify(
  event: unknown,
  facts: EventFacts,
  parametersSchema: ReturnType<typeof parametersSchemaFor>,
): Classified {
  const parsedEvent = eventSchema.safeParse(event);
  if (!parsedEvent.success) {
    return { reason: 'INVALID_PARAMETERS', issues: describeIssues(parsedEvent.error.issues) };
  }
  const params = facts.params as Record<string, unknown>;
  const unexpected = unexpectedParameterNames(params);
  if (unexpected.length > 0) {
    const quoted = unexpected.slice(0, MAX_QUOTED_NAMES).map((n) => JSON.stringify(n.slice(0, 64)));
    return {
      reason: 'INVALID_PARAMETERS',
      issues:
        `parameters: unexpected ${quoted.join(', ')}${unexpected.length > MAX_QUOTED_NAMES ? ', …' : ''}; ` +
        `the template takes only ${[...PARAMETER_NAMES].join(', ')}`,
    };
  }
  const claimedSerial = params[P.serial];
  const unsafe = typeof claimedSerial === 'string' ? unsafeSerialProblem(claimedSerial) : undefined;
  if (unsafe !== undefined) {
    return { reason: 'INVALID_PARAMETERS', issues: `parameters.${P.serial}: ${unsafe}` };
  }
  const parsedParams = parametersSchema.safeParse(params);
  if (!parsedParams.success) {
    return { reason: 'INVALID_PARAMETERS', issues: describeIssues(parsedParams.error.issues) };
  }
  if (facts.template === OTHER_TEMPLATE_DIMENSION) return { reason: 'TEMPLATE_MISMATCH' };
  const e = parsedEvent.data;
  const p = parsedParams.data;
  let publicKeyFingerprint: string;
  try {
    publicKeyFingerprint = fastPublicKeyFingerprint(e.certificatePem);
  } catch {
    return { reason: 'INVALID_PARAMETERS', issues: 'certificatePem: not a parseable X.509 certificate' };
  }
  return {
    request: {
      serial: p[P.serial],
      hwRev: p[P.hwRev],
      firmware: p[P.firmware],
      proof: p[P.proof],
      claimCertificateId: e.claimCertificateId,
      certificateId: e.certificateId,
      publicKeyFingerprint,
      templateName: facts.template,
    },
  };
}

export function createHook(deps: HookDeps): (event: unknown) => Promise<HookResult> {
  const { registry, config, logger, metrics } = deps;
  const templates: ReadonlySet<string> = new Set(config.templateNames);
  const parametersSchema = parametersSchemaFor(config.serialPattern);
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

  /** Read, decide (asking AWS IoT about the prior certificate only when the core needs it), commit. */
  async function evaluate(req: ProvisioningRequest, abortSignal: AbortSignal, out: Outcome): Promise<void> {
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

  /**
   * {@link evaluate} within `config.budgetMs`: past the deadline, or on any error, the outcome is
   * INTERNAL_ERROR (fail closed). The device read, when it arrived, is kept for the audit entry.
   */
  async function decideWithinBudget(request: ProvisioningRequest): Promise<Outcome> {
    const local: Outcome = { reason: 'INTERNAL_ERROR' };
    try {
      await withDeadline(config.budgetMs, (signal) => evaluate(request, signal, local));
      return local;
    } catch (err) {
      return { reason: 'INTERNAL_ERROR', device: local.device, error: err };
    }
  }

  /** Log, count and audit one answer; the audit write is bounded by what is left of the hard limit. */
  async function record(facts: EventFacts, out: Outcome, allowed: boolean, started: number): Promise<void> {
    const lot = out.device?.lot;
    const logFields = {
      decision: allowed ? 'ALLOW' : 'DENY',
      reason: out.reason,
      serial: facts.serial,
      lot,
      template: facts.templateName,
      ...facts.ids,
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
    metrics.addDimensions({ Reason: out.reason, Template: facts.template });
    metrics.addMetric(METRICS.provisioningDecision.name, MetricUnit.Count, 1);
    metrics.publishStoredMetrics();

    if (facts.serial === undefined) return;
    const remaining = config.hardLimitMs - (Date.now() - started);
    if (remaining <= 50) {
      logger.error('audit entry skipped: no time left before the hook limit', logFields);
      metrics.singleMetric().addMetric(METRICS.auditWriteFailed.name, MetricUnit.Count, 1);
      return;
    }
    const detail: Record<string, string> = { ...facts.ids, template: facts.templateName ?? '' };
    if (out.ring) detail.ring = out.ring;
    try {
      await registry.appendEvent(
        {
          serial: facts.serial,
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

  return async function hook(event: unknown): Promise<HookResult> {
    const started = Date.now();
    const facts = factsOf(event, config, templates);
    let out: Outcome;
    try {
      const classified = classify(event, facts, parametersSchema);
      out =
        'request' in classified
          ? await decideWithinBudget(classified.request)
          : { reason: classified.reason, error: classified.issues };
    } catch (err) {
      out = { reason: 'INTERNAL_ERROR', error: err };
    }
    const allow = out.overrides !== undefined && out.reason.startsWith('ALLOWED');
    await record(facts, out, allow, started);
    return {
      allowProvisioning: allow,
      parameterOverrides: allow ? (out.overrides as Record<string, string>) : {},
    };
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
