//! HTML building blocks: escaping, the page frame with its inline stylesheet, small widgets.
//!
//! Everything that reaches a page from a target or a history is untrusted: values, node
//! log lines, checker evidence, even option names. Every such string goes through [`esc`]
//! (text and attribute values alike, so one function is enough) before it is written.
//! Pages carry no script and load nothing from the network: they must open from a CI
//! artifact store or an e-mail attachment years later.

use distest_checkers::Validity;
use std::fmt::Write;

/// Escapes `text` for HTML/SVG text and for quoted attribute values.
///
/// Control characters other than tab and newline are replaced by U+FFFD: they are not
/// allowed in XML (inline SVG) and a target's log may contain anything.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\t' | '\n' => out.push(c),
            c if c.is_control() => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// Cuts `text` to at most `max_chars` characters, marking the cut with an ellipsis.
pub fn truncate(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        None => text.to_string(),
        Some((byte, _)) => format!("{}…", &text[..byte]),
    }
}

/// A JSON value in one line, cut to `max_chars`: how values appear in tables.
pub fn compact_json(value: &serde_json::Value, max_chars: usize) -> String {
    match value {
        serde_json::Value::String(s) => truncate(s, max_chars),
        other => truncate(&other.to_string(), max_chars),
    }
}

/// The CSS class of a verdict (colors are in [`STYLE`]).
pub fn verdict_class(valid: Validity) -> &'static str {
    match valid {
        Validity::Valid => "valid",
        Validity::Invalid => "invalid",
        Validity::Unknown => "unknown",
    }
}

/// A colored verdict badge.
pub fn badge(valid: Validity) -> String {
    format!(
        "<span class=\"badge {}\">{}</span>",
        verdict_class(valid),
        valid.as_str()
    )
}

/// Anomaly names as chips.
pub fn chips(names: &[String]) -> String {
    names
        .iter()
        .map(|a| format!("<span class=\"chip\">{}</span>", esc(a)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A table from a header row and rows of already-escaped HTML cells.
pub fn table(class: &str, header: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = format!("<table class=\"{class}\"><thead><tr>");
    for h in header {
        let _ = write!(out, "<th>{}</th>", esc(h));
    }
    out.push_str("</tr></thead><tbody>");
    for row in rows {
        out.push_str("<tr>");
        for cell in row {
            let _ = write!(out, "<td>{cell}</td>");
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>");
    out
}

/// Pretty JSON inside a collapsed `<details>`, cut at `max_bytes` so a huge evidence blob
/// cannot blow up the page.
pub fn json_details(summary: &str, value: &serde_json::Value, max_bytes: usize) -> String {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_default();
    let mut note = String::new();
    if text.len() > max_bytes {
        let mut cut = max_bytes;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        note = format!(
            "<p class=\"note\">Cut at {} KiB; the full text is in results.json.</p>",
            max_bytes / 1024
        );
    }
    format!(
        "<details><summary>{}</summary><pre>{}</pre>{note}</details>",
        esc(summary),
        esc(&text)
    )
}

/// A complete page: title, inline style, body. `body` is trusted HTML built by this crate.
pub fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">\
         <title>{}</title><style>{STYLE}</style></head>\n<body>\n{body}\n</body></html>\n",
        esc(title)
    )
}

/// The one stylesheet of every page. Colors: green valid, red invalid, amber unknown; the
/// same three mean ok / fail / info in plots and timelines.
pub const STYLE: &str = "
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:0 auto;max-width:1240px;padding:16px 24px;color:#1d2330;background:#fff}
h1{font-size:22px;margin:8px 0}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #dde1e8;padding-bottom:4px}
h3{font-size:15px;margin:18px 0 6px}
table{border-collapse:collapse;margin:6px 0 12px}th,td{border:1px solid #dde1e8;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f3f5f8;font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums}
pre{background:#f6f8fa;border:1px solid #e3e6eb;padding:8px;overflow:auto;max-height:480px;white-space:pre-wrap;word-break:break-all}
code{background:#f3f5f8;padding:0 3px}
.badge{display:inline-block;padding:2px 12px;border-radius:4px;color:#fff;font-weight:700;text-transform:uppercase;letter-spacing:.04em}
.badge.valid{background:#1a7f37}.badge.invalid{background:#cf222e}.badge.unknown{background:#bf8700}
.verdict{font-size:20px;padding:12px 16px;border-radius:6px;margin:8px 0 12px;border-left:8px solid}
.verdict.valid{background:#eaf7ee;border-color:#1a7f37}.verdict.invalid{background:#fdecee;border-color:#cf222e}.verdict.unknown{background:#fdf6e3;border-color:#bf8700}
.chip{display:inline-block;background:#fff;border:1px solid #cf222e;color:#a40e26;border-radius:10px;padding:0 8px;margin:2px;font-size:13px}
.note{color:#57606a;font-size:13px}.warn{color:#9a6700}
nav a{margin-right:12px}
figure{margin:8px 0}figure svg{max-width:100%;height:auto;border:1px solid #e3e6eb}
.legend span{display:inline-block;margin-right:14px;font-size:13px}.sw{display:inline-block;width:12px;height:12px;margin-right:4px;vertical-align:-1px;border:1px solid #999}
.mono{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:12px}
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn esc_neutralizes_markup_quotes_and_control_characters() {
        let out = esc("\"><img src=x onerror=alert(1)></svg>]]>&'\u{0}");
        assert_eq!(
            out,
            "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;&lt;/svg&gt;]]&gt;&amp;&#39;\u{FFFD}"
        );
    }

    #[test]
    fn truncate_cuts_on_character_boundaries() {
        assert_eq!(truncate("ééé", 2), "éé…");
        assert_eq!(truncate("ab", 5), "ab");
    }

    #[test]
    fn json_details_cuts_large_values_and_says_so() {
        let big = serde_json::Value::String("x".repeat(10_000));
        let html = json_details("evidence", &big, 1024);
        assert!(html.len() < 2_000, "{}", html.len());
        assert!(html.contains("Cut at 1 KiB"));
    }
}
