/**
 * Parser for the AWS IoT SQL subset the lab supports (see docs: AWS IoT SQL reference).
 *
 *   SELECT <projection>[, …] [FROM '<topic filter>'] [WHERE <condition>]
 *
 * Projections: `*`, expressions with optional `AS alias`. Expressions: string ('…', '' escapes),
 * number and boolean literals, NULL, field paths (`a.b.c`, `a[0]`), the functions in
 * {@link SQL_FUNCTIONS}, comparisons (=, <>, !=, <, >, <=, >=), AND, OR, NOT, parentheses, and
 * arithmetic (+, -, *, /, %). Anything else is a {@link SqlError} naming the position, so a rule
 * the lab cannot run fails at start.
 */

export class SqlError extends Error {}

export type Expr =
  | { kind: 'lit'; value: string | number | boolean | null }
  | { kind: 'path'; path: (string | number)[] }
  | { kind: 'call'; name: string; args: Expr[] }
  | { kind: 'bin'; op: BinOp; left: Expr; right: Expr }
  | { kind: 'not'; expr: Expr }
  | { kind: 'neg'; expr: Expr };

export type BinOp = 'AND' | 'OR' | '=' | '<>' | '<' | '>' | '<=' | '>=' | '+' | '-' | '*' | '/' | '%';

export type Projection = { kind: 'star' } | { kind: 'expr'; expr: Expr; name: string };

export interface SqlStatement {
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
};

type Tok =
  | { t: 'kw'; v: string; pos: number }
  | { t: 'id'; v: string; pos: number }
  | { t: 'str'; v: string; pos: number }
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
      out.push({ t: 'id', v: src.slice(i + 1, end), pos });
      i = end + 1;
      continue;
    }
    if (/[0-9]/.test(c) || (c === '.' && /[0-9]/.test(src[i + 1] ?? ''))) {
      const m = /^[0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?/.exec(src.slice(i)) as RegExpExecArray;
      out.push({ t: 'num', v: Number(m[0]), pos });
      i += m[0].length;
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

  statement(): SqlStatement {
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
    return { select, from, where };
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
          do {
            // `*` as an argument is the whole message, e.g. encode(*, 'base64').
            if (this.isOp('*')) {
              this.next();
              args.push({ kind: 'path', path: [] });
            } else args.push(this.expr());
          } while (this.isOp(',') && this.next());
        }
        this.expectOp(')');
        const arity = SQL_FUNCTIONS[name];
        if (!arity)
          throw new SqlError(
            `function ${t.v}() is not supported by the lab (supported: ${Object.keys(SQL_FUNCTIONS).join(', ')})`,
          );
        if (!arity.includes(args.length))
          throw new SqlError(`${name}() takes ${arity.join(' or ')} argument(s), got ${args.length}`);
        return { kind: 'call', name, args };
      }
      const path: (string | number)[] = [t.v];
      for (;;) {
        if (this.isOp('.')) {
          this.next();
          const f = this.next();
          if (f.t !== 'id' && f.t !== 'kw') throw new SqlError(`expected a field name after '.' at ${f.pos}`);
          path.push(f.v);
        } else if (this.isOp('[')) {
          this.next();
          const n = this.next();
          if (n.t !== 'num' || !Number.isInteger(n.v))
            throw new SqlError(`expected an array index at ${n.pos}`);
          this.expectOp(']');
          path.push(n.v);
        } else break;
      }
      return { kind: 'path', path };
    }
    throw new SqlError(`unexpected ${t.t === 'eof' ? 'end of statement' : `'${t.v}'`} at ${t.pos}`);
  }
}

function defaultName(expr: Expr, index: number): string {
  if (expr.kind === 'path') {
    const last = [...expr.path].reverse().find((p) => typeof p === 'string');
    return String(last ?? `_${index}`);
  }
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
