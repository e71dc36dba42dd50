import { useEffect, type ReactNode } from "react";

export interface NavItem {
  path: string;
  label: string;
}

/** Page frame: skip link, header with navigation and sign-out, main landmark. */
export function Shell({
  nav,
  current,
  who,
  badge,
  onSignOut,
  children,
}: {
  nav: NavItem[];
  current: string;
  who: string;
  badge?: ReactNode;
  onSignOut: () => void;
  children: ReactNode;
}) {
  // The tab title names the section, so a screen reader announces where a navigation went.
  const section = nav.find((n) => n.path === current)?.label ?? "Tally";
  useEffect(() => {
    document.title = `${section} · Tally`;
  }, [section]);
  return (
    <>
      <a
        className="skip"
        href="#main"
        onClick={(e) => {
          e.preventDefault();
          document.getElementById("main")?.focus();
        }}
      >
        Skip to content
      </a>
      <header className="top">
        <div className="top-row">
          <span className="logo">
            <span className="brand" aria-hidden="true">
              ◆
            </span>{" "}
            Tally
          </span>
          {badge}
          <span className="who">
            <span className="muted">Signed in as</span> <strong>{who}</strong>
          </span>
          <button type="button" onClick={onSignOut}>
            Sign out
          </button>
        </div>
        <nav aria-label="Sections">
          <ul>
            {nav.map((n) => (
              <li key={n.path}>
                <a href={`#${n.path}`} aria-current={current === n.path ? "page" : undefined}>
                  {n.label}
                </a>
              </li>
            ))}
          </ul>
        </nav>
      </header>
      <main id="main" tabIndex={-1}>
        {children}
      </main>
    </>
  );
}
