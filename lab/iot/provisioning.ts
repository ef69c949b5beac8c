/**
 * Fleet provisioning MQTT API (AWS IoT Developer Guide, "Device provisioning MQTT API"):
 *
 * - `$aws/certificates/create/json`: issue a key pair + certificate (PENDING_ACTIVATION) and a
 *   certificate ownership token;
 * - `$aws/certificates/create-from-csr/json`: verify the CSR, issue a certificate from the lab
 *   CA (the private key never leaves the device), PENDING_ACTIVATION, ownership token;
 * - `$aws/provisioning-templates/<name>/provision/json` (RegisterThing): validate the token
 *   (1 hour lifetime; the certificate must still be PENDING_ACTIVATION), invoke the
 *   pre-provisioning hook, apply `parameterOverrides`, evaluate the template, then create or
 *   update the thing, add it to its groups, attach certificate and policies and set the
 *   certificate status. Accepted payload `{ deviceConfiguration, thingName }`.
 *
 * Responses go to `<request topic>/accepted|rejected` on the requesting connection only.
 * Rejections carry `{ statusCode, errorCode, errorMessage }`. Confirmed codes:
 * 400 `InvalidCertificateOwnershipToken` (public SDK issue reports). Chosen by the lab where
 * the public material does not show the exact code: 403 `AccessDenied` (hook denied or
 * failed), 429 `ThrottlingException` (RegisterThing over the configured TPS), 404
 * `ResourceNotFound`, 409 `ResourceConflictsException` (OverrideSettings FAIL), 400
 * `InvalidPayload` / `InvalidParameters` / `InvalidCsr` / `InvalidRequest` (disabled template, or
 * a template name in the topic that is not valid URI encoding).
 */
import { createHash, randomBytes } from 'node:crypto';
import type { LabCa } from './ca';
import type { CertificateRecord, IotRegistry } from './state';
import { evaluateTemplate, TemplateError, type TemplateEvaluation } from './template-evaluator';

export const OWNERSHIP_TOKEN_TTL_MS = 60 * 60 * 1000;

export type Log = (entry: { level: 'info' | 'warn' | 'error'; msg: string; [k: string]: unknown }) => void;

export interface ProvisioningOptions {
  registry: IotRegistry;
  ca: LabCa;
  invokeLambda(functionArn: string, event: unknown): Promise<unknown>;
  registerThingTps?: number;
  log?: Log;
  now?: () => number;
}

export interface RequestContext {
  clientId: string;
  /** Certificate of the requesting connection (the claim certificate). */
  certificateId: string;
}

export interface ProvisioningResponse {
  topic: string;
  payload: Record<string, unknown>;
}

class Rejection extends Error {
  constructor(
    readonly statusCode: number,
    readonly errorCode: string,
    message: string,
  ) {
    super(message);
  }
}

/** Token bucket: `tps` tokens per second, burst of max(1, tps). */
export class TokenBucket {
  private tokens: number;
  private last: number;
  constructor(
    private readonly tps: number,
    private readonly now: () => number,
  ) {
    this.tokens = Math.max(1, tps);
    this.last = now();
  }
  take(): boolean {
    const t = this.now();
    this.tokens = Math.min(Math.max(1, this.tps), this.tokens + ((t - this.last) / 1000) * this.tps);
    this.last = t;
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return true;
    }
    return false;
  }
}

const CREATE = /^\$aws\/certificates\/create\/(json|cbor)$/;
const CREATE_CSR = /^\$aws\/certificates\/create-from-csr\/(json|cbor)$/;
const PROVISION = /^\$aws\/provisioning-templates\/([^/]+)\/provision\/(json|cbor)$/;

/** True for the request topics this API serves (their payloads never reach rules). */
export function isProvisioningRequestTopic(topic: string): boolean {
  return CREATE.test(topic) || CREATE_CSR.test(topic) || PROVISION.test(topic);
}

/** True for the reserved fleet-provisioning topic space (requests and responses). */
export function isProvisioningTopic(topic: string): boolean {
  return topic.startsWith('$aws/certificates/') || topic.startsWith('$aws/provisioning-templates/');
}

/** The template name of a RegisterThing topic segment (URI-encoded), or a 400 the device can act on. */
function decodeTemplateName(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new Rejection(
      400,
      'InvalidRequest',
      `The provisioning template name in the topic (${segment}) is not valid URI encoding`,
    );
  }
}

export class ProvisioningApi {
  readonly stats = { registerThing: { accepted: 0, throttled: 0, rejected: 0 } };
  private readonly tokens = new Map<string, string>(); // ownership token -> certificate id
  /** Client ids whose next accepted RegisterThing answer is lost (fault injection). */
  private readonly loseAnswerFor = new Set<string>();
  private readonly bucket?: TokenBucket;
  private readonly now: () => number;

  constructor(private readonly o: ProvisioningOptions) {
    this.now = o.now ?? Date.now;
    if (o.registerThingTps !== undefined && o.registerThingTps > 0)
      this.bucket = new TokenBucket(o.registerThingTps, this.now);
  }

  /**
   * Fault injection: the next RegisterThing of `clientId` is carried out in full (hook, thing,
   * certificate activated) but its `accepted` answer never reaches the device, as when a
   * connection drops at the wrong moment. The device must recover by retrying.
   */
  loseNextRegisterThingAnswer(clientId: string): void {
    this.loseAnswerFor.add(clientId);
  }

  /** Handle one request; returns the single response to send to the requesting connection. */
  async handle(
    topic: string,
    payload: Buffer,
    req: RequestContext,
  ): Promise<ProvisioningResponse | undefined> {
    let m: RegExpExecArray | null;
    let kind: 'create' | 'csr' | 'provision';
    let format: string;
    let templateName = '';
    if ((m = CREATE.exec(topic))) {
      kind = 'create';
      format = m[1];
    } else if ((m = CREATE_CSR.exec(topic))) {
      kind = 'csr';
      format = m[1];
    } else if ((m = PROVISION.exec(topic))) {
      kind = 'provision';
      templateName = m[1];
      format = m[2];
    } else {
      return undefined;
    }
    try {
      if (kind === 'provision') templateName = decodeTemplateName(templateName);
      if (format !== 'json')
        throw new Rejection(
          400,
          'InvalidPayload',
          'The lab serves the json format only (cbor is not supported)',
        );
      let body: Record<string, unknown> = {};
      const text = payload.toString('utf8').trim();
      if (text) {
        try {
          body = JSON.parse(text) as Record<string, unknown>;
        } catch {
          throw new Rejection(400, 'InvalidPayload', 'Request payload is not valid JSON');
        }
      }
      let accepted: Record<string, unknown>;
      if (kind === 'create') accepted = await this.createKeysAndCertificate(req);
      else if (kind === 'csr') accepted = await this.createFromCsr(body, req);
      else accepted = await this.registerThing(templateName, body, req);
      if (kind === 'provision') {
        this.stats.registerThing.accepted += 1;
        if (this.loseAnswerFor.delete(req.clientId)) {
          this.o.log?.({
            level: 'info',
            msg: 'fault injected: RegisterThing answer lost',
            clientId: req.clientId,
            thingName: accepted.thingName,
          });
          return undefined;
        }
      }
      return { topic: `${topic}/accepted`, payload: accepted };
    } catch (e) {
      const r =
        e instanceof Rejection
          ? e
          : new Rejection(500, 'InternalFailure', `Lab provisioning failed: ${(e as Error).message}`);
      if (kind === 'provision') {
        if (r.statusCode === 429) this.stats.registerThing.throttled += 1;
        else this.stats.registerThing.rejected += 1;
      }
      this.o.log?.({
        level: r.statusCode >= 500 ? 'error' : 'info',
        msg: `fleet provisioning ${kind} rejected: ${r.errorCode}`,
        clientId: req.clientId,
        topic,
        statusCode: r.statusCode,
        errorCode: r.errorCode,
        errorMessage: r.message,
      });
      return {
        topic: `${topic}/rejected`,
        payload: { statusCode: r.statusCode, errorCode: r.errorCode, errorMessage: r.message },
      };
    }
  }

  /** Record a newly issued certificate as PENDING_ACTIVATION and return its ownership token. */
  private registerPendingCertificate(
    issued: { certificateId: string; certificatePem: string },
    req: RequestContext,
  ): string {
    const token = randomBytes(48).toString('base64');
    this.tokens.set(token, issued.certificateId);
    const rec = this.o.registry.addCertificate({
      certificateId: issued.certificateId,
      certificatePem: issued.certificatePem,
      status: 'PENDING_ACTIVATION',
      caCertificateId: this.o.ca.caCertificateId,
      ownershipToken: token,
      createdByClientId: req.clientId,
    });
    rec.ownershipTokenIssuedAt = this.now();
    return token;
  }

  private async createKeysAndCertificate(req: RequestContext): Promise<Record<string, unknown>> {
    const issued = await this.o.ca.issueWithNewKeys();
    const token = this.registerPendingCertificate(issued, req);
    return {
      certificateId: issued.certificateId,
      certificatePem: issued.certificatePem,
      privateKey: issued.privateKeyPem,
      certificateOwnershipToken: token,
    };
  }

  private async createFromCsr(
    body: Record<string, unknown>,
    req: RequestContext,
  ): Promise<Record<string, unknown>> {
    const csr = body.certificateSigningRequest;
    if (typeof csr !== 'string' || !csr.trim()) {
      throw new Rejection(400, 'InvalidPayload', 'certificateSigningRequest is required');
    }
    let issued;
    try {
      issued = await this.o.ca.issueFromCsr(csr);
    } catch (e) {
      throw new Rejection(400, 'InvalidCsr', (e as Error).message);
    }
    const token = this.registerPendingCertificate(issued, req);
    return {
      certificateOwnershipToken: token,
      certificateId: issued.certificateId,
      certificatePem: issued.certificatePem,
    };
  }

  /** Resolve and validate an ownership token; expired, unactivated certificates are deleted. */
  private certificateForToken(token: unknown): CertificateRecord {
    if (typeof token !== 'string' || token === '') {
      throw new Rejection(
        400,
        'InvalidCertificateOwnershipToken',
        'Certificate ownership token cannot be empty.',
      );
    }
    const id = this.tokens.get(token);
    const cert = id ? this.o.registry.certificates.get(id) : undefined;
    if (!id || !cert)
      throw new Rejection(400, 'InvalidCertificateOwnershipToken', 'Certificate ownership token is invalid.');
    if (this.now() - (cert.ownershipTokenIssuedAt ?? 0) > OWNERSHIP_TOKEN_TTL_MS) {
      this.tokens.delete(token);
      if (
        cert.status === 'PENDING_ACTIVATION' &&
        this.o.registry.principalThings(cert.certificateArn).length === 0
      ) {
        this.o.registry.certificates.delete(cert.certificateId);
      }
      throw new Rejection(
        400,
        'InvalidCertificateOwnershipToken',
        'Certificate ownership token has expired.',
      );
    }
    if (cert.status !== 'PENDING_ACTIVATION') {
      throw new Rejection(
        400,
        'InvalidCertificateOwnershipToken',
        `Certificate ownership token was already used (certificate is ${cert.status}).`,
      );
    }
    return cert;
  }

  private async registerThing(
    templateName: string,
    body: Record<string, unknown>,
    req: RequestContext,
  ): Promise<Record<string, unknown>> {
    if (this.bucket && !this.bucket.take()) {
      throw new Rejection(429, 'ThrottlingException', 'Rate exceeded');
    }
    const reg = this.o.registry;
    const template = reg.templates.get(templateName);
    if (!template)
      throw new Rejection(
        404,
        'ResourceNotFound',
        `The provisioning template ${templateName} does not exist.`,
      );
    if (!template.enabled)
      throw new Rejection(400, 'InvalidRequest', `The provisioning template ${templateName} is disabled.`);
    const cert = this.certificateForToken(body.certificateOwnershipToken);

    const parameters: Record<string, string> = {};
    if (body.parameters !== undefined) {
      if (!body.parameters || typeof body.parameters !== 'object' || Array.isArray(body.parameters)) {
        throw new Rejection(400, 'InvalidPayload', 'parameters must be a map of strings');
      }
      for (const [k, v] of Object.entries(body.parameters as Record<string, unknown>)) {
        if (typeof v !== 'string')
          throw new Rejection(400, 'InvalidPayload', `parameters.${k} must be a string`);
        parameters[k] = v;
      }
    }

    let effective = { ...parameters };
    if (template.hookArn) {
      const event = {
        claimCertificateId: req.certificateId,
        certificateId: cert.certificateId,
        certificatePem: cert.certificatePem,
        templateArn: template.templateArn,
        clientId: req.clientId,
        parameters,
      };
      let result: unknown;
      try {
        result = await this.o.invokeLambda(template.hookArn, event);
      } catch (e) {
        throw new Rejection(403, 'AccessDenied', `Pre-provisioning hook failed: ${(e as Error).message}`);
      }
      const r = result as { allowProvisioning?: unknown; parameterOverrides?: unknown } | null;
      if (!r || r.allowProvisioning !== true) {
        throw new Rejection(
          403,
          'AccessDenied',
          'Pre-provisioning hook denied the request (allowProvisioning is not true)',
        );
      }
      if (r.parameterOverrides && typeof r.parameterOverrides === 'object') {
        for (const [k, v] of Object.entries(r.parameterOverrides as Record<string, unknown>)) {
          if (v !== undefined && v !== null) effective[k] = String(v);
        }
      }
    }

    let ev: TemplateEvaluation;
    try {
      ev = evaluateTemplate(template.templateBody, effective, {
        builtins: {
          'AWS::IoT::Certificate::Id': cert.certificateId,
          'AWS::Region': reg.region,
          'AWS::AccountId': reg.accountId,
        },
      });
    } catch (e) {
      if (e instanceof TemplateError) throw new Rejection(400, 'InvalidParameters', e.message);
      throw e;
    }
    effective = ev.parameters;
    this.apply(ev, cert);
    return { deviceConfiguration: ev.deviceConfiguration, thingName: ev.thing?.thingName };
  }

  /** Validate every reference first, then mutate (so a failure leaves no partial state). */
  private apply(ev: TemplateEvaluation, cert: CertificateRecord): void {
    const reg = this.o.registry;
    if (ev.certificate && ev.certificate.certificateId !== cert.certificateId) {
      throw new Rejection(
        400,
        'InvalidParameters',
        'The template certificate does not match the ownership token',
      );
    }
    const t = ev.thing;
    const existing = t ? reg.things.get(t.thingName) : undefined;
    const ovr = t?.overrideSettings ?? {};
    if (t) {
      if (t.thingTypeName && !reg.thingTypes.has(t.thingTypeName)) {
        throw new Rejection(404, 'ResourceNotFound', `Thing type ${t.thingTypeName} does not exist`);
      }
      for (const g of t.thingGroups ?? []) {
        if (!reg.thingGroups.has(g))
          throw new Rejection(404, 'ResourceNotFound', `Thing group ${g} does not exist`);
      }
      if (existing) {
        for (const k of ['AttributePayload', 'ThingTypeName', 'ThingGroups'] as const) {
          if (ovr[k] === 'FAIL') {
            throw new Rejection(
              409,
              'ResourceConflictsException',
              `Thing ${t.thingName} already exists and OverrideSettings.${k} is FAIL`,
            );
          }
        }
      }
    }
    const policyNames: string[] = [];
    for (const p of ev.policies) {
      if (p.policyName) {
        if (!reg.policies.has(p.policyName))
          throw new Rejection(404, 'ResourceNotFound', `Policy ${p.policyName} does not exist`);
        policyNames.push(p.policyName);
      }
    }

    // ---- mutate
    if (t) {
      if (!existing) {
        reg.createThing(t.thingName, { thingTypeName: t.thingTypeName, attributes: t.attributes });
        for (const g of t.thingGroups ?? []) reg.addThingToGroup(t.thingName, g);
      } else {
        const attrAction = ovr.AttributePayload ?? 'DO_NOTHING';
        if (t.attributes && (attrAction === 'REPLACE' || attrAction === 'MERGE')) {
          reg.updateThing(t.thingName, { attributes: t.attributes, merge: attrAction === 'MERGE' });
        }
        if (t.thingTypeName && ovr.ThingTypeName === 'REPLACE')
          reg.updateThing(t.thingName, { thingTypeName: t.thingTypeName });
        const groupAction = ovr.ThingGroups ?? 'DO_NOTHING';
        if (t.thingGroups && groupAction === 'REPLACE') {
          for (const g of [...existing.groups])
            if (!t.thingGroups.includes(g)) reg.removeThingFromGroup(t.thingName, g);
        }
        if (t.thingGroups && (groupAction === 'REPLACE' || groupAction === 'MERGE')) {
          for (const g of t.thingGroups) reg.addThingToGroup(t.thingName, g);
        }
      }
      reg.attachThingPrincipal(t.thingName, cert.certificateArn);
    }
    for (const p of ev.policies) {
      if (p.policyDocument) {
        const name = createHash('sha256').update(p.policyDocument).digest('hex');
        if (!reg.policies.has(name)) reg.putPolicy(name, p.policyDocument);
        policyNames.push(name);
      }
    }
    for (const name of policyNames) reg.attachPolicy(name, cert.certificateArn);
    reg.setCertificateStatus(cert, ev.certificate?.status ?? 'ACTIVE');
  }
}
