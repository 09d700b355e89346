/**
 * @module web/live
 * Live updates: one Server-Sent Events stream per view (`EventSource`, same origin, the
 * session cookie), reconnecting on its own. Handlers get each event's name and parsed data.
 */
import { useEffect, useRef } from "preact/hooks";

export type LiveEvent = { event: string; data: unknown };

/** Follow `path` (null: not yet) while the component is shown. */
export function useLive(path: string | null, onEvent: (e: LiveEvent) => void, events: string[] = ["message"]) {
  const handler = useRef(onEvent);
  handler.current = onEvent;
  const names = events.join(",");
  useEffect(() => {
    if (path === null) return;
    const source = new EventSource(path, { withCredentials: true });
    const listen = (event: string) => (m: MessageEvent) => {
      let data: unknown = m.data;
      try {
        data = JSON.parse(m.data);
      } catch {}
      handler.current({ event, data });
    };
    for (const name of names.split(",")) source.addEventListener(name, listen(name) as EventListener);
    return () => source.close();
  }, [path, names]);
}
