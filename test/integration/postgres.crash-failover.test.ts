import { crashFailoverScenarios } from "./crash-failover.suite.js";

crashFailoverScenarios("postgres", (namespace) => ({
  backend: "postgres",
  url: process.env["MC_PG_URL"] ?? "postgres://postgres@127.0.0.1:5432/test",
  table_prefix: namespace,
}));
