/** Full scans of an account's usages and journal through the engine's paginated reads, for tests. */
import type { Engine } from "../../src/ledger/engine.ts";
import type { JournalEntry, UsageRecord } from "../../src/ledger/types.ts";

const MAX_PAGES = 1000;

export async function allUsages(engine: Engine, accountId: string): Promise<UsageRecord[]> {
  const out: UsageRecord[] = [];
  let cursor: string | undefined;
  for (let i = 0; i < MAX_PAGES; i++) {
    const page = await engine.listUsages({
      account_id: accountId,
      limit: 1000,
      ...(cursor ? { cursor } : {}),
    });
    out.push(...page.data);
    if (!page.next_cursor) return out;
    cursor = page.next_cursor;
  }
  throw new Error("too many usage pages");
}

export async function allEntries(engine: Engine, accountId: string): Promise<JournalEntry[]> {
  const out: JournalEntry[] = [];
  let cursor: string | undefined;
  for (let i = 0; i < MAX_PAGES; i++) {
    const page = await engine.listEntries({
      account_id: accountId,
      limit: 1000,
      ...(cursor ? { cursor } : {}),
    });
    out.push(...page.data);
    if (!page.next_cursor) return out;
    cursor = page.next_cursor;
  }
  throw new Error("too many journal pages");
}

/**
 * Checks that every usage has exactly one debit transaction in the journal, that this transaction is the
 * one the usage names, and that its legs are whole: the grants lose exactly the usage's parts and
 * `consumed` gains exactly its cost. Also checks that no debit transaction exists without its usage.
 * Returns the problems found (empty when all is well).
 */
export function journalProblems(usages: readonly UsageRecord[], entries: readonly JournalEntry[]): string[] {
  const problems: string[] = [];
  const byRef = new Map<string, JournalEntry[]>();
  for (const e of entries) {
    if (e.kind !== "debit") continue;
    const list = byRef.get(e.ref);
    if (list) list.push(e);
    else byRef.set(e.ref, [e]);
  }
  const seen = new Set<string>();
  for (const u of usages) {
    if (seen.has(u.id)) problems.push(`usage ${u.id} listed twice`);
    seen.add(u.id);
    const legs = byRef.get(u.id) ?? [];
    const txns = new Set(legs.map((e) => e.txn_id));
    if (txns.size !== 1 || !txns.has(u.txn_id)) {
      problems.push(`usage ${u.id}: debit transactions ${JSON.stringify([...txns])}, expected [${u.txn_id}]`);
      continue;
    }
    let consumed = 0n;
    let fromGrants = 0n;
    const perGrant = new Map<string, bigint>();
    for (const e of legs) {
      if (e.ledger === "consumed") consumed += e.amount;
      else if (e.ledger.startsWith("grant:")) {
        fromGrants += e.amount;
        perGrant.set(e.ledger.slice(6), (perGrant.get(e.ledger.slice(6)) ?? 0n) + e.amount);
      } else problems.push(`usage ${u.id}: unexpected leg ${e.ledger} ${e.amount}`);
    }
    if (consumed !== u.cost) problems.push(`usage ${u.id}: consumed ${consumed}, cost ${u.cost}`);
    if (fromGrants !== -u.cost) problems.push(`usage ${u.id}: grants gave ${-fromGrants}, cost ${u.cost}`);
    for (const p of u.parts)
      if (perGrant.get(p.grant_id) !== -p.amount)
        problems.push(`usage ${u.id}: part ${p.grant_id} ${p.amount} vs journal ${perGrant.get(p.grant_id)}`);
  }
  for (const ref of byRef.keys())
    if (!seen.has(ref)) problems.push(`debit transaction for ${ref} without its usage`);
  return problems;
}
