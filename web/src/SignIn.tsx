import { useState, type FormEvent } from "react";
import { ApiError, CustomerApi, OperatorApi, signIn } from "./api.ts";
import type { Session } from "./session.ts";
import { ErrorNote, Field } from "./ui.tsx";

type Mode = "password" | "key" | "operator";

/** Sign in as a customer (email and password, or an API key) or as the operator (the operator key). */
export function SignIn({ onSignIn }: { onSignIn: (s: Session) => void }) {
  const [mode, setMode] = useState<Mode>("password");
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [secret, setSecret] = useState("");
  const [error, setError] = useState<Error | null>(null);
  const [busy, setBusy] = useState(false);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      if (mode === "password") {
        const token = await signIn(email.trim(), password);
        onSignIn({ kind: "customer", secret: token, label: email.trim() });
      } else if (mode === "key") {
        const credential = { kind: "customer" as const, secret: secret.trim() };
        await new CustomerApi(credential).credits(); // proves the key before keeping it
        onSignIn({ ...credential, label: `API key ${secret.trim().slice(0, 17)}…` });
      } else {
        const credential = { kind: "operator" as const, secret: secret.trim() };
        await new OperatorApi(credential).accounts(undefined, 1);
        onSignIn({ ...credential, label: "operator" });
      }
    } catch (err) {
      setError(
        err instanceof ApiError && err.code === "unauthorized"
          ? new Error(
              mode === "password"
                ? "Wrong email or password. Check both and try again; your operator can reset the password."
                : mode === "key"
                  ? "This API key is not valid, or it was revoked. Paste a current key (it starts with tly_live_)."
                  : "This is not the operator key of this server. Use the key printed at its first start, or its TALLY_ADMIN_KEY.",
            )
          : (err as Error),
      );
    } finally {
      setBusy(false);
    }
  };

  const tabs: [Mode, string][] = [
    ["password", "Email and password"],
    ["key", "API key"],
    ["operator", "Operator"],
  ];
  return (
    <main id="main" className="signin">
      <div className="signin-box">
        <h1>
          <span className="brand" aria-hidden="true">
            ◆
          </span>{" "}
          Tally
        </h1>
        <p className="muted">Sign in to see your credits, usage and keys.</p>
        <div role="radiogroup" aria-label="Sign in with" className="segmented">
          {tabs.map(([m, label]) => (
            <label key={m} className={mode === m ? "on" : ""}>
              <input
                type="radio"
                name="mode"
                value={m}
                checked={mode === m}
                onChange={() => {
                  setMode(m);
                  setError(null);
                }}
              />
              {label}
            </label>
          ))}
        </div>
        <form onSubmit={submit} noValidate={false}>
          {mode === "password" ? (
            <>
              <Field label="Email">
                {(p) => (
                  <input
                    {...p}
                    type="email"
                    autoComplete="username"
                    required
                    value={email}
                    onChange={(e) => setEmail(e.target.value)}
                  />
                )}
              </Field>
              <Field label="Password">
                {(p) => (
                  <input
                    {...p}
                    type="password"
                    autoComplete="current-password"
                    required
                    minLength={10}
                    value={password}
                    onChange={(e) => setPassword(e.target.value)}
                  />
                )}
              </Field>
            </>
          ) : (
            <Field
              label={mode === "key" ? "API key" : "Operator key"}
              hint={
                mode === "key"
                  ? "A key of your account, tly_live_…; it needs the read scope (manage to buy and to manage keys)."
                  : "The server's operator key: it can see and change every account."
              }
            >
              {(p) => (
                <input
                  {...p}
                  type="password"
                  autoComplete="off"
                  spellCheck={false}
                  required
                  value={secret}
                  onChange={(e) => setSecret(e.target.value)}
                />
              )}
            </Field>
          )}
          {error && <ErrorNote error={error} />}
          <button type="submit" className="primary" disabled={busy}>
            {busy ? "Signing in…" : "Sign in"}
          </button>
        </form>
      </div>
    </main>
  );
}
