/**
 * @module web/session
 * Who is signed in, and in which organizations with which role: loaded once from `/api/v1/me`
 * and `/api/v1/orgs`, shared through a context. Pages ask `canOwn(org)` before showing owner
 * actions; the API still decides every request (a hidden button is a courtesy, not the check).
 */
import type { MeView } from "../../src/auth/models.ts";
import type { OrgView } from "../../src/orgs/models.ts";
import { createContext, type ComponentChildren } from "preact";
import { useCallback, useContext, useEffect, useState } from "preact/hooks";
import { api, ApiError, whenSignedOut } from "./api.ts";

export type Session = {
  me: MeView;
  orgs: OrgView[];
  /** Reload who and where (after a membership or organization change). */
  refresh: () => Promise<void>;
  signOut: () => Promise<void>;
};

const SessionContext = createContext<Session | null>(null);

/** The signed-in session; only rendered inside `<SessionProvider>` once someone is signed in. */
export function useSession(): Session {
  const s = useContext(SessionContext);
  if (!s) throw new Error("useSession outside a signed-in page");
  return s;
}

/** An organization by slug or id, among those the session can see. */
export function findOrg(session: Session, ref: string): OrgView | undefined {
  return session.orgs.find((o) => o.slug === ref || o.id === ref);
}

/** Owner actions are offered to owners of the organization and to administrators. */
export function canOwn(session: Session, org: Pick<OrgView, "id"> | undefined): boolean {
  return !!org && (session.me.is_admin || session.me.memberships[org.id] === "owner");
}

type State = { kind: "loading" } | { kind: "signed-out" } | { kind: "in"; me: MeView; orgs: OrgView[] };

/** Where to go after signing in: the page asked for, if it is one of ours. */
export function signInPath(next: string): string {
  return next && next !== "/" && next.startsWith("/") && !next.startsWith("//") && !next.startsWith("/login")
    ? `/login?next=${encodeURIComponent(next)}`
    : "/login";
}

export function SessionProvider(props: {
  children: ComponentChildren;
  /** What a signed-out visitor sees; it calls `signedIn` once a session exists. */
  signedOut: (signedIn: () => Promise<void>) => ComponentChildren;
  loading: ComponentChildren;
}) {
  const [state, setState] = useState<State>({ kind: "loading" });
  const load = useCallback(async () => {
    try {
      const [me, orgs] = await Promise.all([api.get<MeView>("/api/v1/me"), api.get<OrgView[]>("/api/v1/orgs")]);
      setState({ kind: "in", me, orgs });
    } catch (e) {
      if (e instanceof ApiError && (e.status === 401 || e.status === 403)) setState({ kind: "signed-out" });
      else throw e;
    }
  }, []);
  useEffect(() => {
    whenSignedOut(() => setState({ kind: "signed-out" }));
    void load();
  }, [load]);
  if (state.kind === "loading") return <>{props.loading}</>;
  if (state.kind === "signed-out") return <>{props.signedOut(load)}</>;
  const session: Session = {
    me: state.me,
    orgs: state.orgs,
    refresh: load,
    signOut: async () => {
      await api.post("/api/v1/auth/logout").catch(() => {});
      setState({ kind: "signed-out" });
    },
  };
  return <SessionContext.Provider value={session}>{props.children}</SessionContext.Provider>;
}
