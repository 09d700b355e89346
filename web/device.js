// The device-login approval page: log in (session cookie), look up the code the person types,
// approve or deny. A code in the link is never used: filling it in is what a phishing link relies on.
(() => {
  const $ = (id) => document.getElementById(id);
  const say = (text) => ($("message").textContent = text);
  const api = async (method, path, body) => {
    const res = await fetch(path, {
      method,
      credentials: "same-origin",
      headers: body ? { "content-type": "application/json" } : {},
      body: body ? JSON.stringify(body) : undefined,
    });
    const data = res.status === 204 ? null : await res.json().catch(() => null);
    if (!res.ok) throw new Error(data?.detail || `HTTP ${res.status}`);
    return data;
  };

  async function showLookup(user) {
    $("login").hidden = true;
    $("lookup").hidden = false;
    $("who").textContent = `Signed in as ${user.username}.`;
    $("code").focus();
  }

  async function lookup(code) {
    try {
      const d = await api("GET", `/api/v1/auth/device/${encodeURIComponent(code)}`);
      $("req-code").textContent = d.user_code;
      $("req-client").textContent = d.client_name || "(none)";
      $("req-ip").textContent = d.ip || "unknown";
      $("req-agent").textContent = d.user_agent || "unknown";
      const minutes = Math.max(0, Math.round((Date.now() - Date.parse(d.created_at)) / 60000));
      $("req-at").textContent = `${new Date(d.created_at).toLocaleString()} (${minutes} min ago)`;
      $("req-days").textContent = String(d.token_lifetime_days);
      $("decide").hidden = false;
      say("");
    } catch (e) {
      $("decide").hidden = true;
      say(`Cannot find that code: ${e.message}`);
    }
  }

  async function decide(action) {
    try {
      await api("POST", `/api/v1/auth/device/${action}`, { user_code: $("req-code").textContent });
      $("decide").hidden = true;
      say(
        action === "approve" ? "Approved. You can return to your terminal." : "Denied. The CLI will not be logged in.",
      );
    } catch (e) {
      say(`Could not ${action}: ${e.message}`);
    }
  }

  $("login").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const f = new FormData(ev.target);
    try {
      const r = await api("POST", "/api/v1/auth/login", { username: f.get("username"), password: f.get("password") });
      await showLookup(r.user);
    } catch (e) {
      say(`Login failed: ${e.message}`);
    }
  });
  $("lookup").addEventListener("submit", (ev) => {
    ev.preventDefault();
    lookup($("code").value);
  });
  $("approve").addEventListener("click", () => decide("approve"));
  $("deny").addEventListener("click", () => decide("deny"));

  // Whatever the link carried (?code=, #CODE) leaves the address bar unused.
  if (location.search || location.hash) history.replaceState(null, "", location.pathname);
  api("GET", "/api/v1/me")
    .then(showLookup)
    .catch(() => {
      $("login").hidden = false;
    });
})();
