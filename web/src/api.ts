/**
 * @module web/api
 * The UI's one way to call the API: same-origin requests with the session cookie, JSON in and
 * out, and every failure as an `ApiError` carrying the problem document's title and detail (the
 * API's own messages, shown as they are). Types come from the API's models (`import type` only,
 * so nothing of the server reaches the bundle).
 */

/** RFC 9457 problem document, as the API answers every error. */
export type Problem = {
  type?: string;
  title?: string;
  status?: number;
  detail?: string;
  /** Validation failures: a JSON pointer to the field, and what is wrong with it. */
  errors?: { pointer: string; detail: string }[];
};

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly problem: Problem,
  ) {
    super(problem.detail || problem.title || `HTTP ${status}`);
  }
  /** The message for one form field, when the API named it. */
  fieldMessage(field: string): string | undefined {
    return this.problem.errors?.find((e) => e.pointer.replace(/^\//, "") === field)?.detail;
  }
}

type Method = "GET" | "POST" | "PUT" | "PATCH" | "DELETE";

/** Called when the API says the session is gone, so the app can send the person to sign in. */
let onUnauthenticated: () => void = () => {};
export function whenSignedOut(handler: () => void) {
  onUnauthenticated = handler;
}

export async function request<T>(method: Method, path: string, body?: unknown): Promise<T> {
  const res = await fetch(path, {
    method,
    credentials: "same-origin",
    headers:
      body === undefined
        ? { accept: "application/json" }
        : { accept: "application/json", "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (res.status === 204) return undefined as T;
  const text = await res.text();
  let data: unknown = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!res.ok) {
    const problem = (data && typeof data === "object" ? data : { title: res.statusText }) as Problem;
    // A wrong password (signing in, or the current one when changing it) is a 401 too, but the
    // session is still there: the form shows the message instead of the sign-in page.
    if (res.status === 401 && !path.startsWith("/api/v1/auth/login") && path !== "/api/v1/me/password")
      onUnauthenticated();
    throw new ApiError(res.status, problem);
  }
  return data as T;
}

export const api = {
  get: <T>(path: string) => request<T>("GET", path),
  post: <T>(path: string, body?: unknown) => request<T>("POST", path, body ?? {}),
  put: <T>(path: string, body?: unknown) => request<T>("PUT", path, body ?? {}),
  patch: <T>(path: string, body?: unknown) => request<T>("PATCH", path, body ?? {}),
  delete: <T = void>(path: string) => request<T>("DELETE", path),
};

/** Query string from the set values of an object (undefined and "" left out). */
export function query(params: Record<string, string | number | undefined | null>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") q.set(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : "";
}

/** Path segment, escaped. */
export const seg = (s: string) => encodeURIComponent(s);
