import { deleteEtcdPrefix, deleteRedisKeys, dropTables } from "../test/support/store-cleanup.js";
import type { Backend, Endpoint } from "./backends.js";

/**
 * Removes what one run left on a shared store server. A long profile makes thousands of runs;
 * without this the shared `test` database would collect four tables per run. The prefix is read
 * from the run's own `store:` section, so this never touches another run's or another suite's data.
 */
export async function dropNamespace(backend: Backend, ns: string, server: Endpoint): Promise<void> {
  const section = backend.store(ns, server, "");
  const at = `${server.host}:${server.port}`;
  switch (backend.name) {
    case "postgres":
      return dropTables("postgres", `postgres://postgres@${at}/test`, String(section["table_prefix"]));
    case "mysql":
      return dropTables("mysql", `mysql://root@${at}/test`, String(section["table_prefix"]));
    case "redis":
      return deleteRedisKeys(`redis://${at}`, String(section["key_prefix"]));
    case "etcd":
      return deleteEtcdPrefix([`http://${at}`], String(section["key_prefix"]));
    case "sqlite":
      return; // the database file lives in the run's directory
    default:
      return; // a replicated store of the run's own (chaos/store-ha), removed with it
  }
}
