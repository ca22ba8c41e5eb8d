/**
 * Which of the names found under a cluster's prefix belong to that cluster, for `purge()`.
 *
 * Reset enumerates by prefix rather than by a fixed list, so that tables or keys added by a later
 * SDK version are removed too. A prefix is a plain string, though, so the names under "mc_" also
 * include those of a cluster configured with "mc_x_". Every namespace marks itself with one
 * well-known name (`<prefix>meta` for SQL, `<prefix>schema` for etcd): a name that lies under a
 * longer prefix carrying its own marker belongs to that other cluster and is left alone.
 */
export function ownedNames(names: readonly string[], prefix: string, marker: string): string[] {
  const under = names.filter((n) => n.startsWith(prefix));
  const nested = under
    .filter((n) => n.endsWith(marker) && n.length > prefix.length + marker.length)
    .map((n) => n.slice(0, -marker.length));
  return under.filter((n) => !nested.some((q) => n.startsWith(q))).sort();
}
