//! The text templates in `templates/`, embedded at build time and looked up by name.
//!
//! Structured files (k0sctl.yaml, lab.json) are serialised from typed structs instead; only
//! the Vagrantfile, the guest scripts and haproxy.cfg are text templates. Undefined variables
//! are errors, and every string that lands in Ruby goes through the `ruby` filter.

use std::collections::HashMap;
use std::sync::LazyLock;

use serde::Serialize;
use tera::{Context, Tera, Value};

use crate::error::{Error, Result};

pub const VAGRANTFILE: &str = "Vagrantfile.tera";
pub const GUEST_SETUP: &str = "guest-setup.sh.tera";
pub const LOAD_BALANCER_SETUP: &str = "load-balancer-setup.sh.tera";
pub const HAPROXY_CFG: &str = "haproxy.cfg.tera";

const SOURCES: [(&str, &str); 4] = [
    (VAGRANTFILE, include_str!("../templates/Vagrantfile.tera")),
    (
        GUEST_SETUP,
        include_str!("../templates/guest-setup.sh.tera"),
    ),
    (
        LOAD_BALANCER_SETUP,
        include_str!("../templates/load-balancer-setup.sh.tera"),
    ),
    (HAPROXY_CFG, include_str!("../templates/haproxy.cfg.tera")),
];

static TEMPLATES: LazyLock<Tera> = LazyLock::new(|| {
    let mut tera = Tera::default();
    tera.autoescape_on(vec![]);
    tera.add_raw_templates(SOURCES)
        .expect("the embedded templates parse");
    tera.register_filter("ruby", ruby_filter);
    tera
});

/// Renders template `name` with `context`.
pub fn render(name: &str, context: &impl Serialize) -> Result<String> {
    let fail = |reason: String| Error::Render {
        name: name.to_string(),
        reason,
    };
    let context = Context::from_serialize(context).map_err(|e| fail(error_chain(&e)))?;
    TEMPLATES
        .render(name, &context)
        .map_err(|e| fail(error_chain(&e)))
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// A Ruby double-quoted string literal holding exactly `s`: no interpolation, no escapes.
pub fn ruby_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '#' => out.push_str("\\#"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn ruby_filter(value: &Value, _: &HashMap<String, Value>) -> tera::Result<Value> {
    match value {
        Value::String(s) => Ok(Value::String(ruby_string(s))),
        Value::Number(n) => Ok(Value::String(n.to_string())),
        Value::Bool(b) => Ok(Value::String(b.to_string())),
        other => Err(tera::Error::msg(format!(
            "the ruby filter takes strings, numbers and booleans, not {other}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ruby_strings_cannot_break_out() {
        assert_eq!(ruby_string("plain"), "\"plain\"");
        assert_eq!(ruby_string("a\"b"), "\"a\\\"b\"");
        assert_eq!(ruby_string("#{`id`}"), "\"\\#{`id`}\"");
        assert_eq!(ruby_string("back\\slash"), "\"back\\\\slash\"");
        assert_eq!(ruby_string("line\nbreak"), "\"line\\nbreak\"");
        assert_eq!(ruby_string("\u{7}"), "\"\\u{7}\"");
    }

    #[test]
    fn every_template_parses() {
        for (name, _) in SOURCES {
            assert!(TEMPLATES.get_template_names().any(|n| n == name), "{name}");
        }
    }

    #[test]
    fn undefined_variables_are_errors() {
        let err = render(HAPROXY_CFG, &serde_json::json!({})).unwrap_err();
        assert!(err.to_string().contains(HAPROXY_CFG), "{err}");
    }
}
