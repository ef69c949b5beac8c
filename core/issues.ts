/**
 * The one-line form of validation issues (zod's `{ path, message }`), shared by the handlers, the
 * CLI, the simulator and the domain parsers: `path: message; path: message`. `root` names an
 * issue of the whole input (empty path).
 */
export interface PathIssue {
  readonly path: readonly PropertyKey[];
  readonly message: string;
}

export function describeIssues(issues: readonly PathIssue[], root = '(input)'): string {
  return issues.map((i) => `${i.path.map(String).join('.') || root}: ${i.message}`).join('; ');
}
