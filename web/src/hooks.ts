import { useCallback, useEffect, useRef, useState } from "react";
import { ApiError } from "./api.ts";

export type Loadable<T> =
  | { state: "loading" }
  | { state: "ok"; value: T }
  | { state: "missing" } // the server has no such route: the feature is not on this server
  | { state: "error"; error: Error };

/** Run `load` now and whenever `deps` change or `reload()` is called; keeps the last value while reloading. */
export function useLoad<T>(
  load: () => Promise<T>,
  deps: unknown[],
): [Loadable<T>, () => Promise<void>, (v: T) => void] {
  const [value, setValue] = useState<Loadable<T>>({ state: "loading" });
  const loadRef = useRef(load);
  loadRef.current = load;
  const seq = useRef(0);
  const reload = useCallback(async () => {
    const mine = ++seq.current;
    try {
      const v = await loadRef.current();
      if (mine === seq.current) setValue({ state: "ok", value: v });
    } catch (err) {
      if (mine !== seq.current) return;
      if (err instanceof ApiError && err.isMissingRoute) setValue({ state: "missing" });
      else setValue({ state: "error", error: err as Error });
    }
  }, []);
  useEffect(() => {
    void reload();
  }, deps);
  const set = useCallback((v: T) => setValue({ state: "ok", value: v }), []);
  return [value, reload, set];
}

/** The hash route: "#/usage?x=1" → { path: "/usage", params }. Hash routing needs no server fallback. */
export function useRoute(): { path: string; params: URLSearchParams } {
  const read = () => {
    const h = window.location.hash.replace(/^#/, "") || "/";
    const [path = "/", qs = ""] = h.split("?");
    return { path, params: new URLSearchParams(qs) };
  };
  const [route, setRoute] = useState(read);
  useEffect(() => {
    const on = () => setRoute(read());
    window.addEventListener("hashchange", on);
    return () => window.removeEventListener("hashchange", on);
  }, []);
  return route;
}

export function go(path: string): void {
  window.location.hash = path;
}
