/** Request and response field helpers shared by the API families. */
import { invalidRequest } from '../errors';

/** AWS JSON timestamps are epoch seconds. */
export const epoch = (d: Date | undefined): number | undefined => (d ? d.getTime() / 1000 : undefined);

/** One page of `items`: the token is the start index, `size` the page size (default 250). */
export function page<T>(
  items: T[],
  token: string | null,
  size: string | null,
): { items: T[]; next?: string } {
  const start = token ? Number(token) || 0 : 0;
  const n = size ? Math.max(1, Number(size) || 1) : 250;
  const slice = items.slice(start, start + n);
  return { items: slice, next: start + n < items.length ? String(start + n) : undefined };
}

export function str(body: Record<string, unknown>, key: string): string | undefined {
  const v = body[key];
  return typeof v === 'string' ? v : undefined;
}

export function requireStr(value: string | undefined | null, name: string): string {
  if (!value) throw invalidRequest(`${name} is required`);
  return value;
}
