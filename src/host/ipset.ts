/**
 * @module host/ipset
 * The text `ipset restore` reads to refresh sets atomically (fill a temporary set, swap,
 * destroy), shared by the egress agent's sets and the builders' network policy. Pure: nothing
 * here runs a program.
 */

/** hash:net cannot hold a /0: split it into two halves. */
export function setMembers(members: string[], family: 4 | 6): string[] {
  const out: string[] = [];
  for (const m of members) {
    if (m === "0.0.0.0/0" && family === 4) out.push("0.0.0.0/1", "128.0.0.0/1");
    else if (m === "::/0" && family === 6) out.push("::/1", "8000::/1");
    else out.push(m);
  }
  return out;
}

/** `ipset restore` input that refreshes each set atomically: fill a temporary set, swap, destroy. */
export function renderIpsetRestore(sets: Map<string, { family: 4 | 6; members: string[] }>): string {
  const lines: string[] = [];
  for (const [name, { family, members }] of sets) {
    const opts = `hash:net family ${family === 4 ? "inet" : "inet6"} hashsize 1024 maxelem 1048576`;
    const tmp = `${name}_t`;
    lines.push(`create ${name} ${opts} -exist`, `create ${tmp} ${opts} -exist`, `flush ${tmp}`);
    for (const m of new Set(setMembers(members, family))) lines.push(`add ${tmp} ${m} -exist`);
    lines.push(`swap ${tmp} ${name}`, `destroy ${tmp}`);
  }
  return `${lines.join("\n")}\n`;
}
