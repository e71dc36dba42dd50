import type { FastifyError, FastifyReply, FastifyRequest } from "fastify";
import { formatCredits } from "../domain/amount.ts";
import { TallyError, type ErrorCode } from "../domain/errors.ts";

/** Every error code maps to exactly one HTTP status, here and nowhere else. */
export const HTTP_STATUS: Record<ErrorCode, number> = {
  validation_error: 400,
  unauthorized: 401,
  insufficient_credits: 402,
  budget_exceeded: 402,
  forbidden: 403,
  not_found: 404,
  idempotency_conflict: 409,
  account_not_active: 409,
  grant_not_active: 409,
  hold_not_active: 409,
  hold_expired: 409,
  refund_exceeds_usage: 409,
  subscription_conflict: 409,
  checkout_not_open: 409,
  purchase_not_refundable: 409,
  payment_provider_error: 502,
  session_not_active: 409,
  payload_too_large: 413,
  rate_limited: 429,
  session_limit_reached: 429,
  internal_error: 500,
};

export interface ErrorBody {
  error: { code: ErrorCode; message: string; request_id: string; [key: string]: unknown };
}

/** An error's JSON: amounts in its details (shortfall, available, refundable) as credits, like every /v1 amount. */
export function errorJson(err: TallyError): { code: ErrorCode; message: string; [key: string]: unknown } {
  const details: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(err.details)) details[k] = typeof v === "bigint" ? formatCredits(v) : v;
  return { code: err.code, message: err.message, ...details };
}

export function errorBody(err: TallyError, requestId: string): ErrorBody {
  return { error: { ...errorJson(err), request_id: requestId } };
}

/** Turns anything thrown in a route into the one error shape; never leaks internals on a 500. */
export function toTallyError(err: unknown): TallyError {
  if (err instanceof TallyError) return err;
  const fe = err as FastifyError & {
    validation?: { instancePath?: string; params?: Record<string, unknown>; message?: string }[];
  };
  if (fe && Array.isArray(fe.validation) && fe.validation.length > 0) {
    const v = fe.validation[0]!;
    const missing = (v.params?.missingProperty ?? v.params?.additionalProperty) as string | undefined;
    const path = (v.instancePath ?? "").replace(/^\//, "").replace(/\//g, ".");
    const field = [fe.validationContext === "body" ? "" : fe.validationContext, path, missing]
      .filter((x) => x)
      .join(".")
      .replace(/^body\./, "");
    return new TallyError(
      "validation_error",
      `${field || fe.validationContext || "request"} ${v.message ?? "is invalid"}`,
      {
        field: field || String(fe.validationContext ?? "body"),
      },
    );
  }
  if (fe?.code === "FST_ERR_CTP_BODY_TOO_LARGE")
    return new TallyError("payload_too_large", "the request body is too large", { field: "body" });
  if (fe?.code === "FST_ERR_CTP_INVALID_MEDIA_TYPE" || fe?.code === "FST_ERR_CTP_EMPTY_JSON_BODY")
    return new TallyError("validation_error", fe.message, { field: "body" });
  if (fe?.statusCode === 400) return new TallyError("validation_error", fe.message, { field: "body" });
  if (fe?.statusCode === 404) return new TallyError("not_found", fe.message, {});
  if (fe?.statusCode === 413)
    return new TallyError("payload_too_large", "the request body is too large", { field: "body" });
  return new TallyError("internal_error", "internal error", {});
}

export function errorHandler(err: unknown, req: FastifyRequest, reply: FastifyReply): void {
  const te = toTallyError(err);
  const status = HTTP_STATUS[te.code];
  if (status >= 500) req.log.error({ err }, "request failed");
  if (te.code === "rate_limited" && te.details.retry_after_s !== undefined)
    void reply.header("retry-after", String(te.details.retry_after_s));
  void reply.code(status).send(errorBody(te, req.id));
}
