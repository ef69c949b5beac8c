/**
 * Substitution templates in rule action fields (`${topic(3)}`, `${clientid()}`, `${field}`,
 * `${@variable.field}`), per the AWS IoT docs: each `${expression}` is evaluated against the
 * original message (not the SELECT output, so aliases are not visible), with the rule's SET
 * variables, and replaced by its text.
 */
import { evaluate, type MessageContext } from './evaluate';
import { parseExpression, variablesIn, type Expr } from './sql';

export type CompiledTemplate = ((ctx: MessageContext, doc: unknown) => string) & {
  /** The SET variables the template reads. */
  variables: string[];
};

/** Compile a template; throws SqlError for an unsupported expression. */
export function compileTemplate(template: string): CompiledTemplate {
  const parts: (string | Expr)[] = [];
  let last = 0;
  const re = /\$\{([^}]*)\}/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(template))) {
    parts.push(template.slice(last, m.index));
    parts.push(parseExpression(m[1]));
    last = m.index + m[0].length;
  }
  parts.push(template.slice(last));
  const run = (ctx: MessageContext, doc: unknown): string =>
    parts
      .map((p) => {
        if (typeof p === 'string') return p;
        const v = evaluate(p, { ctx, doc });
        if (v === undefined) return '';
        return typeof v === 'object' ? JSON.stringify(v) : String(v);
      })
      .join('');
  return Object.assign(run, {
    variables: parts.flatMap((p) => (typeof p === 'string' ? [] : variablesIn(p))),
  });
}
