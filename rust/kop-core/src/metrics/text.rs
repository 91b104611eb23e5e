//! The Prometheus text exposition format (version 0.0.4), written by hand: `# HELP`/`# TYPE`
//! once per family, then one line per sample.

use std::fmt::Write;

use super::histogram::{HistogramSnapshot, BOUNDS_SECONDS};

/// The `Content-Type` of the format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Default)]
pub struct Text {
    out: String,
}

/// Escapes a label value (backslash, double quote, newline).
fn escape(value: &str, out: &mut String) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

impl Text {
    /// Starts a family: `kind` is counter, gauge or histogram.
    pub fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    fn labels(&mut self, labels: &[(&str, &str)]) {
        if labels.is_empty() {
            return;
        }
        self.out.push('{');
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                self.out.push(',');
            }
            self.out.push_str(k);
            self.out.push_str("=\"");
            escape(v, &mut self.out);
            self.out.push('"');
        }
        self.out.push('}');
    }

    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Into<f64>) {
        self.out.push_str(name);
        self.labels(labels);
        let v: f64 = value.into();
        let _ = writeln!(self.out, " {v}");
    }

    /// The `_bucket`, `_sum` and `_count` lines of one histogram.
    pub fn histogram(&mut self, name: &str, labels: &[(&str, &str)], h: &HistogramSnapshot) {
        let mut with_le: Vec<(&str, &str)> = labels.to_vec();
        let bounds: Vec<String> = BOUNDS_SECONDS
            .iter()
            .map(|b| b.to_string())
            .chain(["+Inf".to_string()])
            .collect();
        with_le.push(("le", ""));
        let bucket = format!("{name}_bucket");
        for (le, n) in bounds.iter().zip(h.cumulative) {
            *with_le.last_mut().expect("le pushed") = ("le", le);
            self.sample(&bucket, &with_le, n as f64);
        }
        self.sample(&format!("{name}_sum"), labels, h.sum_seconds);
        self.sample(&format!("{name}_count"), labels, h.count as f64);
    }

    pub fn into_string(self) -> String {
        self.out
    }

    /// Text from elsewhere (e.g. the Python bridge's collector), already in the format.
    pub fn raw(&mut self, text: &str) {
        self.out.push_str(text);
        if !text.is_empty() && !text.ends_with('\n') {
            self.out.push('\n');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_escaped_and_families_have_help_and_type() {
        let mut t = Text::default();
        t.family("kop_x_total", "counter", "x");
        t.sample("kop_x_total", &[("topic", "a\"b\\c\nd")], 3u32);
        let s = t.into_string();
        assert_eq!(
            s,
            "# HELP kop_x_total x\n# TYPE kop_x_total counter\nkop_x_total{topic=\"a\\\"b\\\\c\\nd\"} 3\n"
        );
    }
}
