/**
 * Which of the names found under a cluster's prefix belong to that cluster, for `purge()`.
 *
 * Reset enumerates by prefix rather than by a fixed list, so that tables or keys added by a later
 * SDK version are removed too. A prefix is a plain string, though, so the names under "mc_" also
 * include those of a cluster configured with "mc_x_". Every namespace carries well-known names
 * (`<prefix>meta` and `<prefix>leases` for SQL, `<prefix>schema` for etcd): a name that lies under a
 * longer prefix carrying all of its own markers belongs to that other cluster and is left alone.
 * Hence the rule for new tables and keys: their name after the prefix must not end in a marker
 * (no table `<prefix>x_meta` beside a `<prefix>x_leases`).
 */
export function ownedNames(names: readonly string[], prefix: string, markers: readonly [string, ...string[]]): string[] {
  const under = names.filter((n) => n.startsWith(prefix));
  const present = new Set(under);
  const [first, ...rest] = markers;
  const nested = under
    .filter((n) => n.endsWith(first) && n.length > prefix.length + first.length)
    .map((n) => n.slice(0, -first.length))
    .filter((q) => rest.every((m) => present.has(`${q}${m}`)));
  return under.filter((n) => !nested.some((q) => n.startsWith(q))).sort();
}
