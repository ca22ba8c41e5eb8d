import { describe, expect, it } from "vitest";
import { ownedNames } from "../../src/adapters/prefix-owned.js";

describe("ownedNames()", () => {
  it("keeps every name under the prefix, unknown ones included, and leaves a nested cluster's names alone", () => {
    const names = ["mc_meta", "mc_leases", "mc_nodes", "mc_future", "mc_x_meta", "mc_x_leases", "mc_x_nodes", "other_meta", "mcz"];
    expect(ownedNames(names, "mc_", ["meta", "leases"])).toEqual(["mc_future", "mc_leases", "mc_meta", "mc_nodes"]);
  });

  it("a table of ours that merely ends in a marker (no matching second marker) is still ours", () => {
    expect(ownedNames(["mc_meta", "mc_leases", "mc_cluster_meta"], "mc_", ["meta", "leases"])).toEqual([
      "mc_cluster_meta",
      "mc_leases",
      "mc_meta",
    ]);
  });

  it("etcd keys: a nested prefix is recognized by its schema key", () => {
    const keys = ["mc/schema", "mc/nodes/a", "mc/x/schema", "mc/x/nodes/b", "mcx/schema"];
    expect(ownedNames(keys, "mc/", ["schema"])).toEqual(["mc/nodes/a", "mc/schema"]);
  });
});
