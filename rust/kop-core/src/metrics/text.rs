//! The Prometheus text exposition format (version 0.0.4), written by hand: `# HELP`/`# TYPE`
//! once per family, then one line per sample. A family started again (the brokers of the
//! `tenants` option render the same families, each with its `tenant` label) adds its samples
//! to the first one, so every family stays one group, as the format requires.

use std::fmt::Write;

use super::histogram::{HistogramSnapshot, BOUNDS_SECONDS};

/// The `Content-Type` of the format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Default)]
pub struct Text {
    /// Each family's header and samples, in the order first started.
    families: Vec<String>,
    index: std::collections::HashMap<String, usize>,
    /// The family samples go to now.
    current: usize,
    /// Text from elsewhere, after the families.
    raw: String,
    /// Set while a tenant's broker renders: every sample gets `tenant="TENANT/NS"` first.
    tenant: Option<String>,
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
        if let Some(&i) = self.index.get(name) {
            self.current = i;
            return;
        }
        let mut header = String::new();
        let _ = writeln!(header, "# HELP {name} {help}");
        let _ = writeln!(header, "# TYPE {name} {kind}");
        self.current = self.families.len();
        self.index.insert(name.to_string(), self.current);
        self.families.push(header);
    }

    /// The `tenant` label of the samples that follow (None: none).
    pub fn set_tenant(&mut self, tenant: Option<&str>) {
        self.tenant = tenant.map(str::to_string);
    }

    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Into<f64>) {
        if self.families.is_empty() {
            self.families.push(String::new());
        }
        let tenant = self.tenant.as_deref().map(|t| ("tenant", t));
        let out = &mut self.families[self.current];
        out.push_str(name);
        let all: Vec<(&str, &str)> = tenant.into_iter().chain(labels.iter().copied()).collect();
        if !all.is_empty() {
            out.push('{');
            for (i, (k, v)) in all.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(k);
                out.push_str("=\"");
                escape(v, out);
                out.push('"');
            }
            out.push('}');
        }
        let v: f64 = value.into();
        let _ = writeln!(out, " {v}");
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
        let mut out = self.families.concat();
        out.push_str(&self.raw);
        out
    }

    /// Text from elsewhere (e.g. the Python bridge's collector), already in the format.
    pub fn raw(&mut self, text: &str) {
        self.raw.push_str(text);
        if !text.is_empty() && !text.ends_with('\n') {
            self.raw.push('\n');
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

    #[test]
    fn a_family_started_again_keeps_its_samples_together() {
        let mut t = Text::default();
        t.family("kop_a", "gauge", "a");
        t.sample("kop_a", &[], 1u32);
        t.family("kop_b", "gauge", "b");
        t.sample("kop_b", &[], 2u32);
        t.set_tenant(Some("acme/default"));
        t.family("kop_a", "gauge", "a");
        t.sample("kop_a", &[("topic", "orders")], 3u32);
        assert_eq!(
            t.into_string(),
            "# HELP kop_a a\n# TYPE kop_a gauge\nkop_a 1\nkop_a{tenant=\"acme/default\",topic=\"orders\"} 3\n\
             # HELP kop_b b\n# TYPE kop_b gauge\nkop_b 2\n"
        );
    }
}
