/**
 * One simulated device following the AWS IoT device contract: fleet provisioning by claim over
 * the MQTT API (CreateCertificateFromCsr or CreateKeysAndCertificate, then RegisterThing), with
 * retries (exponential backoff, full jitter), then a new session as its thing with its own
 * certificate. See https://docs.aws.amazon.com/iot/latest/developerguide/fleet-provision-api.html
 */
import { X509Certificate, createPublicKey } from 'node:crypto';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { signDeviceProof } from '../core/attestation';
import { PROVISIONING_PARAMETERS } from '../core/model';
import { topics } from '../core/topics';
import {
  fullJitterDelayMs,
  realSleep,
  resolveBackoff,
  type BackoffOptions,
  type RandomFn,
  type SleepFn,
} from './backoff';
import { createKeyAndCsr, type DeviceKeyPair } from './csr';
import { generateFactoryKey, type FactoryIdentity } from './identity';
import {
  MqttSession,
  RejectedError,
  TransportError,
  type Endpoint,
  type TlsCredentials,
} from './mqtt-session';

export type { Endpoint, TlsCredentials } from './mqtt-session';

/** Certificate-issuing API used during enrollment. */
export type EnrollmentMethod = 'csr' | 'createKeys';

/** Fault modes used by scenarios. */
export interface DeviceFaults {
  /** Present another serial's identity (its serial, lot, revision) with a different factory key. */
  cloneOf?: string;
  /** Connect with the claim certificate of this other lot. */
  wrongLotClaim?: string;
  /** Sign the DeviceProof with a wrong key. */
  badAttestation?: boolean;
  /** Use CreateKeysAndCertificate instead of the CSR path. */
  useCreateKeys?: boolean;
}

export interface AgentOptions {
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
  /** Client id of the claim session is `<prefix><serial>`. @default 'prov-' */
  claimClientIdPrefix?: string;
  /** Retry policy for enrollment and for the first connect as the thing. */
  backoff?: Partial<BackoffOptions>;
  /** TLS + CONNACK budget per connect. @default 10000 */
  connectTimeoutMs?: number;
  /** Wait for an accepted/rejected answer. @default 15000 */
  responseTimeoutMs?: number;
  /** Topic prefix of the `dt/<prefix>/<thing>/…` topics. @default 'fleet' */
  topicPrefix?: string;
  /** Register a Last Will `{"connection":"lost"}` on `dt/<prefix>/<thing>/health`. @default true */
  lastWill?: boolean;
  /** Also write `<thing>.cert.pem`, `<thing>.private.key` and `<thing>.json` here (mode 0600). */
  certDir?: string;
  /** Keep the thing session open after enrollment (close it with {@link DeviceAgent.close}). @default false */
  keepConnected?: boolean;
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
  lastError: string;
  elapsedMs: number;
  retries: number;
  thingName?: string;
  certificateId?: string;
}

export type EnrollmentResult = EnrolledResult | DeniedResult | GaveUpResult;

/** How a failed attempt is handled. */
export interface FailureClass {
  retryable: boolean;
  kind: 'throttled' | 'serverError' | 'transport' | 'rejected';
  description: string;
}

const RETRYABLE_TRANSPORT = new Set([
  'CONNECT_TIMEOUT',
  'CONNECT_FAILED',
  'CONNECTION_LOST',
  'RESPONSE_TIMEOUT',
  'PUBLISH_FAILED',
]);

/** Throttling (429 / Throttling*), 5xx, timeouts and connection failures retry; the rest is final. */
export function classifyFailure(err: unknown): FailureClass {
  if (err instanceof RejectedError) {
    const description = `${err.statusCode ?? '?'} ${err.errorCode}: ${err.errorMessage}`;
    if (err.statusCode === 429 || /throttl/i.test(err.errorCode))
      return { retryable: true, kind: 'throttled', description };
    if (err.statusCode !== undefined && err.statusCode >= 500)
      return { retryable: true, kind: 'serverError', description };
    if (
      err.statusCode === undefined &&
      /^(InternalFailure|InternalException|ServiceUnavailable)/i.test(err.errorCode)
    ) {
      return { retryable: true, kind: 'serverError', description };
    }
    return { retryable: false, kind: 'rejected', description };
  }
  if (err instanceof TransportError) {
    return { retryable: RETRYABLE_TRANSPORT.has(err.failure), kind: 'transport', description: err.message };
  }
  return {
    retryable: false,
    kind: 'rejected',
    description: err instanceof Error ? err.message : String(err),
  };
}

interface IssuedCertificate {
  certificateId: string;
  certificatePem: string;
  privateKeyPem: string;
  ownershipToken: string;
  obtainedAt: number;
}

const CSR_API = 'CreateCertificateFromCsr';
const KEYS_API = 'CreateKeysAndCertificate';
const REGISTER_API = 'RegisterThing';

function str(v: unknown): string | undefined {
  return typeof v === 'string' && v.length > 0 ? v : undefined;
}

function stringMap(v: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (v && typeof v === 'object' && !Array.isArray(v)) {
    for (const [k, val] of Object.entries(v)) out[k] = typeof val === 'string' ? val : JSON.stringify(val);
  }
  return out;
}

function spkiOf(pem: string, isCert: boolean): string {
  const key = isCert ? new X509Certificate(pem).publicKey : createPublicKey(pem);
  return key.export({ type: 'spki', format: 'der' }).toString('base64');
}

/** A simulated device. One instance enrolls once; `close()` ends any open session. */
export class DeviceAgent {
  readonly serial: string;
  private readonly backoff: BackoffOptions;
  private readonly random: RandomFn;
  private readonly sleep: SleepFn;
  private readonly now: () => number;
  private retries = 0;
  private issued?: IssuedCertificate;
  /**
   * The enrollment key of the CSR path, generated once: every CSR of this enrollment uses it, so
   * a retry after a lost RegisterThing answer proves it is the same device (same public key).
   */
  private csrKeys?: DeviceKeyPair;
  private thingSession?: MqttSession;
  private thing?: { thingName: string; credentials: TlsCredentials; certificateId: string };

  constructor(private readonly options: AgentOptions) {
    this.serial = options.identity.serial;
    this.backoff = resolveBackoff(options.backoff);
    this.random = options.random ?? Math.random;
    this.sleep = options.sleep ?? realSleep;
    this.now = options.now ?? Date.now;
  }

  /** Thing name and credentials once enrolled (the private key never leaves this object otherwise). */
  get identityAfterEnrollment():
    { thingName: string; certificateId: string; credentials: TlsCredentials } | undefined {
    return this.thing;
  }

  /** The open thing session, when `keepConnected` is set. */
  get session(): MqttSession | undefined {
    return this.thingSession;
  }

  /** Run enrollment end to end. Never throws for protocol outcomes. */
  async enroll(): Promise<EnrollmentResult> {
    const jitter = this.options.startupJitterMs ?? 0;
    if (jitter > 0) await this.sleep(Math.floor(this.random() * jitter));
    const started = this.now();
    const elapsed = () => this.now() - started;
    const reg = await this.provision();
    if ('outcome' in reg) return { ...reg, elapsedMs: elapsed(), retries: this.retries } as EnrollmentResult;

    const { thingName, deviceConfiguration, issued } = reg;
    this.thing = {
      thingName,
      certificateId: issued.certificateId,
      credentials: { certPem: issued.certificatePem, keyPem: issued.privateKeyPem },
    };
    if (this.options.certDir) await this.storeCredentials(this.options.certDir);

    const connected = await this.connectAsThing();
    if (connected !== true) {
      return {
        outcome: 'gaveUp',
        serial: this.serial,
        phase: 'thingConnect',
        lastError: connected,
        elapsedMs: elapsed(),
        retries: this.retries,
        thingName,
        certificateId: issued.certificateId,
      };
    }
    const enrollMs = elapsed();
    this.emit({ type: 'thingConnected', detail: thingName });
    if (!this.options.keepConnected) await this.close();
    return {
      outcome: 'enrolled',
      serial: this.serial,
      thingName,
      certificateId: issued.certificateId,
      enrollMs,
      retries: this.retries,
      deviceConfiguration,
    };
  }

  /** Close the thing session gracefully (no last will). */
  async close(): Promise<void> {
    const s = this.thingSession;
    this.thingSession = undefined;
    if (s) await s.end();
  }

  /** Drop the thing session abruptly, so the broker publishes the last will. */
  dropConnection(): void {
    this.thingSession?.kill();
    this.thingSession = undefined;
  }

  private emit(e: Omit<AgentEvent, 'serial'>): void {
    this.options.onEvent?.({ serial: this.serial, ...e });
  }

  private async backoffBeforeRetry(retry: number, detail: string): Promise<void> {
    const delayMs = fullJitterDelayMs(retry, this.backoff, this.random);
    this.retries++;
    this.emit({ type: 'retry', attempt: retry + 1, delayMs, detail });
    await this.sleep(delayMs);
  }

  /** Claim-certificate phase: returns the registration or a final result (without timing). */
  private async provision(): Promise<
    | { thingName: string; deviceConfiguration: Record<string, string>; issued: IssuedCertificate }
    | Omit<DeniedResult, 'elapsedMs' | 'retries'>
    | Omit<GaveUpResult, 'elapsedMs' | 'retries'>
  > {
    const o = this.options;
    const clientId = `${o.claimClientIdPrefix ?? 'prov-'}${this.serial}`;
    const tokenMaxAge = o.ownershipTokenMaxAgeMs ?? 3_300_000;
    const registerTopic = topics.registerThing(o.templateName);
    const createTopic =
      o.method === 'createKeys' ? topics.createKeysAndCertificate : topics.createCertificateFromCsr;
    let lastError = 'no attempt made';

    for (let attempt = 0; attempt < this.backoff.maxAttempts; attempt++) {
      if (attempt > 0) await this.backoffBeforeRetry(attempt - 1, lastError);
      this.emit({ type: 'attempt', attempt });
      let session: MqttSession | undefined;
      let reusedToken = false;
      try {
        session = await MqttSession.open({
          endpoint: o.endpoint,
          credentials: o.claim,
          clientId,
          connectTimeoutMs: o.connectTimeoutMs ?? 10_000,
        });
        if (this.issued && this.now() - this.issued.obtainedAt >= tokenMaxAge) this.issued = undefined;
        reusedToken = this.issued !== undefined;
        const filters = [`${registerTopic}/accepted`, `${registerTopic}/rejected`];
        if (!reusedToken) filters.unshift(`${createTopic}/accepted`, `${createTopic}/rejected`);
        await session.subscribe(filters);
        if (!this.issued) this.issued = await this.obtainCertificate(session, createTopic);
        const accepted = await session.request(
          REGISTER_API,
          registerTopic,
          {
            certificateOwnershipToken: this.issued.ownershipToken,
            parameters: this.registerParameters(this.issued),
          },
          o.responseTimeoutMs ?? 15_000,
        );
        const thingName = str(accepted.thingName);
        if (!thingName)
          throw new RejectedError(REGISTER_API, undefined, 'InvalidResponse', 'accepted without thingName');
        this.emit({ type: 'registered', detail: thingName });
        return {
          thingName,
          deviceConfiguration: stringMap(accepted.deviceConfiguration),
          issued: this.issued,
        };
      } catch (err) {
        const c = classifyFailure(err);
        if (
          !c.retryable &&
          reusedToken &&
          err instanceof RejectedError &&
          err.api === REGISTER_API &&
          /OwnershipToken/i.test(err.errorCode)
        ) {
          // The kept token is no longer valid: start over with a new certificate.
          this.issued = undefined;
          lastError = c.description;
          continue;
        }
        if (!c.retryable) {
          if (err instanceof RejectedError) {
            return {
              outcome: 'denied',
              serial: this.serial,
              api: err.api,
              statusCode: err.statusCode,
              errorCode: err.errorCode,
              errorMessage: err.errorMessage,
            };
          }
          return {
            outcome: 'denied',
            serial: this.serial,
            api: 'Connect',
            errorCode: err instanceof TransportError ? err.failure : 'ClientError',
            errorMessage: c.description,
          };
        }
        lastError = c.description;
      } finally {
        // Disconnect on every outcome: a retry always starts a new session.
        await session?.end();
      }
    }
    return { outcome: 'gaveUp', serial: this.serial, phase: 'provisioning', lastError };
  }

  private async obtainCertificate(session: MqttSession, createTopic: string): Promise<IssuedCertificate> {
    const timeout = this.options.responseTimeoutMs ?? 15_000;
    if (this.options.method === 'createKeys') {
      const r = await session.request(KEYS_API, createTopic, {}, timeout);
      const certificateId = str(r.certificateId);
      const certificatePem = str(r.certificatePem);
      const privateKeyPem = str(r.privateKey);
      const ownershipToken = str(r.certificateOwnershipToken);
      if (!certificateId || !certificatePem || !privateKeyPem || !ownershipToken) {
        throw new RejectedError(KEYS_API, undefined, 'InvalidResponse', 'accepted payload misses fields');
      }
      return { certificateId, certificatePem, privateKeyPem, ownershipToken, obtainedAt: this.now() };
    }
    const { keys, privateKeyPem, publicKeyPem, csrPem } = await createKeyAndCsr(this.serial, this.csrKeys);
    this.csrKeys = keys;
    const ourSpki = spkiOf(publicKeyPem, false);
    const r = await session.request(
      CSR_API,
      createTopic,
      { certificateSigningRequest: csrPem },
      timeout,
      (p) => {
        // Ignore an answer that is not for our key (defensive against brokers that fan out).
        const pem = str(p.certificatePem);
        try {
          return pem !== undefined && spkiOf(pem, true) === ourSpki;
        } catch {
          return false;
        }
      },
    );
    const certificateId = str(r.certificateId);
    const certificatePem = str(r.certificatePem);
    const ownershipToken = str(r.certificateOwnershipToken);
    if (!certificateId || !certificatePem || !ownershipToken) {
      throw new RejectedError(CSR_API, undefined, 'InvalidResponse', 'accepted payload misses fields');
    }
    return { certificateId, certificatePem, privateKeyPem, ownershipToken, obtainedAt: this.now() };
  }

  private registerParameters(issued: IssuedCertificate): Record<string, string> {
    const id = this.options.identity;
    const params: Record<string, string> = {
      [PROVISIONING_PARAMETERS.serial]: id.serial,
      [PROVISIONING_PARAMETERS.hwRev]: id.hwRev,
      [PROVISIONING_PARAMETERS.firmware]: id.firmware,
    };
    if (this.options.badAttestation) {
      params[PROVISIONING_PARAMETERS.proof] = signDeviceProof(
        issued.certificateId,
        generateFactoryKey().privateKeyPem,
      );
    } else if (id.factoryKey) {
      params[PROVISIONING_PARAMETERS.proof] = signDeviceProof(
        issued.certificateId,
        id.factoryKey.privateKeyPem,
      );
    }
    return params;
  }

  /** New session as the thing: client id = thing name, own certificate, optional last will. */
  private async connectAsThing(): Promise<true | string> {
    const o = this.options;
    const thing = this.thing;
    if (!thing) return 'not enrolled';
    let lastError = '';
    for (let attempt = 0; attempt < this.backoff.maxAttempts; attempt++) {
      if (attempt > 0) await this.backoffBeforeRetry(attempt - 1, lastError);
      try {
        this.thingSession = await MqttSession.open({
          endpoint: o.endpoint,
          credentials: thing.credentials,
          clientId: thing.thingName,
          connectTimeoutMs: o.connectTimeoutMs ?? 10_000,
          will:
            o.lastWill === false
              ? undefined
              : {
                  topic: topics.health(o.topicPrefix ?? 'fleet', thing.thingName),
                  payload: '{"connection":"lost"}',
                },
        });
        return true;
      } catch (err) {
        lastError = classifyFailure(err).description;
      }
    }
    return lastError;
  }

  private async storeCredentials(dir: string): Promise<void> {
    const thing = this.thing;
    if (!thing) return;
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const files: Array<[string, string]> = [
      [`${thing.thingName}.cert.pem`, thing.credentials.certPem],
      [`${thing.thingName}.private.key`, thing.credentials.keyPem],
      [
        `${thing.thingName}.json`,
        JSON.stringify(
          { serial: this.serial, thingName: thing.thingName, certificateId: thing.certificateId },
          null,
          2,
        ),
      ],
    ];
    for (const [name, content] of files) {
      const path = join(dir, name);
      await writeFile(path, content, { mode: 0o600 });
      await chmod(path, 0o600);
    }
  }
}
