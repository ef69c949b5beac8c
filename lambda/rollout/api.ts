/**
 * The rollout API (Lambda console test events and CI): `start`, `status`, `pause`, `resume`,
 * `approve`, `abort`, `list`. The payload is schema-checked and every error names the field and
 * the fix. `start` resolves the release from the package catalog and uses `resolveStart`: the
 * same release and plan twice is the same rollout, another plan for a running release a conflict.
 * Operator commands are queued on the rollout; the next controller pass applies them.
 */
import * as z from 'zod/mini';
import { describeIssues } from '../../core/issues';
import {
  resolveStart,
  RolloutConflictError,
  stageCounts,
  type OperatorCommand,
  type RolloutState,
} from '../../core/rollout';
import { parseRolloutRequest, RolloutPlanError } from '../../core/rollout-plan';
import type { IotJobsApi } from './iot-jobs';
import { releaseFromAttributes as releaseOfPackageVersion } from '../../core/ota';
import { RolloutNotFoundError, type RolloutStore, type StoredRollout } from './rollout-store';

const by = z.optional(
  z.string().check(z.minLength(1, 'name who asks, e.g. "ci" or an e-mail'), z.maxLength(128)),
);
const rolloutId = z.string().check(z.minLength(1, 'give the rolloutId that "start" or "list" returned'));
const commandFields = {
  rolloutId,
  by,
  reason: z.optional(z.string().check(z.maxLength(512, 'keep the reason under 512 characters'))),
  /** Makes a retried call one command. @default - the kind, the rollout's revision and `by` */
  commandId: z.optional(z.string().check(z.minLength(1), z.maxLength(128))),
};

export const rolloutApiSchema = z.discriminatedUnion('action', [
  z.looseObject({ action: z.literal('start'), by }),
  z.strictObject({ action: z.literal('status'), rolloutId }),
  z.strictObject({ action: z.literal('list') }),
  z.strictObject({ action: z.literal('pause'), ...commandFields }),
  z.strictObject({ action: z.literal('resume'), ...commandFields }),
  z.strictObject({ action: z.literal('abort'), ...commandFields }),
  z.strictObject({
    action: z.literal('approve'),
    ...commandFields,
    stage: z.optional(z.number().check(z.int(), z.nonnegative('stage is a stage index, 0 for the first'))),
  }),
]);

export type RolloutApiRequest = z.infer<typeof rolloutApiSchema>;

/** A request that does not parse, or cannot be served; `code` says what to do. */
export class RolloutApiError extends Error {
  constructor(
    readonly code: 'INVALID_REQUEST' | 'NOT_FOUND' | 'CONFLICT' | 'RELEASE_NOT_PUBLISHED',
    message: string,
  ) {
    super(message);
  }
}

export interface RolloutApiDeps {
  store: Pick<RolloutStore, 'get' | 'require' | 'listAll' | 'create' | 'appendCommand'>;
  jobs: Pick<IotJobsApi, 'getPackageVersion'>;
  packageName: string;
}

/** What status and list return for one rollout. */
export interface RolloutSummary {
  rolloutId: string;
  release: string;
  status: RolloutState['status'];
  stage: string | undefined;
  revision: number;
  updatedAt: string;
  stages: ReturnType<typeof stageCounts>;
  abort?: RolloutState['abort'];
  pendingCommands: string[];
}

export type RolloutApiResponse =
  | { ok: true; action: 'start'; created: boolean; rollout: RolloutSummary }
  | { ok: true; action: 'status'; rollout: RolloutSummary }
  | { ok: true; action: 'list'; rollouts: RolloutSummary[] }
  | {
      ok: true;
      action: 'pause' | 'resume' | 'abort' | 'approve';
      queued: OperatorCommand;
      rollout: RolloutSummary;
    }
  | { ok: false; error: { code: string; message: string } };

const ACTIONS = 'start, status, pause, resume, approve, abort or list';

/** Parse a payload; the error names each bad field and its fix. */
export function parseRolloutApiRequest(input: unknown): RolloutApiRequest {
  const action = (input as { action?: unknown } | null)?.action;
  if (typeof action !== 'string' || !/^(start|status|pause|resume|approve|abort|list)$/.test(action)) {
    throw new RolloutApiError('INVALID_REQUEST', `action: set "action" to one of ${ACTIONS}`);
  }
  const r = rolloutApiSchema.safeParse(input);
  if (!r.success) {
    throw new RolloutApiError(
      'INVALID_REQUEST',
      `${action} request is invalid: ${describeIssues(r.error.issues)}`,
    );
  }
  return r.data;
}

export function summarize(r: StoredRollout): RolloutSummary {
  const applied = new Set(r.state.appliedCommands);
  return {
    rolloutId: r.state.rolloutId,
    release: r.state.release.version,
    status: r.state.status,
    stage: r.state.stages[r.state.stage]?.name,
    revision: r.state.revision,
    updatedAt: r.state.updatedAt,
    stages: stageCounts(r.state),
    ...(r.state.abort ? { abort: r.state.abort } : {}),
    pendingCommands: r.commands.filter((c) => !applied.has(c.id)).map((c) => c.id),
  };
}

/** Serve one request; domain errors become `{ ok: false, error }`, anything else is thrown. */
export async function handleRolloutApi(
  input: unknown,
  deps: RolloutApiDeps,
  now: Date,
): Promise<RolloutApiResponse> {
  try {
    return await serve(parseRolloutApiRequest(input), input, deps, now);
  } catch (err) {
    if (err instanceof RolloutApiError) return { ok: false, error: { code: err.code, message: err.message } };
    if (err instanceof RolloutPlanError)
      return { ok: false, error: { code: 'INVALID_REQUEST', message: err.message } };
    if (err instanceof RolloutConflictError)
      return { ok: false, error: { code: 'CONFLICT', message: err.message } };
    if (err instanceof RolloutNotFoundError)
      return { ok: false, error: { code: 'NOT_FOUND', message: err.message } };
    throw err;
  }
}

async function serve(
  req: RolloutApiRequest,
  input: unknown,
  deps: RolloutApiDeps,
  now: Date,
): Promise<RolloutApiResponse> {
  switch (req.action) {
    case 'start':
      return start(input, deps, now);
    case 'status':
      return { ok: true, action: 'status', rollout: summarize(await deps.store.require(req.rolloutId)) };
    case 'list': {
      const all = await deps.store.listAll();
      all.sort((a, b) => b.state.createdAt.localeCompare(a.state.createdAt));
      return { ok: true, action: 'list', rollouts: all.map(summarize) };
    }
    default: {
      const current = await deps.store.require(req.rolloutId);
      const who = req.by ?? 'api';
      const command: OperatorCommand = {
        id: req.commandId ?? `${req.action}@${current.state.revision}:${who}`,
        kind: req.action,
        by: who,
        ...(req.reason ? { reason: req.reason } : {}),
        ...(req.action === 'approve' ? { stage: req.stage ?? current.state.stage } : {}),
      };
      await deps.store.appendCommand(req.rolloutId, command);
      return {
        ok: true,
        action: req.action,
        queued: command,
        rollout: summarize(await deps.store.require(req.rolloutId)),
      };
    }
  }
}

async function start(input: unknown, deps: RolloutApiDeps, now: Date): Promise<RolloutApiResponse> {
  const { action: _action, by: _by, ...request } = input as Record<string, unknown>;
  const parsed = parseRolloutRequest(request);
  const pv = await deps.jobs.getPackageVersion(deps.packageName, parsed.release);
  const release =
    pv && pv.status === 'PUBLISHED' ? releaseOfPackageVersion(parsed.release, pv.attributes) : undefined;
  if (!release) {
    throw new RolloutApiError(
      'RELEASE_NOT_PUBLISHED',
      `release: ${parsed.release} is not a published version of package ${deps.packageName}` +
        (pv ? ` (it is ${pv.status})` : '') +
        `: publish it first with \`fleet firmware publish --version ${parsed.release} --file …\``,
    );
  }
  const existing = (await deps.store.listAll()).map((r) => r.state);
  const { rollout, created } = resolveStart(existing, release, parsed.plan, now);
  if (created && !(await deps.store.create(rollout))) {
    // A concurrent start of the same release and plan stored it first: that is this rollout.
    return {
      ok: true,
      action: 'start',
      created: false,
      rollout: summarize(await deps.store.require(rollout.rolloutId)),
    };
  }
  const stored = created
    ? { state: rollout, commands: [], commandsVersion: 0 }
    : await deps.store.require(rollout.rolloutId);
  return { ok: true, action: 'start', created, rollout: summarize(stored) };
}
