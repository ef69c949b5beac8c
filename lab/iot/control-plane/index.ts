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
 *
 * One file per API family registers its operations (`register…Operations(router, deps)`); to
 * serve a new family, add its file and list it in `FAMILIES`.
 */
import { createServer, IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { IotError, invalidRequest } from '../errors';
import { registerCertificateOperations } from './certificates';
import { registerEndpointOperations } from './endpoint';
import { registerJobOperations } from './jobs';
import { registerPackageOperations } from './packages';
import { registerPolicyOperations } from './policies';
import { registerProvisioningTemplateOperations } from './provisioning-templates';
import { compilePath, Router, type ControlPlaneDeps, type OperationFamily } from './router';
import { registerThingGroupOperations } from './thing-groups';
import { registerThingOperations } from './things';

export interface ControlPlaneOptions extends ControlPlaneDeps {
  host: string;
  log?: (entry: { level: 'info' | 'warn' | 'error'; msg: string; [k: string]: unknown }) => void;
}

/** The API families the facade serves, in registration order. */
const FAMILIES: OperationFamily[] = [
  registerCertificateOperations,
  registerPolicyOperations,
  registerThingOperations,
  registerThingGroupOperations,
  registerEndpointOperations,
  registerJobOperations,
  registerPackageOperations,
  registerProvisioningTemplateOperations,
];

export class ControlPlane {
  private readonly router = new Router();
  private server?: Server;
  private sdkRoutes?: Array<{ op: string; method: string; regex: RegExp }>;
  url = '';

  constructor(private readonly o: ControlPlaneOptions) {
    for (const register of FAMILIES) register(this.router, o);
  }

  /** Operation names the facade serves (for start-up summaries and docs). */
  servedOperations(): string[] {
    return this.router.operations();
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
      const body = await readJsonBody(req);
      const path = url.pathname;
      const route = this.router.match(method, path);
      if (route) {
        op = route.op;
        const out = await route.handler({
          params: route.params,
          query: url.searchParams,
          headers: req.headers,
          body,
        });
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
          this.sdkRoutes.push({ op: name.slice(0, -1), method: http[0], regex: compilePath(p).regex });
        }
      } catch {
        // SDK not resolvable: fall back to method + path in the error
      }
    }
    return this.sdkRoutes.find((r) => r.method === method && r.regex.test(path))?.op;
  }
}

async function readJsonBody(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  const raw = Buffer.concat(chunks).toString('utf8');
  if (!raw.trim()) return {};
  try {
    return JSON.parse(raw) as Record<string, unknown>;
  } catch {
    throw invalidRequest('Request body is not valid JSON');
  }
}

export { Router, type ControlPlaneDeps, type OperationFamily, type OperationHandler } from './router';
