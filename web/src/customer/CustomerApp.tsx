import { useCallback, useEffect, useMemo, useRef, useState } from "react";
import { CustomerApi } from "../api.ts";
import { useLoad, useRoute } from "../hooks.ts";
import { followLive, type LiveStatus } from "../live.ts";
import type { Session } from "../session.ts";
import { Shell } from "../Shell.tsx";
import { Alerts } from "./Alerts.tsx";
import { Buy } from "./Buy.tsx";
import { Calculator } from "./Calculator.tsx";
import { Keys } from "./Keys.tsx";
import { foldCalls, type LiveCall } from "./LiveCalls.tsx";
import { Overview } from "./Overview.tsx";
import { UsageHistory } from "./UsageHistory.tsx";

const NAV = [
  { path: "/", label: "Overview" },
  { path: "/usage", label: "Usage history" },
  { path: "/buy", label: "Buy credits" },
  { path: "/calculator", label: "Calculator" },
  { path: "/alerts", label: "Alerts & auto-recharge" },
  { path: "/keys", label: "API keys" },
];

const DAY_MS = 86_400_000;
export const CHART_DAYS = 30;

/** The customer's dashboard: one live feed of the balance and recent usage shared by every section. */
export function CustomerApp({ session, onSignOut }: { session: Session; onSignOut: () => void }) {
  const api = useMemo(() => new CustomerApi(session), [session]);
  const { path } = useRoute();
  const [credits, reloadCredits] = useLoad(() => api.credits(), [api]);
  const [usage, reloadUsage] = useLoad(() => api.usageSince(Date.now() - CHART_DAYS * DAY_MS), [api]);
  const [status, setStatus] = useState<LiveStatus>("connecting");
  const [calls, setCalls] = useState<Record<string, LiveCall>>({});
  const [held, setHeld] = useState<string | null>(null);
  const pending = useRef<ReturnType<typeof setTimeout> | null>(null);

  // Coalesce bursts of events into one refresh.
  const refresh = useCallback(() => {
    if (pending.current) return;
    pending.current = setTimeout(() => {
      pending.current = null;
      void reloadCredits();
      void reloadUsage();
    }, 150);
  }, [reloadCredits, reloadUsage]);

  useEffect(
    () =>
      followLive(
        session,
        "/api/v1/credits/stream",
        (e) => {
          setCalls((c) => foldCalls(c, e));
          if (e.type === "balance") setHeld(String((e.data as { held?: unknown }).held ?? "0"));
          refresh();
        },
        setStatus,
      ),
    [session, refresh],
  );

  useEffect(() => {
    const onFocus = () => refresh();
    window.addEventListener("focus", onFocus);
    return () => window.removeEventListener("focus", onFocus);
  }, [refresh]);

  const badge = (
    <span className={`live live-${status}`} role="status" aria-live="polite" data-testid="live-status">
      {status === "live"
        ? "Live"
        : status === "polling"
          ? "Updating every 3 s"
          : status === "connecting"
            ? "Connecting…"
            : "Offline, retrying…"}
    </span>
  );

  let page;
  switch (path) {
    case "/usage":
      page = <UsageHistory api={api} />;
      break;
    case "/buy":
      page = <Buy api={api} credits={credits} onBought={refresh} />;
      break;
    case "/calculator":
      page = <Calculator api={api} />;
      break;
    case "/alerts":
      page = <Alerts api={api} />;
      break;
    case "/keys":
      page = <Keys api={api} />;
      break;
    default:
      page = (
        <Overview
          api={api}
          credits={credits}
          usage={usage}
          retry={refresh}
          calls={calls}
          held={held}
          liveStatus={status}
        />
      );
  }
  return (
    <Shell
      nav={NAV}
      current={NAV.some((n) => n.path === path) ? path : "/"}
      who={session.label}
      badge={badge}
      onSignOut={onSignOut}
    >
      {page}
    </Shell>
  );
}
