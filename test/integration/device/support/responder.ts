/**
 * An mTLS MQTT broker (the lab's MQTT server, without AWS IoT's policies) on a random loopback
 * port with a scripted responder for the fleet provisioning MQTT API. Answers go only to the requesting connection (as AWS IoT does), and
 * only once the client has subscribed to the response topic.
 */
import { createHash, randomUUID, X509Certificate } from 'node:crypto';
import { createServer, type Server, type TLSSocket } from 'node:tls';
import type { AddressInfo } from 'node:net';
import { certificateIdOf } from '../../../../core/attestation';
import { RC } from '../../../../lab/iot/mqtt/reason-codes';
import { MqttServer, type Connection } from '../../../../lab/iot/mqtt/server';
import { TestCa, type IssuedPair } from './pki';

export interface RejectBody {
  statusCode: number;
  errorCode: string;
  errorMessage: string;
}

/** What to do with one RegisterThing request. */
export type RegisterDecision =
  | { accept: { thingName: string; deviceConfiguration?: Record<string, string> } }
  | { reject: RejectBody }
  | 'ignore';

export interface RegisterCall {
  clientId: string;
  certificateOwnershipToken: string;
  parameters: Record<string, string>;
  certificateId?: string;
}

export interface ConnectionRecord {
  clientId: string;
  /** SHA-256 of the presented client certificate (DER). */
  certFingerprint: string;
  will?: { topic: string; payload: string };
}

const CSR = '$aws/certificates/create-from-csr/json';
const KEYS = '$aws/certificates/create/json';
const PROVISION = /^\$aws\/provisioning-templates\/([^/]+)\/provision\/json$/;

export function fingerprint(certPem: string): string {
  return createHash('sha256').update(new X509Certificate(certPem).raw).digest('hex');
}

export class ScriptedIot {
  readonly connections: ConnectionRecord[] = [];
  readonly registerCalls: RegisterCall[] = [];
  readonly createCalls: Array<{ clientId: string; api: 'csr' | 'keys' }> = [];
  readonly issued = new Map<string, { certificateId: string; certificatePem: string }>();
  /** Messages published by devices on non-$aws topics (e.g. wills) and on Basic Ingest topics. */
  readonly published: Array<{ topic: string; payload: string; clientId?: string }> = [];
  /** Decide each RegisterThing; default accepts with thing name `thing-<SerialNumber>`. */
  onRegister: (call: RegisterCall, index: number) => RegisterDecision = (call) => ({
    accept: {
      thingName: `thing-${call.parameters.SerialNumber}`,
      deviceConfiguration: { telemetryTopic: 'x' },
    },
  });
  /** Optional override for certificate creation (e.g. throttle the create call). */
  onCreate?: (api: 'csr' | 'keys', index: number) => RejectBody | 'ignore' | undefined;
  /** Accept a CONNECT (default), or refuse it with CONNACK return code 5 (not authorized). */
  onConnect?: (clientId: string) => 'accept' | 'notAuthorized';
  templateName = 'fleet-template';

  private constructor(
    readonly ca: TestCa,
    readonly server: Server,
    private readonly broker: MqttServer,
    readonly port: number,
    readonly serverCaPem: string,
  ) {}

  static async start(): Promise<ScriptedIot> {
    const ca = await TestCa.create();
    const serverPair = await ca.issue('localhost', true);
    const broker: MqttServer = new MqttServer({
      hooks: {
        authenticate: (c, packet) => {
          const peer = (c.socket as TLSSocket).getPeerCertificate();
          const will = packet.will;
          iot.connections.push({
            clientId: packet.clientId,
            certFingerprint: peer?.raw ? createHash('sha256').update(peer.raw).digest('hex') : '',
            ...(will ? { will: { topic: will.topic, payload: String(will.payload) } } : {}),
          });
          return iot.onConnect?.(c.clientId) === 'notAuthorized'
            ? { code: RC.NOT_AUTHORIZED, reason: 'scripted refusal' }
            : undefined;
        },
        authorizePublish: () => undefined,
        authorizeSubscribe: () => undefined,
        mayReceive: () => true,
        // Like AWS IoT: requests to the service and Basic Ingest reach no subscriber.
        isServiceConsumed: (topic) => topic.startsWith('$aws/'),
        onMessage: (m, from) => {
          if (from) iot.onPublish(m.topic, m.payload, from);
        },
        onConnected: () => undefined,
        onDisconnected: () => undefined,
      },
    });
    const server = createServer(
      {
        key: serverPair.keyPem,
        cert: serverPair.certPem,
        ca: ca.certPem,
        requestCert: true,
        rejectUnauthorized: true,
        noDelay: true,
      },
      (socket) => broker.handle(socket, socket.remoteAddress ?? 'unknown'),
    );
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const iot: ScriptedIot = new ScriptedIot(
      ca,
      server,
      broker,
      (server.address() as AddressInfo).port,
      ca.certPem,
    );
    return iot;
  }

  /** A claim certificate signed by the test CA. */
  claim(lot: string): Promise<IssuedPair> {
    return this.ca.issue(`claim-${lot}`);
  }

  get endpoint(): { host: string; port: number; caPem: string } {
    return { host: '127.0.0.1', port: this.port, caPem: this.serverCaPem };
  }

  async stop(): Promise<void> {
    await this.broker.stop();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /** Answers to the requesting connection only, and only if it subscribed (as AWS IoT does). */
  private reply(client: Connection, topic: string, body: unknown): void {
    this.broker.sendTo(client, { topic, payload: Buffer.from(JSON.stringify(body)), qos: 0, retain: false });
  }

  private onPublish(topic: string, payload: Buffer, client: Connection): void {
    // Device data: direct topics, and Basic Ingest (`$aws/rules/…`, which AWS IoT hands to the rule).
    if (!topic.startsWith('$aws/') || topic.startsWith('$aws/rules/')) {
      this.published.push({ topic, payload: payload.toString(), clientId: client.clientId });
      return;
    }
    void this.handle(topic, payload, client).catch((err: Error) =>
      this.reply(client, `${topic}/rejected`, {
        statusCode: 500,
        errorCode: 'InternalFailure',
        errorMessage: err.message,
      }),
    );
  }

  private async handle(topic: string, payload: Buffer, client: Connection): Promise<void> {
    const body = payload.length ? (JSON.parse(payload.toString()) as Record<string, unknown>) : {};
    if (topic === CSR || topic === KEYS) {
      const api = topic === CSR ? 'csr' : 'keys';
      const index = this.createCalls.push({ clientId: client.clientId, api }) - 1;
      const scripted = this.onCreate?.(api, index);
      if (scripted === 'ignore') return;
      if (scripted) return this.reply(client, `${topic}/rejected`, scripted);
      let certificatePem: string;
      let privateKey: string | undefined;
      if (api === 'csr') {
        try {
          certificatePem = await this.ca.issueForCsr(String(body.certificateSigningRequest), 'device');
        } catch (err) {
          return this.reply(client, `${topic}/rejected`, {
            statusCode: 400,
            errorCode: 'InvalidCsr',
            errorMessage: (err as Error).message,
          });
        }
      } else {
        const pair = await this.ca.issue('device');
        certificatePem = pair.certPem;
        privateKey = pair.keyPem;
      }
      const certificateId = certificateIdOf(certificatePem);
      const certificateOwnershipToken = randomUUID();
      this.issued.set(certificateOwnershipToken, { certificateId, certificatePem });
      return this.reply(client, `${topic}/accepted`, {
        certificateId,
        certificatePem,
        ...(privateKey ? { privateKey } : {}),
        certificateOwnershipToken,
      });
    }
    const m = PROVISION.exec(topic);
    if (!m) return;
    if (m[1] !== this.templateName) {
      return this.reply(client, `${topic}/rejected`, {
        statusCode: 404,
        errorCode: 'ResourceNotFound',
        errorMessage: 'no template',
      });
    }
    const token = String(body.certificateOwnershipToken ?? '');
    const call: RegisterCall = {
      clientId: client.clientId,
      certificateOwnershipToken: token,
      parameters: (body.parameters ?? {}) as Record<string, string>,
      certificateId: this.issued.get(token)?.certificateId,
    };
    const index = this.registerCalls.push(call) - 1;
    if (!call.certificateId) {
      return this.reply(client, `${topic}/rejected`, {
        statusCode: 400,
        errorCode: 'InvalidCertificateOwnershipToken',
        errorMessage: 'Certificate ownership token is not valid',
      });
    }
    const decision = this.onRegister(call, index);
    if (decision === 'ignore') return;
    if ('reject' in decision) return this.reply(client, `${topic}/rejected`, decision.reject);
    this.reply(client, `${topic}/accepted`, {
      thingName: decision.accept.thingName,
      deviceConfiguration: decision.accept.deviceConfiguration ?? {},
    });
  }
}
