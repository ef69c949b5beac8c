/**
 * AWS IoT control-plane facade: an HTTP server speaking the AWS IoT REST-JSON protocol, so the
 * real `@aws-sdk/client-iot` works against it unchanged (`AWS_ENDPOINT_URL_IOT` / `endpoint`).
 *
 * Methods, paths, query and header bindings follow the operation schemas shipped in
 * `@aws-sdk/client-iot` (dist-cjs, `http` traits). Errors use AWS's shape: the
 * `x-amzn-ErrorType` header names the exception, the JSON body carries `message`, and the HTTP
 * status is the one the service uses, so the SDK raises the matching exception class.
 *
 * Requests are not signature-checked: the lab has no IAM. Operations the lab does not serve yet
 * answer 501 `NotImplementedException` naming the operation (resolved from the SDK's own route
 * table), so a missing operation is obvious rather than a confusing 404.
 */
import { createServer, IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { LabCa } from './ca';
import { IotError, invalidRequest } from './errors';
import type { IotRegistry } from './state';

export interface ControlPlaneOptions {
  registry: IotRegistry;
  ca: LabCa;
  host: string;
  /** Returned by DescribeEndpoint (`host:port` of the MQTT broker). */
  endpointAddress: () => string;
  log?: (entry: { level: 'info' | 'warn' | 'error'; msg: string; [k: string]: unknown }) => void;
}

interface Req {
  params: Record<string, string>;
  query: URLSearchParams;
  headers: IncomingMessage['headers'];
  body: Record<string, unknown>;
}

type Handler = (r: Req) => Promise<unknown> | unknown;

interface Route {
  op: string;
  method: string;
  regex: RegExp;
  keys: string[];
  handler: Handler;
}

function compile(path: string): { regex: RegExp; keys: string[] } {
  const keys: string[] = [];
  const src = path
    .split('/')
    .map((seg) => {
      const m = /^\{(\w+)(\+?)\}$/.exec(seg);
      if (!m) return seg.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      keys.push(m[1]);
      return m[2] ? '(.+)' : '([^/]+)';
    })
    .join('/');
  return { regex: new RegExp(`^${src}$`), keys };
}

const epoch = (d: Date | undefined): number | undefined => (d ? d.getTime() / 1000 : undefined);

function page<T>(items: T[], token: string | null, size: string | null): { items: T[]; next?: string } {
  const start = token ? Number(token) || 0 : 0;
  const n = size ? Math.max(1, Number(size) || 1) : 250;
  const slice = items.slice(start, start + n);
  return { items: slice, next: start + n < items.length ? String(start + n) : undefined };
}

function str(body: Record<string, unknown>, key: string): string | undefined {
  const v = body[key];
  return typeof v === 'string' ? v : undefined;
}

function requireStr(value: string | undefined | null, name: string): string {
  if (!value) throw invalidRequest(`${name} is required`);
  return value;
}

function attrs(body: Record<string, unknown>): { attributes?: Record<string, string>; merge?: boolean } {
  const p = body.attributePayload as { attributes?: Record<string, string>; merge?: boolean } | undefined;
  return { attributes: p?.attributes, merge: p?.merge };
}

export class ControlPlane {
  private readonly routes: Route[] = [];
  private server?: Server;
  private sdkRoutes?: Array<{ op: string; method: string; regex: RegExp }>;
  url = '';

  constructor(private readonly o: ControlPlaneOptions) {
    this.register();
  }

  private add(op: string, method: string, path: string, handler: Handler): void {
    this.routes.push({ op, method, ...compile(path), handler });
  }

  private register(): void {
    const reg = this.o.registry;
    const certDesc = (id: string): Record<string, unknown> => {
      const c = reg.getCertificate(id);
      return {
        certificateArn: c.certificateArn,
        certificateId: c.certificateId,
        caCertificateId: c.caCertificateId,
        status: c.status,
        certificatePem: c.certificatePem,
        ownedBy: reg.accountId,
        creationDate: epoch(c.creationDate),
        lastModifiedDate: epoch(c.lastModifiedDate),
        customerVersion: 1,
        generationId: String(c.lastModifiedDate.getTime()),
        validity: { notBefore: epoch(c.creationDate), notAfter: Date.parse('2049-12-31T23:59:59Z') / 1000 },
        certificateMode: 'DEFAULT',
      };
    };

    // ---- certificates
    this.add('CreateKeysAndCertificate', 'POST', '/keys-and-certificate', async ({ query }) => {
      const issued = await this.o.ca.issueWithNewKeys();
      const rec = reg.addCertificate({
        certificateId: issued.certificateId,
        certificatePem: issued.certificatePem,
        status: query.get('setAsActive') === 'true' ? 'ACTIVE' : 'INACTIVE',
        caCertificateId: this.o.ca.caCertificateId,
      });
      return {
        certificateArn: rec.certificateArn,
        certificateId: rec.certificateId,
        certificatePem: rec.certificatePem,
        keyPair: { PublicKey: issued.publicKeyPem, PrivateKey: issued.privateKeyPem },
      };
    });
    this.add('DescribeCertificate', 'GET', '/certificates/{certificateId}', ({ params }) => ({
      certificateDescription: certDesc(params.certificateId),
    }));
    this.add('UpdateCertificate', 'PUT', '/certificates/{certificateId}', ({ params, query }) => {
      reg.updateCertificateStatus(params.certificateId, requireStr(query.get('newStatus'), 'newStatus'));
      return {};
    });
    this.add('DeleteCertificate', 'DELETE', '/certificates/{certificateId}', ({ params, query }) => {
      reg.deleteCertificate(params.certificateId, query.get('forceDelete') === 'true');
      return {};
    });
    this.add('ListCertificates', 'GET', '/certificates', ({ query }) => {
      const all = [...reg.certificates.values()].sort(
        (a, b) => a.creationDate.getTime() - b.creationDate.getTime(),
      );
      if (query.get('isAscendingOrder') !== 'true') all.reverse();
      const p = page(all, query.get('marker'), query.get('pageSize'));
      return {
        certificates: p.items.map((c) => ({
          certificateArn: c.certificateArn,
          certificateId: c.certificateId,
          status: c.status,
          certificateMode: 'DEFAULT',
          creationDate: epoch(c.creationDate),
        })),
        nextMarker: p.next,
      };
    });

    // ---- policies
    this.add('CreatePolicy', 'POST', '/policies/{policyName}', ({ params, body }) => {
      const p = reg.createPolicy(
        params.policyName,
        requireStr(str(body, 'policyDocument'), 'policyDocument'),
      );
      return {
        policyName: p.policyName,
        policyArn: p.policyArn,
        policyDocument: p.policyDocument,
        policyVersionId: p.defaultVersionId,
      };
    });
    this.add('GetPolicy', 'GET', '/policies/{policyName}', ({ params }) => {
      const p = reg.getPolicy(params.policyName);
      return {
        policyName: p.policyName,
        policyArn: p.policyArn,
        policyDocument: p.policyDocument,
        defaultVersionId: p.defaultVersionId,
        creationDate: epoch(p.creationDate),
        lastModifiedDate: epoch(p.lastModifiedDate),
        generationId: String(p.lastModifiedDate.getTime()),
      };
    });
    this.add('AttachPolicy', 'PUT', '/target-policies/{policyName}', ({ params, body }) => {
      reg.attachPolicy(params.policyName, requireStr(str(body, 'target'), 'target'));
      return {};
    });
    this.add('DetachPolicy', 'POST', '/target-policies/{policyName}', ({ params, body }) => {
      reg.detachPolicy(params.policyName, requireStr(str(body, 'target'), 'target'));
      return {};
    });
    this.add('ListAttachedPolicies', 'POST', '/attached-policies/{target}', ({ params, query }) => {
      const names = reg.attachedPolicies(params.target);
      const p = page(names, query.get('marker'), query.get('pageSize'));
      return {
        policies: p.items.map((n) => ({ policyName: n, policyArn: reg.getPolicy(n).policyArn })),
        nextMarker: p.next,
      };
    });
    this.add('ListTargetsForPolicy', 'POST', '/policy-targets/{policyName}', ({ params, query }) => {
      reg.getPolicy(params.policyName);
      const p = page(
        [...(reg.policyTargets.get(params.policyName) ?? [])],
        query.get('marker'),
        query.get('pageSize'),
      );
      return { targets: p.items, nextMarker: p.next };
    });

    // ---- things
    this.add('CreateThing', 'POST', '/things/{thingName}', ({ params, body }) => {
      const t = reg.createThing(params.thingName, {
        thingTypeName: str(body, 'thingTypeName'),
        attributes: attrs(body).attributes,
      });
      return { thingName: t.thingName, thingArn: t.thingArn, thingId: t.thingId };
    });
    this.add('DescribeThing', 'GET', '/things/{thingName}', ({ params }) => {
      const t = reg.getThing(params.thingName);
      return {
        defaultClientId: t.thingName,
        thingName: t.thingName,
        thingId: t.thingId,
        thingArn: t.thingArn,
        thingTypeName: t.thingTypeName,
        attributes: t.attributes,
        version: t.version,
      };
    });
    this.add('UpdateThing', 'PATCH', '/things/{thingName}', ({ params, body }) => {
      const a = attrs(body);
      reg.updateThing(params.thingName, {
        thingTypeName: str(body, 'thingTypeName'),
        removeThingType: body.removeThingType === true,
        attributes: a.attributes,
        merge: a.merge,
        expectedVersion: typeof body.expectedVersion === 'number' ? body.expectedVersion : undefined,
      });
      return {};
    });
    this.add('DeleteThing', 'DELETE', '/things/{thingName}', ({ params, query }) => {
      const v = query.get('expectedVersion');
      reg.deleteThing(params.thingName, v === null ? undefined : Number(v));
      return {};
    });
    this.add('ListThings', 'GET', '/things', ({ query }) => {
      const an = query.get('attributeName');
      const av = query.get('attributeValue');
      const tt = query.get('thingTypeName');
      const prefix = query.get('usePrefixAttributeValue') === 'true';
      const all = [...reg.things.values()].filter((t) => {
        if (tt && t.thingTypeName !== tt) return false;
        if (an) {
          const v = t.attributes[an];
          if (v === undefined) return false;
          if (av !== null && (prefix ? !v.startsWith(av) : v !== av)) return false;
        }
        return true;
      });
      const p = page(all, query.get('nextToken'), query.get('maxResults'));
      return {
        things: p.items.map((t) => ({
          thingName: t.thingName,
          thingTypeName: t.thingTypeName,
          thingArn: t.thingArn,
          attributes: t.attributes,
          version: t.version,
        })),
        nextToken: p.next,
      };
    });
    const principalHeader = (h: IncomingMessage['headers']): string =>
      requireStr(typeof h['x-amzn-principal'] === 'string' ? h['x-amzn-principal'] : undefined, 'principal');
    this.add('AttachThingPrincipal', 'PUT', '/things/{thingName}/principals', ({ params, headers }) => {
      reg.attachThingPrincipal(params.thingName, principalHeader(headers));
      return {};
    });
    this.add('DetachThingPrincipal', 'DELETE', '/things/{thingName}/principals', ({ params, headers }) => {
      reg.detachThingPrincipal(params.thingName, principalHeader(headers));
      return {};
    });
    this.add('ListThingPrincipals', 'GET', '/things/{thingName}/principals', ({ params, query }) => {
      const p = page(
        reg.listThingPrincipals(params.thingName),
        query.get('nextToken'),
        query.get('maxResults'),
      );
      return { principals: p.items, nextToken: p.next };
    });
    this.add('ListPrincipalThings', 'GET', '/principals/things', ({ headers, query }) => {
      const p = page(
        reg.principalThings(principalHeader(headers)),
        query.get('nextToken'),
        query.get('maxResults'),
      );
      return { things: p.items, nextToken: p.next };
    });

    // ---- thing groups
    this.add('CreateThingGroup', 'POST', '/thing-groups/{thingGroupName}', ({ params, body }) => {
      const props = body.thingGroupProperties as
        | { thingGroupDescription?: string; attributePayload?: { attributes?: Record<string, string> } }
        | undefined;
      const g = reg.createThingGroup(params.thingGroupName, {
        parentGroupName: str(body, 'parentGroupName'),
        description: props?.thingGroupDescription,
        attributes: props?.attributePayload?.attributes,
      });
      return {
        thingGroupName: g.thingGroupName,
        thingGroupArn: g.thingGroupArn,
        thingGroupId: g.thingGroupId,
      };
    });
    this.add('DescribeThingGroup', 'GET', '/thing-groups/{thingGroupName}', ({ params }) => {
      const g = reg.getThingGroup(params.thingGroupName);
      const chain: Array<{ groupName: string; groupArn: string }> = [];
      for (let p = g.parentGroupName; p; p = reg.thingGroups.get(p)?.parentGroupName) {
        chain.unshift({ groupName: p, groupArn: reg.arn(`thinggroup/${p}`) });
      }
      return {
        thingGroupName: g.thingGroupName,
        thingGroupId: g.thingGroupId,
        thingGroupArn: g.thingGroupArn,
        version: g.version,
        thingGroupProperties: {
          thingGroupDescription: g.description,
          attributePayload: { attributes: g.attributes },
        },
        thingGroupMetadata: {
          parentGroupName: g.parentGroupName,
          rootToParentThingGroups: chain,
          creationDate: epoch(g.creationDate),
        },
      };
    });
    const nameFromArn = (arn: string | undefined, kind: string): string | undefined =>
      arn ? arn.slice(arn.indexOf(`:${kind}/`) + kind.length + 2) : undefined;
    const groupAndThing = (body: Record<string, unknown>): [string, string] => [
      requireStr(
        str(body, 'thingGroupName') ?? nameFromArn(str(body, 'thingGroupArn'), 'thinggroup'),
        'thingGroupName',
      ),
      requireStr(str(body, 'thingName') ?? nameFromArn(str(body, 'thingArn'), 'thing'), 'thingName'),
    ];
    this.add('AddThingToThingGroup', 'PUT', '/thing-groups/addThingToThingGroup', ({ body }) => {
      const [g, t] = groupAndThing(body);
      reg.addThingToGroup(t, g);
      return {};
    });
    this.add('RemoveThingFromThingGroup', 'PUT', '/thing-groups/removeThingFromThingGroup', ({ body }) => {
      const [g, t] = groupAndThing(body);
      reg.removeThingFromGroup(t, g);
      return {};
    });
    this.add('ListThingGroupsForThing', 'GET', '/things/{thingName}/thing-groups', ({ params, query }) => {
      const t = reg.getThing(params.thingName);
      const p = page([...t.groups], query.get('nextToken'), query.get('maxResults'));
      return {
        thingGroups: p.items.map((g) => ({ groupName: g, groupArn: reg.arn(`thinggroup/${g}`) })),
        nextToken: p.next,
      };
    });
    this.add(
      'ListThingsInThingGroup',
      'GET',
      '/thing-groups/{thingGroupName}/things',
      ({ params, query }) => {
        const root = reg.getThingGroup(params.thingGroupName);
        const names = new Set(root.things);
        if (query.get('recursive') === 'true') {
          const stack = [root.thingGroupName];
          while (stack.length) {
            const parent = stack.pop() as string;
            for (const g of reg.thingGroups.values()) {
              if (g.parentGroupName === parent) {
                g.things.forEach((t) => names.add(t));
                stack.push(g.thingGroupName);
              }
            }
          }
        }
        const p = page([...names], query.get('nextToken'), query.get('maxResults'));
        return { things: p.items, nextToken: p.next };
      },
    );

    // ---- endpoint and provisioning templates
    this.add('DescribeEndpoint', 'GET', '/endpoint', () => ({ endpointAddress: this.o.endpointAddress() }));
    this.add(
      'DescribeProvisioningTemplate',
      'GET',
      '/provisioning-templates/{templateName}',
      ({ params }) => {
        const t = reg.getProvisioningTemplate(params.templateName);
        return {
          templateArn: t.templateArn,
          templateName: t.templateName,
          description: t.description,
          creationDate: epoch(t.creationDate),
          lastModifiedDate: epoch(t.lastModifiedDate),
          defaultVersionId: 1,
          templateBody: t.templateBody,
          enabled: t.enabled,
          provisioningRoleArn: t.provisioningRoleArn,
          preProvisioningHook: t.hookArn ? { targetArn: t.hookArn, payloadVersion: '2020-04-01' } : undefined,
          type: 'FLEET_PROVISIONING',
        };
      },
    );
    this.add('ListProvisioningTemplates', 'GET', '/provisioning-templates', ({ query }) => {
      const p = page([...reg.templates.values()], query.get('nextToken'), query.get('maxResults'));
      return {
        templates: p.items.map((t) => ({
          templateArn: t.templateArn,
          templateName: t.templateName,
          description: t.description,
          creationDate: epoch(t.creationDate),
          lastModifiedDate: epoch(t.lastModifiedDate),
          enabled: t.enabled,
          type: 'FLEET_PROVISIONING',
        })),
        nextToken: p.next,
      };
    });
  }

  /** Operation names the facade serves (for start-up summaries and docs). */
  servedOperations(): string[] {
    return this.routes.map((r) => r.op);
  }

  async start(): Promise<string> {
    this.server = createServer((req, res) => void this.handle(req, res));
    this.server.keepAliveTimeout = 1000;
    await new Promise<void>((resolve, reject) => {
      this.server?.once('error', reject);
      this.server?.listen(0, this.o.host, () => resolve());
    });
    const port = (this.server.address() as AddressInfo).port;
    this.url = `http://${this.o.host}:${port}`;
    return this.url;
  }

  async stop(): Promise<void> {
    const s = this.server;
    if (!s) return;
    this.server = undefined;
    await new Promise<void>((resolve) => {
      s.close(() => resolve());
      s.closeAllConnections();
    });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://lab');
    const method = req.method ?? 'GET';
    let op = 'unknown';
    try {
      const chunks: Buffer[] = [];
      for await (const c of req) chunks.push(c as Buffer);
      const raw = Buffer.concat(chunks).toString('utf8');
      let body: Record<string, unknown> = {};
      if (raw.trim()) {
        try {
          body = JSON.parse(raw) as Record<string, unknown>;
        } catch {
          throw invalidRequest('Request body is not valid JSON');
        }
      }
      const path = url.pathname;
      for (const r of this.routes) {
        if (r.method !== method) continue;
        const m = r.regex.exec(path);
        if (!m) continue;
        op = r.op;
        const params: Record<string, string> = {};
        r.keys.forEach((k, i) => (params[k] = decodeURIComponent(m[i + 1])));
        const out = await r.handler({ params, query: url.searchParams, headers: req.headers, body });
        this.send(res, 200, JSON.stringify(out ?? {}));
        return;
      }
      op = this.sdkOperationFor(method, path) ?? `${method} ${path}`;
      throw new IotError(
        'NotImplementedException',
        501,
        `The iot-fleet-stack lab does not serve the AWS IoT operation ${op} yet`,
      );
    } catch (e) {
      const err =
        e instanceof IotError
          ? e
          : new IotError(
              'InternalFailureException',
              500,
              `Lab control plane failed: ${(e as Error).message}`,
            );
      this.o.log?.({
        level: err.status >= 500 ? 'error' : 'info',
        msg: `control plane ${op}: ${err.code}`,
        op,
        status: err.status,
        message: err.message,
      });
      res.setHeader('x-amzn-ErrorType', err.code);
      this.send(res, err.status, JSON.stringify({ message: err.message }));
    }
  }

  private send(res: ServerResponse, status: number, body: string): void {
    res.writeHead(status, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(body),
      'x-amzn-RequestId': Math.random().toString(16).slice(2),
    });
    res.end(body);
  }

  /** Name the SDK operation behind an unserved route, from the SDK's own schemas. */
  private sdkOperationFor(method: string, path: string): string | undefined {
    if (!this.sdkRoutes) {
      this.sdkRoutes = [];
      try {
        // eslint-disable-next-line @typescript-eslint/no-require-imports
        const sdk = require('@aws-sdk/client-iot') as Record<string, unknown>;
        for (const [name, schema] of Object.entries(sdk)) {
          if (!name.endsWith('$') || !Array.isArray(schema) || schema[0] !== 9) continue;
          const http = (schema[3] as { http?: [string, string, number] } | undefined)?.http;
          if (!http) continue;
          const [p] = http[1].split('?');
          this.sdkRoutes.push({ op: name.slice(0, -1), method: http[0], regex: compile(p).regex });
        }
      } catch {
        // SDK not resolvable: fall back to method + path in the error
      }
    }
    return this.sdkRoutes.find((r) => r.method === method && r.regex.test(path))?.op;
  }
}
