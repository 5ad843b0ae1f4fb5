// node-postgres's connect traffic for the catalog corpus (record_corpus.py). node-postgres
// sends no catalog query of its own — it maps result columns by the type OIDs in
// RowDescription (pg-types) — so what it contributes is its connect and its parameterised
// query form (Parse/Bind with untyped text parameters) over the catalog.
'use strict';
const { Client } = require('pg');

async function main() {
  const client = new Client({ application_name: 'node-postgres' });
  await client.connect();
  await client.query('select $1::int as n', [1]);
  await client.query('select table_schema, table_name from information_schema.tables where table_name = $1', ['sensors']);
  await client.end();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
