//! Inputs that are no history (empty files, random bytes, other text files, text with a
//! few op-like lines) are errors naming the file and the formats tried, never a history
//! of zero ops that a checker would then call valid.

use distest_checkers::format::{read_history, Format, ParseError};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

fn no_ops_error(bytes: &[u8], format: Option<Format>) -> String {
    match read_history(bytes, format, "input.txt") {
        Err(e @ ParseError::NoOps { .. }) => e.to_string(),
        Err(other) => panic!("expected a no-ops error, got another error: {other}"),
        Ok(h) => panic!("expected a no-ops error, got a history of {} ops", h.len()),
    }
}

#[test]
fn an_empty_or_blank_file_is_no_history() {
    for text in ["", "\n\n", "   \n\t\n"] {
        let message = no_ops_error(text.as_bytes(), None);
        assert!(message.starts_with("input.txt: "), "{message}");
        assert!(!message.contains('\n'), "one sentence: {message}");
    }
    assert!(no_ops_error(b"", None).contains("empty"));
    for format in [Format::Jsonl, Format::Edn, Format::JepsenLog] {
        let message = no_ops_error(b"\n", Some(format));
        assert!(message.contains(format.name()), "{message}");
        assert!(message.contains("--format"), "{message}");
    }
}

#[test]
fn a_text_file_without_ops_names_the_formats_tried() {
    let passwd = "root:x:0:0:root:/root:/bin/bash\n\
                  daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n\
                  bin:x:2:2:bin:/bin:/usr/sbin/nologin\n";
    let message = no_ops_error(passwd.as_bytes(), None);
    for name in ["JSON Lines", "EDN", "Jepsen log"] {
        assert!(message.contains(name), "{message}");
    }
    // An EDN file of comments only.
    let message = no_ops_error(b"; nothing here\n; at all\n", None);
    assert!(message.contains("edn"), "{message}");
}

#[test]
fn random_bytes_are_an_error_never_a_history() {
    let mut rng = SmallRng::seed_from_u64(7);
    for round in 0..50 {
        let len = rng.gen_range(1..100_000);
        let mut bytes: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
        // A few rounds start like each format, so every reader meets garbage.
        match round % 4 {
            0 => bytes.splice(0..0, b"{\"".iter().copied()).for_each(drop),
            1 => bytes.splice(0..0, b"[{:".iter().copied()).for_each(drop),
            _ => {}
        }
        if let Ok(h) = read_history(&bytes[..], None, "random.bin") {
            panic!(
                "round {round}: random bytes read as a history of {} ops",
                h.len()
            );
        }
    }
}

#[test]
fn a_history_txt_must_be_mostly_ops_but_a_jepsen_log_may_log_anything() {
    let op = "0\t:invoke\t:read\tnil\n0\t:ok\t:read\t1\n";
    let prose = "this is a line of prose\n".repeat(10);
    // Two op-like lines among ten others, with no Jepsen logger line: not a history.txt.
    let err = read_history(format!("{prose}{op}").as_bytes(), None, "notes.txt").unwrap_err();
    assert!(matches!(err, ParseError::NoOps { .. }), "{err}");
    assert!(err.to_string().contains("2 of its 12 lines"), "{err}");
    // Mostly ops: a history.txt with a comment line or two is fine.
    let ok = read_history(format!("a header\n{op}").as_bytes(), None, "history.txt").unwrap();
    assert_eq!(ok.len(), 2);
    // A Jepsen log interleaves its ops with any amount of other logging.
    let log = format!(
        "{}INFO  jepsen.util - 0\t:invoke\t:read\tnil\nINFO  jepsen.util - 0\t:ok\t:read\t1\n",
        "INFO  jepsen.core - setting up the cluster\n".repeat(50)
    );
    assert_eq!(
        read_history(log.as_bytes(), None, "jepsen.log")
            .unwrap()
            .len(),
        2
    );
}
