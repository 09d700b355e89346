/**
 * @module web/data
 * Loading what a page shows: `useApi(path)` fetches and re-fetches on demand, and `<Loaded>`
 * renders the loading state, the error page for 401/403/404 (never raw JSON), or the content.
 */
import type { ComponentChildren } from "preact";
import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import { api, type ApiError } from "./api.ts";
import { ErrorPage } from "./pages/errors.tsx";

export type Loadable<T> = {
  data: T | undefined;
  error: ApiError | Error | undefined;
  loading: boolean;
  /** Fetch again (after a change, or on a live event). */
  reload: () => Promise<void>;
  /** Replace the data in place (after a change the API answered with the new value). */
  set: (data: T) => void;
};

/** GET `path` (null: nothing to load yet); reloads when the path changes. */
export function useApi<T>(path: string | null): Loadable<T> {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<ApiError | Error | undefined>(undefined);
  const [loading, setLoading] = useState(path !== null);
  const latest = useRef(path);
  latest.current = path;
  const reload = useCallback(async () => {
    if (path === null) return;
    setLoading(true);
    try {
      const d = await api.get<T>(path);
      if (latest.current !== path) return; // a newer path was asked for meanwhile
      setData(d);
      setError(undefined);
    } catch (e) {
      if (latest.current === path) setError(e as Error);
    } finally {
      if (latest.current === path) setLoading(false);
    }
  }, [path]);
  useEffect(() => {
    setData(undefined);
    void reload();
  }, [reload]);
  return { data, error, loading, reload, set: setData };
}

/** The content once loaded; the UI's error page when the API refused or did not find it. */
export function Loaded<T>(props: { from: Loadable<T>; children: (data: T) => ComponentChildren }) {
  const { data, error } = props.from;
  if (error && data === undefined) return <ErrorPage error={error} />;
  if (data === undefined)
    return (
      <p class="loading" role="status">
        Loading…
      </p>
    );
  return <>{props.children(data)}</>;
}
