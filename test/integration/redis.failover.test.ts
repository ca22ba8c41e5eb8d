import { failoverScenarios } from "./failover.suite.js";

failoverScenarios("redis", (namespace) => ({
  backend: "redis",
  url: process.env["MC_REDIS_URL"] ?? "redis://127.0.0.1:6379",
  key_prefix: `mc:${namespace}`,
}));
