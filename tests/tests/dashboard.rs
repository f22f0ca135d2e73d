//! The dashboard in a real browser: 4 `scbe-node` and 6 `scbe-agent` processes on loopback,
//! validator 0's dashboard opened in headless Chromium (driven over the DevTools protocol).
//! The page must follow a canary rollout live (no reload) to completion, then show a degrading
//! canary rolled back with its evidence, agree with `scbe status --json` on stages, rollout
//! progress and agent versions, and pass keyboard and screen-reader basics (landmarks, labels,
//! contrast, a skip link reached by Tab). Its screenshot is the README's.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use scbe_core::governance::ledger::ProposalStatus;
use scbe_core::governance::Stage;
use scbe_tests::browser::Browser;
use scbe_tests::{fleet_options, Harness, StatusSummary};
use serde_json::Value;

const DEADLINE: Duration = Duration::from_secs(90);

/// What the page shows, read from its DOM.
const PAGE: &str = r##"(() => {
  // Still loading (the navigation is not awaited): nothing shown yet.
  if (!document.body || !document.getElementById("live")) return { updates: 0 };
  const rows = (sel, f) => Array.from(document.querySelectorAll(sel)).map(f);
  return {
    updates: Number(document.body.dataset.updates || 0),
    live: document.getElementById("live").dataset.live,
    stages: Object.fromEntries(rows("#stage-cards li", (li) => [li.dataset.stage, li.dataset.version])),
    rollouts: rows("#rollout-rows tr[data-rollout]", (tr) => ({
      id: Number(tr.dataset.rollout), status: tr.dataset.status,
      done: Number(tr.dataset.batchesDone), batches: Number(tr.dataset.batches),
      why: tr.lastElementChild.textContent })),
    agents: Object.fromEntries(rows("#agent-rows tr[data-agent]", (tr) => [tr.dataset.agent, tr.dataset.version])),
    sparklines: document.querySelectorAll("#agent-rows svg[role=img]").length,
    events: rows("#event-list li[data-kind]", (li) => li.dataset.kind),
    tongues: rows("#event-list .tongue", (t) => t.textContent),
    validators: document.querySelectorAll("#validator-rows tr[data-validator]").length,
    positions: document.querySelectorAll("#validator-rows tr[data-executed]:not([data-executed=''])").length,
  };
})()"##;

/// Accessibility basics, checked in the page: landmarks, a heading for every section, a name
/// for every image, progress bar and scrollable region, and text contrast of at least 4.5:1
/// against the background it is drawn on.
const A11Y: &str = r##"(() => {
  const problems = [];
  for (const sel of ["header", "nav[aria-label]", "main", "footer"])
    if (!document.querySelector(sel)) problems.push(`no ${sel} landmark`);
  if (!document.documentElement.lang) problems.push("no lang on <html>");
  for (const s of document.querySelectorAll("main section")) {
    const h = document.getElementById(s.getAttribute("aria-labelledby") || "");
    if (!h || !/^H[1-6]$/.test(h.tagName)) problems.push(`section ${s.id} has no heading label`);
  }
  for (const e of document.querySelectorAll("[role=img], progress, [role=region]"))
    if (!(e.getAttribute("aria-label") || e.getAttribute("aria-labelledby")))
      problems.push(`unnamed ${e.tagName.toLowerCase()}`);
  for (const t of document.querySelectorAll("table"))
    if (!t.querySelector("th[scope=col]")) problems.push("a table without column headers");
  const rgb = (c) => (c.match(/[\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const background = (e) => {
    for (; e; e = e.parentElement) {
      const c = rgb(getComputedStyle(e).backgroundColor);
      if (c.length >= 3 && (c.length < 4 || c[3] > 0)) return c;
    }
    return [255, 255, 255];
  };
  let checked = 0;
  for (const e of document.querySelectorAll("body *")) {
    const own = Array.from(e.childNodes).some((n) => n.nodeType === 3 && n.textContent.trim());
    if (!own || e.offsetParent === null && getComputedStyle(e).position !== "fixed") continue;
    const fg = lum(rgb(getComputedStyle(e).color)), bg = lum(background(e));
    const ratio = (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
    checked += 1;
    if (ratio < 4.5) problems.push(`contrast ${ratio.toFixed(2)} on "${e.textContent.trim().slice(0, 30)}"`);
  }
  if (checked < 20) problems.push(`only ${checked} text elements checked`);
  return problems;
})()"##;

fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

/// The page's view, polled until `done` holds.
fn until_page(b: &mut Browser, what: &str, mut done: impl FnMut(&Value) -> bool) -> Value {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let page = b
            .eval(PAGE)
            .unwrap_or_else(|e| panic!("reading the page: {e}"));
        if done(&page) {
            return page;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for the page to show {what}: {page}"
        );
        std::thread::sleep(Duration::from_millis(150));
    }
}

fn rollout(page: &Value, id: u64) -> Option<&Value> {
    page["rollouts"]
        .as_array()?
        .iter()
        .find(|r| r["id"].as_u64() == Some(id))
}

fn cli_summary(h: &Harness) -> StatusSummary {
    let out = h.scbe(0, &["status", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("scbe status --json is a summary")
}

/// What the page and `scbe status --json` must agree on: stages, each rollout's status and
/// batches done, each agent's version.
fn agreed(page: &Value, s: &StatusSummary) -> bool {
    let stages = ["staging", "canary", "production"].iter().all(|stage| {
        let want = s
            .current
            .iter()
            .find(|(k, _)| {
                serde_json::to_value(k)
                    .ok()
                    .as_ref()
                    .and_then(Value::as_str)
                    == Some(stage)
            })
            .map(|(_, v)| v.as_str())
            .unwrap_or("");
        page["stages"][stage].as_str() == Some(want)
    });
    let rollouts = s.rollouts.iter().all(|r| {
        rollout(page, r.id).is_some_and(|p| {
            p["status"].as_str() == Some(r.status.name())
                && p["done"].as_u64() == Some(u64::from(r.batches_done))
        })
    });
    let agents = s
        .agents
        .iter()
        .all(|a| page["agents"][&a.id].as_str() == Some(a.version.as_deref().unwrap_or("")));
    stages && rollouts && agents
}

/// Polls page and CLI together until they agree (both follow validator 0, the page a moment
/// later).
fn until_agreed(h: &Harness, b: &mut Browser) -> (Value, StatusSummary) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let s = cli_summary(h);
        let page = b.eval(PAGE).expect("page");
        if agreed(&page, &s) {
            return (page, s);
        }
        assert!(
            Instant::now() < deadline,
            "the page never agreed with scbe status --json:\npage {page}\ncli {}",
            serde_json::to_string(&s).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_follows_a_rollout_live_and_shows_an_auto_rollback_with_its_evidence() {
    let mut h = Harness::start(fleet_options()).await;
    let url = h.cluster.nodes[0]
        .dashboard_url()
        .expect("scbe-sim clusters serve a dashboard");
    let mut b = blocking(|| Browser::open(&url, 1280, 1700)).unwrap_or_else(|e| panic!("{e}"));
    let first = blocking(|| {
        until_page(&mut b, "the first live state", |p| {
            p["updates"].as_u64() >= Some(1)
                && p["live"] == "live"
                && p["validators"].as_u64() == Some(4)
                && p["agents"].as_object().is_some_and(|a| a.len() == 6)
        })
    });

    // Keyboard and screen-reader basics.
    let problems = blocking(|| b.eval(A11Y)).expect("a11y script");
    assert_eq!(problems, Value::Array(vec![]), "accessibility problems");
    blocking(|| b.press("Tab")).expect("tab");
    let focused = blocking(|| {
        b.eval(
            "document.activeElement.className + ' ' + document.activeElement.getAttribute('href')",
        )
    })
    .expect("focus");
    assert_eq!(focused, "skip #main", "Tab reaches the skip link first");

    // A canary rollout, followed live: the page is never reloaded; its update count grows.
    let p = h.register_and_promote("r1", Stage::Canary).await;
    let approved = h.wait_proposal(0, p, ProposalStatus::Approved).await;
    let r1 = approved.rollout.expect("the approval started a rollout");
    let mut seen = BTreeSet::new();
    let done = blocking(|| {
        until_page(&mut b, "rollout r1 completed", |page| {
            if let Some(r) = rollout(page, r1) {
                seen.insert((
                    r["status"].as_str().unwrap_or_default().to_string(),
                    r["done"].as_u64().unwrap_or_default(),
                ));
                return r["status"] == "completed" && page["stages"]["canary"] == "r1";
            }
            false
        })
    });
    assert!(
        seen.iter().any(|(s, _)| s == "in_progress"),
        "the page showed the rollout in progress before it completed: {seen:?}"
    );
    assert!(
        done["updates"].as_u64() > first["updates"].as_u64(),
        "live updates, no reload"
    );
    assert!(
        done["sparklines"].as_u64() >= Some(6),
        "every reporting agent has sparklines: {done}"
    );
    blocking(|| until_agreed(&h, &mut b));
    // Every validator's position, the peers' asked by the serving one.
    blocking(|| {
        until_page(&mut b, "every validator's position", |p| {
            p["positions"].as_u64() == Some(4)
        })
    });

    // A canary that degrades: rolled back on agent evidence, which the page shows.
    let p = h.register_and_promote("r2-bad", Stage::Canary).await;
    let approved = h.wait_proposal(0, p, ProposalStatus::Approved).await;
    let r2 = approved.rollout.expect("a rollout");
    // The rollout table and the event list are fed separately (status polls and the watch
    // stream), so the page may show the row rolled back a moment before the event arrives:
    // wait for both (a clean-clone CI run read the page in between).
    let listed = |page: &Value, event: &str| {
        page["events"]
            .as_array()
            .is_some_and(|events| events.iter().any(|e| e.as_str() == Some(event)))
    };
    let rolled = blocking(|| {
        until_page(
            &mut b,
            "rollout r2-bad rolled back, with its events",
            |page| {
                rollout(page, r2).is_some_and(|r| r["status"] == "rolled_back")
                    && listed(page, "auto_rollback")
                    && listed(page, "rolled_back")
            },
        )
    });
    let why = rollout(&rolled, r2).expect("row")["why"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        why.contains("consecutive sample") && why.contains("agent-"),
        "the row says why, with the agents' evidence: {why}"
    );
    let tongues: BTreeSet<&str> = rolled["tongues"]
        .as_array()
        .expect("tongues")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        tongues.contains("DR"),
        "rollback events carry their tongue: {tongues:?}"
    );

    // The touched agents report their restored version within a sample interval or two.
    blocking(|| {
        until_page(&mut b, "no agent on the rolled-back release", |page| {
            page["agents"]
                .as_object()
                .is_some_and(|a| a.len() == 6 && a.values().all(|v| v != "r2-bad" && v != ""))
        })
    });
    let (page, summary) = blocking(|| until_agreed(&h, &mut b));
    let versions: BTreeMap<String, String> =
        serde_json::from_value(page["agents"].clone()).expect("agents");
    assert!(
        versions.values().all(|v| v != "r2-bad"),
        "no agent left on the rolled-back release: {versions:?}"
    );
    assert!(
        summary
            .agents
            .iter()
            .all(|a| a.version.as_deref() != Some("r2-bad")),
        "scbe status agrees"
    );

    // Again with rollouts, votes, verdicts and events on the page (their colours included).
    let problems = blocking(|| b.eval(A11Y)).expect("a11y script");
    assert_eq!(problems, Value::Array(vec![]), "accessibility problems");

    // The README's picture of it (focus moved off the skip link first).
    blocking(|| b.eval("document.activeElement.blur(); window.scrollTo(0, 0); true"))
        .expect("blur");
    let png = blocking(|| b.screenshot()).expect("screenshot");
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    let out = std::env::var_os("SCBE_SCREENSHOT")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png"));
    std::fs::write(&out, png).expect("screenshot written");
}
