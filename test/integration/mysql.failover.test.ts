import { failoverScenarios } from "./failover.suite.js";

failoverScenarios("mysql", (namespace) => ({
  backend: "mysql",
  url: process.env["MC_MYSQL_URL"] ?? "mysql://root@127.0.0.1:3306/test",
  table_prefix: namespace,
}));
