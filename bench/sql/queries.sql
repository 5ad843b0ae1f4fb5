-- bench/sql: 20 ClickBench-style analytic queries over generated sensor readings (duck_bench gen).
-- run.sh replaces @PARQUET@ with the file; CREATE lines are untimed set-up, one statement a line.
CREATE TEMP VIEW sensors AS SELECT * FROM read_parquet('@PARQUET@')
SELECT count(*) FROM sensors
SELECT count(*) FROM sensors WHERE status <> 'ok'
SELECT sum(temperature), count(*), avg(humidity) FROM sensors
SELECT avg(device_id) FROM sensors
SELECT count(DISTINCT device_id) FROM sensors
SELECT min(ts), max(ts) FROM sensors
SELECT status, count(*) AS c FROM sensors GROUP BY status ORDER BY c DESC
SELECT site, count(DISTINCT device_id) AS u FROM sensors GROUP BY site ORDER BY u DESC, site LIMIT 10
SELECT site, sum(pressure), count(*) AS c, avg(temperature), count(DISTINCT device_id) FROM sensors GROUP BY site ORDER BY c DESC, site LIMIT 10
SELECT firmware, count(DISTINCT device_id) AS u FROM sensors WHERE status <> 'ok' GROUP BY firmware ORDER BY u DESC, firmware LIMIT 10
SELECT device_id, count(*) AS c FROM sensors GROUP BY device_id ORDER BY c DESC, device_id LIMIT 10
SELECT device_id, site, count(*) AS c FROM sensors GROUP BY device_id, site ORDER BY c DESC, device_id LIMIT 10
SELECT date_trunc('hour', ts) AS h, avg(temperature) FROM sensors GROUP BY h ORDER BY h
SELECT date_trunc('day', ts) AS d, site, max(temperature), min(temperature) FROM sensors GROUP BY d, site ORDER BY d, site
SELECT device_id, avg(temperature) AS t FROM sensors WHERE ts >= TIMESTAMP '2024-01-10' AND ts < TIMESTAMP '2024-01-11' GROUP BY device_id ORDER BY t DESC, device_id LIMIT 10
SELECT time_bucket(INTERVAL '15 minutes', ts) AS b, count(*) FROM sensors WHERE status = 'error' GROUP BY b ORDER BY b
SELECT device_id, extract(hour FROM ts) AS hr, count(*) AS c FROM sensors GROUP BY device_id, hr ORDER BY c DESC, device_id, hr LIMIT 10
SELECT * FROM sensors WHERE temperature > 38 ORDER BY ts LIMIT 10
SELECT site, quantile_cont(temperature, 0.95) AS p95 FROM sensors GROUP BY site ORDER BY site
SELECT device_id, count(*), avg(battery), max(humidity) FROM sensors GROUP BY device_id ORDER BY device_id
