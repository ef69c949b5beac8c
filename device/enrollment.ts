/**
 * Enrollment of one device: the retry policy (which failures are retried, full-jitter backoff
 * between attempts) and the state machine that ends in exactly one {@link EnrollmentResult}:
 *
 * ```
 * [startup jitter] → provisioning by claim ──registered──→ identity issued → connect as the thing ──→ enrolled
 *                        │ final rejection → denied                              │ attempts spent → gaveUp (thingConnect)
 *                        │ attempts spent  → gaveUp (provisioning)
 * ```
 *
 * A provisioning attempt is a new claim session: certificate (unless a kept one is still valid),
 * then RegisterThing. Across attempts the device keeps its CSR key (a retry after a lost answer
 * is the same device) and the issued certificate with its ownership token while younger than
 * `ownershipTokenMaxAgeMs`. How to connect as the thing is the caller's (the agent's) step.
 */
import { signDeviceProof } from '../core/attestation';
import { claimClientIdFor, DEFAULT_CLAIM_CLIENT_ID_PREFIX, PROVISIONING_PARAMETERS } from '../core/model';
import {
  fullJitterDelayMs,
  realSleep,
  resolveBackoff,
  type BackoffOptions,
  type RandomFn,
  type SleepFn,
} from './backoff';
import { createKeyAndCsr, type DeviceKeyPair } from './csr';
import { proofSigningKey } from './faults';
import type { FactoryIdentity } from './identity';
import { isTransientRefusal } from './mqtt-protocol';
import {
  RejectedError,
  TransportError,
  type Endpoint,
  type MqttVersion,
  type TlsCredentials,
} from './mqtt-session';
import {
  InvalidAnswerError,
  PROVISIONING_API,
  ProvisioningClient,
  type EnrollmentMethod,
  type KeysAndCertificateGrant,
  type Registration,
} from './provisioning-client';
import type { ThingIdentity } from './thing-identity';

/** TLS + CONNACK budget per connect, claim and thing sessions alike. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
/** Wait for an accepted/rejected answer. */
export const DEFAULT_RESPONSE_TIMEOUT_MS = 15_000;
/** Reuse an ownership token younger than this (55 min, inside its 1 h validity). */
export const DEFAULT_OWNERSHIP_TOKEN_MAX_AGE_MS = 3_300_000;

export interface EnrollmentOptions {
  /** The identity the device presents (faults such as `cloneOf` already applied). */
  identity: FactoryIdentity;
  endpoint: Endpoint;
  /** Claim certificate and key of the device's lot. */
  claim: TlsCredentials;
  /** Fleet provisioning template name. */
  templateName: string;
  /** @default 'csr' */
  method?: EnrollmentMethod;
  /** Sign the DeviceProof with a freshly generated wrong key. @default false */
  badAttestation?: boolean;
  /**
   * Client id of the claim session is `<prefix><serial>` ({@link claimClientIdFor}).
   * @default {@link DEFAULT_CLAIM_CLIENT_ID_PREFIX}
   */
  claimClientIdPrefix?: string;
  /** Retry policy for enrollment and for the first connect as the thing. */
  backoff?: Partial<BackoffOptions>;
  /** TLS + CONNACK budget per connect. @default 10000 */
  connectTimeoutMs?: number;
  /** MQTT version of every session of the device, claim and thing alike. @default '3.1.1' */
  mqttVersion?: MqttVersion;
  /** Wait for an accepted/rejected answer. @default 15000 */
  responseTimeoutMs?: number;
  /** Reuse an ownership token younger than this on retry. @default 3_300_000 (55 min, inside the 1 h validity) */
  ownershipTokenMaxAgeMs?: number;
  /**
   * Random delay in [0, startupJitterMs) before the first connect, so a powered-on pallet does not
   * connect all at once. Not counted in `enrollMs`. @default 0
   */
  startupJitterMs?: number;
  /** Injectable randomness, sleep and clock (tests). */
  random?: RandomFn;
  sleep?: SleepFn;
  now?: () => number;
  /** Diagnostic events (attempts, retries, sessions). */
  onEvent?: (event: AgentEvent) => void;
}

export interface AgentEvent {
  serial: string;
  type: 'attempt' | 'retry' | 'registered' | 'thingConnected';
  attempt?: number;
  delayMs?: number;
  detail?: string;
}

export interface EnrolledResult {
  outcome: 'enrolled';
  serial: string;
  thingName: string;
  certificateId: string;
  /** From the start of enrollment to the thing session's CONNACK. */
  enrollMs: number;
  retries: number;
  deviceConfiguration: Record<string, string>;
}

export interface DeniedResult {
  outcome: 'denied';
  serial: string;
  /** API that gave the final rejection. */
  api: string;
  statusCode?: number;
  errorCode: string;
  errorMessage: string;
  elapsedMs: number;
  retries: number;
}

export interface GaveUpResult {
  outcome: 'gaveUp';
  serial: string;
  /** Phase that exhausted its attempts. */
  phase: 'provisioning' | 'thingConnect';
  /** The last failure in full (failure kind and detail), for logs. */
  lastError: string;
  /**
   * The last failure, short and the same for every device that failed the same way, so results
   * can be grouped by it: `ECONNREFUSED 127.0.0.1:8883`, `TLS: certificate unknown`,
   * `closed by 127.0.0.1:8883 after the TLS handshake, before CONNACK`,
   * `timeout waiting for $aws/certificates/create-from-csr/json/accepted`,
   * `RegisterThing 429 ThrottlingException`. Build it with `classifyFailure(err).cause`.
   */
  cause: string;
  elapsedMs: number;
  retries: number;
  thingName?: string;
  certificateId?: string;
}

export type EnrollmentResult = EnrolledResult | DeniedResult | GaveUpResult;

/** How a failed attempt is handled. */
export interface FailureClass {
  retryable: boolean;
  /**
   * `rejected`: the service's final `rejected` answer (the only failure that is a denial);
   * `invalidAnswer`: an `accepted` answer the device cannot use; `local`: the device's own setup
   * (its certificate, key or CA, a file it cannot write).
   */
  kind: 'throttled' | 'serverError' | 'transport' | 'rejected' | 'invalidAnswer' | 'local';
  /** The failure in full. */
  description: string;
  /** The failure in short, groupable form (see {@link GaveUpResult.cause}). */
  cause: string;
}

const RETRYABLE_TRANSPORT = new Set([
  'CONNECT_TIMEOUT',
  'CONNECT_FAILED',
  'CONNECTION_LOST',
  'RESPONSE_TIMEOUT',
  'PUBLISH_FAILED',
]);

/**
 * Throttling (429 / Throttling*), 5xx, timeouts and connection failures retry, and so does a
 * broker refusal whose reason code is transient (`0x97 Quota exceeded`, `0x89 Server busy`, …);
 * the rest is final.
 * Only a final `rejected` answer of the service is a denial; every other final failure (a TLS
 * setup error, an unusable answer) ends in a give-up with its cause.
 */
export function classifyFailure(err: unknown): FailureClass {
  if (err instanceof RejectedError) {
    const description = `${err.statusCode ?? '?'} ${err.errorCode}: ${err.errorMessage}`;
    const cause = `${err.api} ${err.statusCode ?? '?'} ${err.errorCode}`;
    if (err.statusCode === 429 || /throttl/i.test(err.errorCode))
      return { retryable: true, kind: 'throttled', description, cause };
    if (err.statusCode !== undefined && err.statusCode >= 500)
      return { retryable: true, kind: 'serverError', description, cause };
    if (
      err.statusCode === undefined &&
      /^(InternalFailure|InternalException|ServiceUnavailable)/i.test(err.errorCode)
    ) {
      return { retryable: true, kind: 'serverError', description, cause };
    }
    return { retryable: false, kind: 'rejected', description, cause };
  }
  if (err instanceof TransportError) {
    return {
      retryable:
        RETRYABLE_TRANSPORT.has(err.failure) ||
        (err.reasonCode !== undefined && isTransientRefusal(err.reasonCode)),
      kind: 'transport',
      description: err.message,
      cause: err.reason,
    };
  }
  if (err instanceof InvalidAnswerError) {
    return { retryable: false, kind: 'invalidAnswer', description: err.message, cause: err.message };
  }
  const description = err instanceof Error ? err.message : String(err);
  return { retryable: false, kind: 'local', description, cause: description };
}

/** How a run of attempts ended: a value, a final failure, or the last failure once attempts ran out. */
export type AttemptsOutcome<T> =
  { ok: true; value: T } | { ok: false; exhausted: boolean; error: unknown; failure: FailureClass };

export interface RetryPolicyOptions {
  backoff: BackoffOptions;
  random: RandomFn;
  sleep: SleepFn;
  /** Before each backoff sleep: the attempt about to be made (1-based retry), its delay and why. */
  onRetry?: (retry: { attempt: number; delayMs: number; detail: string }) => void;
}

/**
 * Up to `backoff.maxAttempts` attempts per {@link RetryPolicy.run}, with a full-jitter sleep
 * before each retry. Retries are counted across runs (one device, one count).
 */
export class RetryPolicy {
  private count = 0;

  constructor(private readonly options: RetryPolicyOptions) {}

  get retries(): number {
    return this.count;
  }

  async run<T>(
    attempt: (index: number) => Promise<T>,
    classify: (err: unknown) => FailureClass = classifyFailure,
  ): Promise<AttemptsOutcome<T>> {
    for (let index = 0; ;) {
      try {
        return { ok: true, value: await attempt(index) };
      } catch (error) {
        const failure = classify(error);
        if (!failure.retryable) return { ok: false, exhausted: false, error, failure };
        if (++index >= this.options.backoff.maxAttempts)
          return { ok: false, exhausted: true, error, failure };
        const delayMs = fullJitterDelayMs(index - 1, this.options.backoff, this.options.random);
        this.count++;
        this.options.onRetry?.({ attempt: index, delayMs, detail: failure.description });
        await this.options.sleep(delayMs);
      }
    }
  }
}

/** The steps of enrollment that belong to the device rather than to the protocol. */
export interface EnrollmentSteps {
  /**
   * The identity was issued; called once, before the first connect as the thing (e.g. store it).
   * A throw ends the enrollment as a give-up in the provisioning phase, with the error as cause.
   */
  issued(identity: ThingIdentity): Promise<void>;
  /** One attempt to connect as the thing; throws on failure. Every failure is retried. */
  connectAsThing(identity: ThingIdentity): Promise<void>;
}

interface IssuedCertificate extends KeysAndCertificateGrant {
  obtainedAt: number;
}

/** One device's enrollment. Run it once. */
export class Enrollment {
  readonly serial: string;
  private readonly policy: RetryPolicy;
  private readonly random: RandomFn;
  private readonly sleep: SleepFn;
  private readonly now: () => number;
  /** The certificate whose ownership token the next RegisterThing presents. */
  private certificate?: IssuedCertificate;
  /**
   * The enrollment key of the CSR path, generated once: every CSR of this enrollment uses it, so
   * a retry after a lost RegisterThing answer proves it is the same device (same public key).
   */
  private csrKeys?: DeviceKeyPair;
  /** Whether the current attempt presents a token kept from an earlier one. */
  private reusedToken = false;

  constructor(private readonly options: EnrollmentOptions) {
    this.serial = options.identity.serial;
    this.random = options.random ?? Math.random;
    this.sleep = options.sleep ?? realSleep;
    this.now = options.now ?? Date.now;
    this.policy = new RetryPolicy({
      backoff: resolveBackoff(options.backoff),
      random: this.random,
      sleep: this.sleep,
      onRetry: (r) => this.emit({ type: 'retry', ...r }),
    });
  }

  async run(steps: EnrollmentSteps): Promise<EnrollmentResult> {
    const jitter = this.options.startupJitterMs ?? 0;
    if (jitter > 0) await this.sleep(Math.floor(this.random() * jitter));
    const started = this.now();
    const timing = () => ({ elapsedMs: this.now() - started, retries: this.policy.retries });

    const registered = await this.policy.run(
      (attempt) => this.provisionAttempt(attempt),
      (err) => this.onProvisioningFailure(err),
    );
    if (!registered.ok) {
      // A denial is the service's rejection; anything else (attempts spent, a local TLS or PEM
      // problem, an unusable answer) is a give-up with its cause.
      return !registered.exhausted && registered.error instanceof RejectedError
        ? { ...denial(this.serial, registered.error), ...timing() }
        : { ...this.gaveUp('provisioning', registered.failure), ...timing() };
    }

    const { registration, certificate } = registered.value;
    const identity: ThingIdentity = {
      thingName: registration.thingName,
      certificateId: certificate.certificateId,
      credentials: { certPem: certificate.certificatePem, keyPem: certificate.privateKeyPem },
    };
    try {
      await steps.issued(identity);
    } catch (err) {
      // The identity could not be kept (refused, or the storage failed): without it the device
      // cannot go on, and nothing the service said was a denial.
      return {
        ...this.gaveUp('provisioning', classifyFailure(err)),
        ...timing(),
        thingName: identity.thingName,
        certificateId: identity.certificateId,
      };
    }
    // The thing exists now: the device keeps trying with its new identity, whatever the failure.
    const connected = await this.policy.run(
      () => steps.connectAsThing(identity),
      (err) => ({ ...classifyFailure(err), retryable: true }),
    );
    if (!connected.ok) {
      return {
        ...this.gaveUp('thingConnect', connected.failure),
        ...timing(),
        thingName: identity.thingName,
        certificateId: identity.certificateId,
      };
    }
    const enrollMs = timing().elapsedMs;
    this.emit({ type: 'thingConnected', detail: identity.thingName });
    return {
      outcome: 'enrolled',
      serial: this.serial,
      thingName: identity.thingName,
      certificateId: identity.certificateId,
      enrollMs,
      retries: this.policy.retries,
      deviceConfiguration: registration.deviceConfiguration,
    };
  }

  private emit(e: Omit<AgentEvent, 'serial'>): void {
    this.options.onEvent?.({ serial: this.serial, ...e });
  }

  private gaveUp(
    phase: GaveUpResult['phase'],
    failure: FailureClass,
  ): Pick<GaveUpResult, 'outcome' | 'serial' | 'phase' | 'lastError' | 'cause'> {
    return {
      outcome: 'gaveUp',
      serial: this.serial,
      phase,
      lastError: failure.description,
      cause: failure.cause,
    };
  }

  /** One claim session: certificate (unless a kept one is still valid), then RegisterThing. */
  private async provisionAttempt(
    attempt: number,
  ): Promise<{ registration: Registration; certificate: IssuedCertificate }> {
    const o = this.options;
    this.emit({ type: 'attempt', attempt });
    this.reusedToken = false;
    let client: ProvisioningClient | undefined;
    try {
      client = await ProvisioningClient.open({
        endpoint: o.endpoint,
        claim: o.claim,
        clientId: claimClientIdFor(o.claimClientIdPrefix ?? DEFAULT_CLAIM_CLIENT_ID_PREFIX, this.serial),
        templateName: o.templateName,
        connectTimeoutMs: o.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
        responseTimeoutMs: o.responseTimeoutMs ?? DEFAULT_RESPONSE_TIMEOUT_MS,
        mqttVersion: o.mqttVersion,
      });
      const tokenMaxAge = o.ownershipTokenMaxAgeMs ?? DEFAULT_OWNERSHIP_TOKEN_MAX_AGE_MS;
      if (this.certificate && this.now() - this.certificate.obtainedAt >= tokenMaxAge)
        this.certificate = undefined;
      this.reusedToken = this.certificate !== undefined;
      await client.subscribe(this.reusedToken ? undefined : (o.method ?? 'csr'));
      this.certificate ??= await this.obtainCertificate(client);
      const registration = await client.registerThing(
        this.certificate.ownershipToken,
        this.registerParameters(this.certificate.certificateId),
      );
      this.emit({ type: 'registered', detail: registration.thingName });
      return { registration, certificate: this.certificate };
    } finally {
      // Disconnect on every outcome: a retry always starts a new session.
      await client?.close();
    }
  }

  /** Classify, and drop a kept token the service no longer accepts so the retry starts over. */
  private onProvisioningFailure(err: unknown): FailureClass {
    const c = classifyFailure(err);
    if (
      !c.retryable &&
      this.reusedToken &&
      err instanceof RejectedError &&
      err.api === PROVISIONING_API.register &&
      /OwnershipToken/i.test(err.errorCode)
    ) {
      this.certificate = undefined;
      return { ...c, retryable: true };
    }
    return c;
  }

  private async obtainCertificate(client: ProvisioningClient): Promise<IssuedCertificate> {
    if (this.options.method === 'createKeys') {
      return { ...(await client.createKeysAndCertificate()), obtainedAt: this.now() };
    }
    const { keys, privateKeyPem, publicKeyPem, csrPem } = await createKeyAndCsr(this.serial, this.csrKeys);
    this.csrKeys = keys;
    const grant = await client.createCertificateFromCsr(csrPem, publicKeyPem);
    return { ...grant, privateKeyPem, obtainedAt: this.now() };
  }

  private registerParameters(certificateId: string): Record<string, string> {
    const id = this.options.identity;
    const params: Record<string, string> = {
      [PROVISIONING_PARAMETERS.serial]: id.serial,
      [PROVISIONING_PARAMETERS.hwRev]: id.hwRev,
      [PROVISIONING_PARAMETERS.firmware]: id.firmware,
    };
    const proofKey = proofSigningKey(id, this.options.badAttestation);
    if (proofKey) params[PROVISIONING_PARAMETERS.proof] = signDeviceProof(certificateId, proofKey);
    return params;
  }
}

/** The result of the service's final rejection. */
function denial(
  serial: string,
  err: RejectedError,
): Pick<DeniedResult, 'outcome' | 'serial' | 'api' | 'statusCode' | 'errorCode' | 'errorMessage'> {
  return {
    outcome: 'denied',
    serial,
    api: err.api,
    statusCode: err.statusCode,
    errorCode: err.errorCode,
    errorMessage: err.errorMessage,
  };
}
