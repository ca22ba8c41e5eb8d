import { crashFailoverScenarios } from "./crash-failover.suite.js";

crashFailoverScenarios("etcd", (namespace) => ({
  backend: "etcd",
  hosts: process.env["MC_ETCD_HOSTS"] ?? "http://127.0.0.1:2379",
  key_prefix: `mc/${namespace}/`,
}));
