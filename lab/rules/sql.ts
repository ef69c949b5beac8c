/**
 * Parser for the AWS IoT SQL subset the lab supports (see docs: AWS IoT SQL reference).
 *
 *   [SET @var = <expression>[, …]] SELECT <projection>[, …] [FROM '<topic filter>'] [WHERE <condition>]
 *
 * Projections: `*`, expressions with optional `AS alias`. Expressions: string ('…', '' escapes),
 * number and boolean literals, NULL, field paths (`a.b.c`, `a[0]`), the functions in
 * {@link SQL_FUNCTIONS} (a field path may follow a call: `get_registry_data(…).attributes.lot`),
 * comparisons (=, <>, !=, <, >, <=, >=), AND, OR, NOT, parentheses, and arithmetic
 * (+, -, *, /, %). A double-quoted token is a string literal when it is a whole function
 * argument (`parse_time("yyyy/MM/dd", timestamp())`, as in the AWS examples), a quoted field name
 * elsewhere. SET defines variables (`@name`, immutable, each assigned once, evaluated in order
 * before WHERE and SELECT) usable in SELECT, WHERE, later assignments and the rule's substitution
 * templates, with JSON extensions (`@registry.attributes.lot`). Anything else is a
 * {@link SqlError} naming the position, so a rule the lab cannot run fails at start.
 */

export class SqlError extends Error {}

export type Expr =
  | { kind: 'lit'; value: string | number | boolean | null }
  | { kind: 'path'; path: (string | number)[] }
  | { kind: 'call'; name: string; args: Expr[] }
  /** A field path into the value of an expression (e.g. a function result). */
  | { kind: 'member'; expr: Expr; path: (string | number)[] }
  /** A SET variable (`@name`, without the `@`). */
  | { kind: 'var'; name: string }
  | { kind: 'bin'; op: BinOp; left: Expr; right: Expr }
  | { kind: 'not'; expr: Expr }
  | { kind: 'neg'; expr: Expr };

export type BinOp = 'AND' | 'OR' | '=' | '<>' | '<' | '>' | '<=' | '>=' | '+' | '-' | '*' | '/' | '%';

export type Projection = { kind: 'star' } | { kind: 'expr'; expr: Expr; name: string };

export interface SqlStatement {
  /** SET assignments, in order. */
  set?: { name: string; expr: Expr }[];
  select: Projection[];
  /** Topic filter of the FROM clause (undefined when omitted, e.g. Basic Ingest-only rules). */
  from?: string;
  where?: Expr;
}

/** Functions the lab implements, with their allowed argument counts. */
export const SQL_FUNCTIONS: Record<string, number[]> = {
  topic: [0, 1],
  timestamp: [0],
  clientid: [0],
  principal: [0],
  newuuid: [0],
  accountid: [0],
  traceid: [0],
  lower: [1],
  upper: [1],
  get_or_default: [2],
  parse_time: [2, 3],
  get_registry_data: [3],
  /** `isUndefined(x)`: true when x is Undefined (a missing field), else false. */
  isundefined: [1],
};

/** The registry APIs get_registry_data() may call (AWS IoT SQL reference). */
export const REGISTRY_DATA_APIS = ['DescribeThing', 'ListThingGroupsForThing'] as const;

/** Pattern letters parse_time() supports (Joda-Time subset); other letters must be quoted. */
const PARSE_TIME_LETTERS = /^(y{2}|y{4}|M{1,2}|d{1,2}|H{1,2}|m{1,2}|s{1,2}|S{1,3})$/;

/**
 * The tokens of a parse_time() pattern: runs of one pattern letter, quoted or other literal text.
 * Throws SqlError for a letter the lab does not format.
 */
export function timePatternTokens(pattern: string): { field?: string; text?: string }[] {
  const out: { field?: string; text?: string }[] = [];
  let i = 0;
  while (i < pattern.length) {
    const c = pattern[i];
    if (c === "'") {
      if (pattern[i + 1] === "'") {
        out.push({ text: "'" });
        i += 2;
        continue;
      }
      const end = pattern.indexOf("'", i + 1);
      if (end < 0) throw new SqlError(`parse_time pattern ${pattern}: unterminated quoted text`);
      out.push({ text: pattern.slice(i + 1, end) });
      i = end + 1;
      continue;
    }
    if (/[A-Za-z]/.test(c)) {
      let j = i;
      while (pattern[j] === c) j++;
      const run = pattern.slice(i, j);
      if (!PARSE_TIME_LETTERS.test(run))
        throw new SqlError(
          `parse_time pattern letter '${run}' is not supported by the lab (supported: yyyy yy MM M dd d HH H mm m ss s SSS, quoted text)`,
        );
      out.push({ field: run });
      i = j;
      continue;
    }
    out.push({ text: c });
    i++;
  }
  return out;
}

/** Load-time checks of literal arguments (pattern, time zone, registry API). */
function checkCall(name: string, args: Expr[]): void {
  const lit = (i: number): unknown =>
    args[i]?.kind === 'lit' ? (args[i] as { value: unknown }).value : undefined;
  if (name === 'parse_time') {
    if (typeof lit(0) === 'string') timePatternTokens(lit(0) as string);
    const tz = lit(2);
    if (typeof tz === 'string') {
      try {
        new Intl.DateTimeFormat('en-US', { timeZone: tz });
      } catch {
        throw new SqlError(`parse_time: unknown time zone '${tz}'`);
      }
    }
  }
  if (name === 'get_registry_data') {
    const api = lit(0);
    if (typeof api === 'string' && !(REGISTRY_DATA_APIS as readonly string[]).includes(api))
      throw new SqlError(
        `get_registry_data: registry API '${api}' is not supported (supported: ${REGISTRY_DATA_APIS.join(', ')})`,
      );
  }
}

type Tok =
  | { t: 'kw'; v: string; pos: number }
  | { t: 'id'; v: string; pos: number }
  | { t: 'str'; v: string; pos: number }
  /** A double-quoted token: a string as a whole function argument, else a field name. */
  | { t: 'dq'; v: string; pos: number }
  /** A SET variable reference, `@name` (v without the `@`). */
  | { t: 'var'; v: string; pos: number }
  | { t: 'num'; v: number; pos: number }
  | { t: 'op'; v: string; pos: number }
  | { t: 'eof'; pos: number };

const KEYWORDS = new Set(['SELECT', 'FROM', 'WHERE', 'AS', 'AND', 'OR', 'NOT', 'TRUE', 'FALSE', 'NULL']);

export function tokenize(src: string): Tok[] {
  const out: Tok[] = [];
  let i = 0;
  while (i < src.length) {
    const c = src[i];
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    const pos = i;
    if (c === "'") {
      let s = '';
      i++;
      for (;;) {
        if (i >= src.length) throw new SqlError(`unterminated string literal at ${pos}`);
        if (src[i] === "'") {
          if (src[i + 1] === "'") {
            s += "'";
            i += 2;
            continue;
          }
          i++;
          break;
        }
        s += src[i++];
      }
      out.push({ t: 'str', v: s, pos });
      continue;
    }
    if (c === '"' || c === '`') {
      const end = src.indexOf(c, i + 1);
      if (end < 0) throw new SqlError(`unterminated quoted identifier at ${pos}`);
      out.push({ t: c === '"' ? 'dq' : 'id', v: src.slice(i + 1, end), pos });
      i = end + 1;
      continue;
    }
    if (/[0-9]/.test(c) || (c === '.' && /[0-9]/.test(src[i + 1] ?? ''))) {
      const m = /^[0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?/.exec(src.slice(i)) as RegExpExecArray;
      out.push({ t: 'num', v: Number(m[0]), pos });
      i += m[0].length;
      continue;
    }
    if (c === '@') {
      const name = /^@([A-Za-z0-9_]{1,64})(?![A-Za-z0-9_])/.exec(src.slice(i));
      if (!name)
        throw new SqlError(`bad variable name at ${pos} (@ then up to 64 letters, digits, underscores)`);
      out.push({ t: 'var', v: name[1], pos });
      i += name[0].length;
      continue;
    }
    if (/[A-Za-z_$]/.test(c)) {
      const word = (/^[A-Za-z_$][A-Za-z0-9_$]*/.exec(src.slice(i)) as RegExpExecArray)[0];
      const upper = word.toUpperCase();
      if (KEYWORDS.has(upper)) out.push({ t: 'kw', v: upper, pos });
      else out.push({ t: 'id', v: word, pos });
      i += word.length;
      continue;
    }
    const two = src.slice(i, i + 2);
    if (['<>', '!=', '<=', '>='].includes(two)) {
      out.push({ t: 'op', v: two === '!=' ? '<>' : two, pos });
      i += 2;
      continue;
    }
    if ('=<>(),.*+-/%[]'.includes(c)) {
      out.push({ t: 'op', v: c, pos });
      i++;
      continue;
    }
    throw new SqlError(`unexpected character '${c}' at ${pos}`);
  }
  out.push({ t: 'eof', pos: src.length });
  return out;
}

class Parser {
  private i = 0;
  constructor(private readonly toks: Tok[]) {}

  private peek(): Tok {
    return this.toks[this.i];
  }
  private next(): Tok {
    return this.toks[this.i++];
  }
  private isOp(v: string): boolean {
    const t = this.peek();
    return t.t === 'op' && t.v === v;
  }
  private isKw(v: string): boolean {
    const t = this.peek();
    return t.t === 'kw' && t.v === v;
  }
  private expectOp(v: string): void {
    const t = this.next();
    if (t.t !== 'op' || t.v !== v) throw new SqlError(`expected '${v}' at ${t.pos}`);
  }
  private expectKw(v: string): void {
    const t = this.next();
    if (t.t !== 'kw' || t.v !== v) throw new SqlError(`expected ${v} at ${t.pos}`);
  }

  /** `SET @a = expr[, @b = expr]`, once, before SELECT; each variable assigned once. */
  private setClause(): { name: string; expr: Expr }[] | undefined {
    const t = this.peek();
    if (!(t.t === 'id' && t.v.toUpperCase() === 'SET')) return undefined;
    this.next();
    const out: { name: string; expr: Expr }[] = [];
    do {
      const v = this.next();
      if (v.t !== 'var') throw new SqlError(`expected a variable (@name) at ${v.pos}`);
      if (out.some((a) => a.name === v.v)) throw new SqlError(`variable @${v.v} is assigned twice`);
      this.expectOp('=');
      const expr = this.expr();
      const unknown = variablesIn(expr).filter((n) => !out.some((a) => a.name === n));
      if (unknown.length) throw new SqlError(`variable @${unknown[0]} is used before it is set`);
      out.push({ name: v.v, expr });
    } while (this.isOp(',') && this.next());
    return out;
  }

  statement(): SqlStatement {
    const set = this.setClause();
    this.expectKw('SELECT');
    const select: Projection[] = [];
    let n = 0;
    do {
      n++;
      if (this.isOp('*')) {
        this.next();
        select.push({ kind: 'star' });
        continue;
      }
      const expr = this.expr();
      let name: string;
      if (this.isKw('AS')) {
        this.next();
        const t = this.next();
        if (t.t !== 'id' && t.t !== 'kw') throw new SqlError(`expected an alias after AS at ${t.pos}`);
        name = t.v;
      } else name = defaultName(expr, n);
      select.push({ kind: 'expr', expr, name });
    } while (this.isOp(',') && this.next());
    let from: string | undefined;
    if (this.isKw('FROM')) {
      this.next();
      const t = this.next();
      if (t.t !== 'str') throw new SqlError(`FROM expects a quoted topic filter at ${t.pos}`);
      from = t.v;
    }
    let where: Expr | undefined;
    if (this.isKw('WHERE')) {
      this.next();
      where = this.expr();
    }
    const t = this.peek();
    if (t.t !== 'eof')
      throw new SqlError(`unsupported SQL from position ${t.pos} ('${'v' in t ? t.v : ''}')`);
    const defined = new Set((set ?? []).map((a) => a.name));
    const used = [
      ...select.flatMap((p) => (p.kind === 'expr' ? variablesIn(p.expr) : [])),
      ...(where ? variablesIn(where) : []),
    ];
    const unknown = used.find((n) => !defined.has(n));
    if (unknown) throw new SqlError(`variable @${unknown} is not set (SET @${unknown} = … before SELECT)`);
    return { ...(set ? { set } : {}), select, from, where };
  }

  expr(): Expr {
    return this.or();
  }
  end(): void {
    const t = this.peek();
    if (t.t !== 'eof') throw new SqlError(`unexpected '${'v' in t ? t.v : ''}' at ${t.pos}`);
  }
  private or(): Expr {
    let left = this.and();
    while (this.isKw('OR')) {
      this.next();
      left = { kind: 'bin', op: 'OR', left, right: this.and() };
    }
    return left;
  }
  private and(): Expr {
    let left = this.not();
    while (this.isKw('AND')) {
      this.next();
      left = { kind: 'bin', op: 'AND', left, right: this.not() };
    }
    return left;
  }
  private not(): Expr {
    if (this.isKw('NOT')) {
      this.next();
      return { kind: 'not', expr: this.not() };
    }
    return this.comparison();
  }
  private comparison(): Expr {
    const left = this.additive();
    const t = this.peek();
    if (t.t === 'op' && ['=', '<>', '<', '>', '<=', '>='].includes(t.v)) {
      this.next();
      return { kind: 'bin', op: t.v as BinOp, left, right: this.additive() };
    }
    return left;
  }
  private additive(): Expr {
    let left = this.multiplicative();
    for (;;) {
      const t = this.peek();
      if (t.t === 'op' && (t.v === '+' || t.v === '-')) {
        this.next();
        left = { kind: 'bin', op: t.v, left, right: this.multiplicative() };
      } else return left;
    }
  }
  private multiplicative(): Expr {
    let left = this.unary();
    for (;;) {
      const t = this.peek();
      if (t.t === 'op' && (t.v === '*' || t.v === '/' || t.v === '%')) {
        this.next();
        left = { kind: 'bin', op: t.v, left, right: this.unary() };
      } else return left;
    }
  }
  private unary(): Expr {
    if (this.isOp('-')) {
      this.next();
      return { kind: 'neg', expr: this.unary() };
    }
    return this.primary();
  }
  /** One function argument: `*` (the whole message), a double-quoted string, or an expression. */
  private argument(): Expr {
    // `*` as an argument is the whole message, e.g. encode(*, 'base64').
    if (this.isOp('*')) {
      this.next();
      return { kind: 'path', path: [] };
    }
    const t = this.peek();
    const after = this.toks[this.i + 1];
    if (t.t === 'dq' && after?.t === 'op' && (after.v === ',' || after.v === ')')) {
      this.next();
      return { kind: 'lit', value: t.v };
    }
    return this.expr();
  }

  /** Field path segments after an identifier or a call: `.name`, `[n]`. */
  private pathTail(path: (string | number)[]): (string | number)[] {
    for (;;) {
      if (this.isOp('.')) {
        this.next();
        const f = this.next();
        if (f.t !== 'id' && f.t !== 'kw' && f.t !== 'dq')
          throw new SqlError(`expected a field name after '.' at ${f.pos}`);
        path.push(f.v);
      } else if (this.isOp('[')) {
        this.next();
        const n = this.next();
        if (n.t !== 'num' || !Number.isInteger(n.v))
          throw new SqlError(`expected an array index at ${n.pos}`);
        this.expectOp(']');
        path.push(n.v);
      } else return path;
    }
  }

  private primary(): Expr {
    const t = this.next();
    if (t.t === 'str') return { kind: 'lit', value: t.v };
    if (t.t === 'num') return { kind: 'lit', value: t.v };
    if (t.t === 'kw' && (t.v === 'TRUE' || t.v === 'FALSE')) return { kind: 'lit', value: t.v === 'TRUE' };
    if (t.t === 'kw' && t.v === 'NULL') return { kind: 'lit', value: null };
    if (t.t === 'op' && t.v === '(') {
      const e = this.expr();
      this.expectOp(')');
      return e;
    }
    if (t.t === 'id') {
      if (this.isOp('(')) {
        this.next();
        const name = t.v.toLowerCase();
        const args: Expr[] = [];
        if (!this.isOp(')')) {
          do args.push(this.argument());
          while (this.isOp(',') && this.next());
        }
        this.expectOp(')');
        const arity = SQL_FUNCTIONS[name];
        if (!arity)
          throw new SqlError(
            `function ${t.v}() is not supported by the lab (supported: ${Object.keys(SQL_FUNCTIONS).join(', ')})`,
          );
        if (!arity.includes(args.length))
          throw new SqlError(`${name}() takes ${arity.join(' or ')} argument(s), got ${args.length}`);
        checkCall(name, args);
        const call: Expr = { kind: 'call', name, args };
        const tail = this.pathTail([]);
        return tail.length ? { kind: 'member', expr: call, path: tail } : call;
      }
      return { kind: 'path', path: this.pathTail([t.v]) };
    }
    if (t.t === 'dq') return { kind: 'path', path: this.pathTail([t.v]) };
    if (t.t === 'var') {
      const tail = this.pathTail([]);
      const v: Expr = { kind: 'var', name: t.v };
      return tail.length ? { kind: 'member', expr: v, path: tail } : v;
    }
    throw new SqlError(`unexpected ${t.t === 'eof' ? 'end of statement' : `'${t.v}'`} at ${t.pos}`);
  }
}

/** The SET variables an expression reads. */
export function variablesIn(expr: Expr): string[] {
  switch (expr.kind) {
    case 'var':
      return [expr.name];
    case 'member':
      return variablesIn(expr.expr);
    case 'call':
      return expr.args.flatMap(variablesIn);
    case 'bin':
      return [...variablesIn(expr.left), ...variablesIn(expr.right)];
    case 'not':
    case 'neg':
      return variablesIn(expr.expr);
    default:
      return [];
  }
}

function defaultName(expr: Expr, index: number): string {
  if (expr.kind === 'path' || expr.kind === 'member') {
    const last = [...expr.path].reverse().find((p) => typeof p === 'string');
    if (last === undefined && expr.kind === 'member' && expr.expr.kind === 'var') return expr.expr.name;
    return String(last ?? `_${index}`);
  }
  if (expr.kind === 'var') return expr.name;
  if (expr.kind === 'call') return expr.name;
  return `_${index}`;
}

export function parseSql(sql: string): SqlStatement {
  return new Parser(tokenize(sql)).statement();
}

/** Parse a standalone expression (used by substitution templates). */
export function parseExpression(src: string): Expr {
  const p = new Parser(tokenize(src));
  const e = p.expr();
  p.end();
  return e;
}
