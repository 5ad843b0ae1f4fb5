// node-postgres (`pg`) against Tarn's SQL endpoint: SCRAM-SHA-256 login (plain and TLS),
// simple queries (no parameters: the simple Query protocol) and parameterised ones (Parse/
// Bind/Execute with text parameters of unknown type, as node-postgres sends them), for every
// type a driver asks for, plus named prepared statements, multi-statement queries, errors
// and transactions. Run by tests/sql/test_pgwire_node.py with PGHOST, PGPORT, PGUSER and
// PGPASSWORD set; prints "ok N checks" and exits 0, or prints the first failure and exits 1.
'use strict';
const assert = require('assert');
const { Client, types } = require('pg');

// Exact server text for the date/time types (the default parsers build local-time Dates).
const dateTimeOids = new Set([1082, 1083, 1114, 1184, 1186]);  // date time timestamp timestamptz interval
const rawDateTimes = {
  getTypeParser: (oid, format) => (dateTimeOids.has(oid) ? (v) => v : types.getTypeParser(oid, format)),
};

let checks = 0;
const failures = [];
function eq(actual, expected, what) {
  checks++;
  try {
    assert.deepStrictEqual(actual, expected, what);
  } catch (e) {
    failures.push(`${what}: got ${JSON.stringify(actual)}, want ${JSON.stringify(expected)}`);
  }
}

// [label, SQL literal expression, parameter value, cast, expected JS value, expected type OID]
const CASES = [
  ['int2', '12::int2', 12, 'int2', 12, 21],
  ['int4', '2147483647::int4', 2147483647, 'int4', 2147483647, 23],
  ['int4 negative', '-7::int4', -7, 'int4', -7, 23],
  ['int8', '9007199254740993::int8', '9007199254740993', 'int8', '9007199254740993', 20],
  ['float4', '1.5::float4', 1.5, 'float4', 1.5, 700],
  ['float8', '3.141592653589793::float8', 3.141592653589793, 'float8', 3.141592653589793, 701],
  ['numeric', '12345.6789::numeric(10,4)', '12345.6789', 'numeric(10,4)', '12345.6789', 1700],
  ['text', "'it''s héllo'::text", "it's héllo", 'text', "it's héllo", 25],
  ['varchar', "'abc'::varchar", 'abc', 'varchar', 'abc', 25],  // DuckDB has one string type
  ['bool true', 'true', true, 'bool', true, 16],
  ['bool false', 'false', false, 'bool', false, 16],
  ['date', "'2024-02-29'::date", '2024-02-29', 'date', '2024-02-29', 1082],
  ['time', "'13:45:30.5'::time", '13:45:30.5', 'time', '13:45:30.5', 1083],
  ['timestamp', "'2024-02-29 13:45:30.123456'::timestamp", '2024-02-29 13:45:30.123456', 'timestamp',
   '2024-02-29 13:45:30.123456', 1114],
  ['timestamptz', "'2024-02-29 13:45:30+00'::timestamptz", '2024-02-29 13:45:30+00', 'timestamptz',
   '2024-02-29 13:45:30+00', 1184],
  ['interval', "'1 day 02:03:04'::interval", '1 day 02:03:04', 'interval', '1 day 02:03:04', 1186],
  ['uuid', "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid", 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'uuid',
   'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 2950],
  ['bytea', "'\\x01ff00'::bytea", Buffer.from([1, 255, 0]), 'bytea', Buffer.from([1, 255, 0]), 17],
  ['json', `'{"a": [1, 2], "b": "x"}'::json`, '{"a": [1, 2], "b": "x"}', 'json', { a: [1, 2], b: 'x' }, 114],
  ['int4[]', "[1, 2, 3]::int4[]", [1, 2, 3], 'int4[]', [1, 2, 3], 1007],
  ['text[]', "['a', 'b c', NULL]::text[]", ['a', 'b c', null], 'text[]', ['a', 'b c', null], 1009],
  ['null', 'NULL::text', null, 'text', null, 25],
];

async function run(client, tls) {
  eq((await client.query('select 1 as one')).rows, [{ one: 1 }], 'select 1');
  for (const [label, literal, param, cast, expected, oid] of CASES) {
    const simple = await client.query(`select ${literal} as v`);
    eq(simple.rows[0].v, expected, `${label} (simple query)`);
    eq(simple.fields[0].dataTypeID, oid, `${label} type OID (simple)`);
    const bound = await client.query(`select $1::${cast} as v`, [param]);
    eq(bound.rows[0].v, expected, `${label} (parameter)`);
    eq(bound.fields[0].dataTypeID, oid, `${label} type OID (parameter)`);
  }
  // Default parsers (no raw override): timestamptz becomes a Date at the same instant.
  const dt = await client.query({
    text: "select '2024-02-29 13:45:30.25+00'::timestamptz as t, $1::timestamptz as p",
    values: [new Date(Date.UTC(2020, 0, 2, 3, 4, 5, 6))],
    types,
  });
  eq(dt.rows[0].t.getTime(), Date.UTC(2024, 1, 29, 13, 45, 30, 250), 'timestamptz as Date');
  eq(dt.rows[0].p.getTime(), Date.UTC(2020, 0, 2, 3, 4, 5, 6), 'Date parameter round trip');

  // Named prepared statements, executed repeatedly with different values.
  for (let i = 0; i < 12; i++) {
    const r = await client.query({ name: 'double_it', text: 'select $1::int8 * 2 as v, $2::text as s', values: [i, `n${i}`] });
    eq(r.rows[0], { v: String(i * 2), s: `n${i}` }, `named statement run ${i}`);
  }
  // Multi-statement simple query: one result per statement.
  const multi = await client.query('select 1 as a; select 2 as b');
  eq(multi.map((r) => r.rows[0]), [{ a: 1 }, { b: 2 }], 'multi-statement');

  // Writes with parameters in a transaction, row counts, rollback.
  const table = `node_t_${tls ? 'tls' : 'plain'}`;
  await client.query(`create table ${table} (id int, name text, score double, ok boolean, ts timestamp)`);
  await client.query('begin');
  for (let i = 0; i < 5; i++) {
    const r = await client.query(`insert into ${table} values ($1, $2, $3, $4, $5)`,
      [i, `name ${i}`, i / 4, i % 2 === 0, `2024-01-0${i + 1} 00:00:00`]);
    eq(r.rowCount, 1, 'insert rowCount');
  }
  await client.query('commit');
  await client.query('begin');
  await client.query(`delete from ${table}`);
  await client.query('rollback');
  const rows = await client.query(`select id, name, score, ok, ts from ${table} where id >= $1 order by id`, [3]);
  eq(rows.rows, [
    { id: 3, name: 'name 3', score: 0.75, ok: false, ts: '2024-01-04 00:00:00' },
    { id: 4, name: 'name 4', score: 1, ok: true, ts: '2024-01-05 00:00:00' },
  ], 'rows after commit and rollback');
  const upd = await client.query(`update ${table} set score = score + $1 where ok = $2`, [10, true]);
  eq([upd.command, upd.rowCount], ['UPDATE', 3], 'update command and rowCount');

  // Errors carry SQLSTATE and the session continues.
  await assert.rejects(client.query('select * from no_such_table'), (e) => e.code === '42P01');
  await assert.rejects(client.query('selec 1'), (e) => e.code === '42601');
  await assert.rejects(client.query('select $1::int', ['not a number']), (e) => e.code.startsWith('22'));
  checks += 3;
  eq((await client.query('select $1::text || $2::text as s', ['a', 'b'])).rows[0].s, 'ab', 'after errors');
  await client.query(`drop table ${table}`);
}

async function main() {
  const base = {
    host: process.env.PGHOST, port: Number(process.env.PGPORT), user: process.env.PGUSER,
    password: process.env.PGPASSWORD, database: 'tarn', types: rawDateTimes,
  };
  for (const tls of [false, true]) {
    const client = new Client({ ...base, ssl: tls ? { rejectUnauthorized: false } : false });
    await client.connect();  // SCRAM-SHA-256 (Tarn never offers md5 or cleartext)
    try {
      eq(client.connection.stream.encrypted === true, tls, 'TLS in use');
      await run(client, tls);
    } finally {
      await client.end();
    }
  }
  // A wrong password is refused with 28P01.
  const bad = new Client({ ...base, password: 'wrong-password', ssl: false });
  await assert.rejects(bad.connect(), (e) => e.code === '28P01');
  checks++;
  if (failures.length) {
    console.error(failures.join('\n'));
    console.error(`${failures.length} of ${checks} checks failed`);
    process.exit(1);
  }
  console.log(`ok ${checks} checks`);
}

main().catch((e) => {
  console.error(e && e.stack ? e.stack : e);
  process.exit(1);
});
