import { failoverScenarios } from "./failover.suite.js";

failoverScenarios("postgres", (namespace) => ({
  backend: "postgres",
  url: process.env["MC_PG_URL"] ?? "postgres://postgres@127.0.0.1:5432/test",
  table_prefix: namespace,
}));
