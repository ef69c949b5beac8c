/**
 * Typed fleet configuration: defaults, validation and derived settings.
 *
 * `bin/app.ts` is the only caller that reads raw input (CDK context, a JSON overrides file);
 * it passes that input to {@link resolveFleetConfig}, and every construct receives the
 * resulting {@link FleetConfig} (or parts of it) through props.
 *
 * Invalid input fails synth with a {@link FleetConfigError} whose message names the key path,
 * the offending value and the fix, one line per problem. Every problem is reported at once:
 * cross-field rules (ring-share sum, name prefixes, concurrency) run next to the per-key checks.
 *
 * Every default lives here, in {@link FLEET_DEFAULTS}; the constructs take the resolved values.
 */
import { RemovalPolicy } from 'aws-cdk-lib';
import { HOOK_BUDGET_MS } from '../core/env';
import { z } from 'zod';
import {
  DEFAULT_CLAIM_CLIENT_ID_PREFIX,
  DEFAULT_SERIAL_PATTERN,
  DEFAULT_THING_NAME_PREFIX,
  DEFAULT_TOPIC_PREFIX,
  UNLISTED_RETENTION_DAYS,
} from '../core/model';
import type { RingShares } from '../core/rings';

/** Deployment stages. `dev` is disposable; `staging` and `prod` retain data. */
export const STAGES = ['dev', 'staging', 'prod'] as const;
export type Stage = (typeof STAGES)[number];

/** CloudWatch Logs retention periods (days) accepted by AWS. */
export const LOG_RETENTION_DAYS = [
  1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653,
] as const;

/**
 * The one place every configuration default lives. Names that AWS IoT keeps per account and
 * region (template, thing type, thing groups) derive from `thingNamePrefix`: see
 * {@link defaultTemplateName} and {@link defaultThingTypeName}.
 */
export const FLEET_DEFAULTS = {
  stage: 'dev',
  topicPrefix: DEFAULT_TOPIC_PREFIX,
  thingNamePrefix: DEFAULT_THING_NAME_PREFIX,
  serialPattern: DEFAULT_SERIAL_PATTERN,
  rings: { canaryPercent: 2, earlyPercent: 18 },
  /** The default template is `<thingNamePrefix>-default`. */
  templateNameSuffix: 'default',
  /** The default thing type is `<thingNamePrefix>-device`. */
  thingTypeNameSuffix: 'device',
  claimClientIdPrefix: DEFAULT_CLAIM_CLIENT_ID_PREFIX,
  templateDescription: 'Fleet provisioning by claim with an allowlist pre-provisioning hook',
  hook: { memorySize: 1024, budgetMs: 3500, provisionedConcurrency: 0 },
  basicIngestRuleNames: ['fleet_telemetry', 'fleet_health'],
  logRetentionDays: 30,
  trail: { unlistedSerialRetentionDays: 30 },
} as const;

/** Default provisioning template name of a stack: `<thingNamePrefix>-default`. */
export const defaultTemplateName = (thingNamePrefix: string): string =>
  `${thingNamePrefix}-${FLEET_DEFAULTS.templateNameSuffix}`;
/** Default thing type name of a stack: `<thingNamePrefix>-device`. */
export const defaultThingTypeName = (thingNamePrefix: string): string =>
  `${thingNamePrefix}-${FLEET_DEFAULTS.thingTypeNameSuffix}`;

/** Settings of one template's pre-provisioning hook function. */
export interface HookConfig {
  /** Lambda memory (MB). More memory means more CPU and a faster cold start. @default 1024 */
  readonly memorySize: number;
  /**
   * Milliseconds within which the hook answers, audit entry included: the hard limit. Reads, the
   * IoT lookup and the transition get it minus an audit reserve of min(500, budgetMs/4) ms, then
   * the hook fails closed. AWS IoT waits at most 5 s. @default 3500
   */
  readonly budgetMs: number;
  /** Provisioned concurrency for enrollment bursts (0 = none). @default 0 */
  readonly provisionedConcurrency: number;
  /** Reserved concurrency cap. @default - unreserved (account pool) */
  readonly reservedConcurrency?: number;
}

/** One fleet provisioning template (one per product line or device class). */
export interface ProvisioningTemplateConfig {
  /** Fixed template name devices publish to: `<thingNamePrefix>-…`, at most 36 of `A-Z a-z 0-9 _ -`. @default '<thingNamePrefix>-default' */
  readonly name: string;
  /** Thing type assigned to devices enrolled by this template: `<thingNamePrefix>-…`. @default '<thingNamePrefix>-device' */
  readonly thingTypeName: string;
  /** MQTT client id prefix claim-certificate connections must use. @default 'prov-' */
  readonly claimClientIdPrefix: string;
  /** Template description (at most 500 characters). */
  readonly description: string;
  /** Pre-provisioning hook settings. */
  readonly hook: HookConfig;
}

/** Fully resolved fleet configuration. */
export interface FleetConfig {
  readonly stage: Stage;
  /** MQTT topic prefix: `dt/<topicPrefix>/<thing>/…`. @default 'fleet' */
  readonly topicPrefix: string;
  /**
   * Prefix of thing names (`<prefix>-<serial>`) and of every name AWS IoT keeps per account and
   * region: thing groups, thing types and provisioning templates. @default 'fleet'
   */
  readonly thingNamePrefix: string;
  /** Regular expression (source) serial numbers must match. @default DEFAULT_SERIAL_PATTERN */
  readonly serialPattern: string;
  /** Ring shares in percent; broad takes the rest. @default 2 / 18 */
  readonly rings: RingShares;
  readonly provisioning: { readonly templates: readonly ProvisioningTemplateConfig[] };
  /** Topic rule names devices may publish to through Basic Ingest. */
  readonly basicIngestRuleNames: readonly string[];
  /** Retention of the functions' log groups (days). @default 30 */
  readonly logRetentionDays: (typeof LOG_RETENTION_DAYS)[number];
  readonly trail: {
    /**
     * Days the audit trail keeps entries of serials that are not on the manifest (DynamoDB TTL),
     * so a claim holder cannot grow the trail without bound. @default 30
     */
    readonly unlistedSerialRetentionDays: number;
  };
  /** Derived: RETAIN unless the stage is `dev`. */
  readonly removalPolicy: RemovalPolicy;
  /** Derived: true in `prod`. */
  readonly deletionProtection: boolean;
}

/** Raised for invalid configuration. `issues` lists every problem; the message has one per line. */
export class FleetConfigError extends Error {
  constructor(public readonly issues: readonly string[]) {
    super(
      issues.length === 1
        ? `invalid fleet configuration: ${issues[0]}`
        : `invalid fleet configuration (${issues.length} problems):\n  - ${issues.join('\n  - ')}`,
    );
    this.name = 'FleetConfigError';
  }
}

/** Name-safe token used by prefixes: letters, digits, `_` and `-`. */
const PREFIX_RE = /^[A-Za-z0-9_-]{1,32}$/;
const TEMPLATE_NAME_RE = /^[0-9A-Za-z_-]{1,36}$/;
const THING_TYPE_RE = /^[a-zA-Z0-9:_-]{1,128}$/;
const RULE_NAME_RE = /^[a-zA-Z0-9_]{1,128}$/;
const MAX_TEMPLATE_NAME = 36;

const int = (min: number, max: number, fix: string) =>
  z.number({ error: fix }).int({ error: fix }).min(min, { error: fix }).max(max, { error: fix });
const str = (re: RegExp, fix: string) => z.string({ error: fix }).regex(re, { error: fix });

const hookSchema = z
  .strictObject({
    memorySize: int(128, 10240, 'use an integer number of MB between 128 and 10240').default(
      FLEET_DEFAULTS.hook.memorySize,
    ),
    budgetMs: int(
      HOOK_BUDGET_MS.min,
      HOOK_BUDGET_MS.max,
      `use an integer between ${HOOK_BUDGET_MS.min} and ${HOOK_BUDGET_MS.max} (AWS IoT waits at most 5 s for the hook)`,
    ).default(FLEET_DEFAULTS.hook.budgetMs),
    provisionedConcurrency: int(0, 1000, 'use an integer between 0 and 1000 (0 disables it)').default(
      FLEET_DEFAULTS.hook.provisionedConcurrency,
    ),
    reservedConcurrency: int(1, 10000, 'use an integer between 1 and 10000, or omit it').optional(),
  })
  .superRefine((hook, ctx) => {
    const { provisionedConcurrency, reservedConcurrency } = hook;
    if (reservedConcurrency !== undefined && provisionedConcurrency > reservedConcurrency) {
      ctx.addIssue({
        code: 'custom',
        path: ['provisionedConcurrency'],
        input: provisionedConcurrency,
        message: `keep it at most hook.reservedConcurrency (${reservedConcurrency}), or raise reservedConcurrency`,
      });
    }
  });

const templateSchema = z.strictObject({
  name: str(TEMPLATE_NAME_RE, 'use 1-36 characters of A-Z a-z 0-9 _ -'),
  /** Defaults to `<thingNamePrefix>-device` once the prefix is known. */
  thingTypeName: str(THING_TYPE_RE, 'use 1-128 characters of A-Z a-z 0-9 : _ -').optional(),
  claimClientIdPrefix: str(PREFIX_RE, 'use 1-32 characters of A-Z a-z 0-9 _ -').default(
    FLEET_DEFAULTS.claimClientIdPrefix,
  ),
  description: z
    .string({ error: 'use a string of at most 500 characters' })
    .max(500, { error: 'use a string of at most 500 characters' })
    .default(FLEET_DEFAULTS.templateDescription),
  hook: hookSchema.prefault({}),
});

const ringShare = (min: 'gt' | 'min', fix: string) => {
  const n = z.number({ error: fix });
  return (min === 'gt' ? n.gt(0, { error: fix }) : n.min(0, { error: fix })).lt(100, { error: fix });
};

const ringsSchema = z
  .strictObject({
    canaryPercent: ringShare('gt', 'use a number greater than 0 and below 100').default(
      FLEET_DEFAULTS.rings.canaryPercent,
    ),
    earlyPercent: ringShare('min', 'use a number between 0 and 100').default(
      FLEET_DEFAULTS.rings.earlyPercent,
    ),
  })
  .superRefine(({ canaryPercent, earlyPercent }, ctx) => {
    if (canaryPercent + earlyPercent >= 100) {
      ctx.addIssue({
        code: 'custom',
        path: ['earlyPercent'],
        input: earlyPercent,
        message: `keep canaryPercent + earlyPercent (now ${canaryPercent + earlyPercent}) below 100 so the broad ring is not empty`,
      });
    }
  });

const inputSchema = z
  .strictObject({
    stage: z.enum(STAGES, { error: `use one of ${STAGES.join(', ')}` }).default(FLEET_DEFAULTS.stage),
    topicPrefix: str(PREFIX_RE, 'use 1-32 characters of A-Z a-z 0-9 _ - (one MQTT topic level)').default(
      FLEET_DEFAULTS.topicPrefix,
    ),
    thingNamePrefix: str(PREFIX_RE, 'use 1-32 characters of A-Z a-z 0-9 _ -').default(
      FLEET_DEFAULTS.thingNamePrefix,
    ),
    serialPattern: z
      .string({ error: 'use a regular expression source string, e.g. "^[A-Z0-9]{4,32}$"' })
      .min(1, { error: 'use a regular expression source string, e.g. "^[A-Z0-9]{4,32}$"' })
      .refine(compiles, {
        error: 'use a valid JavaScript regular expression source, e.g. "^[A-Z0-9]{4,32}$"',
      })
      .refine((p) => !compiles(p) || (p.startsWith('^') && p.endsWith('$') && !p.endsWith('\\$')), {
        error:
          'anchor the pattern with ^ and $ so it matches the whole serial, e.g. "^[A-Z0-9]{4,32}$" (unanchored, "SN1/x" would match "SN1")',
      })
      .default(FLEET_DEFAULTS.serialPattern),
    rings: ringsSchema.prefault({}),
    provisioning: z
      .strictObject({
        templates: z
          .array(templateSchema, { error: 'use a list of templates, e.g. [{"name":"fleet-sensor"}]' })
          .min(1, { error: 'declare at least one template, or omit the key for the default one' })
          .max(20, { error: 'declare at most 20 templates' })
          .superRefine((templates, ctx) => {
            const seen = new Map<string, number>();
            templates.forEach((t, i) => {
              const first = seen.get(t.name);
              if (first === undefined) seen.set(t.name, i);
              else
                ctx.addIssue({
                  code: 'custom',
                  path: [i, 'name'],
                  input: t.name,
                  message: `give every template a unique name (this one repeats provisioning.templates[${first}].name)`,
                });
            });
          })
          .optional(),
      })
      .prefault({}),
    basicIngestRuleNames: z
      .array(str(RULE_NAME_RE, 'use 1-128 characters of a-z A-Z 0-9 _ (topic rule name)'), {
        error: 'use a list of topic rule names, e.g. ["fleet_telemetry"]',
      })
      .max(10, { error: 'list at most 10 Basic Ingest rules' })
      .superRefine((rules, ctx) => {
        rules.forEach((r, i) => {
          if (rules.indexOf(r) !== i)
            ctx.addIssue({ code: 'custom', path: [i], input: r, message: 'list every rule name once' });
        });
      })
      .default([...FLEET_DEFAULTS.basicIngestRuleNames]),
    logRetentionDays: z
      .number({ error: `use one of ${LOG_RETENTION_DAYS.join(', ')}` })
      .refine((d) => (LOG_RETENTION_DAYS as readonly number[]).includes(d), {
        error: `use one of ${LOG_RETENTION_DAYS.join(', ')}`,
      })
      .default(FLEET_DEFAULTS.logRetentionDays),
    trail: z
      .strictObject({
        unlistedSerialRetentionDays: int(
          UNLISTED_RETENTION_DAYS.min,
          UNLISTED_RETENTION_DAYS.max,
          `use an integer number of days between ${UNLISTED_RETENTION_DAYS.min} and ${UNLISTED_RETENTION_DAYS.max} (DynamoDB TTL of trail entries of serials not on the manifest)`,
        ).default(FLEET_DEFAULTS.trail.unlistedSerialRetentionDays),
      })
      .prefault({}),
  })
  // Rules that tie the templates to the thing-name prefix. They run even when other keys are
  // invalid (so every problem is reported at once), on whatever parts are well-formed.
  .superRefine(checkNamesAgainstPrefix, { when: () => true });

type ParsedInput = z.output<typeof inputSchema>;

function checkNamesAgainstPrefix(cfg: ParsedInput, ctx: z.RefinementCtx): void {
  const prefix = cfg.thingNamePrefix;
  if (typeof prefix !== 'string' || !PREFIX_RE.test(prefix)) return;
  const head = `${prefix}-`;
  const issue = (path: PropertyKey[], input: unknown, message: string) =>
    ctx.addIssue({ code: 'custom', path, input, message });
  const templates = Array.isArray(cfg.provisioning?.templates) ? cfg.provisioning.templates : undefined;
  if (templates === undefined) {
    const name = defaultTemplateName(prefix);
    if (name.length > MAX_TEMPLATE_NAME) {
      issue(
        ['provisioning', 'templates'],
        undefined,
        `the default template name "${name}" is longer than ${MAX_TEMPLATE_NAME} characters; name the template (e.g. [{"name":"${head}a"}]) or shorten thingNamePrefix`,
      );
    }
    return;
  }
  templates.forEach((t: unknown, i) => {
    if (t === null || typeof t !== 'object') return;
    const { name, thingTypeName, claimClientIdPrefix } = t as Record<string, unknown>;
    const at = ['provisioning', 'templates', i];
    if (typeof name === 'string' && TEMPLATE_NAME_RE.test(name) && !name.startsWith(head)) {
      issue(
        [...at, 'name'],
        name,
        `start it with the thing-name prefix "${head}" (e.g. "${`${head}${name}`.slice(0, MAX_TEMPLATE_NAME)}"), so stacks that share an account and region keep their templates apart`,
      );
    }
    if (
      typeof thingTypeName === 'string' &&
      THING_TYPE_RE.test(thingTypeName) &&
      !thingTypeName.startsWith(head)
    ) {
      issue(
        [...at, 'thingTypeName'],
        thingTypeName,
        `start it with the thing-name prefix "${head}" (e.g. "${head}${thingTypeName}"), so stacks that share an account and region keep their thing types apart`,
      );
    }
    // A claim connection must never be able to take a device's client id (= thing name):
    // AWS IoT disconnects the older session on a duplicate client id.
    if (
      typeof claimClientIdPrefix === 'string' &&
      (head.startsWith(claimClientIdPrefix) || claimClientIdPrefix.startsWith(head))
    ) {
      issue(
        [...at, 'claimClientIdPrefix'],
        claimClientIdPrefix,
        `use a prefix that cannot collide with the thing names "${head}…" (neither may start with the other), e.g. "${FLEET_DEFAULTS.claimClientIdPrefix}"`,
      );
    }
  });
}

function compiles(source: string): boolean {
  try {
    new RegExp(source);
    return true;
  } catch {
    return false;
  }
}

/** `provisioning.templates[0].name` from a zod path. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else out += out === '' ? String(seg) : `.${String(seg)}`;
  }
  return out === '' ? '(root)' : out;
}

/**
 * Optimal string alignment distance (Levenshtein plus adjacent transpositions), case-insensitive:
 * how many single-character edits turn `a` into `b`.
 */
export function editDistance(a: string, b: string): number {
  const s = a.toLowerCase();
  const t = b.toLowerCase();
  const d: number[][] = Array.from({ length: s.length + 1 }, (_, i) =>
    Array.from({ length: t.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i <= s.length; i++) {
    for (let j = 1; j <= t.length; j++) {
      const cost = s[i - 1] === t[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && s[i - 1] === t[j - 2] && s[i - 2] === t[j - 1]) {
        d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[s.length][t.length];
}

/** The known key closest to `key`, if it is close enough to be a likely misspelling. */
export function closestKey(key: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const k of known) {
    const distance = editDistance(key, k);
    if (distance < bestDistance) {
      best = k;
      bestDistance = distance;
    }
  }
  const tolerance = Math.max(2, Math.floor(key.length / 3));
  return best !== undefined && bestDistance <= tolerance ? best : undefined;
}

/** The keys of the (strict) object schema found at `path`, unwrapping defaults, optionals and arrays. */
function knownKeysAt(schema: z.core.$ZodType, path: readonly PropertyKey[]): string[] {
  let cur: z.core.$ZodType | undefined = schema;
  const unwrap = (s: z.core.$ZodType): z.core.$ZodType => {
    let x = s;
    for (;;) {
      const def = x._zod.def as { type: string; innerType?: z.core.$ZodType; in?: z.core.$ZodType };
      if (def.innerType) x = def.innerType;
      else if (def.type === 'pipe' && def.in) x = def.in;
      else return x;
    }
  };
  for (const seg of path) {
    if (!cur) return [];
    const def = unwrap(cur)._zod.def as {
      type: string;
      shape?: Record<string, z.core.$ZodType>;
      element?: z.core.$ZodType;
    };
    cur = def.type === 'array' ? def.element : def.shape?.[String(seg)];
  }
  if (!cur) return [];
  const def = unwrap(cur)._zod.def as { shape?: Record<string, z.core.$ZodType> };
  return Object.keys(def.shape ?? {});
}

function unknownKeyIssue(path: readonly PropertyKey[], key: string): string {
  const known = knownKeysAt(inputSchema, path);
  const at = path.length === 0 ? '' : `${formatPath(path)}: `;
  const suggestion = closestKey(key, known);
  return suggestion !== undefined
    ? `${at}unknown key ${key}; did you mean ${suggestion}?`
    : `${at}unknown key ${key}; remove it${known.length > 0 ? ` (known keys: ${known.join(', ')})` : ''}`;
}

function valueAt(input: unknown, path: readonly PropertyKey[]): unknown {
  let cur: unknown = input;
  for (const seg of path) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<PropertyKey, unknown>)[seg];
  }
  return cur;
}

function describe(value: unknown): string {
  const json = JSON.stringify(value);
  return json.length > 80 ? `${json.slice(0, 77)}...` : json;
}

/**
 * Validate raw configuration (e.g. parsed JSON overrides plus the `stage` context value),
 * apply defaults and derive stage-dependent settings.
 *
 * @throws FleetConfigError naming each invalid key path, its value and the fix.
 */
export function resolveFleetConfig(input: unknown = {}): FleetConfig {
  const raw = input ?? {};
  const parsed = inputSchema.safeParse(raw);
  if (!parsed.success) {
    const issues = parsed.error.issues.flatMap((issue) => {
      if (issue.code === 'unrecognized_keys') return issue.keys.map((k) => unknownKeyIssue(issue.path, k));
      const value = 'input' in issue && issue.input !== undefined ? issue.input : valueAt(raw, issue.path);
      const text = issue.message.startsWith('Invalid input')
        ? `use a value of the documented type (${issue.message})`
        : issue.message;
      return [
        value === undefined
          ? `${formatPath(issue.path)}: ${issue.code === 'custom' ? '' : 'missing; '}${text}`
          : `${formatPath(issue.path)}: ${describe(value)} is invalid; ${text}`,
      ];
    });
    throw new FleetConfigError(issues);
  }
  const cfg = parsed.data;
  const prefix = cfg.thingNamePrefix;
  const templates = (
    cfg.provisioning.templates ?? [templateSchema.parse({ name: defaultTemplateName(prefix) })]
  ).map((t) => ({ ...t, thingTypeName: t.thingTypeName ?? defaultThingTypeName(prefix) }));
  return {
    ...cfg,
    provisioning: { templates },
    logRetentionDays: cfg.logRetentionDays as FleetConfig['logRetentionDays'],
    removalPolicy: cfg.stage === 'dev' ? RemovalPolicy.DESTROY : RemovalPolicy.RETAIN,
    deletionProtection: cfg.stage === 'prod',
  };
}

/** The CDK context keys the app reads (`-c key=value`); bin/app.ts documents them. */
export const CONTEXT_KEYS = ['stage', 'config', 'stackName'] as const;

/**
 * Context keys that are probably a misspelling of one the app reads (`-c stag=prod` would
 * otherwise deploy the default stage). Keys of other tools (namespaced with `:` or `@`, or not
 * close to ours) are left alone.
 */
export function contextKeyProblems(keys: readonly string[]): string[] {
  const known: readonly string[] = CONTEXT_KEYS;
  return keys
    .filter((k) => !known.includes(k) && !/[:@/]/.test(k))
    .flatMap((k) => {
      const near = closestKey(k, known);
      return near === undefined
        ? []
        : [
            `context ${k}: unknown key; did you mean ${near}? (pass -c ${near}=<value>; keys are case-sensitive)`,
          ];
    });
}
