/**
 * Routes of the control-plane facade. Each API family file registers its operations here with
 * the method and path of the operation's schema in `@aws-sdk/client-iot` (`http` trait).
 */
import type { IncomingMessage } from 'node:http';
import type { LabCa } from '../ca';
import type { IotRegistry } from '../state';

/** One decoded request: path parameters, query string, headers and the JSON body. */
export interface OperationRequest {
  params: Record<string, string>;
  query: URLSearchParams;
  headers: IncomingMessage['headers'];
  body: Record<string, unknown>;
}

export type OperationHandler = (r: OperationRequest) => Promise<unknown> | unknown;

/** What an API family needs from the lab to serve its operations. */
export interface ControlPlaneDeps {
  registry: IotRegistry;
  ca: LabCa;
  /** Returned by DescribeEndpoint (`host:port` of the MQTT broker). */
  endpointAddress: () => string;
}

/** One API family: registers its operations on the router. */
export type OperationFamily = (router: Router, deps: ControlPlaneDeps) => void;

interface Route {
  op: string;
  method: string;
  regex: RegExp;
  keys: string[];
  handler: OperationHandler;
}

/** Compile an SDK path template (`/things/{thingName}`, `{key+}` greedy) to a regex. */
export function compilePath(path: string): { regex: RegExp; keys: string[] } {
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

export class Router {
  private readonly routes: Route[] = [];

  /** Serve operation `op` on `method` + `path` (the SDK's path template). */
  add(op: string, method: string, path: string, handler: OperationHandler): void {
    this.routes.push({ op, method, ...compilePath(path), handler });
  }

  /** The route serving this request, with its decoded path parameters. */
  match(
    method: string,
    path: string,
  ): { op: string; params: Record<string, string>; handler: OperationHandler } | undefined {
    for (const r of this.routes) {
      if (r.method !== method) continue;
      const m = r.regex.exec(path);
      if (!m) continue;
      const params: Record<string, string> = {};
      r.keys.forEach((k, i) => (params[k] = decodeURIComponent(m[i + 1])));
      return { op: r.op, params, handler: r.handler };
    }
    return undefined;
  }

  operations(): string[] {
    return this.routes.map((r) => r.op);
  }
}
