import type { InjectionToken } from "tsyringe";
import type { Config } from "../config/load.js";
import type { CoreappApplication } from "../core/coreapp/application.js";
import type { Clock } from "../core/ports/clock.js";
import type { Logger } from "../core/ports/logger.js";
import type { Store } from "../core/ports/store.js";
import type { Transport } from "../core/ports/transport.js";
import type { Timing } from "../core/timing.js";
import type { NodeIdentity } from "./deps.js";

/** Every injection token of the composition root, in one place. */
export const TOKENS = {
  config: Symbol("Config") as InjectionToken<Config>,
  clock: Symbol("Clock") as InjectionToken<Clock>,
  logger: Symbol("Logger") as InjectionToken<Logger>,
  store: Symbol("Store") as InjectionToken<Store>,
  transport: Symbol("Transport") as InjectionToken<Transport>,
  timing: Symbol("Timing") as InjectionToken<Timing>,
  identity: Symbol("NodeIdentity") as InjectionToken<NodeIdentity>,
  application: Symbol("CoreappApplication") as InjectionToken<CoreappApplication>,
} as const;
