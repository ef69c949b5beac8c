/**
 * In-memory AWS IoT registry: certificates, things, thing types and groups, policies, their
 * attachments and provisioning templates. Single-process, synchronous, no I/O; every mutation
 * goes through a method here so the control plane and the provisioning API share one truth.
 */
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import {
  IotError,
  alreadyExists,
  certificateState,
  deleteConflict,
  invalidRequest,
  notFound,
  versionConflict,
} from './errors';

export const CERTIFICATE_STATUSES = [
  'ACTIVE',
  'INACTIVE',
  'REVOKED',
  'PENDING_TRANSFER',
  'REGISTER_INACTIVE',
  'PENDING_ACTIVATION',
] as const;
export type CertificateStatus = (typeof CERTIFICATE_STATUSES)[number];

export interface CertificateRecord {
  certificateId: string;
  certificateArn: string;
  certificatePem: string;
  status: CertificateStatus;
  caCertificateId?: string;
  creationDate: Date;
  lastModifiedDate: Date;
  /** Ownership token issued with the certificate by the fleet provisioning MQTT API. */
  ownershipToken?: string;
  ownershipTokenIssuedAt?: number;
  /** Client id of the connection that created the certificate (fleet provisioning). */
  createdByClientId?: string;
}

export interface ThingRecord {
  thingName: string;
  thingId: string;
  thingArn: string;
  thingTypeName?: string;
  attributes: Record<string, string>;
  version: number;
  groups: Set<string>;
  creationDate: Date;
}

export interface ThingGroupRecord {
  thingGroupName: string;
  thingGroupId: string;
  thingGroupArn: string;
  parentGroupName?: string;
  description?: string;
  attributes: Record<string, string>;
  version: number;
  creationDate: Date;
  things: Set<string>;
}

export interface PolicyRecord {
  policyName: string;
  policyArn: string;
  /** The document as stored (JSON string), as GetPolicy returns it. */
  policyDocument: string;
  defaultVersionId: string;
  creationDate: Date;
  lastModifiedDate: Date;
}

export interface ProvisioningTemplateRecord {
  templateName: string;
  templateArn: string;
  templateBody: string;
  enabled: boolean;
  description?: string;
  provisioningRoleArn?: string;
  hookArn?: string;
  creationDate: Date;
  lastModifiedDate: Date;
}

export interface RegistryEvents {
  /** A certificate left ACTIVE (or was deleted): open connections using it must be closed. */
  certificateDisabled: (certificateId: string) => void;
  /** A thing joined or left a thing group (continuous jobs follow their groups). */
  thingGroupMembershipChanged: (thingName: string, groupName: string) => void;
}

/** A provisioning template as the cdk.out loader declares it. */
export interface ProvisioningTemplateInput {
  name: string;
  body: string;
  enabled: boolean;
  hookArn?: string;
  roleArn?: string;
  description?: string;
}

export class IotRegistry {
  readonly certificates = new Map<string, CertificateRecord>();
  readonly things = new Map<string, ThingRecord>();
  readonly thingTypes = new Map<
    string,
    { thingTypeName: string; thingTypeArn: string; creationDate: Date }
  >();
  readonly thingGroups = new Map<string, ThingGroupRecord>();
  readonly policies = new Map<string, PolicyRecord>();
  readonly templates = new Map<string, ProvisioningTemplateRecord>();
  /** policyName -> targets (principal ARNs, thing group ARNs). */
  readonly policyTargets = new Map<string, Set<string>>();
  /** thingName -> principal ARNs. */
  readonly thingPrincipals = new Map<string, Set<string>>();
  readonly events = new EventEmitter();

  constructor(
    readonly region: string,
    readonly accountId: string,
  ) {}

  arn(resource: string): string {
    return `arn:aws:iot:${this.region}:${this.accountId}:${resource}`;
  }

  certificateArn(certificateId: string): string {
    return this.arn(`cert/${certificateId}`);
  }

  onCertificateDisabled(listener: RegistryEvents['certificateDisabled']): void {
    this.events.on('certificateDisabled', listener);
  }

  // ---------------------------------------------------------------- certificates

  addCertificate(c: {
    certificateId: string;
    certificatePem: string;
    status: CertificateStatus;
    caCertificateId?: string;
    ownershipToken?: string;
    createdByClientId?: string;
  }): CertificateRecord {
    if (this.certificates.has(c.certificateId))
      throw alreadyExists(`Certificate ${c.certificateId} already exists`);
    const now = new Date();
    const rec: CertificateRecord = {
      ...c,
      certificateArn: this.certificateArn(c.certificateId),
      creationDate: now,
      lastModifiedDate: now,
      ownershipTokenIssuedAt: c.ownershipToken ? now.getTime() : undefined,
    };
    this.certificates.set(c.certificateId, rec);
    return rec;
  }

  getCertificate(certificateId: string): CertificateRecord {
    const c = this.certificates.get(certificateId);
    if (!c) throw notFound(`Certificate ${certificateId} does not exist`);
    return c;
  }

  updateCertificateStatus(certificateId: string, newStatus: string): void {
    const c = this.getCertificate(certificateId);
    if (!(CERTIFICATE_STATUSES as readonly string[]).includes(newStatus)) {
      throw invalidRequest(`Invalid newStatus ${newStatus}`);
    }
    if (newStatus === 'PENDING_TRANSFER' || newStatus === 'PENDING_ACTIVATION') {
      throw invalidRequest(`Status ${newStatus} cannot be set with UpdateCertificate`);
    }
    if (c.status === 'REVOKED' && newStatus !== 'REVOKED') {
      // Treated as terminal in the lab (see docs: a revoked certificate is not reactivated).
      throw certificateState(`Certificate ${certificateId} is REVOKED and cannot change status`);
    }
    this.setCertificateStatus(c, newStatus as CertificateStatus);
  }

  setCertificateStatus(c: CertificateRecord, status: CertificateStatus): void {
    const wasActive = c.status === 'ACTIVE';
    c.status = status;
    c.lastModifiedDate = new Date();
    if (wasActive && status !== 'ACTIVE') this.events.emit('certificateDisabled', c.certificateId);
  }

  deleteCertificate(certificateId: string, forceDelete = false): void {
    const c = this.getCertificate(certificateId);
    if (c.status === 'ACTIVE') {
      throw certificateState(`Certificate ${certificateId} is ACTIVE; deactivate it before deleting`);
    }
    const principal = c.certificateArn;
    const things = this.principalThings(principal);
    if (things.length > 0)
      throw deleteConflict(`Certificate ${certificateId} is attached to things: ${things.join(', ')}`);
    const policies = this.attachedPolicies(principal);
    if (policies.length > 0) {
      if (!forceDelete) {
        throw deleteConflict(`Certificate ${certificateId} has attached policies: ${policies.join(', ')}`);
      }
      for (const p of policies) this.policyTargets.get(p)?.delete(principal);
    }
    this.certificates.delete(certificateId);
  }

  /** Accepts a certificate ARN (or, leniently, a bare certificate id) and returns the record. */
  certificateForPrincipal(principal: string): CertificateRecord | undefined {
    const m = /:cert\/([0-9a-f]{64})$/.exec(principal);
    return this.certificates.get(m ? m[1] : principal);
  }

  // ---------------------------------------------------------------- things

  createThing(
    name: string,
    opts: { thingTypeName?: string; attributes?: Record<string, string> } = {},
  ): ThingRecord {
    if (!/^[a-zA-Z0-9:_-]{1,128}$/.test(name)) throw invalidRequest(`Invalid thing name ${name}`);
    const existing = this.things.get(name);
    if (existing) {
      const same =
        existing.thingTypeName === opts.thingTypeName &&
        JSON.stringify(existing.attributes) === JSON.stringify(opts.attributes ?? {});
      if (same) return existing; // CreateThing is idempotent for identical input
      throw alreadyExists(`Thing ${name} already exists with different tags or attributes`);
    }
    if (opts.thingTypeName && !this.thingTypes.has(opts.thingTypeName)) {
      throw notFound(`Thing type ${opts.thingTypeName} does not exist`);
    }
    const rec: ThingRecord = {
      thingName: name,
      thingId: randomUUID(),
      thingArn: this.arn(`thing/${name}`),
      thingTypeName: opts.thingTypeName,
      attributes: { ...(opts.attributes ?? {}) },
      version: 1,
      groups: new Set(),
      creationDate: new Date(),
    };
    this.things.set(name, rec);
    return rec;
  }

  /** DescribeThing's answer for a thing record. */
  describeThing(t: ThingRecord): {
    defaultClientId: string;
    thingName: string;
    thingId: string;
    thingArn: string;
    thingTypeName?: string;
    attributes: Record<string, string>;
    version: number;
  } {
    return {
      defaultClientId: t.thingName,
      thingName: t.thingName,
      thingId: t.thingId,
      thingArn: t.thingArn,
      thingTypeName: t.thingTypeName,
      attributes: { ...t.attributes },
      version: t.version,
    };
  }

  getThing(name: string): ThingRecord {
    const t = this.things.get(name);
    if (!t) throw notFound(`Thing ${name} cannot be found.`);
    return t;
  }

  updateThing(
    name: string,
    u: {
      thingTypeName?: string;
      removeThingType?: boolean;
      attributes?: Record<string, string>;
      merge?: boolean;
      expectedVersion?: number;
    },
  ): ThingRecord {
    const t = this.getThing(name);
    if (u.expectedVersion !== undefined && u.expectedVersion !== t.version) {
      throw versionConflict(`The version for thing ${name} does not match the expected version.`);
    }
    if (u.thingTypeName !== undefined) {
      if (!this.thingTypes.has(u.thingTypeName))
        throw notFound(`Thing type ${u.thingTypeName} does not exist`);
      t.thingTypeName = u.thingTypeName;
    }
    if (u.removeThingType) t.thingTypeName = undefined;
    if (u.attributes) {
      const next = u.merge ? { ...t.attributes } : {};
      for (const [k, v] of Object.entries(u.attributes)) {
        // An empty value removes the attribute when merging (AWS semantics).
        if (u.merge && v === '') delete next[k];
        else next[k] = v;
      }
      t.attributes = next;
    }
    t.version += 1;
    return t;
  }

  deleteThing(name: string, expectedVersion?: number): void {
    const t = this.things.get(name);
    if (!t) return; // DeleteThing of a missing thing succeeds
    if (expectedVersion !== undefined && expectedVersion !== t.version) {
      throw versionConflict(`The version for thing ${name} does not match the expected version.`);
    }
    if ((this.thingPrincipals.get(name)?.size ?? 0) > 0) {
      throw invalidRequest(`Cannot delete thing ${name}: principals are still attached`);
    }
    for (const g of t.groups) this.thingGroups.get(g)?.things.delete(name);
    this.things.delete(name);
    this.thingPrincipals.delete(name);
  }

  attachThingPrincipal(thingName: string, principal: string): void {
    this.getThing(thingName);
    if (!this.certificateForPrincipal(principal)) throw notFound(`Principal ${principal} does not exist`);
    let set = this.thingPrincipals.get(thingName);
    if (!set) this.thingPrincipals.set(thingName, (set = new Set()));
    set.add(this.normalizePrincipal(principal));
  }

  detachThingPrincipal(thingName: string, principal: string): void {
    this.getThing(thingName);
    this.thingPrincipals.get(thingName)?.delete(this.normalizePrincipal(principal));
  }

  listThingPrincipals(thingName: string): string[] {
    this.getThing(thingName);
    return [...(this.thingPrincipals.get(thingName) ?? [])];
  }

  principalThings(principal: string): string[] {
    const p = this.normalizePrincipal(principal);
    const out: string[] = [];
    for (const [thing, set] of this.thingPrincipals) if (set.has(p)) out.push(thing);
    return out;
  }

  isThingAttached(thingName: string, certificateId: string): boolean {
    return this.thingPrincipals.get(thingName)?.has(this.certificateArn(certificateId)) ?? false;
  }

  private normalizePrincipal(principal: string): string {
    const c = this.certificateForPrincipal(principal);
    return c ? c.certificateArn : principal;
  }

  // ---------------------------------------------------------------- thing types and groups

  putThingType(name: string): void {
    if (!this.thingTypes.has(name)) {
      this.thingTypes.set(name, {
        thingTypeName: name,
        thingTypeArn: this.arn(`thingtype/${name}`),
        creationDate: new Date(),
      });
    }
  }

  createThingGroup(
    name: string,
    opts: { parentGroupName?: string; description?: string; attributes?: Record<string, string> } = {},
  ): ThingGroupRecord {
    const existing = this.thingGroups.get(name);
    if (existing) return existing; // idempotent like AWS for identical input
    if (opts.parentGroupName && !this.thingGroups.has(opts.parentGroupName)) {
      throw notFound(`Parent thing group ${opts.parentGroupName} does not exist`);
    }
    const rec: ThingGroupRecord = {
      thingGroupName: name,
      thingGroupId: randomUUID(),
      thingGroupArn: this.arn(`thinggroup/${name}`),
      parentGroupName: opts.parentGroupName,
      description: opts.description,
      attributes: { ...(opts.attributes ?? {}) },
      version: 1,
      creationDate: new Date(),
      things: new Set(),
    };
    this.thingGroups.set(name, rec);
    return rec;
  }

  getThingGroup(name: string): ThingGroupRecord {
    const g = this.thingGroups.get(name);
    if (!g) throw notFound(`Thing group ${name} does not exist`);
    return g;
  }

  addThingToGroup(thingName: string, groupName: string): void {
    const t = this.getThing(thingName);
    const g = this.getThingGroup(groupName);
    g.things.add(thingName);
    t.groups.add(groupName);
    this.events.emit('thingGroupMembershipChanged', thingName, groupName);
  }

  removeThingFromGroup(thingName: string, groupName: string): void {
    const t = this.getThing(thingName);
    const g = this.getThingGroup(groupName);
    g.things.delete(thingName);
    t.groups.delete(groupName);
    this.events.emit('thingGroupMembershipChanged', thingName, groupName);
  }

  // ---------------------------------------------------------------- policies

  createPolicy(name: string, document: unknown): PolicyRecord {
    if (this.policies.has(name)) throw alreadyExists(`Policy ${name} already exists`);
    return this.putPolicy(name, document);
  }

  /** Create or replace (used by the cdk.out loader). */
  putPolicy(name: string, document: unknown): PolicyRecord {
    const text = typeof document === 'string' ? document : JSON.stringify(document);
    try {
      JSON.parse(text);
    } catch {
      throw new IotError('MalformedPolicyException', 400, `Policy ${name} document is not valid JSON`);
    }
    const now = new Date();
    const prev = this.policies.get(name);
    const rec: PolicyRecord = {
      policyName: name,
      policyArn: this.arn(`policy/${name}`),
      policyDocument: text,
      defaultVersionId: prev ? String(Number(prev.defaultVersionId) + 1) : '1',
      creationDate: prev?.creationDate ?? now,
      lastModifiedDate: now,
    };
    this.policies.set(name, rec);
    return rec;
  }

  getPolicy(name: string): PolicyRecord {
    const p = this.policies.get(name);
    if (!p) throw notFound(`Policy ${name} does not exist`);
    return p;
  }

  attachPolicy(name: string, target: string): void {
    this.getPolicy(name);
    const normalized = this.normalizePrincipal(target);
    if (normalized.includes(':cert/') && !this.certificateForPrincipal(normalized)) {
      throw notFound(`Target ${target} does not exist`);
    }
    let set = this.policyTargets.get(name);
    if (!set) this.policyTargets.set(name, (set = new Set()));
    set.add(normalized);
  }

  detachPolicy(name: string, target: string): void {
    this.getPolicy(name);
    this.policyTargets.get(name)?.delete(this.normalizePrincipal(target));
  }

  attachedPolicies(target: string): string[] {
    const t = this.normalizePrincipal(target);
    const out: string[] = [];
    for (const [name, set] of this.policyTargets) if (set.has(t)) out.push(name);
    return out;
  }

  /** Policy documents (parsed) attached to a certificate, for the policy evaluator. */
  policiesForCertificate(certificateId: string): Array<{ name: string; document: unknown }> {
    return this.attachedPolicies(this.certificateArn(certificateId)).map((name) => ({
      name,
      document: JSON.parse(this.getPolicy(name).policyDocument) as unknown,
    }));
  }

  // ---------------------------------------------------------------- provisioning templates

  putProvisioningTemplate(t: ProvisioningTemplateInput): ProvisioningTemplateRecord {
    const now = new Date();
    const prev = this.templates.get(t.name);
    const rec: ProvisioningTemplateRecord = {
      templateName: t.name,
      templateArn: this.arn(`provisioningtemplate/${t.name}`),
      templateBody: t.body,
      enabled: t.enabled,
      description: t.description,
      provisioningRoleArn: t.roleArn,
      hookArn: t.hookArn,
      creationDate: prev?.creationDate ?? now,
      lastModifiedDate: now,
    };
    this.templates.set(t.name, rec);
    return rec;
  }

  getProvisioningTemplate(name: string): ProvisioningTemplateRecord {
    const t = this.templates.get(name);
    if (!t) throw notFound(`The provisioning template ${name} does not exist`);
    return t;
  }
}
