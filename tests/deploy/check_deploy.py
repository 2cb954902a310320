"""Static and live checks of the deployment files (no Docker engine runs here):

1. docker-compose.yml passes `docker-compose config`, refuses to run without its secrets, names every service the stack needs, every bind-mounted file
   exists, and hosts/ports/topics agree with deploy/pipeline.toml and the Prometheus target.
2. Grafana: provisioning points at the dashboards the compose file mounts; every dashboard is
   valid dashboard JSON (uid, title, panels with datasource and targets); every datasource uid
   is provisioned; every $variable a query uses is defined.
3. Every ClickHouse panel and variable query runs in the modern dialect (chdb-core, ClickHouse
   26.x) over rows the pipeline actually wrote: the pipeline's demo writes into the real test
   ClickHouse server (CXP_CLICKHOUSE_URL), the rows are copied into chdb, and each query must
   return rows.
4. Every PromQL panel expression parses (promtool check rules), the rules file passes
   `promtool check rules` and its unit tests, and amtool accepts the Alertmanager config.
Exit 1 on the first failed check, naming it.
"""

import json
import os
import pathlib
import re
import subprocess
import sys
import tempfile
import tomllib
import urllib.parse
import urllib.request

import yaml
from chdb import session

ROOT = pathlib.Path(__file__).resolve().parents[2]
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print(f"FAIL {what}")
    return cond


def compose_checks():
    # Compose's own schema validation (Debian's docker-compose; no engine needed).
    r = subprocess.run(["docker-compose", "--env-file", ".env.example", "config", "-q"], cwd=ROOT, capture_output=True, text=True)
    check(r.returncode == 0, f"docker-compose config: {r.stdout}{r.stderr}")
    with tempfile.NamedTemporaryFile("w", suffix=".env") as empty:
        env = {k: v for k, v in os.environ.items() if "PASSWORD" not in k}
        r = subprocess.run(["docker-compose", "--env-file", empty.name, "config", "-q"], cwd=ROOT, capture_output=True, text=True, env=env)
    check(r.returncode != 0 and "CLICKHOUSE_PASSWORD" in r.stderr, "compose refuses to start without the secrets in .env")
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    for name in ["kafka", "init-topics", "schema-registry", "clickhouse", "pipeline", "detector", "generator", "prometheus", "alertmanager", "grafana"]:
        check(name in services, f"compose service {name}")
    for name, svc in services.items():
        check("image" in svc or "build" in svc, f"{name} has an image or build")
        for v in svc.get("volumes", []):
            src = v.split(":")[0]
            if src.startswith("./"):
                check((ROOT / src).exists(), f"{name} mounts {src}, which exists")
    check((ROOT / "Dockerfile").exists(), "Dockerfile exists")
    check("controller" in services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"], "Kafka runs KRaft (controller role)")
    check("zookeeper" not in json.dumps(compose).lower(), "no ZooKeeper")
    cfg = tomllib.loads((ROOT / "deploy/pipeline.toml").read_text())
    host, port = cfg["kafka"]["brokers"].split(":")
    check(host in services, f"broker host {host} is a compose service")
    check(f"PLAINTEXT://{host}:{port}" in services["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"], "Kafka advertises the pipeline's broker address")
    init = " ".join(services["init-topics"]["command"])
    for key in ["survey_topic", "interaction_topic", "dead_letter_topic"]:
        check(cfg["kafka"][key] in init, f"init-topics creates {cfg['kafka'][key]}")
    reg = urllib.parse.urlparse(cfg["codec"]["schema_registry_url"])
    check(reg.hostname in services and reg.port == 8081, "registry URL points at the compose registry")
    ch = urllib.parse.urlparse(cfg["clickhouse"]["url"])
    check(ch.hostname in services and ch.port == 8123, "ClickHouse URL points at the compose server")
    mport = cfg["metrics"]["listen"].rsplit(":", 1)[1]
    check(f"127.0.0.1:{mport}:{mport}" in services["pipeline"].get("ports", []), "pipeline publishes its metrics port on loopback")
    for name, svc in services.items():
        for port in svc.get("ports", []):
            check(name == "grafana" or str(port).startswith("127.0.0.1:"), f"{name} publishes {port} on loopback only")
    # The example secrets are refused: preflight's script, run here by /bin/sh as compose would.
    script = services["preflight"]["command"][0].replace("$$", "$")
    for value, ok in [("change-me", False), ("short", False), ("a-real-secret-of-some-length", True)]:
        env = {"PATH": os.environ["PATH"], "CLICKHOUSE_PASSWORD": "another-real-secret-1", "GRAFANA_ADMIN_PASSWORD": value, "GRAFANA_CLICKHOUSE_PASSWORD": "another-real-secret-2"}
        r = subprocess.run(["/bin/sh", "-c", script], env=env, capture_output=True, text=True)
        check((r.returncode == 0) == ok, f"preflight {'accepts' if ok else 'refuses'} GRAFANA_ADMIN_PASSWORD={value!r} ({r.stderr.strip()})")
    for name in ["clickhouse", "grafana"]:
        check(services[name]["depends_on"]["preflight"]["condition"] == "service_completed_successfully", f"{name} waits for preflight")
    # Grafana reads ClickHouse as its own read-only user, never the admin.
    ds = yaml.safe_load((ROOT / "grafana/provisioning/datasources/datasources.yml").read_text())
    chds = [d for d in ds["datasources"] if d["type"] == "grafana-clickhouse-datasource"][0]
    check(chds["jsonData"]["username"] == "grafana" and "GRAFANA_CLICKHOUSE_PASSWORD" in chds["secureJsonData"]["password"], "Grafana uses its own ClickHouse user")
    user_xml = (ROOT / "deploy/clickhouse/grafana-user.xml").read_text()
    check("<readonly>1</readonly>" in user_xml and "<database>cx</database>" in user_xml and 'from_env="GRAFANA_CLICKHOUSE_PASSWORD"' in user_xml, "the Grafana user is read-only, on cx only, its password from the environment")
    check(any("grafana-user.xml:/etc/clickhouse-server/users.d/" in v for v in services["clickhouse"]["volumes"]), "ClickHouse loads the Grafana user")
    prom = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    targets = [t for sc in prom["scrape_configs"] for s in sc["static_configs"] for t in s["targets"]]
    check(f"pipeline:{mport}" in targets, "Prometheus scrapes the pipeline's metrics port")
    check("detector:9899" in targets, "Prometheus scrapes the detector (its meta-alerts need it)")
    denv = services["detector"]["environment"]
    check(denv.get("CXP_ALERTMANAGER_URL") == "http://alertmanager:9093", "the detector posts to the stack's Alertmanager")
    check("cx-nps-alerts" in " ".join(services["init-topics"]["command"]), "init-topics creates the alert topic")
    check(any("alertmanager:9093" in t for a in prom["alerting"]["alertmanagers"] for s in a["static_configs"] for t in s["targets"]), "Prometheus sends to Alertmanager")
    for name, svc in services.items():
        env = svc.get("environment", {})
        for k, v in (env.items() if isinstance(env, dict) else []):
            if "PASSWORD" in k:
                check(str(v).startswith("${"), f"{name}.{k} comes from the environment, not the file")
    return services


def grafana_checks(services):
    prov = yaml.safe_load((ROOT / "grafana/provisioning/dashboards/dashboards.yml").read_text())
    path = prov["providers"][0]["options"]["path"]
    mounts = [v for v in services["grafana"]["volumes"] if isinstance(v, str)]
    check(any(v.startswith("./grafana/dashboards:" + path) for v in mounts), "dashboard provider path is the mounted dashboards dir")
    dsp = yaml.safe_load((ROOT / "grafana/provisioning/datasources/datasources.yml").read_text())
    uids = {d["uid"]: d["type"] for d in dsp["datasources"]}
    dashboards = {}
    for f in sorted((ROOT / "grafana/dashboards").glob("*.json")):
        d = json.loads(f.read_text())
        dashboards[f.name] = d
        check(d.get("uid") and d.get("title") and d.get("panels"), f"{f.name}: uid, title, panels")
        names = {v["name"] for v in d.get("templating", {}).get("list", [])}
        for v in d.get("templating", {}).get("list", []):
            check(v["datasource"]["uid"] in uids, f"{f.name}: variable {v['name']} datasource")
        for p in d["panels"]:
            where = f"{f.name}: panel {p.get('title')!r}"
            check(p.get("datasource", {}).get("uid") in uids, f"{where} has a provisioned datasource")
            check(p.get("targets"), f"{where} has targets")
            check(all(k in p.get("gridPos", {}) for k in "xywh"), f"{where} has a gridPos")
            for t in p["targets"]:
                q = t.get("rawSql") or t.get("expr") or ""
                check(q, f"{where} target has a query")
                for var in re.findall(r"\$\{(\w+)(?::\w+)?\}|\$(?!__)(\w+)", q):
                    name = var[0] or var[1]
                    check(name in names, f"{where} uses ${name}, which is defined")
    check(len(dashboards) == 3, "three dashboards")
    return dashboards


def grafana_format(value, fmt):
    """Grafana's interpolation of one value: `percentencode` is its encodeURIComponentStrict
    (everything but A-Z a-z 0-9 - _ . ~ percent-encoded); no format inserts the value raw."""
    if fmt == "percentencode":
        return urllib.parse.quote(value, safe="-_.~")
    return value


def substitute(sql, t_from, t_to, value="%"):
    sql = re.sub(r"\$__timeFilter\((\w+)\)", lambda m: f"{m.group(1)} >= toDateTime({t_from}) AND {m.group(1)} <= toDateTime({t_to})", sql)
    sql = sql.replace("$__fromTime", f"toDateTime({t_from})").replace("$__toTime", f"toDateTime({t_to})")
    return re.sub(r"\$\{(\w+)(?::(\w+))?\}", lambda m: grafana_format(value, m.group(2)), sql)


# Values a crafted dashboard URL (var-region=...) could carry: quote breaks, a UNION, a
# backslash escape, a url() table function that would reach out of ClickHouse.
HOSTILE = [
    "' OR 1=1 --",
    "x' UNION ALL SELECT 1, 2, 3 --",
    "\\' OR 1=1 --",
    "%' AND 0 UNION ALL SELECT * FROM url('http://127.0.0.1:1/x', 'CSV', 'a String') --",
    "'; DROP TABLE cx.window_aggregates; --",
]


def ch_post(url, q):
    """A statement that writes (HTTP GET is read-only in ClickHouse)."""
    with urllib.request.urlopen(urllib.request.Request(url + "/", data=q.encode()), timeout=60) as r:
        return r.read()


def ch_http(url, q):
    with urllib.request.urlopen(url + "/?" + urllib.parse.urlencode({"query": q}), timeout=60) as r:
        return r.read()


def clickhouse_panel_checks(dashboards):
    url = os.environ.get("CXP_CLICKHOUSE_URL")
    if not check(url, "CXP_CLICKHOUSE_URL is set (run through scripts/test.sh)"):
        return
    db = f"boards_{os.getpid()}"
    binary = os.environ.get("CXP_BINARY") or str(pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "release/cx-pipeline")
    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as cfg:
        cfg.write(f'[clickhouse]\nurl = "{url}"\ndemo_database = "{db}"\n[metrics]\nlisten = ""\n')
    run = subprocess.run([binary, "--config", cfg.name, "demo", "--events", "30000", "--rate", "0"], capture_output=True, text=True, env={**os.environ, "RUST_LOG": "warn"})
    if not check(run.returncode == 0, f"demo wrote to ClickHouse ({run.stderr[-300:]})"):
        return
    with tempfile.TemporaryDirectory() as tmp:
        s = session.Session(tmp)
        for f in sorted((ROOT / "src/sink/sql").glob("*.sql")):
            s.query(f.read_text().replace("{db}", "cx"))
        for table in ["survey_facts", "interaction_facts", "window_aggregates"]:
            rows = ch_http(url, f"SELECT * FROM {db}.{table} FORMAT TabSeparated")
            path = pathlib.Path(tmp) / f"{table}.tsv"
            path.write_bytes(rows)
            s.query(f"INSERT INTO cx.{table} FROM INFILE '{path}' FORMAT TabSeparated")
            n = s.query(f"SELECT count() FROM cx.{table}", "CSV").bytes().decode().strip()
            check(int(n) > 0, f"copied {table} rows into chdb ({n})")
        t_to = int(__import__("time").time()) + 3600
        t_from = t_to - 8 * 86400
        # A fixture (the demo has no month of history to alert on): one firing and one
        # resolved alert, so the active-alerts panel and the annotations have rows to show.
        s.query("INSERT INTO cx.nps_alerts (alert_id, state, event_time, fired_at, change_start, grouping, segment, nps, n, baseline_nps, effect, written_at) VALUES "
                "('a1', 'firing', now() - 3600, now() - 3600, now() - 7200, 'team', 'team=billing', -12.5, 80, 31.0, -43.5, now()), "
                "('a2', 'firing', now() - 9000, now() - 9000, now() - 9900, 'region', 'region=emea', 20.0, 900, 30.0, -10.0, now()), "
                "('a1', 'updated', now() - 1800, now() - 3600, now() - 7200, 'team', 'team=billing', -20.5, 120, 31.0, -51.5, now()), "
                "('a2', 'resolved', now() - 5000, now() - 9000, now() - 9900, 'region', 'region=emea', 28.0, 1500, 30.0, -2.0, now())")
        active = s.query("SELECT segment, nps FROM cx.nps_alerts FINAL WHERE state IN ('firing', 'updated') AND alert_id IN (SELECT alert_id FROM cx.nps_alerts GROUP BY alert_id HAVING countIf(state = 'resolved') = 0) ORDER BY event_time DESC LIMIT 1 BY alert_id", "CSV").bytes().decode().split()
        check(active == ['"team=billing",-20.5'], f"only the unresolved fixture alert is active, as its latest update ({active})")
        for d in dashboards.values():
            for a in d.get("annotations", {}).get("list", []):
                sql = substitute(a["target"]["rawSql"], t_from, t_to)
                out = s.query(sql, "TSV").bytes().decode()
                check(len(out.splitlines()) == 2, f"annotation {a['name']!r} gives both fixture alerts ({out!r})")
        for fname, d in dashboards.items():
            queries = [(f"variable {v['name']}", v["query"]) for v in d.get("templating", {}).get("list", []) if v["datasource"]["uid"] == "clickhouse"]
            queries += [(f"panel {p['title']!r}", t["rawSql"]) for p in d["panels"] for t in p["targets"] if "rawSql" in t]
            for what, q in queries:
                sql = substitute(q, t_from, t_to)
                try:
                    out = s.query(sql, "TSV").bytes().decode()
                    check(out.strip() != "", f"{fname}: {what} returns rows")
                    print(f"ok   {fname}: {what} ({len(out.splitlines())} rows)")
                except Exception as e:  # noqa: BLE001
                    check(False, f"{fname}: {what} runs in ClickHouse 26: {e}")
                if not re.search(r"\$\{\w+", q):
                    continue
                # A hostile variable value must give exactly what a value matching nothing
                # gives, in ClickHouse 26 (chdb) and on the real 18.16 server alike.
                for engine, run_q in [
                    ("ClickHouse 26", lambda x: s.query(x, "TSV").bytes().decode()),
                    ("the 18.16 server", lambda x: ch_http(url, x.replace("cx.", f"{db}.")).decode()),
                ]:
                    try:
                        baseline = run_q(substitute(q, t_from, t_to, "no-such-value"))
                    except Exception as e:  # noqa: BLE001
                        # The boards target current servers (compose runs 24.8); a query
                        # 18.16 cannot run at all is checked on ClickHouse 26 only.
                        check(engine != "ClickHouse 26", f"{fname}: {what} with a plain value on {engine}: {e}")
                        print(f"skip {fname}: {what} does not run on {engine} ({str(e)[:60]})")
                        continue
                    for bad in HOSTILE:
                        try:
                            got = run_q(substitute(q, t_from, t_to, bad))
                        except Exception as e:  # noqa: BLE001
                            check(False, f"{fname}: {what} with {bad!r} on {engine} fails instead of matching nothing: {e}")
                            continue
                        check(got == baseline, f"{fname}: {what} with {bad!r} on {engine} returns only its intended result")
                print(f"ok   {fname}: {what}: {len(HOSTILE)} hostile variable values checked")


def readonly_user_checks():
    """The Grafana user from deploy/clickhouse/grafana-user.xml, loaded by the real test server
    (scripts/services.sh, database cx_ro_check): reads its database; cannot write, change
    schema, change settings, read elsewhere or reach out with a table function."""
    url = os.environ.get("CXP_CLICKHOUSE_URL")
    if not url:
        return
    ch_post(url, "CREATE DATABASE IF NOT EXISTS cx_ro_check")
    ch_post(url, "DROP TABLE IF EXISTS cx_ro_check.t")
    ch_post(url, "CREATE TABLE cx_ro_check.t (x UInt32) ENGINE = MergeTree ORDER BY x")
    ch_post(url, "INSERT INTO cx_ro_check.t VALUES (1)")
    ch_post(url, "CREATE DATABASE IF NOT EXISTS cx_ro_other")
    ch_post(url, "CREATE TABLE IF NOT EXISTS cx_ro_other.t (x UInt32) ENGINE = MergeTree ORDER BY x")

    def as_grafana(q):
        # POST, so a refusal comes from the user's rights, not from HTTP GET's read-only mode.
        req = urllib.request.Request(url + "/", data=q.encode())
        req.add_header("X-ClickHouse-User", "grafana")
        req.add_header("X-ClickHouse-Key", "grafana-test-secret")
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return True, r.read().decode()
        except urllib.error.HTTPError as e:
            return False, e.read().decode()[:120]

    ok, out = as_grafana("SELECT count() FROM cx_ro_check.t")
    check(ok and out.strip() == "1", f"the Grafana user reads its database ({out.strip()})")
    for what, q in [
        ("insert", "INSERT INTO cx_ro_check.t VALUES (2)"),
        ("drop", "DROP TABLE cx_ro_check.t"),
        ("create", "CREATE TABLE cx_ro_check.u (x UInt8) ENGINE = Memory"),
        ("change a setting", "SET max_memory_usage = 1"),
        ("read another database", "SELECT count() FROM cx_ro_other.t"),
        ("use the url() table function", "SELECT * FROM url('http://127.0.0.1:1/x', CSV, 'a String')"),
    ]:
        ok, out = as_grafana(q)
        check(not ok, f"the Grafana user cannot {what} ({out.strip()[:80]})")
        print(f"ok   Grafana user cannot {what}")


def prometheus_checks(dashboards):
    exprs = [t["expr"] for d in dashboards.values() for p in d["panels"] for t in p["targets"] if "expr" in t]
    rules = {"groups": [{"name": "panels", "rules": [{"record": f"panel:expr_{i}", "expr": e} for i, e in enumerate(exprs)]}]}
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as f:
        yaml.safe_dump(rules, f)
    r = subprocess.run(["promtool", "check", "rules", f.name], capture_output=True, text=True)
    check(r.returncode == 0, f"every PromQL panel expression parses ({len(exprs)}): {r.stdout}{r.stderr}")
    r = subprocess.run(["promtool", "check", "rules", str(ROOT / "deploy/prometheus/rules.yml")], capture_output=True, text=True)
    check(r.returncode == 0, f"promtool check rules: {r.stdout}{r.stderr}")
    r = subprocess.run(["promtool", "test", "rules", "rules_test.yml"], cwd=ROOT / "deploy/prometheus/tests", capture_output=True, text=True)
    check(r.returncode == 0, f"promtool test rules: {r.stdout}{r.stderr}")
    print("ok   promtool test rules" if r.returncode == 0 else r.stdout)
    r = subprocess.run(["amtool", "check-config", str(ROOT / "deploy/alertmanager/alertmanager.yml")], capture_output=True, text=True)
    check(r.returncode == 0, f"amtool check-config: {r.stdout}{r.stderr}")
    # Severity routing: an incident's page goes to on-call, its ticket to the business-hours
    # receiver, whatever segment it names.
    for labels, receiver in [
        (["alertname=CxNpsSegmentDrop", "severity=page", "cx_incident=x", "cx_grouping=team"], "cx-oncall"),
        (["alertname=CxNpsSegmentDrop", "severity=ticket", "cx_incident=x", "cx_grouping=region"], "cx-business-hours"),
    ]:
        r = subprocess.run(["amtool", "config", "routes", "test", "--config.file", str(ROOT / "deploy/alertmanager/alertmanager.yml"), *labels], capture_output=True, text=True)
        check(r.stdout.strip() == receiver, f"amtool routes {labels} -> {receiver} ({r.stdout.strip()}{r.stderr})")
    text = (ROOT / "deploy/alertmanager/alertmanager.yml").read_text()
    check("repeat_interval: 4h\n      group_by: [alertname, cx_incident]" not in text and text.count("repeat_interval: 24h") >= 2,
          "NPS incidents repeat at most once a day")


def main():
    services = compose_checks()
    dashboards = grafana_checks(services)
    prometheus_checks(dashboards)
    clickhouse_panel_checks(dashboards)
    readonly_user_checks()
    print(f"deploy checks: {'FAILED ' + str(len(failures)) if failures else 'all passed'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
