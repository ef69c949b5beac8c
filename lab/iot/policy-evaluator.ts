/**
 * AWS IoT Core policy evaluation, as a pure function (no I/O, no registry access).
 *
 * Semantics (AWS IoT Developer Guide, "AWS IoT Core policies"):
 * - every policy attached to the certificate is evaluated; an explicit Deny wins over any
 *   Allow; with no matching Allow the request is denied (implicit deny);
 * - Action matches case-insensitively with `*` / `?` wildcards (`iot:*`, `*`, `iot:Pub*`);
 * - Resource ARNs `arn:aws:iot:<region>:<account>:client/…|topic/…|topicfilter/…` match with
 *   `*` (any run of characters, `/` included) and `?` (one character). MQTT wildcards `+` and
 *   `#` are literal characters in policies: a subscription filter is checked as the
 *   `topicfilter/<filter>` resource, compared literally;
 * - policy variables `${iot:ClientId}`, `${iot:Certificate.Id}`,
 *   `${iot:Connection.Thing.ThingName}`, `${iot:Connection.Thing.ThingTypeName}`,
 *   `${iot:Connection.Thing.Attributes[<name>]}`, `${iot:Connection.Thing.IsAttached}` and the
 *   escapes `${*}`, `${?}`, `${$}`. Substituted values are literal (never wildcards). Thing
 *   variables are defined only when the client id is the name of a thing attached to the
 *   certificate; a statement whose resource uses an undefined variable does not match;
 * - Condition operators: Bool, StringEquals, StringNotEquals, StringLike, StringNotLike,
 *   ForAllValues:StringEquals / ForAnyValue:StringEquals / …:StringLike on multi-valued keys
 *   (`iot:ConnectAttributes`: `PersistentConnect`, `LastWill`). Unknown operators make the
 *   condition fail (and say so in the decision).
 */

/** MQTT actions; `iot:RetainPublish` is checked (on the topic ARN) in addition to `iot:Publish` for a RETAIN publish. */
export type IotAction = 'iot:Connect' | 'iot:Publish' | 'iot:RetainPublish' | 'iot:Subscribe' | 'iot:Receive';

export interface PolicyDocumentInput {
  name: string;
  document: unknown;
}

export interface PolicyContext {
  region: string;
  accountId: string;
  clientId: string;
  certificateId: string;
  /** Set only when the client id names a thing attached to the certificate. */
  thing?: { thingName: string; thingTypeName?: string; attributes?: Record<string, string> };
  /** Connect only: `PersistentConnect` (clean session false), `LastWill` (will present). */
  connectAttributes?: string[];
}

export interface PolicyRequest {
  action: IotAction;
  /** Resource ARN, e.g. `arn:aws:iot:us-east-1:123456789012:topic/dt/fleet/x/telemetry`. */
  resource: string;
}

export type DecisionReason =
  'ALLOWED' | 'EXPLICIT_DENY' | 'NO_MATCHING_ALLOW' | 'CONDITION_FAILED' | 'NO_POLICY';

export interface PolicyDecision {
  allowed: boolean;
  reason: DecisionReason;
  action: IotAction;
  resource: string;
  /** `policyName#statementIndex` of the deciding statement, when one decided. */
  statement?: string;
  /** Human-readable explanation, for the denial log. */
  detail: string;
}

interface Statement {
  Effect?: unknown;
  Action?: unknown;
  NotAction?: unknown;
  Resource?: unknown;
  NotResource?: unknown;
  Condition?: unknown;
}

const asList = (v: unknown): string[] =>
  v === undefined ? [] : (Array.isArray(v) ? v : [v]).filter((x): x is string => typeof x === 'string');

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** A glob where `*` / `?` are wildcards; nothing else is special. */
export function globToRegex(glob: string, caseInsensitive = false): RegExp {
  let src = '';
  for (const ch of glob) src += ch === '*' ? '.*' : ch === '?' ? '.' : escapeRegex(ch);
  return new RegExp(`^${src}$`, caseInsensitive ? 'is' : 's');
}

/** Value of a policy variable, or undefined when it is not defined for this connection. */
export function variableValue(name: string, ctx: PolicyContext): string | undefined {
  switch (name) {
    case '*':
    case '?':
    case '$':
      return name;
    case 'iot:ClientId':
      return ctx.clientId;
    case 'iot:Certificate.Id':
      return ctx.certificateId;
    case 'iot:Connection.Thing.ThingName':
      return ctx.thing?.thingName;
    case 'iot:Connection.Thing.ThingTypeName':
      return ctx.thing?.thingTypeName;
    case 'iot:Connection.Thing.IsAttached':
      return ctx.thing ? 'true' : 'false';
  }
  const attr = /^iot:Connection\.Thing\.Attributes\[(.+)\]$/.exec(name);
  if (attr) return ctx.thing?.attributes?.[attr[1]];
  return undefined;
}

/**
 * Compile a policy resource pattern with variables into a regex. Variables become literal text;
 * `*`/`?` outside variables are wildcards. Returns `{ undefinedVariable }` when a variable is not
 * defined for this connection (the statement then cannot match).
 */
export function compileResource(pattern: string, ctx: PolicyContext): RegExp | { undefinedVariable: string } {
  let src = '';
  let i = 0;
  while (i < pattern.length) {
    if (pattern.startsWith('${', i)) {
      const end = pattern.indexOf('}', i);
      if (end > 0) {
        const name = pattern.slice(i + 2, end);
        const value = variableValue(name, ctx);
        if (value === undefined) return { undefinedVariable: name };
        src += escapeRegex(value);
        i = end + 1;
        continue;
      }
    }
    const ch = pattern[i];
    src += ch === '*' ? '.*' : ch === '?' ? '.' : escapeRegex(ch);
    i += 1;
  }
  return new RegExp(`^${src}$`, 's');
}

function conditionKeyValues(key: string, ctx: PolicyContext): string[] | undefined {
  if (key === 'iot:ConnectAttributes') return ctx.connectAttributes ?? [];
  const v = variableValue(key, ctx);
  return v === undefined ? undefined : [v];
}

/** Substitute variables inside condition values (literal substitution). */
function expandValue(v: string, ctx: PolicyContext): string | undefined {
  let out = '';
  let i = 0;
  while (i < v.length) {
    if (v.startsWith('${', i)) {
      const end = v.indexOf('}', i);
      if (end > 0) {
        const val = variableValue(v.slice(i + 2, end), ctx);
        if (val === undefined) return undefined;
        out += val;
        i = end + 1;
        continue;
      }
    }
    out += v[i];
    i += 1;
  }
  return out;
}

/** Evaluate a Condition block; returns undefined when satisfied, else a reason string. */
export function evaluateCondition(condition: unknown, ctx: PolicyContext): string | undefined {
  if (condition === undefined || condition === null) return undefined;
  if (typeof condition !== 'object') return 'malformed Condition block';
  for (const [rawOp, block] of Object.entries(condition as Record<string, unknown>)) {
    if (!block || typeof block !== 'object') return `malformed Condition ${rawOp}`;
    let op = rawOp;
    let setMode: 'all' | 'any' | undefined;
    if (op.startsWith('ForAllValues:')) {
      setMode = 'all';
      op = op.slice('ForAllValues:'.length);
    } else if (op.startsWith('ForAnyValue:')) {
      setMode = 'any';
      op = op.slice('ForAnyValue:'.length);
    }
    const ifExists = op.endsWith('IfExists');
    if (ifExists) op = op.slice(0, -'IfExists'.length);
    for (const [key, rawExpected] of Object.entries(block as Record<string, unknown>)) {
      const expected = asList(Array.isArray(rawExpected) ? rawExpected : [String(rawExpected)])
        .map((e) => expandValue(e, ctx))
        .filter((e): e is string => e !== undefined);
      const actual = conditionKeyValues(key, ctx);
      if (actual === undefined) {
        if (ifExists) continue;
        return `${rawOp} ${key}: key not present for this connection`;
      }
      let test: (a: string) => boolean;
      let negate = false;
      switch (op) {
        case 'Bool':
          test = (a) => expected.some((e) => e.toLowerCase() === a.toLowerCase());
          break;
        case 'StringEquals':
          test = (a) => expected.includes(a);
          break;
        case 'StringEqualsIgnoreCase':
          test = (a) => expected.some((e) => e.toLowerCase() === a.toLowerCase());
          break;
        case 'StringNotEquals':
          test = (a) => expected.includes(a);
          negate = true;
          break;
        case 'StringLike':
          test = (a) => expected.some((e) => globToRegex(e).test(a));
          break;
        case 'StringNotLike':
          test = (a) => expected.some((e) => globToRegex(e).test(a));
          negate = true;
          break;
        default:
          return `unsupported condition operator ${rawOp} (lab)`;
      }
      let ok: boolean;
      if (setMode === 'all') ok = actual.every((a) => test(a) !== negate);
      else if (setMode === 'any') ok = actual.some((a) => test(a) !== negate);
      else ok = actual.length > 0 && actual.every((a) => test(a) !== negate);
      if (!ok) return `${rawOp} ${key}: [${actual.join(',')}] vs [${expected.join(',')}]`;
    }
  }
  return undefined;
}

function actionMatches(st: Statement, action: IotAction): boolean {
  if (st.Action !== undefined) return asList(st.Action).some((a) => globToRegex(a, true).test(action));
  if (st.NotAction !== undefined) return !asList(st.NotAction).some((a) => globToRegex(a, true).test(action));
  return false;
}

function resourceMatches(
  st: Statement,
  resource: string,
  ctx: PolicyContext,
): { match: boolean; note?: string } {
  const test = (patterns: string[]): { match: boolean; note?: string } => {
    let note: string | undefined;
    for (const p of patterns) {
      const re = compileResource(p, ctx);
      if (re instanceof RegExp) {
        if (re.test(resource)) return { match: true };
      } else {
        note = `policy variable \${${re.undefinedVariable}} is undefined for this connection`;
      }
    }
    return { match: false, note };
  };
  if (st.Resource !== undefined) return test(asList(st.Resource));
  if (st.NotResource !== undefined) {
    const r = test(asList(st.NotResource));
    return { match: !r.match };
  }
  return { match: false };
}

function statementsOf(doc: unknown): Statement[] {
  let d = doc;
  if (typeof d === 'string') {
    try {
      d = JSON.parse(d);
    } catch {
      return [];
    }
  }
  const st = (d as { Statement?: unknown } | null)?.Statement;
  if (!st) return [];
  return (Array.isArray(st) ? st : [st]).filter((s): s is Statement => !!s && typeof s === 'object');
}

export function evaluatePolicies(
  policies: PolicyDocumentInput[],
  request: PolicyRequest,
  ctx: PolicyContext,
): PolicyDecision {
  const base = { action: request.action, resource: request.resource };
  if (policies.length === 0) {
    return {
      ...base,
      allowed: false,
      reason: 'NO_POLICY',
      detail: 'no policy is attached to the certificate',
    };
  }
  let allow: string | undefined;
  let conditionFailure: { statement: string; why: string } | undefined;
  const notes = new Set<string>();
  for (const p of policies) {
    const statements = statementsOf(p.document);
    for (let idx = 0; idx < statements.length; idx++) {
      const st = statements[idx];
      const id = `${p.name}#${idx}`;
      if (!actionMatches(st, request.action)) continue;
      const rm = resourceMatches(st, request.resource, ctx);
      if (rm.note) notes.add(rm.note);
      if (!rm.match) continue;
      const condFail = evaluateCondition(st.Condition, ctx);
      const effect = String(st.Effect);
      if (condFail) {
        if (effect === 'Allow' && !conditionFailure) conditionFailure = { statement: id, why: condFail };
        continue;
      }
      if (effect === 'Deny') {
        return {
          ...base,
          allowed: false,
          reason: 'EXPLICIT_DENY',
          statement: id,
          detail: `explicitly denied by ${id}`,
        };
      }
      if (effect === 'Allow' && !allow) allow = id;
    }
  }
  return finish();

  function finish(): PolicyDecision {
    if (allow)
      return { ...base, allowed: true, reason: 'ALLOWED', statement: allow, detail: `allowed by ${allow}` };
    if (conditionFailure) {
      return {
        ...base,
        allowed: false,
        reason: 'CONDITION_FAILED',
        statement: conditionFailure.statement,
        detail: `matching Allow ${conditionFailure.statement} has a failing condition: ${conditionFailure.why}`,
      };
    }
    return {
      ...base,
      allowed: false,
      reason: 'NO_MATCHING_ALLOW',
      detail: `no Allow statement matches${notes.size ? ` (${[...notes].join('; ')})` : ''}`,
    };
  }
}

/** Alias of {@link evaluatePolicies}. */
export const evaluate = evaluatePolicies;

/** Resource ARN helpers. */
export const iotArn = {
  client: (region: string, account: string, clientId: string): string =>
    `arn:aws:iot:${region}:${account}:client/${clientId}`,
  topic: (region: string, account: string, topic: string): string =>
    `arn:aws:iot:${region}:${account}:topic/${topic}`,
  topicFilter: (region: string, account: string, filter: string): string =>
    `arn:aws:iot:${region}:${account}:topicfilter/${filter}`,
};
