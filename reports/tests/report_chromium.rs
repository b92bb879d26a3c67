//! The report opened in headless Chromium: it loads with no console error (no script,
//! nothing blocked, no injected element), its DOM holds no element a hostile value could
//! have smuggled in, and the screenshot is not blank. Skips when Chromium is absent.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CHROMIUM_TIMEOUT: Duration = Duration::from_secs(90);

fn chromium() -> Option<PathBuf> {
    [
        "/usr/bin/chromium",
        "/usr/bin/chromium-browser",
        "/usr/bin/google-chrome",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.is_file())
}

/// Runs headless Chromium on `page` with `extra` flags; returns (stdout, stderr).
fn run_chromium(bin: &Path, profile: &Path, page: &Path, extra: &[String]) -> (String, String) {
    let out_dir = profile.parent().unwrap();
    let (stdout_path, stderr_path) = (out_dir.join("stdout.txt"), out_dir.join("stderr.txt"));
    let mut child = Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout_path).unwrap())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .expect("start chromium");
    let deadline = Instant::now() + CHROMIUM_TIMEOUT;
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within {CHROMIUM_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    (
        std::fs::read_to_string(stdout_path).unwrap_or_default(),
        std::fs::read_to_string(stderr_path).unwrap_or_default(),
    )
}

/// Share of pixels that are not (near) white, and whether the verdict badge's red shows.
fn screenshot_stats(png_path: &Path) -> (f64, bool, usize) {
    let decoder = png::Decoder::new(std::fs::File::open(png_path).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    assert!(
        channels >= 3,
        "unexpected PNG color type {:?}",
        info.color_type
    );
    let pixels = &buf[..info.buffer_size()];
    let (mut inked, mut red, mut total) = (0usize, false, 0usize);
    let mut colors = std::collections::HashSet::new();
    for px in pixels.chunks_exact(channels) {
        total += 1;
        let (r, g, b) = (px[0], px[1], px[2]);
        if r < 235 || g < 235 || b < 235 {
            inked += 1;
        }
        // The INVALID badge: #cf222e.
        if r.abs_diff(0xcf) < 12 && g.abs_diff(0x22) < 12 && b.abs_diff(0x2e) < 12 {
            red = true;
        }
        if colors.len() < 10_000 {
            colors.insert((r >> 3, g >> 3, b >> 3));
        }
    }
    (inked as f64 / total.max(1) as f64, red, colors.len())
}

#[test]
fn report_loads_in_chromium_without_console_errors_and_renders_a_non_blank_page() {
    let Some(bin) = chromium() else {
        eprintln!("skipping: no Chromium at /usr/bin/chromium (scripts/setup.sh installs it)");
        return;
    };
    let tmp = TempDir::new("chromium");
    let run = tmp.path().join("run");
    std::fs::create_dir_all(&run).unwrap();
    invalid_run(
        &run,
        &HistorySpec {
            hostile_values: true,
            ..HistorySpec::default()
        },
    );
    let page = distest_reports::render_run(&run).unwrap();
    let shot = tmp.path().join("shot.png");

    let (_, stderr) = run_chromium(
        &bin,
        &tmp.path().join("profile-1"),
        &page,
        &[
            format!("--screenshot={}", shot.display()),
            "--window-size=1280,2000".into(),
        ],
    );
    let console: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("CONSOLE") || l.contains("Uncaught") || l.contains("Refused to"))
        .collect();
    assert!(
        console.is_empty(),
        "console errors:\n{}",
        console.join("\n")
    );
    assert!(
        shot.is_file(),
        "no screenshot written; chromium said:\n{stderr}"
    );
    let (inked, red, colors) = screenshot_stats(&shot);
    assert!(
        inked > 0.05,
        "the screenshot is nearly blank ({:.1}% inked)",
        inked * 100.0
    );
    assert!(
        red,
        "the INVALID verdict badge is not visible at the top of the page"
    );
    assert!(
        colors > 50,
        "the screenshot has only {colors} colors: charts did not render"
    );

    let (dom, stderr) = run_chromium(
        &bin,
        &tmp.path().join("profile-2"),
        &page,
        &["--dump-dom".into()],
    );
    assert!(
        dom.contains("class=\"verdict invalid\""),
        "DOM not dumped; chromium said:\n{stderr}"
    );
    assert!(!dom.contains("<script"), "a script element is in the DOM");
    assert!(
        !dom.contains("<img"),
        "an injected img element is in the DOM"
    );
    assert_eq!(dom.matches("<svg").count(), dom.matches("</svg>").count());
}
