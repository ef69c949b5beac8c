/**
 * Evaluation of parsed rule SQL against one message. Follows AWS IoT SQL semantics for the
 * subset: a missing field is Undefined (omitted from the result), comparisons of mismatched
 * types are Undefined, and a WHERE that is not `true` does not match.
 */
import { randomUUID } from 'node:crypto';
import { timePatternTokens, type Expr, type SqlStatement } from './sql';

/**
 * What get_registry_data() reads: the registry API's answer for one thing (`DescribeThing`:
 * thingName, thingId, thingArn, thingTypeName, attributes, version, defaultClientId;
 * `ListThingGroupsForThing`: { thingGroups: [{ groupName, groupArn }] }), undefined when the
 * thing does not exist.
 */
export type RegistryLookup = (api: string, thingName: string) => unknown;

export interface MessageContext {
  /** Topic the rule sees (Basic Ingest prefix removed). */
  topic: string;
  payload: Buffer;
  clientId?: string;
  principal?: string;
  accountId: string;
  /** Rules-engine receive time, epoch ms. */
  timestamp: number;
  traceId: string;
  /** The IoT registry, for get_registry_data(). */
  registryData?: RegistryLookup;
  /** Values of the rule's SET variables for this message (set by runStatement). */
  vars?: Record<string, unknown>;
}

/** Parsed JSON payload, or undefined when the payload is not JSON. */
export function parsePayload(payload: Buffer): unknown {
  if (payload.length === 0) return undefined;
  try {
    return JSON.parse(payload.toString('utf8'));
  } catch {
    return undefined;
  }
}

export interface EvalScope {
  ctx: MessageContext;
  doc: unknown;
}

function getPath(doc: unknown, path: (string | number)[]): unknown {
  let cur: unknown = doc;
  for (const p of path) {
    if (cur === null || cur === undefined) return undefined;
    if (typeof p === 'number') {
      if (!Array.isArray(cur)) return undefined;
      cur = cur[p];
    } else {
      if (typeof cur !== 'object' || Array.isArray(cur)) return undefined;
      cur = (cur as Record<string, unknown>)[p];
    }
  }
  return cur;
}

const formatters = new Map<string, Intl.DateTimeFormat>();

/** Calendar fields of `epochMs` in `timeZone` (UTC fast path; other zones through Intl). */
function calendar(
  epochMs: number,
  timeZone: string,
): Record<'y' | 'M' | 'd' | 'H' | 'm' | 's' | 'S', number> {
  const d = new Date(epochMs);
  const S = ((epochMs % 1000) + 1000) % 1000;
  if (timeZone === 'UTC' || timeZone === 'Etc/UTC' || timeZone === 'GMT')
    return {
      y: d.getUTCFullYear(),
      M: d.getUTCMonth() + 1,
      d: d.getUTCDate(),
      H: d.getUTCHours(),
      m: d.getUTCMinutes(),
      s: d.getUTCSeconds(),
      S,
    };
  let f = formatters.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    formatters.set(timeZone, f);
  }
  const parts = Object.fromEntries(f.formatToParts(d).map((p) => [p.type, Number(p.value)]));
  return { y: parts.year, M: parts.month, d: parts.day, H: parts.hour, m: parts.minute, s: parts.second, S };
}

/**
 * parse_time(pattern, epochMs[, timeZone]): the time formatted with a Joda-Time pattern (the
 * subset of ../rules/sql.ts timePatternTokens), in UTC unless a zone is given.
 */
export function formatTime(pattern: string, epochMs: number, timeZone = 'UTC'): string {
  const c = calendar(epochMs, timeZone);
  const pad = (n: number, w: number): string => String(n).padStart(w, '0');
  return timePatternTokens(pattern)
    .map((t) => {
      if (t.text !== undefined) return t.text;
      const f = t.field as string;
      switch (f[0]) {
        case 'y':
          return f.length === 2 ? pad(c.y % 100, 2) : pad(c.y, 4);
        case 'S':
          return pad(c.S, 3).slice(0, f.length);
        default:
          return pad(c[f[0] as 'M' | 'd' | 'H' | 'm' | 's'], f.length);
      }
    })
    .join('');
}

function compare(op: string, a: unknown, b: unknown): boolean | undefined {
  if (a === undefined || b === undefined) return undefined;
  if (op === '=' || op === '<>') {
    if (typeof a !== typeof b || (a === null) !== (b === null)) return op === '<>' ? undefined : undefined;
    const eq = typeof a === 'object' ? JSON.stringify(a) === JSON.stringify(b) : a === b;
    return op === '=' ? eq : !eq;
  }
  if (!((typeof a === 'number' && typeof b === 'number') || (typeof a === 'string' && typeof b === 'string')))
    return undefined;
  switch (op) {
    case '<':
      return a < b;
    case '>':
      return a > b;
    case '<=':
      return a <= b;
    default:
      return a >= b;
  }
}

function arithmetic(op: string, a: unknown, b: unknown): unknown {
  if (op === '+' && typeof a === 'string' && typeof b === 'string') return a + b;
  if (typeof a !== 'number' || typeof b !== 'number') return undefined;
  switch (op) {
    case '+':
      return a + b;
    case '-':
      return a - b;
    case '*':
      return a * b;
    case '/':
      return b === 0 ? undefined : a / b;
    default:
      return b === 0 ? undefined : a % b;
  }
}

function call(name: string, args: unknown[], scope: EvalScope, raw: Expr[]): unknown {
  const { ctx } = scope;
  switch (name) {
    case 'topic': {
      if (args.length === 0) return ctx.topic;
      const n = args[0];
      if (typeof n !== 'number' || !Number.isInteger(n) || n < 1) return undefined;
      return ctx.topic.split('/')[n - 1];
    }
    case 'timestamp':
      return ctx.timestamp;
    case 'clientid':
      return ctx.clientId ?? 'n/a';
    case 'principal':
      return ctx.principal;
    case 'newuuid':
      return randomUUID();
    case 'accountid':
      return ctx.accountId;
    case 'traceid':
      return ctx.traceId;
    case 'lower':
      return typeof args[0] === 'string' ? args[0].toLowerCase() : undefined;
    case 'upper':
      return typeof args[0] === 'string' ? args[0].toUpperCase() : undefined;
    case 'get_or_default':
      return args[0] === undefined ? evaluate(raw[1], scope) : args[0];
    case 'parse_time': {
      const [pattern, epoch, zone] = args;
      if (typeof pattern !== 'string' || typeof epoch !== 'number' || !Number.isFinite(epoch))
        return undefined;
      if (zone !== undefined && typeof zone !== 'string') return undefined;
      return formatTime(pattern, Math.trunc(epoch), zone);
    }
    case 'isundefined':
      return args[0] === undefined;
    case 'get_registry_data': {
      // The role ARN (third argument) is not checked: the lab does not evaluate IAM.
      const [api, thing] = args;
      if (typeof api !== 'string' || typeof thing !== 'string' || !ctx.registryData) return undefined;
      return ctx.registryData(api, thing);
    }
    default:
      throw new Error(`function ${name}() is not implemented`);
  }
}

export function evaluate(expr: Expr, scope: EvalScope): unknown {
  switch (expr.kind) {
    case 'lit':
      return expr.value;
    case 'path':
      return getPath(scope.doc, expr.path);
    case 'member':
      return getPath(evaluate(expr.expr, scope), expr.path);
    case 'var':
      return scope.ctx.vars?.[expr.name];
    case 'call':
      return call(
        expr.name,
        expr.name === 'get_or_default'
          ? [evaluate(expr.args[0], scope)]
          : expr.args.map((a) => evaluate(a, scope)),
        scope,
        expr.args,
      );
    case 'not': {
      const v = evaluate(expr.expr, scope);
      return typeof v === 'boolean' ? !v : undefined;
    }
    case 'neg': {
      const v = evaluate(expr.expr, scope);
      return typeof v === 'number' ? -v : undefined;
    }
    case 'bin': {
      if (expr.op === 'AND') {
        const a = evaluate(expr.left, scope);
        if (a === false) return false;
        const b = evaluate(expr.right, scope);
        if (b === false) return false;
        return a === true && b === true ? true : undefined;
      }
      if (expr.op === 'OR') {
        const a = evaluate(expr.left, scope);
        if (a === true) return true;
        const b = evaluate(expr.right, scope);
        if (b === true) return true;
        return a === false && b === false ? false : undefined;
      }
      const a = evaluate(expr.left, scope);
      const b = evaluate(expr.right, scope);
      if (['=', '<>', '<', '>', '<=', '>='].includes(expr.op)) return compare(expr.op, a, b);
      return arithmetic(expr.op, a, b);
    }
  }
}

/** Result of running a statement: no match, or the SELECT output (JSON object, or raw bytes for `SELECT *` on a non-JSON payload). */
export type RuleOutput =
  { matched: false } | { matched: true; json?: Record<string, unknown>; binary?: Buffer };

/**
 * Run SET, WHERE then SELECT for one message (the FROM filter is checked by the caller). The SET
 * variables are left on `ctx.vars` for the rule's substitution templates.
 */
export function runStatement(
  stmt: SqlStatement,
  ctx: MessageContext,
  doc: unknown = parsePayload(ctx.payload),
): RuleOutput {
  const scope: EvalScope = { ctx, doc };
  if (stmt.set) {
    // Variables are the rule's for this message: SELECT, WHERE and the action templates read them.
    ctx.vars = {};
    for (const a of stmt.set) ctx.vars[a.name] = evaluate(a.expr, scope);
  }
  if (stmt.where && evaluate(stmt.where, scope) !== true) return { matched: false };
  const onlyStar = stmt.select.length === 1 && stmt.select[0].kind === 'star';
  // `SELECT *` of a payload that is not a JSON object passes the bytes through unchanged.
  if (onlyStar && (doc === undefined || typeof doc !== 'object' || doc === null || Array.isArray(doc))) {
    return { matched: true, binary: ctx.payload };
  }
  const out: Record<string, unknown> = {};
  for (const p of stmt.select) {
    if (p.kind === 'star') {
      if (doc && typeof doc === 'object' && !Array.isArray(doc)) Object.assign(out, doc);
      continue;
    }
    const v = evaluate(p.expr, scope);
    if (v !== undefined) out[p.name] = v;
  }
  return { matched: true, json: out };
}

/** Bytes an action sends for a rule output (JSON text, or the raw payload). */
export function outputBytes(out: { json?: Record<string, unknown>; binary?: Buffer }): Buffer {
  return out.binary ?? Buffer.from(JSON.stringify(out.json ?? {}));
}
