import { useMemo } from "react";
import { OperatorApi } from "../api.ts";
import { useRoute } from "../hooks.ts";
import type { Session } from "../session.ts";
import { Shell } from "../Shell.tsx";
import { AccountDetail } from "./AccountDetail.tsx";
import { Accounts } from "./Accounts.tsx";
import { Audit } from "./Audit.tsx";
import { Plans } from "./Plans.tsx";
import { RateCard } from "./RateCard.tsx";
import { Webhooks } from "./Webhooks.tsx";

const NAV = [
  { path: "/", label: "Accounts" },
  { path: "/plans", label: "Plans & purchases" },
  { path: "/rate-card", label: "Rate card" },
  { path: "/webhooks", label: "Webhooks" },
  { path: "/audit", label: "Audit" },
];

export function OperatorApp({ session, onSignOut }: { session: Session; onSignOut: () => void }) {
  const api = useMemo(() => new OperatorApi(session), [session]);
  const { path, params } = useRoute();
  let page;
  let current = path;
  if (path.startsWith("/accounts/")) {
    page = <AccountDetail api={api} id={decodeURIComponent(path.slice("/accounts/".length))} />;
    current = "/";
  } else if (path === "/plans") page = <Plans api={api} />;
  else if (path === "/rate-card") page = <RateCard api={api} />;
  else if (path === "/webhooks") page = <Webhooks api={api} />;
  else if (path === "/audit") page = <Audit api={api} />;
  else {
    page = <Accounts api={api} query={params.get("q") ?? ""} />;
    current = "/";
  }
  return (
    <Shell
      nav={NAV}
      current={current}
      who="operator"
      badge={<span className="tag tag-op">Operator</span>}
      onSignOut={onSignOut}
    >
      {page}
    </Shell>
  );
}
