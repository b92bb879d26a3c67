//! Durations on the command line: `90` or `90s` seconds, `30m` minutes, `24h` hours
//! (fractions allowed: `1.5h`), so that a soak test reads as one.

/// Seconds in `text`: a positive number with an optional unit `s`, `m` or `h`.
pub fn parse_seconds(text: &str) -> Result<f64, String> {
    let t = text.trim();
    let (number, scale) = match t.char_indices().last() {
        Some((i, 's')) => (&t[..i], 1.0),
        Some((i, 'm')) => (&t[..i], 60.0),
        Some((i, 'h')) => (&t[..i], 3600.0),
        _ => (t, 1.0),
    };
    match number.trim().parse::<f64>() {
        Ok(n) if n.is_finite() && n > 0.0 => Ok(n * scale),
        _ => Err(format!(
            "{text:?} is not a duration; give a positive number of seconds, optionally with a unit: 90, 90s, 30m, 24h"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_minutes_hours_and_plain_numbers() {
        assert_eq!(parse_seconds("90"), Ok(90.0));
        assert_eq!(parse_seconds("90s"), Ok(90.0));
        assert_eq!(parse_seconds("30m"), Ok(1800.0));
        assert_eq!(parse_seconds("24h"), Ok(86_400.0));
        assert_eq!(parse_seconds("1.5h"), Ok(5400.0));
        assert_eq!(parse_seconds("0.5"), Ok(0.5));
        for bad in ["", "h", "-1", "0", "10x", "1e999", "nan", "5 days"] {
            assert!(parse_seconds(bad).is_err(), "{bad}");
        }
    }
}
