//! The markdown of `docs/man/*.md` to man(7) roff.
//!
//! Ours rather than pandoc: the output is committed and checked byte for byte, and pandoc's
//! roff changes between versions (a Debian upgrade would fail CI with no change of ours); it
//! would also be one more package to install.
//!
//! Ours rather than the `roff` crate (1.1.1, in Cargo.lock through clap_mangen) too, looked at
//! for issue 15: that crate writes roff from a document built in code, it reads no markdown. It
//! would take over `escape`, `guard` and the five macro lines below, about 25 of these 140
//! lines, while the markdown reader, which is most of the file and has no crate of the same
//! small size, stays ours either way; and every committed page would be regenerated for a
//! different spelling of the same output. Not worth a dependency of xtask.
//!
//! The pages need little, so the converter reads only this subset:
//!
//! - `% name(section)`, the first line: the `.TH` title;
//! - `# HEADING` (`.SH`) and `## Heading` (`.SS`);
//! - paragraphs, separated by blank lines;
//! - definitions: a term line, then `:   text` with continuation lines indented four spaces
//!   (`.TP`);
//! - fenced code blocks (no filling, indented);
//! - inline `` `code` `` (bold) and `*word*` (italic).

/// Renders one page; `version` goes into the title's footer.
pub fn render(markdown: &str, version: &str) -> Result<String, String> {
    let mut lines = markdown.lines().peekable();
    let title = lines
        .next()
        .and_then(|l| l.strip_prefix("% "))
        .ok_or("the first line must be `% name(section)`")?;
    let (name, section) = title
        .trim()
        .strip_suffix(')')
        .and_then(|t| t.split_once('('))
        .ok_or("the first line must be `% name(section)`")?;
    let mut out = format!(
        ".TH {} {section} \"\" \"twofa {version}\" \"twofa manual\"\n",
        name.to_uppercase()
    );

    let mut paragraph: Vec<String> = Vec::new();
    let flush = |out: &mut String, paragraph: &mut Vec<String>| {
        if !paragraph.is_empty() {
            out.push_str(".PP\n");
            for l in paragraph.drain(..) {
                out.push_str(&text_line(&l));
            }
        }
    };
    while let Some(line) = lines.next() {
        if line.trim().is_empty() {
            flush(&mut out, &mut paragraph);
        } else if let Some(h) = line.strip_prefix("## ") {
            flush(&mut out, &mut paragraph);
            out.push_str(&format!(".SS \"{}\"\n", escape(h.trim())));
        } else if let Some(h) = line.strip_prefix("# ") {
            flush(&mut out, &mut paragraph);
            out.push_str(&format!(".SH \"{}\"\n", escape(h.trim())));
        } else if line.starts_with("```") {
            flush(&mut out, &mut paragraph);
            out.push_str(".PP\n.RS 4\n.nf\n");
            loop {
                match lines.next() {
                    Some(l) if l.starts_with("```") => break,
                    Some(l) => out.push_str(&guard(&escape(l))),
                    None => return Err("a code block is not closed".into()),
                }
            }
            out.push_str(".fi\n.RE\n");
        } else if lines.peek().is_some_and(|n| n.starts_with(":   ")) {
            flush(&mut out, &mut paragraph);
            out.push_str(".TP\n");
            out.push_str(&text_line(line));
            let first = lines.next().unwrap_or_default();
            out.push_str(&text_line(&first[4..]));
            while let Some(more) = lines.next_if(|l| l.starts_with("    ")) {
                out.push_str(&text_line(more.trim_start()));
            }
        } else if line.starts_with(":   ") {
            return Err(format!("a definition without a term: {line}"));
        } else {
            paragraph.push(line.trim().to_string());
        }
    }
    flush(&mut out, &mut paragraph);
    Ok(out)
}

/// Escapes roff's special characters in plain text.
fn escape(text: &str) -> String {
    text.replace('\\', "\\e").replace('-', "\\-")
}

/// A line that can't be read as a control line.
fn guard(line: &str) -> String {
    if line.starts_with('.') || line.starts_with('\'') {
        format!("\\&{line}\n")
    } else {
        format!("{line}\n")
    }
}

/// One line of running text, with inline code (bold) and emphasis (italic).
fn text_line(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line.trim();
    while !rest.is_empty() {
        let next = rest.find(['`', '*']).unwrap_or(rest.len());
        out.push_str(&escape(&rest[..next]));
        rest = &rest[next..];
        let Some(mark) = rest.chars().next() else {
            break;
        };
        match rest[1..].find(mark) {
            Some(end) if end > 0 => {
                let font = if mark == '`' { "\\fB" } else { "\\fI" };
                out.push_str(&format!("{font}{}\\fR", escape(&rest[1..1 + end])));
                rest = &rest[end + 2..];
            }
            _ => {
                out.push(mark);
                rest = &rest[1..];
            }
        }
    }
    guard(&out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_subset_renders_to_man_macros() -> Result<(), String> {
        let md = "% x.y(5)\n\n# NAME\n\nx - a *thing*\n\n## [t]\n\n`t.k` = 1\n:   One `two`\n    three.\n\n```\n.dot -x\n```\n";
        assert_eq!(
            render(md, "1.0")?,
            ".TH X.Y 5 \"\" \"twofa 1.0\" \"twofa manual\"\n.SH \"NAME\"\n.PP\nx \\- a \\fIthing\\fR\n\
             .SS \"[t]\"\n.TP\n\\fBt.k\\fR = 1\nOne \\fBtwo\\fR\nthree.\n.PP\n.RS 4\n.nf\n\\&.dot \\-x\n.fi\n.RE\n"
        );
        Ok(())
    }

    #[test]
    fn bad_sources_are_refused() {
        assert!(render("# NAME\n", "1").is_err());
        assert!(render("% a(1)\n```\nopen\n", "1").is_err());
        assert!(render("% a(1)\n\n:   no term\n", "1").is_err());
    }
}
