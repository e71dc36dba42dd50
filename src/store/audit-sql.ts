/**
 * Audit queries, written once in SQL that both SQLite and PostgreSQL run unchanged. Each returns only
 * the rows that disagree, so an audit of a large journal moves little data.
 */
export const AUDIT_SQL = {
  unbalancedTxns: `SELECT txn_id AS id, SUM(amount) AS actual FROM postings GROUP BY txn_id HAVING SUM(amount) <> 0`,
  grantMismatch: `
    SELECT g.id AS id, g.remaining AS expected, COALESCE(p.s, 0) AS actual, g.amount AS amount, g.status AS status
    FROM grants g
    LEFT JOIN (SELECT ledger, SUM(amount) AS s FROM postings WHERE ledger LIKE 'grant:%' GROUP BY ledger) p
      ON p.ledger = 'grant:' || g.id
    WHERE g.remaining <> COALESCE(p.s, 0) OR g.remaining < 0 OR g.remaining > g.amount
       OR (g.status <> 'active' AND g.remaining <> 0)`,
  holdClosedNonZero: `
    SELECT h.id AS id, COALESCE(p.s, 0) AS actual
    FROM holds h
    JOIN (SELECT ledger, SUM(amount) AS s FROM postings WHERE ledger LIKE 'hold:%' GROUP BY ledger) p
      ON p.ledger = 'hold:' || h.id
    WHERE h.status <> 'active' AND p.s <> 0`,
  activeHolds: `
    SELECT h.id AS id, h.parts AS parts, COALESCE(p.s, 0) AS actual
    FROM holds h
    LEFT JOIN (SELECT ledger, SUM(amount) AS s FROM postings WHERE ledger LIKE 'hold:%' GROUP BY ledger) p
      ON p.ledger = 'hold:' || h.id
    WHERE h.status = 'active'`,
  orphanLedgers: `
    SELECT p.ledger AS id, SUM(p.amount) AS actual FROM postings p
    WHERE (p.ledger LIKE 'grant:%' AND NOT EXISTS (SELECT 1 FROM grants g WHERE 'grant:' || g.id = p.ledger))
       OR (p.ledger LIKE 'hold:%' AND NOT EXISTS (SELECT 1 FROM holds h WHERE 'hold:' || h.id = p.ledger))
    GROUP BY p.ledger`,
  accountOverage: `
    SELECT a.id AS id, a.overage_balance AS expected, COALESCE(-p.s, 0) AS actual
    FROM accounts a
    LEFT JOIN (SELECT account_id, SUM(amount) AS s FROM postings WHERE ledger = 'overage' GROUP BY account_id) p
      ON p.account_id = a.id
    WHERE a.overage_balance <> COALESCE(-p.s, 0) OR a.overage_balance < 0`,
  accountIssued: `
    SELECT a.id AS id, a.granted_total AS expected, COALESCE(-p.s, 0) AS actual
    FROM accounts a
    LEFT JOIN (SELECT account_id, SUM(amount) AS s FROM grants GROUP BY account_id) g ON g.account_id = a.id
    LEFT JOIN (SELECT account_id, SUM(amount) AS s FROM postings WHERE ledger = 'issued' GROUP BY account_id) p
      ON p.account_id = a.id
    WHERE a.granted_total <> COALESCE(-p.s, 0) OR COALESCE(g.s, 0) <> COALESCE(-p.s, 0)`,
  accountNonZero: `SELECT account_id AS id, SUM(amount) AS actual FROM postings GROUP BY account_id HAVING SUM(amount) <> 0`,
  usageConsumed: `
    SELECT u.id AS id, u.cost - u.refunded AS expected, COALESCE(d.s, 0) + COALESCE(r.s, 0) AS actual
    FROM usages u
    LEFT JOIN (SELECT ref, SUM(amount) AS s FROM postings WHERE ledger = 'consumed' AND kind IN ('debit', 'capture')
               GROUP BY ref) d ON d.ref = u.id
    LEFT JOIN (SELECT f.usage_id AS usage_id, SUM(p.amount) AS s FROM postings p JOIN refunds f ON f.id = p.ref
               WHERE p.ledger = 'consumed' AND p.kind = 'refund' GROUP BY f.usage_id) r ON r.usage_id = u.id
    WHERE u.cost - u.refunded <> COALESCE(d.s, 0) + COALESCE(r.s, 0)
       OR u.refunded > u.cost OR u.refunded < 0`,
  // Per account (each sum fits 64 bits by MAX_ACCOUNT_GRANTED); the grand totals are added up in bigint.
  totals: `SELECT account_id, CASE WHEN ledger LIKE 'grant:%' THEN 'grants' WHEN ledger LIKE 'hold:%' THEN 'held' ELSE ledger END
                  AS ledger, SUM(amount) AS s FROM postings GROUP BY account_id, 2`,
  counts: `SELECT
    (SELECT COUNT(DISTINCT txn_id) FROM postings) AS transactions,
    (SELECT COUNT(*) FROM postings) AS postings,
    (SELECT COUNT(*) FROM grants) AS grants,
    (SELECT COUNT(*) FROM holds) AS holds,
    (SELECT COUNT(*) FROM usages) AS usages,
    (SELECT COUNT(*) FROM accounts) AS accounts`,
} as const;
