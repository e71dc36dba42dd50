import { toApi } from "../http/serialize.ts";

/** JSON for people and scripts, the API's way: amounts as decimal credit strings, times ISO 8601. */
export function print(value: unknown, json: boolean): void {
  console.log(json ? JSON.stringify(toApi(value)) : JSON.stringify(toApi(value), null, 2));
}
