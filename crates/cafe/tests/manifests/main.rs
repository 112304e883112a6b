//! The Kubernetes manifests (`deploy/k8s`) and the binary cannot drift apart.
//!
//! Each overlay is rendered with `kubectl kustomize`, as `kubectl apply -k` would send it, and
//! read back as JSON (through PyYAML: no YAML parser in the workspace for one test). The
//! structure tests check what the specification asks of the manifests (a Deployment,
//! Service and disruption budget per service, the original's probe timings, the gateway as
//! the one LoadBalancer, payment's autoscaler, database names in a ConfigMap, credentials
//! in a Secret, logs on a claim). The start-up test runs the real binary once per
//! Deployment, exactly as its container's command, args and environment say, and calls its
//! probes on its port.
//!
//! What that test substitutes, because a test machine has no cluster:
//! - `DATABASE_URL` (a `postgres://` URL into the cluster) becomes a SQLite file in a
//!   temporary directory, and `NATS_URL` is removed, so the service uses the embedded event
//!   log, which `CAFE_DATA_DIR` puts in the same temporary directory;
//! - paths under the container's volume mounts (the logs claim at `/logs`) move under the
//!   temporary directory, keeping the rest of the path (`/logs/$(POD_NAME)` included);
//! - `CAFE_PORT` becomes a free port, after checking that the manifest's value is the
//!   container port and the probes' port, so that many services run side by side;
//! - `fieldRef`s take what the kubelet would give (`metadata.name`: a pod name), and in an
//!   overlay that does not ship its Secret (prod), secret values are placeholders.
//!
//! Every other variable is passed as the manifest says, `$(VAR)` references expanded as
//! Kubernetes expands them; nothing from the test's own environment leaks in.
//!
//! Tools: kubectl and a Python with PyYAML, from `target/deploy-tools` (which
//! `.ci/deploy-checks` installs) or the PATH. Without them the tests say so and pass,
//! except under CI=true, where they fail.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

const SERVICES: [&str; 7] = ["gateway", "order", "payment", "drink", "customercenter", "delivery", "deliverycenter"];
const OVERLAYS: [&str; 2] = ["overlays/dev", "overlays/prod"];

// ---- rendering ----

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("workspace root")
}

/// The first candidate that runs `args` successfully.
fn first_working(candidates: Vec<PathBuf>, args: &[&str]) -> Option<PathBuf> {
    candidates.into_iter().find(|c| {
        Command::new(c).args(args).stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
    })
}

struct Tools {
    kubectl: PathBuf,
    python: PathBuf,
}

fn tools() -> Result<&'static Tools, String> {
    static TOOLS: OnceLock<Result<Tools, String>> = OnceLock::new();
    TOOLS
        .get_or_init(|| {
            let bin = workspace_root().join("target/deploy-tools/bin");
            let mut kubectl = vec![bin.join("kubectl")];
            if let Some(k) = std::env::var_os("KUBECTL") {
                kubectl.insert(0, k.into());
            }
            kubectl.push("kubectl".into());
            let kubectl = first_working(kubectl, &["version", "--client"]).ok_or(
                "no kubectl (target/deploy-tools/bin, $KUBECTL or PATH); `bash .ci/deploy-checks` installs one",
            )?;
            let python = first_working(vec![bin.join("python3"), "python3".into()], &["-c", "import yaml"]).ok_or(
                "no Python with PyYAML (target/deploy-tools/bin or PATH); `bash .ci/deploy-checks` installs one",
            )?;
            Ok(Tools { kubectl, python })
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// The objects `kubectl kustomize deploy/k8s/<dir>` renders, or why they cannot be had here.
fn render(dir: &str) -> Result<Vec<Value>, String> {
    let tools = tools()?;
    let path = workspace_root().join("deploy/k8s").join(dir);
    let out = Command::new(&tools.kubectl).arg("kustomize").arg(&path).output().expect("run kubectl");
    assert!(out.status.success(), "kubectl kustomize {}: {}", path.display(), String::from_utf8_lossy(&out.stderr));
    let mut py = Command::new(&tools.python)
        .args(["-c", "import json, sys, yaml; json.dump([d for d in yaml.safe_load_all(sys.stdin) if d], sys.stdout)"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run python");
    py.stdin.take().unwrap().write_all(&out.stdout).unwrap();
    let json = py.wait_with_output().unwrap();
    assert!(json.status.success(), "YAML to JSON failed");
    Ok(serde_json::from_slice::<Vec<Value>>(&json.stdout).expect("rendered JSON"))
}

fn rendered(dir: &'static str) -> Option<&'static [Value]> {
    static CACHE: OnceLock<std::sync::Mutex<BTreeMap<&'static str, &'static [Value]>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(objects) = cache.lock().unwrap().get(dir) {
        return Some(objects);
    }
    match render(dir) {
        Ok(objects) => {
            let objects: &'static [Value] = Vec::leak(objects);
            cache.lock().unwrap().insert(dir, objects);
            Some(objects)
        }
        Err(why) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("cannot render the manifests under CI: {why}")
        }
        Err(why) => {
            // Straight to stderr, past the test harness's capture, so a skip is seen.
            let _ = writeln!(std::io::stderr(), "SKIPPED: cannot render deploy/k8s/{dir}: {why}");
            None
        }
    }
}

// ---- reading objects ----

fn kind_of(o: &Value) -> &str {
    o["kind"].as_str().unwrap_or_default()
}

fn name_of(o: &Value) -> &str {
    o["metadata"]["name"].as_str().unwrap_or_default()
}

fn all<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| kind_of(o) == kind).collect()
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> Option<&'a Value> {
    objects.iter().find(|o| kind_of(o) == kind && name_of(o) == name)
}

#[track_caller]
fn get<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    find(objects, kind, name).unwrap_or_else(|| panic!("no {kind} {name}"))
}

fn container(workload: &Value) -> &Value {
    let containers = workload["spec"]["template"]["spec"]["containers"].as_array().expect("containers");
    assert_eq!(containers.len(), 1, "{}: one container", name_of(workload));
    &containers[0]
}

fn env_entry<'a>(c: &'a Value, name: &str) -> Option<&'a Value> {
    c["env"].as_array()?.iter().find(|e| e["name"] == name)
}

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or_else(|| panic!("not an integer: {v}"))
}

/// The decoded `data` (or `stringData`) of a ConfigMap or Secret.
fn data_of(o: &Value) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let secret = kind_of(o) == "Secret";
    for (k, v) in o["data"].as_object().into_iter().flatten() {
        let s = v.as_str().unwrap_or_default();
        out.insert(k.clone(), if secret { base64_decode(s) } else { s.to_string() });
    }
    for (k, v) in o["stringData"].as_object().into_iter().flatten() {
        out.insert(k.clone(), v.as_str().unwrap_or_default().to_string());
    }
    out
}

fn base64_decode(s: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let (mut bits, mut n, mut out) = (0u32, 0, Vec::new());
    for c in s.bytes().filter(|c| !c.is_ascii_whitespace() && *c != b'=') {
        let v = ALPHABET.iter().position(|a| *a == c).expect("base64") as u32;
        bits = (bits << 6) | v;
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
            bits &= (1 << n) - 1;
        }
    }
    String::from_utf8(out).expect("UTF-8 secret")
}

// ---- the structure the specification asks for ----

#[test]
fn every_service_has_a_deployment_a_service_on_port_8080_reached_by_name_and_a_disruption_budget() {
    for dir in OVERLAYS {
        let Some(objects) = rendered(dir) else { return };
        for svc in SERVICES {
            let deployment = get(objects, "Deployment", svc);
            let c = container(deployment);
            assert_eq!(c["args"], serde_json::json!(["serve", svc]), "{dir}: {svc} runs `cafe serve {svc}`");
            assert_eq!(c["ports"][0]["containerPort"], 8080, "{dir}: {svc} listens on 8080");
            let pod_labels = &deployment["spec"]["template"]["metadata"]["labels"];

            let service = get(objects, "Service", svc);
            assert_eq!(service["spec"]["ports"][0]["port"], 8080, "{dir}: http://{svc}:8080");
            let target = &service["spec"]["ports"][0]["targetPort"];
            assert!(
                *target == 8080 || *target == c["ports"][0]["name"],
                "{dir}: Service {svc} targets the container port, not {target}"
            );
            for (k, v) in service["spec"]["selector"].as_object().expect("selector") {
                assert_eq!(&pod_labels[k], v, "{dir}: Service {svc} selects the {svc} pods");
            }

            let pdb = get(objects, "PodDisruptionBudget", svc);
            for (k, v) in pdb["spec"]["selector"]["matchLabels"].as_object().expect("matchLabels") {
                assert_eq!(&pod_labels[k], v, "{dir}: the budget of {svc} selects its pods");
            }
        }
    }
}

#[test]
fn probes_keep_the_original_timings_on_the_actuator_paths() {
    for dir in OVERLAYS {
        let Some(objects) = rendered(dir) else { return };
        for svc in SERVICES {
            let c = container(get(objects, "Deployment", svc));
            for (probe, path, delay, failures) in [
                ("readinessProbe", "/actuator/health/readiness", 10, 10),
                ("livenessProbe", "/actuator/health/liveness", 120, 5),
            ] {
                let p = &c[probe];
                assert_eq!(p["httpGet"]["path"], path, "{dir}: {svc} {probe} path");
                assert_eq!(p["httpGet"]["port"], 8080, "{dir}: {svc} {probe} port");
                assert_eq!(int(&p["initialDelaySeconds"]), delay, "{dir}: {svc} {probe} delay");
                assert_eq!(int(&p["timeoutSeconds"]), 2, "{dir}: {svc} {probe} timeout");
                assert_eq!(int(&p["periodSeconds"]), 5, "{dir}: {svc} {probe} period");
                assert_eq!(int(&p["failureThreshold"]), failures, "{dir}: {svc} {probe} failures");
            }
            for (kind, what) in [("requests", "cpu"), ("requests", "memory"), ("limits", "cpu"), ("limits", "memory")] {
                assert!(c["resources"][kind][what].is_string(), "{dir}: {svc} sets resources.{kind}.{what}");
            }
        }
    }
}

#[test]
fn the_gateway_is_the_one_load_balancer() {
    for dir in OVERLAYS {
        let Some(objects) = rendered(dir) else { return };
        for service in all(objects, "Service") {
            let ty = service["spec"]["type"].as_str().unwrap_or("ClusterIP");
            let want = if name_of(service) == "gateway" { "LoadBalancer" } else { "ClusterIP" };
            assert_eq!(ty, want, "{dir}: Service {}", name_of(service));
        }
    }
}

#[test]
fn payment_scales_from_1_to_10_pods_at_15_percent_cpu_and_sets_no_replica_count_of_its_own() {
    for dir in OVERLAYS {
        let Some(objects) = rendered(dir) else { return };
        let hpas = all(objects, "HorizontalPodAutoscaler");
        assert_eq!(hpas.len(), 1, "{dir}: one autoscaler");
        let hpa = hpas[0];
        assert_eq!(hpa["spec"]["scaleTargetRef"]["kind"], "Deployment");
        assert_eq!(hpa["spec"]["scaleTargetRef"]["name"], "payment");
        assert_eq!(int(&hpa["spec"]["minReplicas"]), 1, "{dir}");
        assert_eq!(int(&hpa["spec"]["maxReplicas"]), 10, "{dir}");
        let metric = &hpa["spec"]["metrics"][0]["resource"];
        assert_eq!(metric["name"], "cpu");
        assert_eq!(int(&metric["target"]["averageUtilization"]), 15, "{dir}");
        // Re-applying the manifests must not reset what the autoscaler decided.
        assert!(get(objects, "Deployment", "payment")["spec"]["replicas"].is_null(), "{dir}: payment has no replicas");
    }
}

#[test]
fn database_names_and_urls_come_from_the_config_map_and_credentials_from_the_secret() {
    for dir in OVERLAYS {
        let Some(objects) = rendered(dir) else { return };
        let mut databases = Vec::new();
        for svc in SERVICES.into_iter().filter(|s| *s != "gateway") {
            let c = container(get(objects, "Deployment", svc));
            let url = env_entry(c, "DATABASE_URL").unwrap_or_else(|| panic!("{dir}: {svc} has DATABASE_URL"));
            let url = url["value"].as_str().expect("DATABASE_URL is built from other variables");
            assert!(url.starts_with("postgres://$(POSTGRES_USER):$(POSTGRES_PASSWORD)@"), "{dir}: {svc}: {url}");
            for var in ["POSTGRES_USER", "POSTGRES_PASSWORD"] {
                let e = env_entry(c, var).unwrap_or_else(|| panic!("{dir}: {svc} has {var}"));
                assert_eq!(
                    e["valueFrom"]["secretKeyRef"]["name"], "cafe-postgres",
                    "{dir}: {svc} {var} from the Secret"
                );
            }
            let db = env_entry(c, "DATABASE_NAME").expect("DATABASE_NAME");
            let cm = &db["valueFrom"]["configMapKeyRef"];
            let config = data_of(get(objects, "ConfigMap", cm["name"].as_str().expect("a ConfigMap")));
            let name = config.get(cm["key"].as_str().unwrap()).unwrap_or_else(|| panic!("{dir}: key {}", cm["key"]));
            databases.push(name.clone());
            for upstream in ["PAYMENT_URL", "DELIVERY_URL"].into_iter().filter(|_| svc == "order") {
                let e = env_entry(c, upstream).unwrap_or_else(|| panic!("{dir}: order has {upstream}"));
                assert!(e["valueFrom"]["configMapKeyRef"].is_object(), "{dir}: order's {upstream} from the ConfigMap");
            }
        }
        let mut unique = databases.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), databases.len(), "{dir}: each service its own database: {databases:?}");
        let gateway = container(get(objects, "Deployment", "gateway"));
        for svc in SERVICES.into_iter().filter(|s| *s != "gateway") {
            let var = format!("{}_URL", svc.to_uppercase());
            let e = env_entry(gateway, &var).unwrap_or_else(|| panic!("{dir}: the gateway has {var}"));
            assert!(e["valueFrom"]["configMapKeyRef"].is_object(), "{dir}: the gateway's {var} from the ConfigMap");
        }
        // No password is written into anything but its Secret.
        let passwords: Vec<String> = all(objects, "Secret")
            .into_iter()
            .flat_map(|o| data_of(o).into_iter().filter(|(k, _)| k.contains("password")).map(|(_, v)| v))
            .collect();
        for o in objects.iter().filter(|o| kind_of(o) != "Secret") {
            let text = o.to_string();
            for p in &passwords {
                assert!(!text.contains(p.as_str()), "{dir}: {} {} carries a password", kind_of(o), name_of(o));
            }
        }
    }
}

#[test]
fn logs_go_to_the_claim_and_postgres_and_nats_are_stateful_sets_with_volumes() {
    for dir in OVERLAYS {
        let Some(objects) = rendered(dir) else { return };
        get(objects, "PersistentVolumeClaim", "cafe-logs");
        for svc in SERVICES {
            let deployment = get(objects, "Deployment", svc);
            let c = container(deployment);
            let log_dir = env_entry(c, "CAFE_LOG_DIR").and_then(|e| e["value"].as_str()).expect("CAFE_LOG_DIR");
            let volumes = deployment["spec"]["template"]["spec"]["volumes"].as_array().expect("volumes");
            let mount = c["volumeMounts"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|m| log_dir.starts_with(m["mountPath"].as_str().unwrap()))
                .unwrap_or_else(|| panic!("{dir}: {svc} logs to {log_dir}, which is on no volume"));
            let volume = volumes.iter().find(|v| v["name"] == mount["name"]).expect("the mounted volume");
            assert_eq!(volume["persistentVolumeClaim"]["claimName"], "cafe-logs", "{dir}: {svc} logs on the claim");
        }
        for name in ["postgres", "nats"] {
            let set = get(objects, "StatefulSet", name);
            assert!(set["spec"]["volumeClaimTemplates"][0].is_object(), "{dir}: {name} keeps its data on a volume");
            let service = get(objects, "Service", name);
            assert_eq!(service["spec"]["selector"]["app"], *name);
        }
    }
}

#[test]
fn the_siege_job_sends_its_load_to_the_gateway_service() {
    let Some(objects) = rendered("siege") else { return };
    let job = get(objects, "Job", "siege");
    let c = container(job);
    let url = env_entry(c, "GATEWAY_URL").and_then(|e| e["value"].as_str()).expect("GATEWAY_URL");
    assert_eq!(url, "http://gateway:8080");
    let script = c["command"][1].as_str().expect("the script");
    let volumes = job["spec"]["template"]["spec"]["volumes"].as_array().unwrap();
    let config = volumes.iter().find_map(|v| v["configMap"]["name"].as_str()).expect("the script's ConfigMap");
    let data = data_of(get(objects, "ConfigMap", config));
    let file = Path::new(script).file_name().unwrap().to_str().unwrap();
    assert!(data.get(file).is_some_and(|s| s.contains("siege ")), "{script} is in the ConfigMap");
}

// ---- the binary, started as each Deployment says ----

/// A container's environment as the kubelet computes it: `envFrom` first, then `env` in
/// order, each `$(VAR)` expanded from what is defined before it (`$$` is a literal `$`).
fn container_env(objects: &[Value], pod_name: &str, c: &Value) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = Vec::new();
    fn set(env: &mut Vec<(String, String)>, k: String, v: String) {
        env.retain(|(n, _)| *n != k);
        env.push((k, v));
    }
    let source =
        |kind: &str, name: &str| -> Option<BTreeMap<String, String>> { find(objects, kind, name).map(data_of) };
    for from in c["envFrom"].as_array().into_iter().flatten() {
        let prefix = from["prefix"].as_str().unwrap_or_default();
        let (kind, r) = if from["configMapRef"].is_object() {
            ("ConfigMap", &from["configMapRef"])
        } else {
            ("Secret", &from["secretRef"])
        };
        let data = source(kind, r["name"].as_str().unwrap()).unwrap_or_default();
        for (k, v) in data {
            set(&mut env, format!("{prefix}{k}"), v);
        }
    }
    for e in c["env"].as_array().into_iter().flatten() {
        let name = e["name"].as_str().unwrap().to_string();
        let value = if let Some(v) = e["value"].as_str() {
            expand(v, &env)
        } else if let Some(r) = e["valueFrom"]["configMapKeyRef"].as_object() {
            let cm = r["name"].as_str().unwrap();
            let data = source("ConfigMap", cm).unwrap_or_else(|| panic!("{name}: no ConfigMap {cm} in the render"));
            data.get(r["key"].as_str().unwrap())
                .unwrap_or_else(|| panic!("{name}: no key {} in {cm}", r["key"]))
                .clone()
        } else if let Some(r) = e["valueFrom"]["secretKeyRef"].as_object() {
            let key = r["key"].as_str().unwrap();
            match source("Secret", r["name"].as_str().unwrap()) {
                Some(data) => data.get(key).unwrap_or_else(|| panic!("{name}: no key {key} in the Secret")).clone(),
                // The operator creates it (prod): any value does for a SQLite test.
                None => format!("placeholder-{key}"),
            }
        } else if let Some(path) = e["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
            match path {
                "metadata.name" => pod_name.to_string(),
                "metadata.namespace" => "cafe".to_string(),
                "status.podIP" | "status.hostIP" => "127.0.0.1".to_string(),
                other => panic!("{name}: fieldRef {other} is not simulated here"),
            }
        } else {
            panic!("{name}: unsupported env source {e}")
        };
        set(&mut env, name, value);
    }
    env
}

fn expand(s: &str, env: &[(String, String)]) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        if let Some(r) = rest.strip_prefix("$$") {
            out.push('$');
            rest = r;
        } else if let Some(end) = rest.strip_prefix("$(").and_then(|r| r.find(')')) {
            let var = &rest[2..2 + end];
            match env.iter().find(|(k, _)| k == var) {
                Some((_, v)) => out.push_str(v),
                None => out.push_str(&rest[..3 + end]), // Kubernetes leaves it as written
            }
            rest = &rest[3 + end..];
        } else {
            out.push('$');
            rest = &rest[1..];
        }
    }
    out.push_str(rest);
    out
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Started {
    what: String,
    child: tokio::process::Child,
    port: u16,
    readiness: String,
    liveness: String,
    /// How long Kubernetes waits after SIGTERM before killing the pod.
    termination_grace: Duration,
    dir: tempfile::TempDir,
}

impl Started {
    /// What the process wrote to stderr, for a failure message.
    fn stderr(&self) -> String {
        let text = std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

/// Starts the binary for one Deployment of the rendered overlay, as its container says, with
/// the substitutions the module documentation lists.
fn start(dir: &str, objects: &[Value], deployment: &Value) -> Started {
    let name = name_of(deployment);
    let what = format!("{dir}: {name}");
    let pod = &deployment["spec"]["template"]["spec"];
    let c = container(deployment);
    assert_eq!(c["command"], serde_json::json!(["/usr/local/bin/cafe"]), "{what}: the image's binary");
    let args: Vec<String> =
        c["args"].as_array().expect("args").iter().map(|a| a.as_str().expect("string args").to_string()).collect();

    let tmp = tempfile::tempdir().unwrap();
    let mut env = container_env(objects, &format!("{name}-5d8f7c9b6-x2k4q"), c);
    for (k, v) in &env {
        assert!(!v.contains("$("), "{what}: {k}={v} refers to a variable not defined before it");
    }
    let lookup = |env: &[(String, String)], k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());

    // The port: one value everywhere it appears.
    let port: i64 = lookup(&env, "CAFE_PORT").expect("CAFE_PORT").parse().expect("numeric CAFE_PORT");
    assert_eq!(int(&c["ports"][0]["containerPort"]), port, "{what}: containerPort is CAFE_PORT");
    let probe = |p: &str| -> String {
        let get = &c[p]["httpGet"];
        let probe_port = match &get["port"] {
            Value::String(named) => {
                c["ports"].as_array().unwrap().iter().find(|p| p["name"] == *named).map(|p| int(&p["containerPort"]))
            }
            n => n.as_i64(),
        };
        assert_eq!(probe_port, Some(port), "{what}: the {p} port is CAFE_PORT");
        get["path"].as_str().expect("probe path").to_string()
    };
    let (readiness, liveness) = (probe("readinessProbe"), probe("livenessProbe"));

    // The cluster's database and broker become local ones.
    let service = args.get(1).cloned().unwrap_or_default();
    fn swap(env: &mut Vec<(String, String)>, k: &str, v: Option<String>) {
        env.retain(|(n, _)| n != k);
        if let Some(v) = v {
            env.push((k.to_string(), v));
        }
    }
    if service != "gateway" {
        let url = lookup(&env, "DATABASE_URL").unwrap_or_default();
        assert!(url.starts_with("postgres://"), "{what}: DATABASE_URL={url}");
        let nats = lookup(&env, "NATS_URL").unwrap_or_default();
        assert!(nats.starts_with("nats://"), "{what}: NATS_URL={nats}");
        let sqlite = format!("sqlite://{}?mode=rwc", tmp.path().join(format!("{service}.db")).display());
        swap(&mut env, "DATABASE_URL", Some(sqlite));
        swap(&mut env, "NATS_URL", None);
    }
    swap(&mut env, "CAFE_DATA_DIR", Some(tmp.path().join("data").display().to_string()));
    let test_port = free_port();
    swap(&mut env, "CAFE_PORT", Some(test_port.to_string()));
    // Volume mounts move under the temporary directory.
    let mounts: Vec<String> = c["volumeMounts"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| m["mountPath"].as_str().unwrap().to_string())
        .collect();
    for (_, v) in env.iter_mut() {
        if let Some(m) = mounts.iter().find(|m| *v == **m || v.starts_with(&format!("{m}/"))) {
            let moved = tmp.path().join(v.trim_start_matches('/'));
            std::fs::create_dir_all(tmp.path().join(m.trim_start_matches('/'))).unwrap();
            *v = moved.display().to_string();
        }
    }

    let stderr = std::fs::File::create(tmp.path().join("stderr.log")).unwrap();
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_cafe"))
        .args(&args)
        .env_clear()
        .envs(env)
        .current_dir(tmp.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: cannot start the binary: {e}"));
    let termination_grace = Duration::from_secs(pod["terminationGracePeriodSeconds"].as_u64().unwrap_or(30));
    Started { what, child, port: test_port, readiness, liveness, termination_grace, dir: tmp }
}

async fn status(client: &reqwest::Client, url: &str) -> Option<u16> {
    client.get(url).send().await.ok().map(|r| r.status().as_u16())
}

/// Probes until both answer 200, then stops the process as Kubernetes would (SIGTERM):
/// readiness must go DOWN while liveness stays UP, and it must exit 0 within the pod's
/// termination grace period.
async fn probe_and_stop(mut s: Started) -> Result<String, String> {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(2)).build().unwrap();
    let base = format!("http://127.0.0.1:{}", s.port);
    let (ready, live) = (format!("{base}{}", s.readiness), format!("{base}{}", s.liveness));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if status(&client, &ready).await == Some(200) && status(&client, &live).await == Some(200) {
            break;
        }
        if let Ok(Some(exit)) = s.child.try_wait() {
            return Err(format!("{}: exited at start ({exit}):\n{}", s.what, s.stderr()));
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{}: {} and {} did not both answer 200 in 60 s:\n{}",
                s.what,
                s.readiness,
                s.liveness,
                s.stderr()
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let pid = s.child.id().expect("running").to_string();
    let stopping = Instant::now();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = status(&client, &ready).await;
        if r == Some(503) {
            break;
        }
        if r.is_none() || Instant::now() > deadline {
            return Err(format!("{}: readiness did not go DOWN (503) after SIGTERM, answered {r:?}", s.what));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    match status(&client, &live).await {
        Some(200) | None => {}
        other => return Err(format!("{}: liveness answered {other:?} while draining", s.what)),
    }
    match tokio::time::timeout(s.termination_grace, s.child.wait()).await {
        Ok(Ok(exit)) if exit.success() => {}
        Ok(other) => return Err(format!("{}: after SIGTERM: {other:?}:\n{}", s.what, s.stderr())),
        Err(_) => return Err(format!("{}: still running after the {:?} grace period", s.what, s.termination_grace)),
    }
    Ok(format!("{}: probes 200, readiness DOWN on SIGTERM, exit 0 after {:?}", s.what, stopping.elapsed()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_deployment_starts_the_binary_as_its_manifest_says_and_answers_its_probes() {
    let mut started = Vec::new();
    for dir in OVERLAYS {
        let Some(objects) = rendered(dir) else { return };
        let deployments: Vec<&Value> = all(objects, "Deployment")
            .into_iter()
            .filter(|d| d["metadata"]["labels"]["app.kubernetes.io/component"] == "service")
            .collect();
        let mut names: Vec<&str> = deployments.iter().map(|d| name_of(d)).collect();
        names.sort();
        let mut want = SERVICES.to_vec();
        want.sort();
        assert_eq!(names, want, "{dir}: one cafe Deployment per service");
        for d in deployments {
            started.push(start(dir, objects, d));
        }
    }
    // All at once: each stop drains for the manifest's CAFE_DRAIN_MS.
    let mut running = tokio::task::JoinSet::new();
    for s in started {
        running.spawn(probe_and_stop(s));
    }
    let mut failures = Vec::new();
    while let Some(result) = running.join_next().await {
        match result.expect("probe task") {
            Ok(line) => eprintln!("{line}"),
            Err(e) => failures.push(e),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
