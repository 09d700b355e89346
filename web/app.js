// Shows /readyz as a list: which checks pass, which warn, which fail.
(async () => {
  const overall = document.getElementById("overall");
  const list = document.getElementById("checks");
  try {
    const res = await fetch("/readyz", { headers: { accept: "application/health+json" } });
    const health = await res.json();
    overall.textContent = `Version ${health.version}: ${health.status === "pass" ? "ready" : health.status}`;
    for (const [name, [check]] of Object.entries(health.checks)) {
      const li = document.createElement("li");
      li.className = check.status;
      li.textContent = `${name}: ${check.output ?? check.status}`;
      list.append(li);
    }
  } catch (e) {
    overall.textContent = `Status unavailable: ${e}`;
  }
})();
