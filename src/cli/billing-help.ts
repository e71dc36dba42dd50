/** Usage lines of the billing commands (kept apart so `tally --help` loads no billing code). */
export const BILLING_HELP = `  plans create ID --name N --allowance CREDITS [--price P] [--currency C] [--overage block|allow]
               [--overage-rate MONEY_PER_CREDIT] [--overage-limit CREDITS] [--tier T] [--rollover-cap CREDITS]
  plans list | plans show ID | plans archive ID
  subscriptions create ACCOUNT_ID --plan PLAN_ID [--anchor ISO] [--id ID]
  subscriptions show SUB_ID | subscriptions list [ACCOUNT_ID]
  subscriptions change SUB_ID --plan PLAN_ID [--timing now|period_end]
  subscriptions cancel|resume SUB_ID
  subscriptions renew                     one renewal pass over every due subscription
  statement ACCOUNT_ID --start ISO [--end ISO] [--format json|csv]
  adjust ACCOUNT_ID --reason TEXT [--id ID] -- AMOUNT   adds credits; a negative AMOUNT ("-- -5") removes`;
