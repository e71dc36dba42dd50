import { useId, type ReactNode } from "react";
import { ApiError, NetworkError } from "./api.ts";
import type { Loadable } from "./hooks.ts";

/** What to do about an error, in words: the server's message plus a hint per error code. */
export function explain(error: Error): { title: string; hint: string } {
  if (error instanceof NetworkError) return { title: error.message, hint: "" };
  if (!(error instanceof ApiError))
    return { title: error.message || "Something went wrong.", hint: "Try again." };
  const field = error.field ? ` (field: ${error.field})` : "";
  const hints: Record<string, string> = {
    unauthorized: "Your sign-in is no longer valid. Sign out and sign in again.",
    forbidden: `This credential lacks the "${String(error.body.required_scope ?? "")}" scope. Sign in with email and password, or use a key that has it.`,
    validation_error: "Correct the highlighted value and submit again.",
    insufficient_credits: "Add credits (Buy credits) or lower the amount.",
    not_found: "It may have been removed, or the id is mistyped.",
    rate_limited: `Too many requests: wait ${String(error.body.retry_after_s ?? "a few")} seconds, then retry.`,
    account_not_active: "The account is suspended or closed: an operator can reactivate it.",
    idempotency_conflict: "That id is already used for something else: choose another id.",
    internal_error: `A server error: give the operator the request id ${error.body.request_id ?? ""}.`,
  };
  return { title: error.message + field, hint: hints[error.code] ?? "" };
}

export function ErrorNote({ error, onRetry }: { error: Error; onRetry?: () => void }) {
  const { title, hint } = explain(error);
  return (
    <div className="note note-error" role="alert">
      <strong>{title}</strong>
      {hint && <span> {hint}</span>}
      {onRetry && (
        <button type="button" className="link" onClick={onRetry}>
          Retry
        </button>
      )}
    </div>
  );
}

export function NotAvailable({ feature }: { feature: string }) {
  return (
    <div className="note note-muted" role="status">
      <strong>{feature} is not available on this server.</strong> This Tally server does not offer it yet; it
      appears here by itself once the server is upgraded.
    </div>
  );
}

export function Empty({ children }: { children: ReactNode }) {
  return (
    <div className="empty" role="status">
      {children}
    </div>
  );
}

export function Loading({ what }: { what: string }) {
  return (
    <p className="loading" role="status" aria-live="polite">
      Loading {what}…
    </p>
  );
}

/** Render a Loadable: loading, missing feature, error with retry, or the value. */
export function Show<T>({
  value,
  what,
  feature,
  retry,
  children,
}: {
  value: Loadable<T>;
  what: string;
  feature?: string;
  retry?: () => void;
  children: (v: T) => ReactNode;
}) {
  if (value.state === "loading") return <Loading what={what} />;
  if (value.state === "missing") return <NotAvailable feature={feature ?? what} />;
  if (value.state === "error")
    return <ErrorNote error={value.error} {...(retry ? { onRetry: retry } : {})} />;
  return <>{children(value.value)}</>;
}

/** A horizontal meter (role="meter"): the value, the maximum and a label a screen reader reads. */
export function Meter({
  label,
  value,
  max,
  valueText,
  tone = "supply",
  testId,
}: {
  label: string;
  value: number;
  max: number;
  valueText: string;
  tone?: "supply" | "packs" | "usage" | "warn";
  testId?: string;
}) {
  const id = useId();
  const width = max > 0 ? Math.min(100, Math.max(0, (value / max) * 100)) : 0;
  return (
    <div className="meter-block">
      <div className="meter-head">
        <span id={id} className="meter-label">
          {label}
        </span>
        <span className="meter-value">{valueText}</span>
      </div>
      <div
        className={`meter meter-${tone}`}
        role="meter"
        aria-labelledby={id}
        aria-valuemin={0}
        aria-valuemax={max}
        aria-valuenow={value}
        aria-valuetext={valueText}
        data-testid={testId}
      >
        <div className="meter-fill" style={{ width: `${width}%` }} />
      </div>
    </div>
  );
}

export function Card({
  title,
  children,
  actions,
}: {
  title: string;
  children: ReactNode;
  actions?: ReactNode;
}) {
  const id = useId();
  return (
    <section className="card" aria-labelledby={id}>
      <div className="card-head">
        <h2 id={id}>{title}</h2>
        {actions}
      </div>
      {children}
    </section>
  );
}

/** A labelled form control; `error` is announced and tied to the control. */
export function Field({
  label,
  hint,
  error,
  children,
}: {
  label: string;
  hint?: string;
  error?: string | undefined;
  children: (props: { id: string; "aria-describedby"?: string; "aria-invalid"?: boolean }) => ReactNode;
}) {
  const id = useId();
  const hintId = `${id}-hint`;
  const errId = `${id}-err`;
  const describedBy = [hint ? hintId : "", error ? errId : ""].filter(Boolean).join(" ");
  return (
    <div className="field">
      <label htmlFor={id}>{label}</label>
      {children({
        id,
        ...(describedBy ? { "aria-describedby": describedBy } : {}),
        ...(error ? { "aria-invalid": true } : {}),
      })}
      {hint && (
        <span id={hintId} className="hint">
          {hint}
        </span>
      )}
      {error && (
        <span id={errId} className="field-error" role="alert">
          {error}
        </span>
      )}
    </div>
  );
}
