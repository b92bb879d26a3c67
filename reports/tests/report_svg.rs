//! Golden structure of the plots: a band per nemesis interval, axes labelled with units,
//! per-node fault spans where the nemesis named the node.

mod common;

use common::*;

fn bands(svg: &str) -> Vec<String> {
    svg.match_indices("class=\"band\" data-kind=\"")
        .map(|(i, m)| {
            let rest = &svg[i + m.len()..];
            rest[..rest.find('"').unwrap()].to_string()
        })
        .collect()
}

#[test]
fn every_chart_has_one_band_per_fault_interval_and_unit_labelled_axes() {
    let tmp = TempDir::new("svg");
    invalid_run(tmp.path(), &HistorySpec::default());
    distest_reports::render_run(tmp.path()).unwrap();
    // The fixture's nemesis: one partition, one kill (then start), one clock bump never reset.
    for (file, y_desc) in [
        ("latency.svg", "latency (ms)"),
        ("throughput.svg", "throughput (ops/s)"),
    ] {
        let svg = std::fs::read_to_string(tmp.path().join(file)).unwrap();
        assert_eq!(bands(&svg), vec!["partition", "kill", "clock"], "{file}");
        assert!(
            has_text(&svg, "time since start (s)"),
            "{file}: x axis label"
        );
        assert!(has_text(&svg, y_desc), "{file}: y axis label");
        assert!(svg.starts_with("<svg"), "{file}");
        assert_eq!(svg.matches("<svg").count(), 1, "{file}");
        // The open clock interval runs to the end of the plot: its band is the widest.
        assert!(
            svg.contains("clock from") && svg.contains("still active at the end"),
            "{file}"
        );
    }
    let latency = std::fs::read_to_string(tmp.path().join("latency.svg")).unwrap();
    for legend in ["read ok", "write ok", "cas fail", "p50 (ok)", "p99 (ok)"] {
        assert!(
            has_text(&latency, legend),
            "legend {legend}: {:?}",
            svg_texts(&latency)
        );
    }
    let page = std::fs::read_to_string(tmp.path().join("index.html")).unwrap();
    let lanes = &page[page.find("<svg class=\"lanes\"").unwrap()..];
    let lanes = &lanes[..lanes.find("</svg>").unwrap()];
    // Partition named n1, n2, n3; kill named n2; bump-clock named n3.
    assert_eq!(lanes.matches("data-kind=\"partition\"").count(), 3);
    assert_eq!(lanes.matches("data-kind=\"kill\"").count(), 1);
    assert_eq!(lanes.matches("data-kind=\"clock\"").count(), 1);
    assert!(lanes.contains("n2: kill from"));
}

#[test]
fn a_run_without_nemesis_has_no_bands() {
    let tmp = TempDir::new("svg-nofault");
    valid_run(
        tmp.path(),
        &HistorySpec {
            faults: false,
            ..HistorySpec::default()
        },
    );
    distest_reports::render_run(tmp.path()).unwrap();
    let svg = std::fs::read_to_string(tmp.path().join("latency.svg")).unwrap();
    assert!(bands(&svg).is_empty());
    assert!(
        !svg.contains("class=\"marker\""),
        "a valid run has no anomaly marker"
    );
    assert!(has_text(&svg, "latency (ms)"));
}
