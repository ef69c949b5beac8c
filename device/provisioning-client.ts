/**
 * The AWS IoT fleet provisioning MQTT API as a device holding a claim certificate sees it: one
 * claim session, and the request → `accepted` / `rejected` exchange of CreateCertificateFromCsr,
 * CreateKeysAndCertificate and RegisterThing, each with a response timeout.
 * See https://docs.aws.amazon.com/iot/latest/developerguide/fleet-provision-api.html
 *
 * No retry policy here: a failure throws a `TransportError`, a `RejectedError` (the service's
 * `rejected` answer) or an {@link InvalidAnswerError} (an `accepted` answer it cannot use), and
 * the caller (enrollment.ts) decides. Topics come from core/topics.ts.
 */
import { X509Certificate, createPublicKey } from 'node:crypto';
import { topics } from '../core/topics';
import { thingNameProblem } from './thing-identity';
import {
  MqttSession,
  responseTopics,
  type Endpoint,
  type MqttVersion,
  type TlsCredentials,
} from './mqtt-session';

/** Certificate-issuing API used during enrollment. */
export type EnrollmentMethod = 'csr' | 'createKeys';

/** API names as they appear in results and errors. */
export const PROVISIONING_API = {
  csr: 'CreateCertificateFromCsr',
  createKeys: 'CreateKeysAndCertificate',
  register: 'RegisterThing',
} as const;

/** The `accepted` answer of a certificate-issuing API. */
export interface CertificateGrant {
  certificateId: string;
  certificatePem: string;
  /** Valid for one hour, for one RegisterThing. */
  ownershipToken: string;
}

/** CreateKeysAndCertificate also returns the private key it generated. */
export interface KeysAndCertificateGrant extends CertificateGrant {
  privateKeyPem: string;
}

/** The `accepted` answer of RegisterThing. */
export interface Registration {
  thingName: string;
  deviceConfiguration: Record<string, string>;
}

export interface ProvisioningClientOptions {
  endpoint: Endpoint;
  /** Claim certificate and key. */
  claim: TlsCredentials;
  clientId: string;
  /** Fleet provisioning template name. */
  templateName: string;
  /** TLS + CONNACK budget. */
  connectTimeoutMs: number;
  /** Wait for an accepted/rejected answer, per request. */
  responseTimeoutMs: number;
  /** MQTT version of the claim session. @default '3.1.1' */
  mqttVersion?: MqttVersion;
}

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

/**
 * An `accepted` answer the device cannot use (fields missing, a thing name that is not one). It
 * is not a rejection by the service: the device gives up with it as the cause, never counts it
 * as a denial.
 */
export class InvalidAnswerError extends Error {
  constructor(
    readonly api: string,
    readonly detail: string,
  ) {
    super(`${api} answered with an unusable accepted payload: ${detail}`);
    this.name = 'InvalidAnswerError';
  }
}

function invalidResponse(api: string, detail: string): InvalidAnswerError {
  return new InvalidAnswerError(api, detail);
}

/** One claim session speaking the fleet provisioning API. Close it on every outcome. */
export class ProvisioningClient {
  private constructor(
    private readonly session: MqttSession,
    private readonly options: ProvisioningClientOptions,
  ) {}

  /** Connect with the claim certificate (clean session), or throw a TransportError. */
  static async open(options: ProvisioningClientOptions): Promise<ProvisioningClient> {
    const session = await MqttSession.open({
      endpoint: options.endpoint,
      credentials: options.claim,
      clientId: options.clientId,
      connectTimeoutMs: options.connectTimeoutMs,
      mqttVersion: options.mqttVersion,
    });
    return new ProvisioningClient(session, options);
  }

  /** Request topic of a certificate-issuing API. */
  static certificateTopic(method: EnrollmentMethod | undefined): string {
    return method === 'createKeys' ? topics.createKeysAndCertificate : topics.createCertificateFromCsr;
  }

  /**
   * Subscribe, in one SUBSCRIBE and before any request, to the answer topics of the APIs this
   * session will call: the certificate API's (when `certificateMethod` is given) and RegisterThing's.
   * AWS IoT answers only subscribed clients.
   */
  async subscribe(certificateMethod: EnrollmentMethod | undefined): Promise<void> {
    const apis = [topics.registerThing(this.options.templateName)];
    if (certificateMethod) apis.unshift(ProvisioningClient.certificateTopic(certificateMethod));
    await this.session.subscribe(
      apis.flatMap((t) => {
        const { accepted, rejected } = responseTopics(t);
        return [accepted, rejected];
      }),
    );
  }

  /**
   * CreateCertificateFromCsr. An `accepted` answer is taken as ours only when its certificate
   * carries `publicKeyPem` (answers for other devices are ignored, should a broker fan them out).
   */
  async createCertificateFromCsr(csrPem: string, publicKeyPem: string): Promise<CertificateGrant> {
    const ourSpki = spkiOf(publicKeyPem, false);
    const r = await this.session.request(
      PROVISIONING_API.csr,
      topics.createCertificateFromCsr,
      { certificateSigningRequest: csrPem },
      this.options.responseTimeoutMs,
      (p) => {
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
      throw invalidResponse(PROVISIONING_API.csr, 'accepted payload misses fields');
    }
    return { certificateId, certificatePem, ownershipToken };
  }

  /** CreateKeysAndCertificate: AWS IoT generates the key pair and returns both halves. */
  async createKeysAndCertificate(): Promise<KeysAndCertificateGrant> {
    const r = await this.session.request(
      PROVISIONING_API.createKeys,
      topics.createKeysAndCertificate,
      {},
      this.options.responseTimeoutMs,
    );
    const certificateId = str(r.certificateId);
    const certificatePem = str(r.certificatePem);
    const privateKeyPem = str(r.privateKey);
    const ownershipToken = str(r.certificateOwnershipToken);
    if (!certificateId || !certificatePem || !privateKeyPem || !ownershipToken) {
      throw invalidResponse(PROVISIONING_API.createKeys, 'accepted payload misses fields');
    }
    return { certificateId, certificatePem, privateKeyPem, ownershipToken };
  }

  /** RegisterThing with the ownership token and the template parameters. */
  async registerThing(ownershipToken: string, parameters: Record<string, string>): Promise<Registration> {
    const accepted = await this.session.request(
      PROVISIONING_API.register,
      topics.registerThing(this.options.templateName),
      { certificateOwnershipToken: ownershipToken, parameters },
      this.options.responseTimeoutMs,
    );
    const thingName = str(accepted.thingName);
    if (!thingName) throw invalidResponse(PROVISIONING_API.register, 'accepted without thingName');
    // The name becomes file names and the thing session's client id: take only a real thing name.
    const problem = thingNameProblem(thingName);
    if (problem)
      throw invalidResponse(PROVISIONING_API.register, `thingName ${JSON.stringify(thingName)} ${problem}`);
    return { thingName, deviceConfiguration: stringMap(accepted.deviceConfiguration) };
  }

  /** Graceful DISCONNECT; the socket is gone when this resolves. */
  close(): Promise<void> {
    return this.session.end();
  }
}
