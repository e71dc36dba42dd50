// Entry point of the SQLite writer and checkpoint threads: a thread needs the TypeScript loader before it
// can load its module (loader hooks are registered per thread).
import { workerData } from "node:worker_threads";
import { register } from "tsx/esm/api";

register();
await import(workerData.role === "checkpoint" ? "./checkpoint-worker.ts" : "./writer-worker.ts");
