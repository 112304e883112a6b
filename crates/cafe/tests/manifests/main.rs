//! The Kubernetes manifests (`deploy/k8s`) and the binary cannot drift apart.
//!
//! Each overlay is rendered with `kubectl kustomize`, as `kubectl apply -k` would send it, and
//! read back as JSON (through PyYAML: no YAML parser in the workspace for one test). The
//! structure tests check what the specification asks of the manifests (a Deployment,
//! Service and disruption budget per service, the original's probe timings, the gateway as
//! the one LoadBalancer, payment's autoscaler, database names in a ConfigMap, credentials
//! in a Secret, logs on a claim) and of auth (SPEC §9: never turned off, each private key only
//! in the Deployment that signs with it, NATS behind a user and password from a Secret,
//! identity reached only through the gateway, the menu from a ConfigMap). The start-up test
//! runs the real binary once per Deployment, exactly as its container's command, args and
//! environment say, and calls its probes on its port.
//!
//! What that test substitutes, because a test machine has no cluster:
//! - `DATABASE_URL` (a `postgres://` URL into the cluster) becomes a SQLite file in a
//!   temporary directory, and `NATS_URL` is removed, so the service uses the embedded event
//!   log, which `CAFE_DATA_DIR` puts in the same temporary directory;
//! - paths under the container's volume mounts (the logs claim at `/logs`, the menu at
//!   `/etc/cafe/menu`) move under the temporary directory, keeping the rest of the path
//!   (`/logs/$(POD_NAME)` included); ConfigMap and Secret volumes are written there as the
//!   kubelet would, one file per key;
//! - `CAFE_PORT` becomes a free port, after checking that the manifest's value is the
//!   container port and the probes' port, so that many services run side by side;
//! - `fieldRef`s take what the kubelet would give (`metadata.name`: a pod name), and in an
//!   overlay that does not ship its Secrets (prod), secret values are the dev overlay's
//!   (its development keys among them: the binary refuses a key that is not one), or
//!   placeholders for a Secret the dev overlay does not have either.
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

const SERVICES: [&str; 9] =
    ["gateway", "order", "payment", "drink", "customercenter", "delivery", "deliverycenter", "identity", "web"];
/// The services that own a database: all but the gateway and the web.
fn owns_data(svc: &&str) -> bool {
    !matches!(*svc, "gateway" | "web")
}
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
        for svc in SERVICES.into_iter().filter(owns_data) {
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
        // No password or private key is written into anything but its Secret.
        let secrets: Vec<String> = all(objects, "Secret")
            .into_iter()
            .flat_map(|o| {
                data_of(o).into_iter().filter(|(k, _)| k.contains("password") || k.contains("private")).map(|(_, v)| v)
            })
            .collect();
        for o in objects.iter().filter(|o| kind_of(o) != "Secret") {
            let text = o.to_string();
            for s in &secrets {
                let key_body = s.lines().nth(1).unwrap_or(s.as_str());
                assert!(
                    !text.contains(s.as_str()) && !text.contains(key_body),
                    "{dir}: {} {} carries a password or a private key",
                    kind_of(o),
                    name_of(o)
                );
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

    // Auth is on: it signs in as the manager, with the password from its Secret, through the
    // gateway, and sends the token.
    let password = env_entry(c, "MANAGER_PASSWORD").expect("MANAGER_PASSWORD");
    let r = &password["valueFrom"]["secretKeyRef"];
    assert_eq!((r["name"].as_str(), r["key"].as_str()), (Some("cafe-manager"), Some("manager-password")));
    let text = &data[file];
    for needed in ["$GATEWAY_URL/auth/token", "Authorization: Bearer", "MANAGER_PASSWORD"] {
        assert!(text.contains(needed), "{script} has {needed}");
    }
}

// ---- auth (SPEC §9) ----

/// Every workload with a pod template: its name, pod spec and containers (init ones too).
fn workloads(objects: &[Value]) -> Vec<(&str, &Value, Vec<&Value>)> {
    objects
        .iter()
        .filter(|o| matches!(kind_of(o), "Deployment" | "StatefulSet" | "DaemonSet" | "Job" | "ReplicaSet" | "Pod"))
        .map(|o| {
            let pod = if kind_of(o) == "Pod" { &o["spec"] } else { &o["spec"]["template"]["spec"] };
            let containers = ["initContainers", "containers"]
                .iter()
                .flat_map(|k| pod[*k].as_array().into_iter().flatten())
                .collect();
            (name_of(o), pod, containers)
        })
        .collect()
}

/// The renders there are: the overlays and the siege Job.
fn every_render() -> Vec<(&'static str, &'static [Value])> {
    ["overlays/dev", "overlays/prod", "siege"].into_iter().filter_map(|d| rendered(d).map(|o| (d, o))).collect()
}

/// What a pod can read from Secrets: `(secret, key)` for each key taken by name, and
/// `(secret, "*")` for a whole Secret (`envFrom`, or a volume without `items`).
fn secret_refs(pod: &Value, containers: &[&Value]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    for c in containers {
        for e in c["env"].as_array().into_iter().flatten() {
            let r = &e["valueFrom"]["secretKeyRef"];
            if r.is_object() {
                out.push((s(&r["name"]), s(&r["key"])));
            }
        }
        for from in c["envFrom"].as_array().into_iter().flatten() {
            if from["secretRef"].is_object() {
                out.push((s(&from["secretRef"]["name"]), "*".into()));
            }
        }
    }
    let mut volume_secrets: Vec<(String, &Value)> = Vec::new();
    for v in pod["volumes"].as_array().into_iter().flatten() {
        if v["secret"].is_object() {
            volume_secrets.push((s(&v["secret"]["secretName"]), &v["secret"]["items"]));
        }
        for source in v["projected"]["sources"].as_array().into_iter().flatten() {
            if source["secret"].is_object() {
                volume_secrets.push((s(&source["secret"]["name"]), &source["secret"]["items"]));
            }
        }
    }
    for (name, items) in volume_secrets {
        match items.as_array() {
            Some(items) => out.extend(items.iter().map(|i| (name.clone(), s(&i["key"])))),
            None => out.push((name, "*".into())),
        }
    }
    out
}

#[test]
fn no_manifest_turns_auth_off_or_lifts_the_gateways_limit() {
    for (dir, objects) in every_render() {
        for o in objects.iter().filter(|o| matches!(kind_of(o), "ConfigMap" | "Secret")) {
            let data = data_of(o);
            let auth = data.get("CAFE_AUTH").map(|v| v.trim().to_ascii_lowercase());
            assert!(
                auth.is_none() || auth.as_deref() == Some("on"),
                "{dir}: {} {} sets CAFE_AUTH",
                kind_of(o),
                name_of(o)
            );
        }
        for (name, _, containers) in workloads(objects) {
            for c in containers {
                for e in c["env"].as_array().into_iter().flatten() {
                    if e["name"] == "CAFE_AUTH" {
                        assert_eq!(e["value"], "on", "{dir}: {name}: CAFE_AUTH is written out, and on");
                    }
                    if e["name"] == "CAFE_RATE_LIMIT" {
                        let limit: u64 = e["value"].as_str().and_then(|v| v.parse().ok()).expect("a number");
                        assert!(
                            limit > 0,
                            "{dir}: {name}: the gateway's per-client limit is lifted (0) only for a load test"
                        );
                    }
                }
                let words: Vec<&str> = ["command", "args"]
                    .iter()
                    .flat_map(|k| c[*k].as_array().into_iter().flatten())
                    .filter_map(Value::as_str)
                    .collect();
                for (i, w) in words.iter().enumerate() {
                    let off = w.replace(' ', "").contains("--auth=off")
                        || (*w == "--auth" && words.get(i + 1).is_some_and(|n| n.trim() == "off"));
                    assert!(!off, "{dir}: {name} runs with --auth off");
                }
            }
        }
        if dir == "siege" {
            continue;
        }
        for svc in SERVICES {
            let c = container(get(objects, "Deployment", svc));
            let env = container_env(objects, &format!("{svc}-0"), c);
            let auth = env.iter().find(|(k, _)| k == "CAFE_AUTH").map(|(_, v)| v.as_str());
            assert_eq!(auth, Some("on"), "{dir}: {svc} runs with CAFE_AUTH=on");
        }
    }
}

#[test]
fn each_private_key_reaches_only_the_deployment_that_signs_with_it() {
    // (Secret, key) → the workloads that may read it; both public keys go to every Deployment.
    let signers: [(&str, &str, &str, &[&str]); 3] = [
        ("cafe-keys", "token-private-key", "CAFE_TOKEN_PRIVATE_KEY", &["identity"]),
        ("cafe-keys", "service-private-key", "CAFE_SERVICE_PRIVATE_KEY", &["order"]),
        ("cafe-manager", "manager-password", "CAFE_MANAGER_PASSWORD", &["identity", "siege"]),
    ];
    for (dir, objects) in every_render() {
        for (name, pod, containers) in workloads(objects) {
            let refs = secret_refs(pod, &containers);
            for (secret, key) in &refs {
                assert!(
                    !(key == "*" && (secret == "cafe-keys" || secret == "cafe-manager")),
                    "{dir}: {name} takes the whole Secret {secret}: each key by name, only those it needs"
                );
                for (s, k, _, may) in signers {
                    if secret == s && key == k {
                        assert!(may.contains(&name), "{dir}: {name} has {s}/{k}, which only {may:?} may have");
                    }
                }
            }
            for (s, k, var, may) in signers {
                for c in &containers {
                    if let Some(e) = env_entry(c, var) {
                        assert!(may.contains(&name), "{dir}: {name} has {var}");
                        let r = &e["valueFrom"]["secretKeyRef"];
                        assert_eq!((r["name"].as_str(), r["key"].as_str()), (Some(s), Some(k)), "{dir}: {name}: {var}");
                    }
                }
            }
        }
        if dir == "siege" {
            continue;
        }
        for svc in SERVICES {
            let deployment = get(objects, "Deployment", svc);
            let c = container(deployment);
            let mut keys: Vec<String> = secret_refs(&deployment["spec"]["template"]["spec"], &[c])
                .into_iter()
                .filter(|(s, _)| s == "cafe-keys")
                .map(|(_, k)| k)
                .collect();
            keys.sort();
            let mut want = vec!["service-public-keys", "token-public-keys"];
            want.extend(match svc {
                "identity" => Some("token-private-key"),
                "order" => Some("service-private-key"),
                _ => None,
            });
            want.sort();
            assert_eq!(keys, want, "{dir}: the keys {svc} takes from cafe-keys");
            for (var, key) in
                [("CAFE_TOKEN_PUBLIC_KEYS", "token-public-keys"), ("CAFE_SERVICE_PUBLIC_KEYS", "service-public-keys")]
            {
                let r =
                    &env_entry(c, var).unwrap_or_else(|| panic!("{dir}: {svc} has {var}"))["valueFrom"]["secretKeyRef"];
                assert_eq!(
                    (r["name"].as_str(), r["key"].as_str()),
                    (Some("cafe-keys"), Some(key)),
                    "{dir}: {svc}: {var}"
                );
            }
        }
        // The development keys are Ed25519 pairs: each public key is its private key's.
        if let Some(keys) = find(objects, "Secret", "cafe-keys") {
            let data = data_of(keys);
            for kind in ["token", "service"] {
                let private = platform::auth::KeyPair::from_pem(&data[&format!("{kind}-private-key")])
                    .unwrap_or_else(|e| panic!("{dir}: {kind}-private-key: {e:?}"));
                let public = platform::auth::PublicKey::all_from_pem(&data[&format!("{kind}-public-keys")])
                    .unwrap_or_else(|e| panic!("{dir}: {kind}-public-keys: {e:?}"));
                assert!(
                    public.contains(&private.public()),
                    "{dir}: {kind}-public-keys holds {kind}-private-key's public key"
                );
            }
            assert_ne!(data["token-private-key"], data["service-private-key"], "{dir}: two key pairs, not one");
        }
    }
}

/// The flag's value in `args`: `--flag=value` or `--flag value`.
fn flag<'a>(args: &'a [Value], name: &str) -> Option<&'a str> {
    let words: Vec<&str> = args.iter().filter_map(Value::as_str).collect();
    let long = format!("--{name}");
    words.iter().enumerate().find_map(|(i, w)| {
        w.strip_prefix(&format!("{long}=")).or_else(|| (*w == long).then(|| words.get(i + 1).copied()).flatten())
    })
}

/// `$(VAR)` → `VAR`.
fn reference(s: &str) -> Option<&str> {
    s.strip_prefix("$(")?.strip_suffix(')')
}

/// The `(secret, key)` an environment variable of `c` comes from.
#[track_caller]
fn from_secret(c: &Value, var: &str) -> (String, String) {
    let r = &env_entry(c, var).unwrap_or_else(|| panic!("no {var}"))["valueFrom"]["secretKeyRef"];
    assert!(r.is_object(), "{var} comes from a Secret");
    (r["name"].as_str().unwrap().to_string(), r["key"].as_str().unwrap().to_string())
}

#[test]
fn nats_wants_a_user_and_password_from_a_secret_and_each_services_url_carries_them() {
    for dir in OVERLAYS {
        let Some(objects) = rendered(dir) else { return };
        let c = container(get(objects, "StatefulSet", "nats"));
        let args = c["args"].as_array().expect("nats args");
        let var = |name: &str| {
            let value = flag(args, name).unwrap_or_else(|| panic!("{dir}: nats runs with --{name}"));
            reference(value).unwrap_or_else(|| panic!("{dir}: nats --{name} is $(VAR), not {value}")).to_string()
        };
        let user = from_secret(c, &var("user"));
        let pass = from_secret(c, &var("pass"));
        assert_eq!(user.0, pass.0, "{dir}: nats's user and password from one Secret");
        for o in all(objects, "ConfigMap") {
            assert!(
                !data_of(o).contains_key("NATS_URL"),
                "{dir}: ConfigMap {} has a NATS_URL without credentials",
                name_of(o)
            );
        }
        let secret = find(objects, "Secret", &user.0).map(data_of);
        for svc in SERVICES.into_iter().filter(|s| *s != "gateway") {
            let c = container(get(objects, "Deployment", svc));
            let url = env_entry(c, "NATS_URL").and_then(|e| e["value"].as_str());
            let url = url.unwrap_or_else(|| panic!("{dir}: {svc}'s NATS_URL is built from other variables"));
            let (credentials, _) = url
                .strip_prefix("nats://")
                .and_then(|rest| rest.split_once('@'))
                .unwrap_or_else(|| panic!("{dir}: {svc}: NATS_URL={url} carries no credentials"));
            let (u, p) = credentials.split_once(':').expect("user:password");
            let (u, p) = (reference(u).expect("$(USER)"), reference(p).expect("$(PASSWORD)"));
            assert_eq!(from_secret(c, u), user, "{dir}: {svc}: the NATS user is nats's");
            assert_eq!(from_secret(c, p), pass, "{dir}: {svc}: the NATS password is nats's");
            if let Some(secret) = &secret {
                let env = container_env(objects, &format!("{svc}-0"), c);
                let url = env.iter().find(|(k, _)| k == "NATS_URL").map(|(_, v)| v.clone()).unwrap();
                let want = format!("nats://{}:{}@", secret[&user.1], secret[&pass.1]);
                assert!(url.starts_with(&want), "{dir}: {svc}: NATS_URL expands to the Secret's user and password");
            }
        }
    }
}

/// Whether a label selector (`matchLabels`, `matchExpressions`) selects `labels`.
fn selects(selector: &Value, labels: &Value) -> bool {
    let labelled = |k: &str| labels.get(k).and_then(Value::as_str);
    selector["matchLabels"].as_object().into_iter().flatten().all(|(k, v)| labelled(k) == v.as_str())
        && selector["matchExpressions"].as_array().into_iter().flatten().all(|e| {
            let key = e["key"].as_str().expect("key");
            let values: Vec<&str> = e["values"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
            let has = labelled(key);
            match e["operator"].as_str().expect("operator") {
                "In" => has.is_some_and(|v| values.contains(&v)),
                "NotIn" => !has.is_some_and(|v| values.contains(&v)),
                "Exists" => has.is_some(),
                "DoesNotExist" => has.is_none(),
                other => panic!("operator {other}"),
            }
        })
}

#[test]
fn identity_is_reached_only_from_the_gateway_and_reaches_postgres_and_nats() {
    let siege: Vec<Value> = rendered("siege")
        .into_iter()
        .flatten()
        .filter(|o| kind_of(o) == "Job")
        .map(|o| o["spec"]["template"]["metadata"]["labels"].clone())
        .collect();
    for dir in OVERLAYS {
        let Some(objects) = rendered(dir) else { return };
        let labels =
            |kind: &str, name: &str| get(objects, kind, name)["spec"]["template"]["metadata"]["labels"].clone();
        let identity = labels("Deployment", "identity");
        let gateway = labels("Deployment", "gateway");
        // Every other pod of the namespace, the siege Job's included.
        let others: Vec<(String, Value)> = all(objects, "Deployment")
            .into_iter()
            .chain(all(objects, "StatefulSet"))
            .filter(|o| !matches!(name_of(o), "gateway" | "identity"))
            .map(|o| (name_of(o).to_string(), o["spec"]["template"]["metadata"]["labels"].clone()))
            .chain(siege.iter().map(|l| ("siege".to_string(), l.clone())))
            .collect();
        let policies = all(objects, "NetworkPolicy");
        let ingress_to = |pod: &Value| -> Vec<&Value> {
            policies
                .iter()
                .filter(|p| selects(&p["spec"]["podSelector"], pod))
                .filter(|p| p["spec"]["policyTypes"].as_array().is_none_or(|t| t.iter().any(|t| t == "Ingress")))
                .flat_map(|p| p["spec"]["ingress"].as_array().into_iter().flatten())
                .collect()
        };
        let mut gateway_allowed = false;
        for rule in ingress_to(&identity) {
            let from = rule["from"].as_array().filter(|f| !f.is_empty());
            let from = from.unwrap_or_else(|| panic!("{dir}: a rule lets anyone reach identity: {rule}"));
            for peer in from {
                assert!(peer["ipBlock"].is_null(), "{dir}: identity reached from an address block: {peer}");
                if peer["namespaceSelector"].is_object() {
                    let ns = &peer["namespaceSelector"];
                    assert_eq!(
                        ns["matchLabels"],
                        serde_json::json!({"kubernetes.io/metadata.name": "monitoring"}),
                        "{dir}: identity reached from another namespace than monitoring: {peer}"
                    );
                    continue;
                }
                let pods = &peer["podSelector"];
                for (name, other) in &others {
                    assert!(!selects(pods, other), "{dir}: {name} may reach identity directly: {peer}");
                }
                gateway_allowed |= selects(pods, &gateway)
                    && rule["ports"].as_array().is_none_or(|ports| ports.iter().any(|p| p["port"] == 8080));
            }
        }
        assert!(gateway_allowed, "{dir}: the gateway reaches identity on 8080");
        for (server, port) in [("postgres", 5432), ("nats", 4222)] {
            let admitted = ingress_to(&labels("StatefulSet", server)).into_iter().any(|rule| {
                rule["ports"].as_array().is_none_or(|ports| ports.iter().any(|p| p["port"] == port))
                    && rule["from"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|peer| peer["namespaceSelector"].is_null() && selects(&peer["podSelector"], &identity))
            });
            assert!(admitted, "{dir}: identity reaches {server} on {port}");
        }
    }
}

#[test]
fn order_prices_from_the_menu_config_map_mounted_at_cafe_menu() {
    for dir in OVERLAYS {
        let Some(objects) = rendered(dir) else { return };
        let deployment = get(objects, "Deployment", "order");
        let c = container(deployment);
        let path = env_entry(c, "CAFE_MENU").and_then(|e| e["value"].as_str()).expect("order has CAFE_MENU");
        let mount = c["volumeMounts"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|m| path.starts_with(&format!("{}/", m["mountPath"].as_str().unwrap().trim_end_matches('/'))))
            .unwrap_or_else(|| panic!("{dir}: CAFE_MENU={path} is on no volume"));
        let volumes = deployment["spec"]["template"]["spec"]["volumes"].as_array().expect("volumes");
        let volume = volumes.iter().find(|v| v["name"] == mount["name"]).expect("the mounted volume");
        let name =
            volume["configMap"]["name"].as_str().unwrap_or_else(|| panic!("{dir}: the menu's volume is a ConfigMap"));
        assert!(
            name == "cafe-menu" || name.starts_with("cafe-menu-"),
            "{dir}: the menu is the ConfigMap cafe-menu, not {name}"
        );
        let file = &path[mount["mountPath"].as_str().unwrap().trim_end_matches('/').len() + 1..];
        let key = match volume["configMap"]["items"].as_array() {
            Some(items) => items.iter().find(|i| i["path"] == file).and_then(|i| i["key"].as_str()).expect("item"),
            None => file,
        };
        let data = data_of(get(objects, "ConfigMap", name));
        let text = data.get(key).unwrap_or_else(|| panic!("{dir}: {name} has no {key}"));
        let menu = order::Menu::from_json(text).unwrap_or_else(|e| panic!("{dir}: {name}/{key}: {e}"));
        assert_eq!(menu, order::Menu::default(), "{dir}: the ConfigMap ships the binary's default menu");
        for svc in SERVICES.into_iter().filter(|s| *s != "order") {
            assert!(
                env_entry(container(get(objects, "Deployment", svc)), "CAFE_MENU").is_none(),
                "{dir}: {svc} has a menu"
            );
        }
    }
}

// ---- the binary, started as each Deployment says ----

/// A Secret's data: from this render, or, where the operator makes it (prod), the dev
/// overlay's Secret of that name (development values, real keys).
fn secret_data(objects: &[Value], name: &str) -> Option<BTreeMap<String, String>> {
    find(objects, "Secret", name)
        .or_else(|| rendered("overlays/dev").and_then(|dev| find(dev, "Secret", name)))
        .map(data_of)
}

/// Writes the ConfigMap and Secret volumes `c` mounts under `root`, as the kubelet would:
/// one file per key (or per item), or the one key a `subPath` names.
fn write_volumes(objects: &[Value], pod: &Value, c: &Value, root: &Path) {
    for m in c["volumeMounts"].as_array().into_iter().flatten() {
        let Some(volume) = pod["volumes"].as_array().into_iter().flatten().find(|v| v["name"] == m["name"]) else {
            continue;
        };
        let (data, items) = if let Some(name) = volume["configMap"]["name"].as_str() {
            let data = find(objects, "ConfigMap", name).map(data_of);
            (data.unwrap_or_else(|| panic!("no ConfigMap {name} in the render")), &volume["configMap"]["items"])
        } else if let Some(name) = volume["secret"]["secretName"].as_str() {
            (secret_data(objects, name).unwrap_or_default(), &volume["secret"]["items"])
        } else {
            continue;
        };
        let files: Vec<(String, String)> = match items.as_array() {
            Some(items) => items
                .iter()
                .map(|i| (i["path"].as_str().unwrap().to_string(), data[i["key"].as_str().unwrap()].clone()))
                .collect(),
            None => data.into_iter().collect(),
        };
        let target = root.join(m["mountPath"].as_str().unwrap().trim_start_matches('/'));
        match m["subPath"].as_str() {
            Some(sub) => {
                std::fs::create_dir_all(target.parent().unwrap()).unwrap();
                let (_, text) = files.iter().find(|(f, _)| f == sub).expect("the subPath's key");
                std::fs::write(&target, text).unwrap();
            }
            None => {
                for (file, text) in files {
                    let path = target.join(file);
                    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                    std::fs::write(path, text).unwrap();
                }
            }
        }
    }
}

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
            match secret_data(objects, r["name"].as_str().unwrap()) {
                Some(data) => data.get(key).unwrap_or_else(|| panic!("{name}: no key {key} in the Secret")).clone(),
                // The operator creates it (prod), and dev has none either: any value will do.
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
/// the substitutions the module documentation lists; with `nats_port`, its NATS_URL is kept,
/// credentials and all, and only its host and port point at a local server.
fn start(dir: &str, objects: &[Value], deployment: &Value, nats_port: Option<u16>) -> Started {
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
        if owns_data(&service.as_str()) {
            let url = lookup(&env, "DATABASE_URL").unwrap_or_default();
            assert!(url.starts_with("postgres://"), "{what}: DATABASE_URL={url}");
            let sqlite = format!("sqlite://{}?mode=rwc", tmp.path().join(format!("{service}.db")).display());
            swap(&mut env, "DATABASE_URL", Some(sqlite));
        }
        let nats = lookup(&env, "NATS_URL").unwrap_or_default();
        assert!(nats.starts_with("nats://"), "{what}: NATS_URL={nats}");
        let local = nats_port.map(|port| match nats.rsplit_once('@') {
            Some((credentials, _)) => format!("{credentials}@127.0.0.1:{port}"),
            None => format!("nats://127.0.0.1:{port}"),
        });
        swap(&mut env, "NATS_URL", local);
    }
    swap(&mut env, "CAFE_DATA_DIR", Some(tmp.path().join("data").display().to_string()));
    let test_port = free_port();
    swap(&mut env, "CAFE_PORT", Some(test_port.to_string()));
    // Volume mounts move under the temporary directory, ConfigMaps and Secrets written there.
    write_volumes(objects, pod, c, tmp.path());
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
    // A fresh connection per probe, as the kubelet makes; one that fails (a busy machine, a
    // pooled connection closed under it) is asked again until the deadline.
    let probe = reqwest::Client::builder().timeout(Duration::from_secs(2)).pool_max_idle_per_host(0).build().unwrap();
    let deadline = Instant::now() + Duration::from_secs(8);
    loop {
        let r = status(&probe, &ready).await;
        if r == Some(503) {
            break;
        }
        if Instant::now() > deadline {
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
            started.push(start(dir, objects, d, None));
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

/// A `nats-server` binary (PATH or /usr/sbin), or why there is none.
fn nats_server() -> Option<PathBuf> {
    let found = first_working(vec!["nats-server".into(), "/usr/sbin/nats-server".into()], &["--version"]);
    if found.is_none() {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "no nats-server under CI");
        let _ = writeln!(std::io::stderr(), "SKIPPED: no nats-server on the PATH or in /usr/sbin");
    }
    found
}

/// The dev overlay's NATS, run here as its StatefulSet says (its user and password from its
/// Secret), and one service started as its Deployment says with the NATS_URL the manifests
/// build: the service must sign in (readiness needs the broker), with nothing but that URL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_signs_in_to_nats_with_the_credentials_its_url_carries() {
    let Some(objects) = rendered("overlays/dev") else { return };
    let Some(server) = nats_server() else { return };
    let c = container(get(objects, "StatefulSet", "nats"));
    let env = container_env(objects, "nats-0", c);
    let args = c["args"].as_array().expect("nats args");
    let value = |name: &str| expand(flag(args, name).unwrap_or_else(|| panic!("nats --{name}")), &env);
    let (user, pass) = (value("user"), value("pass"));
    assert!(!user.contains("$(") && !pass.contains("$("), "nats's user and password come from its environment");

    let store = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut nats = tokio::process::Command::new(server)
        .args(["-a", "127.0.0.1", "-p", &port.to_string(), "--jetstream", "--store_dir"])
        .arg(store.path())
        .args(["--user", &user, "--pass", &pass])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start nats-server");
    let deadline = Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        assert!(Instant::now() < deadline, "nats-server did not listen on {port}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let service = start("overlays/dev", objects, get(objects, "Deployment", "drink"), Some(port));
    let result = probe_and_stop(service).await;
    let _ = nats.kill().await;
    match result {
        Ok(line) => eprintln!("{line}, signed in to NATS as {user}"),
        Err(e) => panic!("drink did not become ready on a NATS that wants a password: {e}"),
    }
}
