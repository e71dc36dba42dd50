// Entry point of the SQLite writer thread: the thread needs the TypeScript loader before it can load
// the writer itself (loader hooks are registered per thread).
import { register } from "tsx/esm/api";

register();
await import("./writer-worker.ts");
