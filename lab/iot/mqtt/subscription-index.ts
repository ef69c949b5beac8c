/**
 * Subscriptions indexed by topic level, so a PUBLISH finds its subscribers without testing every
 * filter of every session. Pure; MQTT matching rules (MQTT 5.0 section 4.7): `+` is one level,
 * `#` the rest including the parent level, and a filter starting with a wildcard never matches a
 * topic starting with `$`.
 */

interface Node<V> {
  children: Map<string, Node<V>>;
  /** Subscriptions whose filter ends at this node, by subscriber key. */
  values: Map<string, V>;
}

function newNode<V>(): Node<V> {
  return { children: new Map(), values: new Map() };
}

export class SubscriptionIndex<V> {
  private readonly root: Node<V> = newNode();
  private count = 0;

  get size(): number {
    return this.count;
  }

  /** Adds or replaces `key`'s subscription on `filter`. */
  set(filter: string, key: string, value: V): void {
    let node = this.root;
    for (const level of filter.split('/')) {
      let next = node.children.get(level);
      if (!next) node.children.set(level, (next = newNode()));
      node = next;
    }
    if (!node.values.has(key)) this.count++;
    node.values.set(key, value);
  }

  get(filter: string, key: string): V | undefined {
    let node: Node<V> | undefined = this.root;
    for (const level of filter.split('/')) {
      node = node.children.get(level);
      if (!node) return undefined;
    }
    return node.values.get(key);
  }

  /** Removes `key`'s subscription on `filter`; true when there was one. */
  delete(filter: string, key: string): boolean {
    const path: Array<[Node<V>, string]> = [];
    let node: Node<V> | undefined = this.root;
    for (const level of filter.split('/')) {
      path.push([node, level]);
      node = node.children.get(level);
      if (!node) return false;
    }
    if (!node.values.delete(key)) return false;
    this.count--;
    // Prune the branch back to the last node still in use.
    for (let i = path.length - 1; i >= 0; i--) {
      const [parent, level] = path[i];
      const child = parent.children.get(level);
      if (!child || child.values.size > 0 || child.children.size > 0) break;
      parent.children.delete(level);
    }
    return true;
  }

  /** Calls `visit` once per subscription whose filter matches `topic`. */
  match(topic: string, visit: (value: V, key: string) => void): void {
    const levels = topic.split('/');
    const dollar = topic.startsWith('$');
    const walk = (node: Node<V>, i: number): void => {
      const wildcardsAllowed = !(i === 0 && dollar);
      if (wildcardsAllowed) {
        const rest = node.children.get('#');
        if (rest) rest.values.forEach(visit);
      }
      if (i === levels.length) {
        node.values.forEach(visit);
        return;
      }
      const exact = node.children.get(levels[i]);
      if (exact) walk(exact, i + 1);
      if (wildcardsAllowed) {
        const one = node.children.get('+');
        if (one) walk(one, i + 1);
      }
    };
    walk(this.root, 0);
  }
}
