//! `{code}`, `{ttl_minutes}`, `{user}`, `{host}` in subjects, bodies, titles and messages.

use crate::error::Failure;
use crate::request::Invocation;

/// The values a template may use.
#[derive(Debug)]
pub(crate) struct Vars<'a> {
    pub(crate) code: &'a str,
    pub(crate) ttl_minutes: u32,
    pub(crate) user: &'a str,
    pub(crate) host: &'a str,
}

impl<'a> Vars<'a> {
    pub(crate) fn new(invocation: &'a Invocation, host: &'a str) -> Self {
        Vars {
            code: &invocation.code,
            ttl_minutes: ttl_minutes(invocation.ttl_seconds),
            user: &invocation.user,
            host,
        }
    }
}

/// Whole minutes, rounded down but at least 1: "valid for 0 minutes" would confuse.
pub(crate) fn ttl_minutes(ttl_seconds: u32) -> u32 {
    (ttl_seconds / 60).max(1)
}

/// Replaces the placeholders in `template` (the setting named `field`). `{{` and `}}` are
/// literal braces; any other `{...}` is an error naming the placeholder.
pub(crate) fn render(template: &str, vars: &Vars<'_>, field: &str) -> Result<String, Failure> {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(pos) = rest.find(['{', '}']) {
        out.push_str(&rest[..pos]);
        let tail = &rest[pos..];
        if let Some(after) = tail.strip_prefix("{{") {
            out.push('{');
            rest = after;
        } else if let Some(after) = tail.strip_prefix("}}") {
            out.push('}');
            rest = after;
        } else if let Some(after) = tail.strip_prefix('{') {
            let end = after.find('}').ok_or_else(|| {
                Failure::settings(format!(
                    "`{field}`: unclosed `{{` (write `{{{{` for a brace)"
                ))
            })?;
            match &after[..end] {
                "code" => out.push_str(vars.code),
                "ttl_minutes" => out.push_str(&vars.ttl_minutes.to_string()),
                "user" => out.push_str(vars.user),
                "host" => out.push_str(vars.host),
                other => {
                    let shown: String = other.chars().take(40).collect();
                    return Err(Failure::settings(format!(
                        "`{field}`: unknown placeholder `{{{shown}}}` (known: {{code}}, \
                         {{ttl_minutes}}, {{user}}, {{host}})"
                    )));
                }
            }
            rest = &after[end + 1..];
        } else {
            return Err(Failure::settings(format!(
                "`{field}`: lone `}}` (write `}}}}` for a brace)"
            )));
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// A rendered header or title: one line, no control characters at all.
pub(crate) fn render_line(
    template: &str,
    vars: &Vars<'_>,
    field: &str,
    max_chars: usize,
) -> Result<String, Failure> {
    let line = render(template, vars, field)?;
    if line.chars().any(char::is_control) {
        return Err(Failure::settings(format!(
            "`{field}` must be one line without control characters"
        )));
    }
    if line.chars().count() > max_chars {
        return Err(Failure::settings(format!(
            "`{field}` is longer than {max_chars} characters once filled in"
        )));
    }
    Ok(line)
}

/// A rendered body: lines separated by LF (CRLF accepted), tabs allowed, no other control
/// characters (a lone CR could end a header or an SMTP command early).
pub(crate) fn render_text(
    template: &str,
    vars: &Vars<'_>,
    field: &str,
    max_chars: usize,
) -> Result<String, Failure> {
    let text = render(template, vars, field)?.replace("\r\n", "\n");
    if text
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(Failure::settings(format!(
            "`{field}` holds a control character other than newline and tab"
        )));
    }
    if text.chars().count() > max_chars {
        return Err(Failure::settings(format!(
            "`{field}` is longer than {max_chars} characters once filled in"
        )));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    const VARS: Vars<'static> = Vars {
        code: "123456",
        ttl_minutes: 5,
        user: "alice",
        host: "bastion.example.com",
    };

    #[test]
    fn every_placeholder_is_filled_in() -> Result<(), Failure> {
        let out = render(
            "{user}@{host}: {code} ({ttl_minutes} min) {{literal}}",
            &VARS,
            "body",
        )?;
        assert_eq!(out, "alice@bastion.example.com: 123456 (5 min) {literal}");
        Ok(())
    }

    #[test]
    fn unknown_or_broken_placeholders_are_errors() {
        for bad in ["{password}", "code {code", "a } b", "{CODE}"] {
            assert!(render(bad, &VARS, "body").is_err(), "{bad}");
        }
    }

    #[test]
    fn a_placeholder_error_never_shows_the_code() {
        let err = render("{code} {nope}", &VARS, "body").err();
        let line = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(
            line.contains("{nope}") && !line.contains("123456"),
            "{line}"
        );
    }

    #[test]
    fn header_lines_refuse_newlines_from_any_source() {
        let vars = Vars {
            user: "eve\r\nBcc: x@example.com",
            ..VARS
        };
        assert!(render_line("Code for {user}", &vars, "subject", 200).is_err());
        assert!(render_line("Code\nX-Evil: 1", &VARS, "subject", 200).is_err());
        assert!(render_line("Code for {user}", &VARS, "subject", 10).is_err());
        assert!(render_line("Code for {user}", &VARS, "subject", 200).is_ok());
    }

    #[test]
    fn bodies_keep_newlines_but_refuse_lone_carriage_returns() -> Result<(), Failure> {
        assert_eq!(
            render_text("a\r\nb\n\tc", &VARS, "body", 100)?,
            "a\nb\n\tc".to_string()
        );
        assert!(render_text("a\rb", &VARS, "body", 100).is_err());
        assert!(render_text("a\u{0}b", &VARS, "body", 100).is_err());
        Ok(())
    }

    #[test]
    fn ttl_minutes_round_down_but_never_to_zero() {
        assert_eq!(ttl_minutes(300), 5);
        assert_eq!(ttl_minutes(359), 5);
        assert_eq!(ttl_minutes(30), 1);
    }
}
