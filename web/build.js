// A build's page (its build_url): status, steps, log; refreshed while it runs. Signed-in users
// only (session cookie); what the API refuses, the page says.
(() => {
  const $ = (id) => document.getElementById(id);
  const id = decodeURIComponent(location.pathname.split("/").pop() || "");
  $("build-id").textContent = id;
  const say = (text) => ($("message").textContent = text);
  const api = async (method, path, body, raw) => {
    const res = await fetch(path, {
      method,
      credentials: "same-origin",
      headers: body ? { "content-type": "application/json" } : {},
      body: body ? JSON.stringify(body) : undefined,
    });
    if (res.status === 401) throw Object.assign(new Error("sign in"), { status: 401 });
    if (!res.ok) {
      const p = await res.json().catch(() => null);
      throw new Error(p?.detail || `HTTP ${res.status}`);
    }
    return raw ? res : res.json();
  };
  const ms = (a, b) => (a && b ? `${((Date.parse(b) - Date.parse(a)) / 1000).toFixed(1)} s` : "");

  async function load() {
    try {
      const b = await api("GET", `/api/v1/builds/${encodeURIComponent(id)}`);
      $("login").hidden = true;
      $("build").hidden = false;
      $("status").textContent = b.status;
      $("error").textContent = b.error || "";
      $("project").textContent = b.project_id;
      $("platforms").textContent = b.platforms.join(", ") || "—";
      $("started-by").textContent = b.started_by;
      $("created").textContent = new Date(b.created_at).toLocaleString();
      $("finished").textContent = b.finished_at ? new Date(b.finished_at).toLocaleString() : "—";
      $("cancel").hidden = !(b.status === "created" || b.status === "running");
      $("truncated").hidden = !b.log_truncated;
      const steps = await api("GET", `/api/v1/builds/${encodeURIComponent(id)}/steps`);
      const body = $("steps");
      body.replaceChildren(
        ...steps.map((s) => {
          const tr = document.createElement("tr");
          for (const text of [
            s.name + (s.error ? ` — ${s.error}` : ""),
            s.cached ? "cached" : "",
            ms(s.started_at, s.completed_at),
          ]) {
            const td = document.createElement("td");
            td.textContent = text;
            tr.append(td);
          }
          return tr;
        }),
      );
      $("log").textContent = await (
        await api("GET", `/api/v1/builds/${encodeURIComponent(id)}/logs`, undefined, true)
      ).text();
      if (b.status === "created" || b.status === "running") setTimeout(load, 2000);
    } catch (e) {
      if (e.status === 401) {
        $("login").hidden = false;
        return;
      }
      say(`Cannot show this build: ${e.message}`);
    }
  }

  $("login").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const f = new FormData(ev.target);
    try {
      await api("POST", "/api/v1/auth/login", { username: f.get("username"), password: f.get("password") });
      await load();
    } catch (e) {
      say(`Login failed: ${e.message}`);
    }
  });
  $("cancel").addEventListener("click", async () => {
    try {
      await api("POST", `/api/v1/builds/${encodeURIComponent(id)}/cancel`);
      say("Cancel requested: the client stops at its next health report.");
      await load();
    } catch (e) {
      say(`Cannot cancel: ${e.message}`);
    }
  });
  load();
})();
