/** The purchase commands' lines of `tally --help` (kept apart so the help loads nothing heavy). */
export const PURCHASES_HELP = `  packs list                              credit packs (inactive ones too)
  packs create NAME CREDITS PRICE [--currency USD] [--expires-days N]   a pack (never expires unless --expires-days)
  purchases list [ACCOUNT_ID] [--limit N] [--cursor C]
  purchases show PURCHASE_ID
  purchases refund PURCHASE_ID [--reason R]   void what is left of it, refund the money through its provider
  purchases reconcile                     finish interrupted fulfilments, charges and refunds; expire checkouts
  auto-recharge sweep                     check every auto-recharge rule now (the scheduler's pass)`;
