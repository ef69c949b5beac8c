/**
 * Rollout store adapter: the rollouts table (one item per rollout) for the rollout API and the
 * controller. The DynamoDB Document client is injected.
 *
 * Item layout: `rolloutId` (key), `revision`, `status`, `releaseVersion`, `active` (sparse, only
 * while the rollout is not final: the controller's work list), `state` (the controller state of
 * core/rollout.ts as JSON, per-device ledger included), `commands` (operator commands the API
 * appends and the next controller pass applies; `state.appliedCommands` says which were applied).
 *
 * Every state change is ONE conditional write guarded by the revision the writer read
 * ({@link RolloutStore.record}), so two concurrent controller passes can never both win: the
 * loser gets {@link RolloutRevisionConflictError} and its pass is simply dropped (the next pass
 * starts again from the stored state). The ledger lives in the item for now; an item that would
 * pass DynamoDB's 400 KB limit is refused before the write with {@link RolloutTooLargeError}.
 */
import {
  DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
  ScanCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import { ACTIVE_ROLLOUT_MARK, TABLES } from '../../core/model';
import { FINAL_ROLLOUT_STATES, type OperatorCommand, type RolloutState } from '../../core/rollout';
import { isConditionFailure } from '../shared/registry';

/** DynamoDB's item size limit, in bytes. */
export const DYNAMODB_ITEM_LIMIT_BYTES = 400 * 1024;
/**
 * Largest serialized state the store writes, in bytes: the item limit less room for the other
 * attributes and the operator commands appended between two passes.
 */
export const MAX_STATE_BYTES = DYNAMODB_ITEM_LIMIT_BYTES - 24 * 1024;
/** Most operator commands kept on an item; older ones are applied or stale. */
export const MAX_PENDING_COMMANDS = 50;

/** The conditional write of a rollout lost: another writer changed it first. */
export class RolloutRevisionConflictError extends Error {
  override readonly name = 'RolloutRevisionConflictError';
  constructor(
    readonly rolloutId: string,
    readonly expectedRevision: number,
  ) {
    super(
      `rollout ${rolloutId} is no longer at revision ${expectedRevision}: another controller pass or API call wrote it first; re-read it and step again`,
    );
  }
}

/** The rollout state would not fit in one DynamoDB item. */
export class RolloutTooLargeError extends Error {
  override readonly name = 'RolloutTooLargeError';
  constructor(
    readonly rolloutId: string,
    readonly bytes: number,
  ) {
    super(
      `rollout ${rolloutId} state is ${bytes} bytes, over the ${MAX_STATE_BYTES}-byte budget of one DynamoDB item (limit 400 KB): ` +
        'its per-device ledger is too large; split the release into rollouts over fewer devices (plan stages with explicit rings or things)',
    );
  }
}

/** A rollout id the store does not hold. */
export class RolloutNotFoundError extends Error {
  override readonly name = 'RolloutNotFoundError';
  constructor(readonly rolloutId: string) {
    super(`no rollout ${rolloutId}: list the rollouts (action "list") and use one of their rolloutId values`);
  }
}

/** A stored rollout: its state and the operator commands waiting for a controller pass. */
export interface StoredRollout {
  state: RolloutState;
  commands: OperatorCommand[];
  /** Counter of writes to `commands`, the guard of {@link RolloutStore.appendCommand}. */
  commandsVersion: number;
}

interface RolloutItem {
  rolloutId: string;
  revision: number;
  status: string;
  releaseVersion: string;
  active?: string;
  state: string;
  commands?: OperatorCommand[];
  commandsVersion?: number;
  createdAt: string;
  updatedAt: string;
}

const T = TABLES.rollouts;

function serialize(state: RolloutState): string {
  const json = JSON.stringify(state);
  const bytes = Buffer.byteLength(json, 'utf8');
  if (bytes > MAX_STATE_BYTES) throw new RolloutTooLargeError(state.rolloutId, bytes);
  return json;
}

function fromItem(item: Record<string, unknown>): StoredRollout {
  const it = item as unknown as RolloutItem;
  return {
    state: JSON.parse(it.state) as RolloutState,
    commands: it.commands ?? [],
    commandsVersion: it.commandsVersion ?? 0,
  };
}

const isActive = (state: RolloutState) => !FINAL_ROLLOUT_STATES.includes(state.status);

export class RolloutStore {
  constructor(
    private readonly doc: DynamoDBDocumentClient,
    private readonly tableName: string,
  ) {}

  /** The rollout, read consistently, or undefined. */
  async get(rolloutId: string): Promise<StoredRollout | undefined> {
    const out = await this.doc.send(
      new GetCommand({
        TableName: this.tableName,
        Key: { [T.partitionKey]: rolloutId },
        ConsistentRead: true,
      }),
    );
    return out.Item ? fromItem(out.Item) : undefined;
  }

  /** The rollout, or {@link RolloutNotFoundError}. */
  async require(rolloutId: string): Promise<StoredRollout> {
    const found = await this.get(rolloutId);
    if (!found) throw new RolloutNotFoundError(rolloutId);
    return found;
  }

  /**
   * Ids of the rollouts the controller still drives (the sparse `active` index; eventually
   * consistent, so the controller reads each one again with {@link get} before stepping it).
   */
  async listActiveIds(): Promise<string[]> {
    const ids: string[] = [];
    let start: Record<string, unknown> | undefined;
    do {
      const out = await this.doc.send(
        new QueryCommand({
          TableName: this.tableName,
          IndexName: T.activeIndex,
          KeyConditionExpression: '#a = :a',
          ExpressionAttributeNames: { '#a': T.activeKey },
          ExpressionAttributeValues: { ':a': ACTIVE_ROLLOUT_MARK },
          ExclusiveStartKey: start,
        }),
      );
      for (const item of out.Items ?? []) ids.push(String(item[T.partitionKey]));
      start = out.LastEvaluatedKey;
    } while (start);
    return ids;
  }

  /** Every rollout (the API's `list` and `start`, which needs the release's earlier rollouts). */
  async listAll(): Promise<StoredRollout[]> {
    const all: StoredRollout[] = [];
    let start: Record<string, unknown> | undefined;
    do {
      const out = await this.doc.send(
        new ScanCommand({ TableName: this.tableName, ConsistentRead: true, ExclusiveStartKey: start }),
      );
      for (const item of out.Items ?? []) all.push(fromItem(item));
      start = out.LastEvaluatedKey;
    } while (start);
    return all;
  }

  /**
   * Store a new rollout (revision as given, normally 0). Returns false when a rollout with that
   * id exists already: the same release and plan started twice is one rollout.
   */
  async create(state: RolloutState): Promise<boolean> {
    const item: RolloutItem = {
      rolloutId: state.rolloutId,
      revision: state.revision,
      status: state.status,
      releaseVersion: state.release.version,
      active: isActive(state) ? ACTIVE_ROLLOUT_MARK : undefined,
      state: serialize(state),
      commands: [],
      commandsVersion: 0,
      createdAt: state.createdAt,
      updatedAt: state.updatedAt,
    };
    try {
      await this.doc.send(
        new PutCommand({
          TableName: this.tableName,
          Item: item,
          ConditionExpression: 'attribute_not_exists(#k)',
          ExpressionAttributeNames: { '#k': T.partitionKey },
        }),
      );
      return true;
    } catch (err) {
      if (isConditionFailure(err)) return false;
      throw err;
    }
  }

  /**
   * Record a stepped state: one UpdateItem guarded by `revision = expectedRevision`. Commands
   * appended meanwhile are kept; the ones the state has applied are left for {@link appendCommand}
   * to trim. Leaves the `active` index once the state is final.
   */
  async record(state: RolloutState, expectedRevision: number): Promise<void> {
    const json = serialize(state);
    const active = isActive(state);
    try {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { [T.partitionKey]: state.rolloutId },
          UpdateExpression:
            'SET #state = :state, #rev = :rev, #status = :status, #updated = :updated' +
            (active ? ', #active = :active' : ' REMOVE #active'),
          ConditionExpression: 'attribute_exists(#k) AND #rev = :expected',
          ExpressionAttributeNames: {
            '#k': T.partitionKey,
            '#state': 'state',
            '#rev': 'revision',
            '#status': 'status',
            '#updated': 'updatedAt',
            '#active': T.activeKey,
          },
          ExpressionAttributeValues: {
            ':state': json,
            ':rev': state.revision,
            ':status': state.status,
            ':updated': state.updatedAt,
            ':expected': expectedRevision,
            ...(active ? { ':active': ACTIVE_ROLLOUT_MARK } : {}),
          },
        }),
      );
    } catch (err) {
      if (isConditionFailure(err)) throw new RolloutRevisionConflictError(state.rolloutId, expectedRevision);
      throw err;
    }
  }

  /**
   * Queue an operator command for the next controller pass. A command id already queued is a
   * no-op (an API retry). Commands the state has applied are dropped from the queue in the same
   * write, guarded by the `commandsVersion` counter read, so the queue stays bounded and two
   * concurrent appends cannot overwrite each other.
   */
  async appendCommand(rolloutId: string, command: OperatorCommand): Promise<void> {
    for (let attempt = 0; attempt < 5; attempt++) {
      const current = await this.require(rolloutId);
      if (current.commands.some((c) => c.id === command.id)) return;
      const applied = new Set(current.state.appliedCommands);
      const pending = [...current.commands.filter((c) => !applied.has(c.id)), command];
      if (pending.length > MAX_PENDING_COMMANDS) {
        throw new Error(
          `rollout ${rolloutId} has ${MAX_PENDING_COMMANDS} commands waiting for the controller: check that the controller runs (its log group and schedule), then retry`,
        );
      }
      try {
        await this.doc.send(
          new UpdateCommand({
            TableName: this.tableName,
            Key: { [T.partitionKey]: rolloutId },
            UpdateExpression: 'SET #commands = :commands, #cv = :next',
            ConditionExpression: 'attribute_exists(#k) AND #cv = :cv',
            ExpressionAttributeNames: {
              '#k': T.partitionKey,
              '#cv': 'commandsVersion',
              '#commands': 'commands',
            },
            ExpressionAttributeValues: {
              ':commands': pending,
              ':cv': current.commandsVersion,
              ':next': current.commandsVersion + 1,
            },
          }),
        );
        return;
      } catch (err) {
        if (!isConditionFailure(err)) throw err;
      }
    }
    throw new Error(`rollout ${rolloutId} kept changing while queuing command ${command.id}; retry`);
  }
}
