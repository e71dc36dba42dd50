export class PostgresStore { constructor(_u: string) { throw new Error("todo"); } }
